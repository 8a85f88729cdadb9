package daemon

import (
	"context"
	"net/netip"
)

// startMonitor runs drop monitoring and reporting beside the main loop.
// It never blocks the firewall: a failure there is logged by the monitor.
func (d *Daemon) startMonitor(ctx context.Context) {
	if d.cfg.DryRun {
		return // nothing is dropped, so nothing is logged or reported
	}
	m, err := NewMonitor(d.cfg, d.key, d.log, MonitorOptions{Filter: d.reportable, Feeds: d.resolveFeeds, Hits: d.takeHit})
	if err != nil {
		d.log.Error("drop monitoring unavailable", "err", err)
		return
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(mctx); err != nil {
			d.log.Error("drop monitoring stopped", "err", err)
		}
	}()
	d.monitor = m
	d.mu.Lock()
	d.monForHealth = m
	d.mu.Unlock()
	d.monitorStop = func() { cancel(); <-done }
}

func (d *Daemon) stopMonitor() {
	if d.monitorStop != nil {
		d.monitorStop()
		d.monitorStop = nil
	}
}

// reportable says whether a dropped source may be reported to SikkerAPI:
// never one that the firewall would accept (whitelist, safety list, own
// addresses). Called from the monitor's goroutine.
func (d *Daemon) reportable(a netip.Addr) bool {
	allow := d.allowNow.Load()
	return allow == nil || !allow.Contains(a)
}

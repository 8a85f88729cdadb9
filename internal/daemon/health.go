package daemon

import (
	"context"

	"github.com/sikkerapi/sikkerguard/internal/health"
	"github.com/sikkerapi/sikkerguard/internal/version"
)

// startHealth serves health.listen when set. A port that cannot be bound is
// logged, not fatal: monitoring must never keep the firewall from starting.
func (d *Daemon) startHealth(ctx context.Context) {
	if d.cfg.Health.Listen == "" {
		return
	}
	srv, err := health.New(d.cfg.Health.Listen, healthSource{d}, d.log)
	if err == nil {
		err = srv.Listen()
	}
	if err != nil {
		d.log.Error("health endpoint unavailable", "listen", d.cfg.Health.Listen, "err", err)
		return
	}
	d.log.Info("health endpoint listening", "addr", srv.Addr().String())
	go func() {
		if err := srv.Serve(ctx); err != nil {
			d.log.Warn("health endpoint stopped", "err", err)
		}
	}()
}

// healthSource adapts the daemon's published status for the endpoint; it
// runs on the HTTP server's goroutines and reads only locked snapshots.
type healthSource struct{ d *Daemon }

func (h healthSource) Snapshot() health.Snapshot {
	d := h.d
	st := d.Status()
	s := health.Snapshot{
		State: string(st.State), Reason: st.LastError, Version: version.String(), DryRun: st.DryRun,
		Started: st.Started, BlockedIPv4: uint64(st.BlockedIPv4), BlockedIPv6: uint64(st.BlockedIPv6),
		LastPull: st.LastPull, RulesRestored: d.restored.Load(),
	}
	for _, f := range st.Feeds {
		s.Feeds = append(s.Feeds, health.Feed{Name: f.Name, Entries: uint64(f.Entries), LastPull: f.LastPull,
			Error: f.Error, Dropped: f.Dropped, State: f.State})
	}
	if q := st.Quota; q != nil {
		s.Quota = &health.Quota{Used: q.Used, Limit: q.Limit, Remaining: q.Remaining, Reset: q.Reset}
	}
	d.mu.Lock()
	fw, mon := d.fwForHealth, d.monForHealth
	d.mu.Unlock()
	if fw != nil {
		if c, err := fw.Counters(); err == nil {
			s.Drops4Packets, s.Drops4Bytes, s.Drops6Packets, s.Drops6Bytes = c.Packets4, c.Bytes4, c.Packets6, c.Bytes6
			s.ListenerWarnings = c.ListenerWarnings
		}
	}
	if mon != nil {
		ms := mon.Stats()
		s.NFLOGEvents, s.NFLOGOverruns, s.NFLOGQueueDrops = ms.Events, ms.Overruns, ms.QueueDrops
		s.Reported, s.ReportPending, s.ReportRejected = ms.Reported, uint64(ms.ReportPending), ms.ReportRejected
		s.LastReport = ms.LastReport
		s.ServiceTotals = mon.ServiceTotals()
	}
	s.Hub = d.hubMetrics()
	s.FeedLedger = d.Feeds()
	return s
}

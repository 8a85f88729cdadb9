package daemon

import (
	"context"
	"reflect"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/sikkerapi/sikkerguard/internal/config"
)

// reload re-reads configuration and key, rebuilds what depends on them
// and pulls every feed; READY=1 follows once the result is applied.
func (d *Daemon) reload(ctx context.Context) {
	d.notify(sddaemon.SdNotifyReloading)
	d.log.Info("reloading")
	if d.o.Load != nil {
		cfg, key, err := d.o.Load()
		if err != nil {
			d.log.Error("reload: configuration refused; keeping the running one", "err", err)
		} else {
			d.applyConfig(ctx, cfg, key)
		}
	}
	runtime := d.protect.runtime
	d.protect = discoverProtection(ctx, d.cfg, runtime, d.o.Discover, d.log)
	d.forceDue()
	d.startDuePulls(ctx)
	if !d.pulling() {
		d.reconcile(ctx)
		d.notify(sddaemon.SdNotifyReady + "\n" + d.statusLine())
		d.finishReload()
		return
	}
	d.reloading = true
}

// applyConfig switches to a new configuration. What changed is found by
// comparing whole sections, so a setting added later cannot be missed:
// feeds whose source settings changed get a new source and are pulled
// again; a changed firewall section gets a new backend, which adopts the
// table in place (a changed backend kind removes the old one's objects
// after the new one holds the list); drop monitoring restarts when
// anything it reads changed.
func (d *Daemon) applyConfig(ctx context.Context, cfg config.Config, key config.Secret) {
	old, oldKey := d.cfg, d.key
	feeds, err := syncFeeds(d.feeds, cfg, key, d.o.Now(), d.log)
	if err != nil {
		d.log.Error("reload: feeds refused; keeping the running configuration", "err", err)
		return
	}
	if len(feeds) == 0 {
		d.log.Error("reload: configuration refused; keeping the running one", "err", ErrNoFeeds)
		return
	}
	d.cfg, d.key, d.feeds = cfg, key, feeds
	if firewallChanged(old, cfg) {
		d.switchFirewall(ctx, old)
	}
	if monitorChanged(old, d.cfg) || oldKey.Reveal() != key.Reveal() {
		d.stopMonitor()
		d.startMonitor(ctx)
	}
}

// switchFirewall moves to a backend built for the new firewall settings;
// on failure the running one stays.
func (d *Daemon) switchFirewall(ctx context.Context, old config.Config) {
	oldFW := d.fw
	if err := d.buildFirewall(); err != nil {
		d.log.Error("reload: firewall refused; keeping the running one", "err", err)
		d.cfg.Firewall, d.cfg.DryRun, d.fw = old.Firewall, old.DryRun, oldFW
		return
	}
	d.hasApplied = false // the new backend has no copy yet
	d.reconcile(ctx)
	d.startWatch(ctx)
	if old.Firewall.Backend != d.cfg.Firewall.Backend || old.DryRun != d.cfg.DryRun {
		if err := oldFW.Remove(); err != nil {
			d.log.Warn("reload: removing the previous backend's objects", "err", err)
		}
	}
}

// firewallChanged compares everything a backend is built from.
func firewallChanged(a, b config.Config) bool {
	return !reflect.DeepEqual(a.Firewall, b.Firewall) || a.DryRun != b.DryRun
}

// monitorChanged compares everything drop monitoring and reporting read.
func monitorChanged(a, b config.Config) bool {
	return !reflect.DeepEqual(a.Firewall, b.Firewall) || !reflect.DeepEqual(a.Report, b.Report) ||
		!reflect.DeepEqual(a.API, b.API) || !reflect.DeepEqual(a.Safety, b.Safety) ||
		a.StateDir != b.StateDir || a.DryRun != b.DryRun
}

package daemon

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
)

// ConfigError is a reload refused because the new configuration is
// invalid; the running one stays. Its text is the errors as -t prints
// them (file:line: field: problem).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string {
	return "configuration refused; keeping the running one:\n" + e.Err.Error()
}
func (e *ConfigError) Unwrap() []error { return []error{e.Err, dbusapi.ErrInvalidConfig} }

// reload re-reads configuration and key, rebuilds what depends on them
// and pulls the feeds whose source settings changed (the others keep
// their schedule: a reload must not spend quota on an unchanged list);
// READY=1 follows once the result is applied. A configuration that does
// not load is refused visibly: READY=1 comes with STATUS=reload failed
// and ERRNO=, and the callers of Reload get a ConfigError.
func (d *Daemon) reload(ctx context.Context) {
	d.notify(sddaemon.SdNotifyReloading)
	d.log.Info("reloading")
	if d.o.Load != nil {
		cfg, key, err := d.o.Load()
		if err == nil {
			err = d.applyConfig(ctx, cfg, key)
		}
		if err != nil {
			d.refuseReload(&ConfigError{Err: err})
			return
		}
	}
	d.reloadFailed = ""
	d.reloadHubTokens()
	runtime := d.protect.runtime
	d.protect = discoverProtection(ctx, d.cfg, runtime, d.o.Discover, d.log)
	d.startDuePulls(ctx)
	if !d.pulling() {
		d.reconcile(ctx)
		d.notify(sddaemon.SdNotifyReady + "\n" + d.statusLine())
		d.finishReload()
		return
	}
	d.reloading = true
}

// refuseReload ends a reload that changed nothing.
func (d *Daemon) refuseReload(err *ConfigError) {
	d.log.Error("reload: configuration refused; keeping the running one", "err", err.Err)
	d.reloadFailed = firstLine(err.Err.Error())
	// EINVAL: systemd logs it with the unit; STATUS= keeps the reason.
	d.notify(sddaemon.SdNotifyReady + "\n" + d.statusLine() + "\nERRNO=22")
	for _, w := range d.reloadWaiters {
		w <- err
	}
	d.reloadWaiters = nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		n := strings.Count(s, "\n")
		return fmt.Sprintf("%s (and %d more)", s[:i], n)
	}
	return s
}

// applyConfig switches to a new configuration. What changed is found by
// comparing whole sections, so a setting added later cannot be missed:
// feeds whose source settings changed get a new source and are pulled
// again; a changed firewall section gets a new backend, which adopts the
// table in place (a changed backend kind removes the old one's objects
// after the new one holds the list); drop monitoring restarts when
// anything it reads changed.
func (d *Daemon) applyConfig(ctx context.Context, cfg config.Config, key config.Secret) error {
	old, oldKey := d.cfg, d.key
	feeds, err := syncFeeds(d.feeds, cfg, key, d.o.Now(), d.log)
	if err != nil {
		return err
	}
	if len(feeds) == 0 {
		return ErrNoFeeds
	}
	d.cfg, d.key, d.feeds = cfg, key, feeds
	if firewallChanged(old, cfg) {
		d.switchFirewall(ctx, old)
	}
	if monitorChanged(old, d.cfg) || oldKey.Reveal() != key.Reveal() {
		d.stopMonitor()
		d.startMonitor(ctx)
	}
	return nil
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

// firewallChanged compares everything a backend is built from: the
// firewall section and the objects the feeds' roles need.
func firewallChanged(a, b config.Config) bool {
	return !reflect.DeepEqual(a.FirewallSettings(), b.FirewallSettings()) || a.DryRun != b.DryRun
}

// monitorChanged compares everything drop monitoring and reporting read.
func monitorChanged(a, b config.Config) bool {
	return !reflect.DeepEqual(a.Firewall, b.Firewall) || !reflect.DeepEqual(a.Report, b.Report) ||
		!reflect.DeepEqual(a.API, b.API) || !reflect.DeepEqual(a.Safety, b.Safety) ||
		a.StateDir != b.StateDir || a.DryRun != b.DryRun
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/godbus/dbus/v5"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/hub"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/ledger"
	"github.com/sikkerapi/sikkerguard/internal/safety"
)

// State is the daemon's health as the contract names it.
type State string

const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateDegraded State = "degraded"
	StateFailed   State = "failed"
)

// Notifier sends one sd_notify message; SdNotify is the real one.
type Notifier func(state string) error

// SdNotify sends state to systemd's notify socket, if there is one.
func SdNotify(state string) error {
	_, err := sddaemon.SdNotify(false, state)
	return err
}

// Options wire a Daemon. Everything with a default may be left zero.
type Options struct {
	Config config.Config
	// Hits receives the logged hits of every kind (drops, would-block,
	// outbound) with the feeds listing each address, once per aggregation
	// window; nil discards them.
	Hits HitSink
	Key  config.Secret
	Log  *slog.Logger
	// NewFirewall builds the backend for a configuration; with dry_run the
	// daemon uses its own logging backend instead.
	NewFirewall func(config.Config) (firewall.Firewall, error)
	// Load re-reads configuration and key on reload (SIGHUP).
	Load func() (config.Config, config.Secret, error)
	// Reload delivers reload requests (SIGHUP).
	Reload <-chan struct{}
	// Notify defaults to SdNotify.
	Notify Notifier
	// Discover finds the never-block addresses; default: netlink,
	// /etc/resolv.conf and the API host.
	Discover DiscoverFunc
	// Prober verifies connectivity around changes; default safety.Prober{}.
	Prober *safety.Prober
	// Watchdog is the ping interval; 0 reads WATCHDOG_USEC (half of it).
	Watchdog time.Duration
	// IntegrityCheck is how often the kernel objects are checked for
	// removal by another tool (default: safety.integrity_interval).
	IntegrityCheck time.Duration
	// RetryMin is the first retry delay of a failed feed (default 1 min).
	RetryMin time.Duration
	Now      func() time.Time
	// Jitter spreads regular pulls (default: up to 5 %); tests pass the
	// identity.
	Jitter func(time.Duration) time.Duration
	// Bus, when set, carries the D-Bus API; the name is owned before
	// READY=1. Nil runs without it.
	Bus *dbus.Conn
	// KeepOnStop decides whether the kernel objects stay at a stop although
	// cleanup_on_stop is set, and why (default: ask systemd over Bus
	// whether the stop is a restart or the unit is enabled; see
	// stopkind.go).
	KeepOnStop func() (bool, string)

	restorePolicy restorePolicy // the never-fight limits; zero: the defaults
}

// Daemon is the long-running service. Its state is owned by the main loop
// (Run); other goroutines (D-Bus) reach it through do.
type Daemon struct {
	o   Options
	log *slog.Logger
	cfg config.Config
	key config.Secret
	fw  firewall.Firewall

	feeds   []*feedState // in configuration order
	results chan pullResult

	protect protection // the never-block list in force

	applied    Plan // what the kernel holds
	hasApplied bool
	badPlan    *Plan  // last plan rolled back; not retried until it changes
	planIssue  string // why the current plan is not applied
	reloading  bool
	// reloadFailed is why the last reload was refused, shown in STATUS=
	// until a reload succeeds; "" when it did not fail.
	reloadFailed string

	// The entries blocked by hand: the list saved in the state directory,
	// the list in force and a change waiting for the decision.
	manual        []manualEntry
	manualInUse   *feed.Snapshot
	manualPending *feed.Snapshot
	manualRefused error // why the decision refused manualPending
	// sources are the fingerprints of the settings each feed's last good
	// list was pulled with (sources.json).
	sources map[string]string

	// Drift (drift.go): the backend's change reports, and the restores.
	changes        <-chan firewall.Change
	watchStop      func()
	guard          restoreGuard
	pendingRestore *firewall.Change // a restore waiting for the guard
	fightIssue     string           // why the state is degraded by restores
	restoreTimer   *time.Timer
	restoreAt      time.Time     // when restoreTimer fires; zero when idle
	restored       atomic.Uint64 // restores done, for /metrics
	fixedIntegrity bool          // Options.IntegrityCheck was given: reloads keep it

	bus           *dbusapi.Server
	ledger        *ledger.Ledger // the feeds' value ledger; safe from any goroutine
	monitor       *Monitor
	monitorStop   func()                    // cancels the monitor and waits for its flush
	allowNow      atomic.Pointer[ipnet.Set] // the allow set in force, for the reporter's filter
	roleSets      atomic.Pointer[[]roleSet] // the feeds' lists in force with their roles, for the monitor
	reloadWaiters []chan error
	pullWaiters   []pullWaiter
	cmds          chan func()   // control calls, run on the main loop
	stopped       chan struct{} // closed when the main loop has ended

	mu       sync.Mutex // guards the fields below for readers off the loop
	state    State
	lastPull time.Time
	started  time.Time
	counts   BlockCounts // of the applied blocklist
	status   dbusapi.Status
	// The backend and monitor in force, for the health endpoint's and the
	// bus's goroutines.
	fwForHealth  firewall.Firewall
	monForHealth *Monitor
	quota        *dbusapi.Quota
	hubForStatus *hub.Server

	hub *hubState // fleet hub; nil when hub.listen is empty
}

type pullResult struct {
	feed *feedState
	gen  uint64 // the source generation the pull was started with
	snap *feed.Snapshot
	err  error
}

// New prepares a daemon; Run starts it.
func New(o Options) (*Daemon, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Notify == nil {
		o.Notify = SdNotify
	}
	if o.Discover == nil {
		o.Discover = discover
	}
	if o.Prober == nil {
		o.Prober = &safety.Prober{}
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Minute
	}
	fixedIntegrity := o.IntegrityCheck > 0
	if !fixedIntegrity {
		o.IntegrityCheck = integrityInterval(o.Config)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Jitter == nil {
		o.Jitter = jitter
	}
	if o.KeepOnStop == nil {
		bus := o.Bus
		o.KeepOnStop = func() (bool, string) { return systemdKeeps(bus) }
	}
	if o.NewFirewall == nil && !o.Config.DryRun {
		return nil, errors.New("daemon: no firewall backend")
	}
	d := &Daemon{
		o: o, log: o.Log, cfg: o.Config, key: o.Key, fixedIntegrity: fixedIntegrity, guard: restoreGuard{restorePolicy: o.restorePolicy.withDefaults()},
		results: make(chan pullResult), cmds: make(chan func()), stopped: make(chan struct{}), state: StateStarting,
	}
	d.openLedger()
	return d, nil
}

// Run protects the host until ctx ends: last good lists at once, READY=1,
// then scheduled pulls, reloads and the watchdog. On return the kernel
// objects are removed when cleanup_on_stop is set.
func (d *Daemon) Run(ctx context.Context) error {
	defer close(d.stopped)
	d.mu.Lock()
	d.started = d.o.Now()
	d.mu.Unlock()
	if err := d.setup(ctx); err != nil {
		d.setState(StateFailed)
		return err
	}
	// Protection before the first pull: the last good lists on disk, judged
	// like any pulled list before they are enforced.
	// A cached list younger than its pull interval is not pulled again:
	// restarts and upgrades must not spend the day's quota on it.
	cached := 0
	now := d.o.Now()
	d.sources = loadSources(d.cfg.StateDir, d.log)
	for _, f := range d.feeds {
		if snap := f.src.Last(); snap != nil {
			f.pending = snap
			if d.sources[f.name] == f.spec.fingerprint() {
				f.sched.fromCache(now, snap.FetchedAt, f.interval)
			}
			cached++
		}
	}
	if len(d.manual) > 0 {
		d.manualPending = manualSnapshot(d.manual, now)
	}
	if cached == 0 {
		// Nothing cached (first start): pull once before going live, so the
		// table is built with a list rather than empty whenever possible.
		d.pullNow(ctx)
	}
	d.reconcile(ctx)
	if !d.hasApplied {
		// Not even an empty table could be built: the backend is broken.
		d.setState(StateFailed)
		return fmt.Errorf("firewall: %s", d.planIssue)
	}
	if d.o.Bus != nil {
		srv, err := dbusapi.Export(d.o.Bus, d, dbusapi.Options{Logger: d.log, State: dbusapi.State(d.State()),
			Backend: d.cfg.Firewall.Backend, DryRun: d.cfg.DryRun})
		if err != nil {
			// Most likely a second daemon: two must never drive one firewall.
			d.setState(StateFailed)
			return fmt.Errorf("d-bus: %w", err)
		}
		d.bus = srv
		defer srv.Close()
	}
	d.startWatch(ctx)
	defer func() { d.stopWatch() }()
	defer d.startLedger(ctx)()
	d.startMonitor(ctx)
	defer func() { d.stopMonitor() }()
	d.startHealth(ctx)
	d.startKeyStatus(ctx)
	d.startHub(ctx)
	d.publish()
	d.log.Info("Firewall ready")
	d.notify(sddaemon.SdNotifyReady + "\n" + d.statusLine())
	return d.loop(ctx)
}

// loop is the main loop: every change of the daemon's state happens here.
func (d *Daemon) loop(ctx context.Context) error {
	watchdog := d.o.Watchdog
	if watchdog == 0 {
		if usec, err := sddaemon.SdWatchdogEnabled(false); err == nil && usec > 0 {
			watchdog = usec / 2
		}
	}
	var wd <-chan time.Time
	if watchdog > 0 {
		t := time.NewTicker(watchdog)
		defer t.Stop()
		wd = t.C
	}
	integrity := time.NewTicker(d.o.IntegrityCheck)
	defer integrity.Stop()
	timer := time.NewTimer(d.nextWake())
	defer timer.Stop()
	for {
		releaseMemory() // what the start or the last event used
		select {
		case <-ctx.Done():
			return d.stop()
		case <-wd:
			// From the main loop on purpose: a stuck apply or scheduler must
			// stop the pings so that systemd restarts the daemon.
			d.notify(sddaemon.SdNotifyWatchdog)
		case <-d.o.Reload:
			d.reload(ctx)
			if iv := integrityInterval(d.cfg); !d.fixedIntegrity && iv != d.o.IntegrityCheck {
				d.o.IntegrityCheck = iv
				integrity.Reset(iv)
			}
		case <-integrity.C:
			d.checkIntegrity(ctx)
		case c, ok := <-d.changes:
			if !ok {
				d.changes = nil
				d.log.Warn("the firewall watch ended; only the periodic check remains", "interval", d.o.IntegrityCheck)
				continue
			}
			d.onChange(ctx, c)
		case <-d.restoreTimerC():
			d.restoreDue()
		case f := <-d.cmds:
			f()
		case r := <-d.results:
			d.handleResult(r)
			// A reload that rebuilt a source started its pull again.
			d.startDuePulls(ctx)
			done := !d.pulling()
			if done {
				d.reconcile(ctx)
			}
			// The callers pullsDone answers read Status next: publish first.
			d.publish()
			if done {
				d.pullsDone()
			}
		case <-timer.C:
			d.expireManual()
			d.startDuePulls(ctx)
		}
		timer.Reset(d.nextWake())
	}
}

// setup checks the state directory, loads the runtime whitelist, discovers
// the never-block list and builds the firewall and the feeds.
func (d *Daemon) setup(ctx context.Context) error {
	if err := ensureStateDir(d.cfg.StateDir, d.log); err != nil {
		return err
	}
	runtime := loadRuntimeWhitelist(d.cfg.StateDir, d.log)
	d.manual = loadManual(d.cfg.StateDir, d.cfg.Safety, d.o.Now(), d.log)
	d.protect = discoverProtection(ctx, d.cfg, runtime, d.o.Discover, d.log)
	if err := d.buildFirewall(); err != nil {
		return err
	}
	feeds, err := syncFeeds(nil, d.cfg, d.key, d.o.Now(), d.log)
	if err != nil {
		return err
	}
	if len(feeds) == 0 {
		return ErrNoFeeds
	}
	d.feeds = feeds
	return nil
}

func (d *Daemon) buildFirewall() error {
	if d.cfg.DryRun {
		d.fw = dryRunFirewall{log: d.log}
		return nil
	}
	fw, err := d.o.NewFirewall(d.cfg)
	if err != nil {
		return fmt.Errorf("firewall: %w", err)
	}
	d.fw = fw
	d.mu.Lock()
	d.fwForHealth = fw
	d.mu.Unlock()
	return nil
}

func (d *Daemon) updateState() {
	st := StateRunning
	if d.planIssue != "" || d.fightIssue != "" || slices.ContainsFunc(d.feeds, func(f *feedState) bool { return f.problem != "" }) {
		st = StateDegraded
	}
	d.setState(st)
}

func (d *Daemon) setState(st State) {
	d.mu.Lock()
	d.state = st
	d.mu.Unlock()
}

// State returns the current state (safe from any goroutine).
func (d *Daemon) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// statusLine is the STATUS= text `systemctl status` shows: the state, the
// counts, and while degraded the first reason, so that a wrong key or URL
// is visible without the journal. It runs on the main loop.
func (d *Daemon) statusLine() string {
	reason := d.reason()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := fmt.Sprintf("STATUS=%s: %s", d.state, d.counts)
	if !d.lastPull.IsZero() {
		s += ", last pull " + d.lastPull.UTC().Format("2006-01-02 15:04 UTC")
	}
	if reason != "" {
		s += "; " + reason
	}
	if d.reloadFailed != "" {
		s += "; reload failed: " + d.reloadFailed
	}
	return oneLine(s)
}

// reason is why the daemon is degraded: the plan's problem, else the first
// feed's ("" when all is well).
func (d *Daemon) reason() string {
	if d.planIssue != "" {
		return d.planIssue
	}
	for _, f := range d.feeds {
		if f.problem != "" {
			return fmt.Sprintf("feed %s %s: %s", f.name, f.state(), f.problem)
		}
	}
	return ""
}

// oneLine keeps a notify message to one line: a second line would be read
// by systemd as another assignment.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(s, "\n", "; ")
}

// nextWake is how long the main loop may sleep: until a feed is due or a
// manual entry expires.
func (d *Daemon) nextWake() time.Duration {
	now := d.o.Now()
	wake := nextWake(now, d.feeds)
	if at := d.nextManualExpiry(); !at.IsZero() {
		wake = min(wake, max(at.Sub(now), 0))
	}
	return wake
}

func (d *Daemon) notify(state string) {
	if err := d.o.Notify(state); err != nil {
		d.log.Debug("sd_notify failed", "err", err)
	}
}

// stop is the SIGTERM path.
func (d *Daemon) stop() error {
	d.notify(sddaemon.SdNotifyStopping)
	if !d.cfg.CleanupOnStop || d.cfg.DryRun {
		d.log.Info("stopping; the blocklist stays in the kernel (cleanup_on_stop: false)")
		return nil
	}
	if keep, why := d.o.KeepOnStop(); keep {
		d.log.Info("stopping; the blocklist stays in the kernel for the next start to adopt without a gap: "+why,
			"remove_with", "systemctl disable --now sikkerguard, or sikkerguard --cleanup")
		return nil
	}
	if err := d.fw.Remove(); err != nil {
		return fmt.Errorf("cleanup on stop: %w", err)
	}
	d.log.Info("Firewall rules removed")
	return nil
}

// integrityInterval is the period of the fallback check a configuration
// asks for (safety.integrity_interval; 1 min when unset).
func integrityInterval(cfg config.Config) time.Duration {
	if iv := cfg.Safety.IntegrityInterval; iv > 0 {
		return iv
	}
	return time.Minute
}

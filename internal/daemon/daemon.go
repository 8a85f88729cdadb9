package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/godbus/dbus/v5"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
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
	Key    config.Secret
	Log    *slog.Logger
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
	Discover func(ctx context.Context, cfg config.Config) (safety.NeverBlock, error)
	// Prober verifies connectivity around changes; default safety.Prober{}.
	Prober *safety.Prober
	// Watchdog is the ping interval; 0 reads WATCHDOG_USEC (half of it).
	Watchdog time.Duration
	// IntegrityCheck is how often the kernel objects are checked for
	// removal by another tool (default 1 min).
	IntegrityCheck time.Duration
	// RetryMin is the first retry delay of a failed feed (default 1 min).
	RetryMin time.Duration
	Now      func() time.Time
	// Bus, when set, carries the D-Bus API; the name is owned before
	// READY=1. Nil runs without it.
	Bus *dbus.Conn
}

// Daemon is the long-running service. Its state is owned by the main loop
// (Run); other goroutines (D-Bus) reach it through do.
type Daemon struct {
	o   Options
	log *slog.Logger
	cfg config.Config
	key config.Secret
	fw  firewall.Firewall

	srcs     []*feed.CachedSource
	next     map[string]time.Time // next pull per feed
	failures map[string]int       // consecutive failures, for backoff
	holdOff  map[string]time.Time // a 429's Retry-After, honoured even by reloads
	inflight map[string]bool
	inUse    map[string]*feed.Snapshot // the list each feed contributes
	problems map[string]string         // feed → why it is degraded
	results  chan pullResult

	never   safety.NeverBlock
	runtime []netip.Prefix // whitelist entries added at run time

	applied    Plan // what the kernel holds
	hasApplied bool
	badPlan    *Plan  // last plan rolled back; not retried until it changes
	planIssue  string // why the current plan is not applied
	reloading  bool

	bus           *dbusapi.Server
	top           func(n int) []dbusapi.TopEntry
	monitor       *Monitor
	monitorStop   func()                    // cancels the monitor and waits for its flush
	allowNow      atomic.Pointer[ipnet.Set] // the allow set in force, for the reporter's filter
	reloadWaiters []chan error
	cmds          chan func()   // control calls, run on the main loop
	stopped       chan struct{} // closed when the main loop has ended

	mu       sync.Mutex // guards the fields below for readers off the loop
	state    State
	lastPull time.Time
	started  time.Time
	counts   [2]int // applied ranges v4, v6
	status   dbusapi.Status
	// The backend and monitor in force, for the health endpoint's goroutines.
	fwForHealth  firewall.Firewall
	monForHealth *Monitor
	feedSets     []namedSet // each feed's list in use, for per-feed drop totals
}

type pullResult struct {
	src  *feed.CachedSource
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
	if o.IntegrityCheck <= 0 {
		o.IntegrityCheck = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewFirewall == nil && !o.Config.DryRun {
		return nil, errors.New("daemon: no firewall backend")
	}
	return &Daemon{
		o: o, log: o.Log, cfg: o.Config, key: o.Key,
		next: map[string]time.Time{}, failures: map[string]int{}, holdOff: map[string]time.Time{}, inflight: map[string]bool{},
		inUse: map[string]*feed.Snapshot{}, problems: map[string]string{},
		results: make(chan pullResult), cmds: make(chan func()), stopped: make(chan struct{}), state: StateStarting,
	}, nil
}

// discover is the production never-block discovery.
func discover(ctx context.Context, cfg config.Config) (safety.NeverBlock, error) {
	return safety.Discover(ctx, safety.Discovery{
		Net: safety.Netlink{}, APIURL: cfg.API.URL, Resolver: net.DefaultResolver, LookupTimeout: 5 * time.Second,
	})
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
	// Protection before the first pull: the last good lists on disk.
	for _, s := range d.srcs {
		if snap := s.Last(); snap != nil {
			d.inUse[s.Name()] = snap
		}
	}
	if len(d.inUse) == 0 {
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
	d.startMonitor(ctx)
	defer func() { d.stopMonitor() }()
	d.startHealth(ctx)
	d.publish()
	d.log.Info("Firewall ready")
	d.notify(sddaemon.SdNotifyReady + "\n" + d.statusLine())

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
	timer := time.NewTimer(d.untilNextPull())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return d.stop()
		case <-wd:
			// From the main loop on purpose: a stuck apply or scheduler must
			// stop the pings so that systemd restarts the daemon.
			d.notify(sddaemon.SdNotifyWatchdog)
		case <-d.o.Reload:
			d.reload(ctx)
		case <-integrity.C:
			d.checkIntegrity(ctx)
		case f := <-d.cmds:
			f()
		case r := <-d.results:
			d.handleResult(r)
			if len(d.inflight) == 0 {
				d.reconcile(ctx)
				if d.reloading {
					d.reloading = false
					d.notify(sddaemon.SdNotifyReady + "\n" + d.statusLine())
					d.finishReload()
				}
			}
			d.publish()
		case <-timer.C:
			d.startDuePulls(ctx)
		}
		timer.Reset(d.untilNextPull())
	}
}

// setup discovers the never-block list, loads the runtime whitelist and
// builds the firewall and the feed sources.
func (d *Daemon) setup(ctx context.Context) error {
	if err := ensureStateDir(d.cfg.StateDir); err != nil {
		return err
	}
	d.runtime = loadRuntimeWhitelist(d.cfg.StateDir, d.log)
	d.discoverSafety(ctx)
	if err := d.buildFirewall(); err != nil {
		return err
	}
	return d.buildSources()
}

func (d *Daemon) discoverSafety(ctx context.Context) {
	never, err := d.o.Discover(ctx, d.cfg)
	if err != nil {
		// Partial results still protect what is known.
		d.log.Warn("safety discovery incomplete", "err", err)
	}
	never.User = append([]netip.Prefix(nil), d.cfg.Whitelist...)
	never.Runtime = d.runtime
	d.never = never
	ips, ranges := d.allowSet().Counts()
	d.log.Info(safety.WhitelistLine(ips, ranges), "auto", d.cfg.Safety.AutoWhitelist,
		"gateways", len(never.Gateways), "dns", len(never.DNS), "own", len(never.Own), "api", len(never.API))
}

// allowSet is what the kernel accepts before the blocklist: with
// auto_whitelist the discovered addresses, always loopback and the user's
// and runtime whitelists.
func (d *Daemon) allowSet() safety.NeverBlock {
	n := safety.NeverBlock{Loopback: safety.Loopback(), User: d.never.User, Runtime: d.runtime}
	if d.cfg.Safety.AutoWhitelist {
		n.Gateways, n.DNS, n.Own, n.API, n.Subnets = d.never.Gateways, d.never.DNS, d.never.Own, d.never.API, d.never.Subnets
	}
	return n
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

func (d *Daemon) buildSources() error {
	srcs, err := Sources(d.cfg, d.key, d.log)
	if err != nil {
		return err
	}
	if len(srcs) == 0 {
		return ErrNoFeeds
	}
	d.srcs = srcs
	names := map[string]bool{}
	now := d.o.Now()
	for _, s := range srcs {
		names[s.Name()] = true
		if _, ok := d.next[s.Name()]; !ok {
			d.next[s.Name()] = now
		}
	}
	// Feeds dropped from the configuration stop contributing.
	for name := range d.inUse {
		if !names[name] {
			delete(d.inUse, name)
			delete(d.next, name)
			delete(d.problems, name)
		}
	}
	return nil
}

// interval is how often a feed is pulled.
func (d *Daemon) interval(name string) time.Duration {
	for _, f := range d.cfg.Feeds {
		if f.Name == name {
			return f.Interval
		}
	}
	return d.cfg.API.PullInterval
}

// isFile reports whether a feed is a local file, which may be empty.
func (d *Daemon) isFile(name string) bool {
	for _, f := range d.cfg.Feeds {
		if f.Name == name {
			return f.File != ""
		}
	}
	return false
}

func (d *Daemon) untilNextPull() time.Duration {
	now := d.o.Now()
	best := time.Hour
	for name, at := range d.next {
		if d.inflight[name] {
			continue
		}
		best = min(best, at.Sub(now))
	}
	return max(best, 0)
}

// forceDue makes every feed due now, except those a 429 told to wait:
// asking again before Retry-After only burns quota the API has refused.
func (d *Daemon) forceDue() {
	now := d.o.Now()
	for name := range d.next {
		if until, ok := d.holdOff[name]; ok && now.Before(until) {
			d.log.Info("not pulling before the API's Retry-After", "feed", name, "until", until.UTC().Format(time.RFC3339))
			continue
		}
		delete(d.holdOff, name)
		d.next[name] = now
	}
}

// pullNow pulls every feed and waits for all of them (start-up only).
func (d *Daemon) pullNow(ctx context.Context) {
	d.forceDue()
	d.startDuePulls(ctx)
	for len(d.inflight) > 0 {
		d.handleResult(<-d.results)
	}
}

func (d *Daemon) startDuePulls(ctx context.Context) {
	now := d.o.Now()
	for _, s := range d.srcs {
		name := s.Name()
		if d.inflight[name] || d.next[name].After(now) {
			continue
		}
		d.inflight[name] = true
		go func() {
			snap, err := s.Fetch(ctx)
			select {
			case d.results <- pullResult{src: s, snap: snap, err: err}:
			case <-ctx.Done():
			}
		}()
	}
}

// handleResult schedules the feed's next pull and decides whether its new
// list may replace the one in use.
func (d *Daemon) handleResult(r pullResult) {
	name := r.src.Name()
	delete(d.inflight, name)
	now := d.o.Now()
	d.mu.Lock()
	d.lastPull = now
	d.mu.Unlock()
	if r.err != nil {
		d.failures[name]++
		d.problems[name] = r.err.Error()
		d.next[name] = now.Add(d.retryDelay(name, r.err))
		attrs := []any{"feed", name, "err", r.err, "retry_in", d.next[name].Sub(now).Round(time.Second)}
		if r.snap != nil {
			d.log.Warn("feed failed; its last good list stays in force", attrs...)
		} else {
			d.log.Error("feed failed and has no last good list", attrs...)
		}
		if d.inUse[name] == nil && r.snap != nil {
			d.inUse[name] = r.snap
		}
		return
	}
	d.failures[name] = 0
	d.next[name] = now.Add(jitter(d.interval(name)))
	prev := 0
	if old := d.inUse[name]; old != nil {
		v4, v6 := old.Count()
		prev = v4 + v6
	}
	v4, v6 := r.snap.Count()
	if !(d.isFile(name) && v4+v6 == 0) {
		if err := safety.CheckList(prev, v4+v6, d.limits()); err != nil {
			d.problems[name] = err.Error()
			d.log.Warn("list rejected", "feed", name, "err", err)
			return
		}
	}
	delete(d.problems, name)
	d.inUse[name] = r.snap
	d.log.Info("feed pulled", "feed", name, "v4", v4, "v6", v6, "cached", r.snap.FromCache, "malformed", r.snap.Stats.Malformed)
	for _, m := range r.snap.Stats.Samples {
		d.log.Warn("malformed line", "feed", name, "line", m.Line, "text", m.Text)
	}
}

func (d *Daemon) limits() safety.Limits {
	return safety.Limits{MaxGrowth: d.cfg.Safety.MaxGrowth, MaxEntries: d.cfg.Safety.MaxEntries}
}

// retryDelay backs off exponentially from RetryMin up to the feed's
// interval, and never asks before a 429's Retry-After.
func (d *Daemon) retryDelay(name string, err error) time.Duration {
	delay := d.o.RetryMin << min(d.failures[name]-1, 10)
	delay = min(delay, d.interval(name))
	var qe *feed.QuotaError
	if errors.As(err, &qe) && !qe.RetryAt.IsZero() {
		delay = max(delay, qe.RetryAt.Sub(d.o.Now()))
		d.holdOff[name] = qe.RetryAt
	}
	return delay
}

// jitter spreads pulls by up to 5 % (at most 10 minutes) so that many
// hosts started together do not hit the API in the same second.
func jitter(d time.Duration) time.Duration {
	spread := min(d/20, 10*time.Minute)
	if spread <= 0 {
		return d
	}
	return d - spread/2 + rand.N(spread)
}

// reconcile applies the plan of the lists in use if it differs from what
// the kernel holds, verifies connectivity and rolls back on loss.
func (d *Daemon) reconcile(ctx context.Context) {
	snaps := make([]*feed.Snapshot, 0, len(d.inUse))
	for _, s := range d.srcs {
		if snap := d.inUse[s.Name()]; snap != nil {
			snaps = append(snaps, snap)
		}
	}
	plan := BuildPlan(snaps, d.allowSet().Set(), d.cfg.Safety.StripPrivate)
	v4, v6 := plan.Block.Len()
	if !d.cfg.Firewall.IPv6 {
		v6 = 0
	}
	d.planIssue = ""
	if lim := d.cfg.Safety.MaxEntries; lim > 0 && v4+v6 > lim {
		d.planIssue = fmt.Sprintf("merged list of %d entries exceeds safety.max_entries %d; keeping the current one", v4+v6, lim)
		d.log.Warn("list rejected", "err", d.planIssue)
		d.updateState()
		if d.hasApplied {
			return
		}
		plan.Block = ipnet.Set{} // first start: at least the table and the whitelist
	}
	if d.hasApplied && plan.Block.Equal(d.applied.Block) && plan.Allow.Equal(d.applied.Allow) {
		d.updateState()
		return
	}
	if d.badPlan != nil && plan.Block.Equal(d.badPlan.Block) && plan.Allow.Equal(d.badPlan.Allow) {
		d.planIssue = "the current lists broke connectivity before; waiting for them to change"
		d.updateState()
		return
	}

	var base *safety.Baseline
	if d.cfg.Safety.VerifyConnectivity && !d.cfg.DryRun {
		b, err := d.o.Prober.Before(ctx, d.never.Targets(0))
		if err == nil {
			base = &b
		}
	}
	if err := d.fw.Apply(plan.Block, plan.Allow); err != nil {
		d.planIssue = "apply failed: " + err.Error()
		d.log.Error("ApplyFailed", "err", err)
		d.updateState()
		if d.bus != nil {
			d.bus.ApplyFailed(d.planIssue)
		}
		return
	}
	if base != nil {
		if lost, err := base.After(ctx); len(lost) > 0 {
			d.rollback(plan, err)
			return
		}
	}
	d.applied, d.hasApplied, d.badPlan = plan, true, nil
	allow := plan.Allow
	d.allowNow.Store(&allow)
	d.mu.Lock()
	d.counts = [2]int{v4, v6}
	d.mu.Unlock()
	d.log.Info(fmt.Sprintf("Blocking %d IPs", BlockedCount(plan.Block, d.cfg.Firewall.IPv6)), "ranges4", v4, "ranges6", v6)
	if err := SaveApplied(d.cfg.StateDir, Applied{Ranges4: v4, Ranges6: v6, AppliedAt: d.o.Now().UTC()}); err != nil {
		d.log.Warn("could not record the applied list", "err", err)
	}
	d.updateState()
	d.publish()
	if d.bus != nil {
		d.bus.BlocklistUpdated(d.status.BlockedIPv4, d.status.BlockedIPv6)
	}
	d.notify(d.statusLine())
}

// rollback restores what the kernel held before plan, in one transaction.
// Before the first successful apply that is an empty blocklist: nothing
// was blocked before sikkerguard started.
func (d *Daemon) rollback(plan Plan, reason error) {
	prev := d.applied
	if !d.hasApplied {
		prev = Plan{Allow: plan.Allow}
	}
	if err := d.fw.Apply(prev.Block, prev.Allow); err != nil {
		d.log.Error("rollback failed", "err", err)
	} else {
		d.hasApplied = true
		d.applied = prev
	}
	d.badPlan = &plan
	d.planIssue = "rolled back: " + reason.Error()
	d.log.Error("RolledBack", "reason", reason)
	d.updateState()
	d.publish()
	if d.bus != nil {
		d.bus.RolledBack(d.planIssue)
	}
}

func (d *Daemon) updateState() {
	st := StateRunning
	if len(d.problems) > 0 || d.planIssue != "" {
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

func (d *Daemon) statusLine() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := fmt.Sprintf("STATUS=%s: blocking %d IPv4 and %d IPv6 ranges", d.state, d.counts[0], d.counts[1])
	if !d.lastPull.IsZero() {
		s += ", last pull " + d.lastPull.UTC().Format("2006-01-02 15:04 UTC")
	}
	return s
}

func (d *Daemon) notify(state string) {
	if err := d.o.Notify(state); err != nil {
		d.log.Debug("sd_notify failed", "err", err)
	}
}

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
	d.discoverSafety(ctx)
	d.forceDue()
	d.startDuePulls(ctx)
	if len(d.inflight) == 0 {
		d.reconcile(ctx)
		d.notify(sddaemon.SdNotifyReady + "\n" + d.statusLine())
		d.finishReload()
		return
	}
	d.reloading = true
}

// applyConfig switches to a new configuration. A changed firewall section
// gets a new backend, which adopts the table in place; a changed backend
// kind removes the old one's objects after the new one holds the list.
func (d *Daemon) applyConfig(ctx context.Context, cfg config.Config, key config.Secret) {
	old, oldKey := d.cfg, d.key
	d.cfg, d.key = cfg, key
	if err := d.buildSources(); err != nil {
		d.log.Error("reload: feeds", "err", err)
	}
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
	if old.Firewall.Backend != d.cfg.Firewall.Backend || old.DryRun != d.cfg.DryRun {
		if err := oldFW.Remove(); err != nil {
			d.log.Warn("reload: removing the previous backend's objects", "err", err)
		}
	}
}

func firewallChanged(a, b config.Config) bool {
	fa, fb := a.Firewall, b.Firewall
	return fa.Backend != fb.Backend || !slices.Equal(fa.Hooks, fb.Hooks) || fa.Action != fb.Action ||
		fa.IPv6 != fb.IPv6 || fa.LogGroup != fb.LogGroup || fa.LogRate != fb.LogRate || a.DryRun != b.DryRun
}

// startMonitor runs drop monitoring and reporting beside the main loop.
// It never blocks the firewall: a failure there is logged by the monitor.
func (d *Daemon) startMonitor(ctx context.Context) {
	if d.cfg.DryRun {
		return // nothing is dropped, so nothing is logged or reported
	}
	m, err := NewMonitor(d.cfg, d.key, d.log, MonitorOptions{Filter: d.reportable})
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
	d.top = func(n int) []dbusapi.TopEntry {
		var out []dbusapi.TopEntry
		for _, c := range m.TopBlocked(n) {
			out = append(out, dbusapi.TopEntry{Source: c.Src, Port: c.Port, Transport: c.Transport,
				Service: c.Service, Count: clampU32(c.Count)})
		}
		return out
	}
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

func monitorChanged(a, b config.Config) bool {
	return a.Firewall.LogGroup != b.Firewall.LogGroup || a.Report.Enabled != b.Report.Enabled ||
		a.Report.Interval != b.Report.Interval || a.API.URL != b.API.URL || a.StateDir != b.StateDir ||
		a.DryRun != b.DryRun || a.Safety.StripPrivate != b.Safety.StripPrivate
}

// checkIntegrity restores the kernel objects when another tool removed
// them (nftables.service restarting with `flush ruleset`, `iptables -F`).
// A fresh backend rebuilds or adopts whatever is left, in one transaction.
func (d *Daemon) checkIntegrity(ctx context.Context) {
	if !d.hasApplied {
		return
	}
	intact, err := d.fw.Intact()
	if err != nil {
		d.log.Warn("firewall integrity check failed", "err", err)
		return
	}
	if intact {
		return
	}
	d.log.Warn("firewall rules were removed by another program; restoring them")
	if err := d.buildFirewall(); err != nil {
		d.log.Error("restoring the firewall failed", "err", err)
		return
	}
	d.hasApplied = false
	d.reconcile(ctx)
}

// stop is the SIGTERM path.
func (d *Daemon) stop() error {
	d.notify(sddaemon.SdNotifyStopping)
	if !d.cfg.CleanupOnStop || d.cfg.DryRun {
		d.log.Info("stopping; the blocklist stays in the kernel (cleanup_on_stop: false)")
		return nil
	}
	if err := d.fw.Remove(); err != nil {
		return fmt.Errorf("cleanup on stop: %w", err)
	}
	d.log.Info("Firewall rules removed")
	return nil
}

// dryRunFirewall is the --dry-run backend: it logs what it would do.
type dryRunFirewall struct{ log *slog.Logger }

func (f dryRunFirewall) Apply(block, allow ipnet.Set) error {
	logDryRun(f.log, Plan{Block: block, Allow: allow})
	return nil
}

func (dryRunFirewall) Remove() error { return nil }

// Intact is true: the dry run has nothing in the kernel to lose.
func (dryRunFirewall) Intact() (bool, error) { return true, nil }

// Counters are zero: the dry run drops nothing.
func (dryRunFirewall) Counters() (firewall.Counters, error) { return firewall.Counters{}, nil }

package daemon

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// The control API (D-Bus): every method runs on the main loop through
// do, so it sees and changes the daemon's state without locks and is
// serialised with pulls and applies.

// Whitelisting wider than these would open the firewall to a large part of
// the internet with one call; such entries belong in the config file.
const (
	minWhitelistBits4 = 8
	minWhitelistBits6 = 32
)

var errStopped = fmt.Errorf("sikkerguard is stopping: %w", dbusapi.ErrNotReady)

// do runs f on the main loop and waits for it.
func (d *Daemon) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case d.cmds <- func() { f(); close(done) }:
	case <-d.stopped:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-d.stopped:
		return errStopped
	}
}

// Reload re-reads the configuration and pulls the feeds whose source
// settings changed; it returns once the result is applied (or refused: a
// configuration that does not load is a *ConfigError).
func (d *Daemon) Reload(ctx context.Context) error {
	wait := make(chan error, 1)
	if err := d.do(ctx, func() {
		d.reloadWaiters = append(d.reloadWaiters, wait)
		d.reload(ctx)
	}); err != nil {
		return err
	}
	return d.await(ctx, wait)
}

// await waits for the answer to a call that the main loop finishes later.
func (d *Daemon) await(ctx context.Context, wait <-chan error) error {
	select {
	case err := <-wait:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-d.stopped:
		return errStopped
	}
}

// finishReload answers the callers waiting for a reload.
func (d *Daemon) finishReload() {
	var err error
	if d.planIssue != "" {
		err = errors.New(d.planIssue)
	}
	for _, w := range d.reloadWaiters {
		w <- err
	}
	d.reloadWaiters = nil
}

// Status is the daemon's state for D-Bus (safe from any goroutine). Each
// feed's Dropped is read from the ledger now, so that it follows the drops
// as they come; any local user may ask, so it costs one lookup per feed,
// not a pass over the per-source totals.
func (d *Daemon) Status() dbusapi.Status {
	d.mu.Lock()
	st, mon := d.status, d.monForHealth
	st.Quota = d.quota
	d.mu.Unlock()
	if mon != nil {
		// The reporter keeps its last answered report in its spool, so
		// this survives restarts.
		st.LastReport = mon.Stats().LastReport
	}
	if len(st.Feeds) == 0 {
		return st
	}
	drops := d.ledger.Drops()
	st.Feeds = slices.Clone(st.Feeds)
	for i := range st.Feeds {
		st.Feeds[i].Dropped = drops[st.Feeds[i].Name]
	}
	return st
}

// publish refreshes the status snapshot and the bus properties; it runs
// on the main loop after anything visible changed.
func (d *Daemon) publish() {
	st := dbusapi.Status{
		Backend: d.cfg.Firewall.Backend, DryRun: d.cfg.DryRun,
		Whitelisted: uint32(len(d.cfg.Whitelist) + len(d.protect.runtime)),
		LastError:   orDefault(d.planIssue, d.fightIssue),
	}
	a4, _ := d.applied.Block.Addresses()
	_, r6 := d.applied.Block.Len()
	st.BlockedIPv4, st.BlockedIPv6 = clampU32(a4), clampU32(uint64(r6))
	for _, f := range d.feeds {
		fs := dbusapi.FeedStatus{Name: f.name, Error: f.problem, State: f.state()}
		if f.inUse != nil {
			v4, v6 := f.inUse.Count()
			fs.Entries, fs.LastPull = clampU32(uint64(v4+v6)), f.inUse.FetchedAt
		}
		st.Feeds = append(st.Feeds, fs)
		if at := f.sched.next; st.NextPull.IsZero() || at.Before(st.NextPull) {
			st.NextPull = at
		}
		if st.LastError == "" && f.problem != "" {
			st.LastError = f.name + ": " + f.problem
		}
	}
	if d.manualInUse != nil && len(d.manual) > 0 {
		fs := dbusapi.FeedStatus{Name: config.ManualFeedName, Entries: clampU32(uint64(len(d.manual))), State: dbusapi.FeedOK,
			LastPull: d.manualInUse.FetchedAt}
		st.Feeds = append(st.Feeds, fs)
	}
	d.publishHub()
	d.publishLedger()
	d.mu.Lock()
	st.State, st.LastPull, st.Started = dbusapi.State(d.state), d.lastPull, d.started
	d.status = st
	d.mu.Unlock()
	if d.bus != nil {
		d.bus.SetState(st.State)
		d.bus.SetLastPull(st.LastPull)
		d.bus.SetBlocked(st.BlockedIPv4, st.BlockedIPv6)
	}
}

func clampU32(v uint64) uint32 {
	return uint32(min(v, math.MaxUint32))
}

// WhitelistAdd accepts p from now on, persists it in the state directory
// and applies it in one transaction.
func (d *Daemon) WhitelistAdd(p netip.Prefix) error {
	p, err := checkRuntimeEntry(p)
	if err != nil {
		return fmt.Errorf("%w: %w", err, dbusapi.ErrInvalidAddress)
	}
	if derr := d.do(context.Background(), func() {
		if slices.Contains(d.protect.runtime, p) {
			err = fmt.Errorf("%s is already whitelisted: %w", p, dbusapi.ErrExists)
			return
		}
		old := d.protect.runtime
		d.protect.runtime = append(slices.Clone(old), p)
		if err = saveRuntimeWhitelist(d.cfg.StateDir, d.protect.runtime); err != nil {
			d.protect.runtime = old
			err = fmt.Errorf("save whitelist: %w", err)
			return
		}
		d.log.Info("whitelist entry added", "prefix", p.String())
		err = d.applyNow()
	}); derr != nil {
		return derr
	}
	return err
}

// WhitelistRemove drops a run-time entry (config entries stay).
func (d *Daemon) WhitelistRemove(p netip.Prefix) error {
	p = p.Masked()
	var err error
	if derr := d.do(context.Background(), func() {
		i := slices.Index(d.protect.runtime, p)
		if i < 0 {
			if slices.Contains(d.cfg.Whitelist, p) {
				err = fmt.Errorf("%s is whitelisted in the config file; remove it there: %w", p, dbusapi.ErrNotFound)
			} else {
				err = fmt.Errorf("%s is not in the run-time whitelist: %w", p, dbusapi.ErrNotFound)
			}
			return
		}
		old := d.protect.runtime
		d.protect.runtime = slices.Delete(slices.Clone(old), i, i+1)
		if err = saveRuntimeWhitelist(d.cfg.StateDir, d.protect.runtime); err != nil {
			d.protect.runtime = old
			err = fmt.Errorf("save whitelist: %w", err)
			return
		}
		d.log.Info("whitelist entry removed", "prefix", p.String())
		err = d.applyNow()
	}); derr != nil {
		return derr
	}
	return err
}

// applyNow reapplies after a whitelist change and reports a failure.
func (d *Daemon) applyNow() error {
	d.reconcile(context.Background())
	if d.planIssue != "" {
		return fmt.Errorf("%s: %w", d.planIssue, dbusapi.ErrFailed)
	}
	return nil
}

func minWhitelistBits(p netip.Prefix) int {
	if p.Addr().Is4() {
		return minWhitelistBits4
	}
	return minWhitelistBits6
}

// WhitelistList returns the config file's and the run-time entries.
func (d *Daemon) WhitelistList() []netip.Prefix {
	var out []netip.Prefix
	d.do(context.Background(), func() {
		out = append(slices.Clone(d.cfg.Whitelist), d.protect.runtime...)
	})
	return out
}

// Check explains what sikkerguard does with a: accepted by which rule,
// blocked by which feeds and ranges, or not listed.
func (d *Daemon) Check(a netip.Addr) (blocked bool, why string) {
	a = a.Unmap()
	err := d.do(context.Background(), func() { blocked, why = d.explain(a) })
	if err != nil {
		return false, err.Error()
	}
	return blocked, why
}

// explain's text leaves the address out: the caller names it once.
func (d *Daemon) explain(a netip.Addr) (bool, string) {
	listedBy := d.listedBy(a)
	if reason := d.allowReason(a); reason != "" {
		if slices.ContainsFunc(d.protect.runtime, func(p netip.Prefix) bool { return p.Contains(a) }) {
			reason += " (sikkerctl whitelist remove lifts it)"
		}
		if len(listedBy) > 0 {
			return false, fmt.Sprintf("listed by %s but never blocked: %s", strings.Join(listedBy, ", "), reason)
		}
		return false, fmt.Sprintf("not blocked: %s", reason)
	}
	if d.applied.Block.Contains(a) {
		msg := "listed by " + strings.Join(listedBy, ", ")
		hint := fmt.Sprintf("sikkerctl whitelist add %s lets it through", a)
		if e, ok := d.manualEntryFor(a); ok {
			msg = "blocked by hand: " + describeManual(e)
			if others := slices.DeleteFunc(slices.Clone(listedBy), func(s string) bool { return strings.HasPrefix(s, config.ManualFeedName+" ") }); len(others) > 0 {
				msg += "; also listed by " + strings.Join(others, ", ")
			}
			hint = "sikkerctl unblock " + e.Prefix.String() + " lifts it"
		}
		if d.monitor != nil {
			if n := d.monitor.SourceTotal(a); n > 0 {
				msg += fmt.Sprintf("; %d dropped packets logged", n)
			}
		}
		if d.cfg.DryRun {
			msg += " (dry run: nothing is dropped)"
		}
		// What to do about it comes last.
		msg += "; " + hint
		return !d.cfg.DryRun, msg
	}
	if msg, blocked, ok := d.explainRoles(a, listedBy); ok {
		return blocked, msg
	}
	if len(listedBy) > 0 {
		if !ipnet.IsGlobal(a) && d.cfg.Safety.StripPrivate {
			return false, fmt.Sprintf("listed by %s but not blocked: it is not a global address and safety.strip_private is on", strings.Join(listedBy, ", "))
		}
		return false, fmt.Sprintf("listed by %s but not blocked yet: %s", strings.Join(listedBy, ", "), orDefault(d.planIssue, "the list is being applied"))
	}
	return false, "not listed by any feed"
}

// describeManual says what an entry blocked by hand is, for check.
func describeManual(e manualEntry) string {
	s := e.Prefix.String()
	if e.Comment != "" {
		s += fmt.Sprintf(" (%q)", e.Comment)
	}
	if e.Until.IsZero() {
		return s + ", until unblocked"
	}
	return s + ", until " + e.Until.UTC().Format("2006-01-02 15:04 UTC")
}

// listedBy names the feeds listing a, with the range that covers it.
func (d *Daemon) listedBy(a netip.Addr) []string {
	var out []string
	roles := d.cfg.Roles()
	for _, f := range d.feeds {
		if f.inUse == nil {
			continue
		}
		if r, ok := f.inUse.Set.Lookup(a); ok {
			out = append(out, fmt.Sprintf("%s (%s, %s)", f.name, r, roleText(roles[f.name])))
		}
	}
	if d.manualInUse != nil {
		if r, ok := d.manualInUse.Set.Lookup(a); ok {
			out = append(out, fmt.Sprintf("%s (%s, %s)", config.ManualFeedName, r, config.ModeEnforce))
		}
	}
	return out
}

// allowReason says which never-block rule covers a, or "".
func (d *Daemon) allowReason(a netip.Addr) string {
	has := func(as []netip.Addr) bool {
		return slices.ContainsFunc(as, func(x netip.Addr) bool { return x.WithZone("") == a })
	}
	in := func(ps []netip.Prefix) (netip.Prefix, bool) {
		for _, p := range ps {
			if p.Contains(a) {
				return p, true
			}
		}
		return netip.Prefix{}, false
	}
	if p, ok := in(d.protect.runtime); ok {
		return fmt.Sprintf("run-time whitelist entry %s", p)
	}
	if p, ok := in(d.cfg.Whitelist); ok {
		return fmt.Sprintf("whitelist entry %s in the config file", p)
	}
	if a.IsLoopback() {
		return "loopback"
	}
	never := d.protect.never() // empty discovered parts without auto_whitelist
	switch {
	case has(never.Gateways):
		return "it is a default gateway (safety whitelist)"
	case has(never.DNS):
		return "it is a DNS server from resolv.conf (safety whitelist)"
	case has(never.API):
		return "it is an address of the SikkerAPI endpoint (safety whitelist)"
	case has(never.Own):
		return "it is one of this host's own addresses (safety whitelist)"
	}
	if p, ok := in(never.Subnets); ok {
		return fmt.Sprintf("it is in the directly connected private subnet %s (safety whitelist)", p)
	}
	return ""
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TopBlocked returns the most-dropped sources (filled by drop monitoring).
// It runs on the bus's goroutine and reads the monitor in force under the
// lock, since a reload may replace it.
func (d *Daemon) TopBlocked(n int) []dbusapi.TopEntry {
	d.mu.Lock()
	m := d.monForHealth
	d.mu.Unlock()
	if m == nil {
		return nil
	}
	var out []dbusapi.TopEntry
	for _, c := range m.TopBlocked(n) {
		out = append(out, dbusapi.TopEntry{Source: c.Src, Port: c.Port, Transport: c.Transport,
			Service: c.Service, Count: clampU32(c.Count)})
	}
	return out
}

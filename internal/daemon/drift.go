package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
)

// Drift: another program may remove or change the kernel objects at any
// time (nftables.service's `flush ruleset`, `iptables -F`, `ipset flush`,
// a configuration manager). The backend reports such changes as they
// happen (firewall.Firewall.Watch) and the periodic integrity check is the
// fallback; either way the daemon restores its own copy at once, in one
// transaction, unless it is being fought: more than ten restores
// within a minute turn the state degraded and space the restores out
// with a doubling delay, so a program that flushes the ruleset in a loop
// cannot make the daemon spin.

// restorePolicy sets the guard's limits; the zero value means the defaults
// (tests shorten them).
type restorePolicy struct {
	window     time.Duration // 1 min
	limit      int           // 10 restores within the window
	backoffMin time.Duration // 1 s
	backoffMax time.Duration // 30 s
}

func (p restorePolicy) withDefaults() restorePolicy {
	if p.window <= 0 {
		p.window = time.Minute
	}
	if p.limit <= 0 {
		p.limit = 10
	}
	if p.backoffMin <= 0 {
		p.backoffMin = time.Second
	}
	if p.backoffMax <= 0 {
		p.backoffMax = 30 * time.Second
	}
	p.backoffMax = max(p.backoffMax, p.backoffMin)
	return p
}

// restoreGuard decides when the next restore may run. It holds no clock:
// every call is given the time, which keeps it testable.
type restoreGuard struct {
	restorePolicy
	times   []time.Time // restores within the window, oldest first
	backoff time.Duration
}

func (g *restoreGuard) prune(now time.Time) {
	i := 0
	for i < len(g.times) && now.Sub(g.times[i]) >= g.window {
		i++
	}
	g.times = g.times[i:]
}

// delay is how long a restore wanted at now must wait: 0 while fewer than
// limit restores ran within the window, else a delay that doubles with
// every further restore, up to backoffMax.
func (g *restoreGuard) delay(now time.Time) time.Duration {
	g.prune(now)
	if len(g.times) < g.limit {
		g.backoff = 0
		return 0
	}
	g.backoff = min(max(2*g.backoff, g.backoffMin), g.backoffMax)
	return g.backoff
}

// record notes a restore at now.
func (g *restoreGuard) record(now time.Time) { g.times = append(g.times, now) }

// fought reports whether the restores within the window reach the limit.
func (g *restoreGuard) fought(now time.Time) bool {
	g.prune(now)
	return len(g.times) >= g.limit
}

// calmAt is when the window will hold fewer than limit restores,
// if no other comes.
func (g *restoreGuard) calmAt() time.Time {
	if len(g.times) < g.limit {
		return time.Time{}
	}
	return g.times[len(g.times)-g.limit].Add(g.window)
}

// startWatch asks the backend in force to report changes; a backend that
// cannot leaves the daemon to the periodic check.
func (d *Daemon) startWatch(ctx context.Context) {
	d.stopWatch()
	wctx, cancel := context.WithCancel(ctx)
	ch, err := d.fw.Watch(wctx)
	if err != nil {
		cancel()
		d.log.Warn("cannot watch the firewall for changes by other programs; only the periodic check remains",
			"interval", d.o.IntegrityCheck, "err", err)
		return
	}
	d.changes, d.watchStop = ch, cancel
}

func (d *Daemon) stopWatch() {
	if d.watchStop != nil {
		d.watchStop()
	}
	d.changes, d.watchStop = nil, nil
}

// onChange handles a change reported by the backend. Structural reports
// are confirmed with Intact first (iptables' events name whole chains, and
// a lost event says nothing); element changes are always restored.
func (d *Daemon) onChange(ctx context.Context, c firewall.Change) {
	if !d.hasApplied {
		return
	}
	if !c.Sure {
		intact, err := d.fw.Intact()
		if err != nil {
			d.log.Warn("firewall integrity check failed", "err", err)
		}
		if err == nil && intact {
			d.log.Debug("firewall change reported, rules intact", "change", c.What, "by", c.Who())
			return
		}
	}
	d.wantRestore(c)
}

// wantRestore restores at once, or when the guard allows.
func (d *Daemon) wantRestore(c firewall.Change) {
	if p := d.pendingRestore; p != nil {
		// One restore undoes both; the latest change names it.
		c.Sure = c.Sure || p.Sure
		if c.PID == 0 {
			c.PID, c.Comm = p.PID, p.Comm
		}
	}
	now := d.o.Now()
	wait := d.guard.delay(now)
	if wait == 0 {
		d.pendingRestore = nil
		d.restore(c)
		return
	}
	d.pendingRestore = &c
	if d.fightIssue == "" {
		d.log.Warn("another program keeps changing the firewall; restoring with a delay", "by", c.Who(),
			"restores_last_minute", len(d.guard.times))
	}
	d.fightIssue = fmt.Sprintf("firewall rules changed %d times within %s (last by %s: %s); restores are delayed up to %s",
		len(d.guard.times), d.guard.window, c.Who(), c.What, d.guard.backoffMax)
	d.updateState()
	d.publish()
	d.armRestoreTimer(wait)
}

// restore puts the daemon's copy back into the kernel.
func (d *Daemon) restore(c firewall.Change) {
	start := time.Now()
	d.guard.record(d.o.Now())
	if err := d.fw.Restore(d.hotSources()); err != nil {
		d.log.Error("restoring the firewall failed", "change", c.What, "err", err)
		d.pendingRestore = &c
		d.armRestoreTimer(max(d.guard.delay(d.o.Now()), d.guard.backoffMin))
		return
	}
	d.restored.Add(1)
	reason := c.What + " by " + c.Who()
	d.log.Warn("RulesRestored: firewall rules were removed or changed by another program; restored them",
		"change", c.What, "by", c.Who(), "took", time.Since(start))
	if d.bus != nil {
		d.bus.RulesRestored(reason)
	}
	if d.guard.fought(d.o.Now()) {
		d.armRestoreTimer(d.guard.calmAt().Sub(d.o.Now()))
	}
}

// armRestoreTimer makes the main loop call restoreDue after wait, unless an
// earlier wake-up is set.
func (d *Daemon) armRestoreTimer(wait time.Duration) {
	wait = max(wait, time.Millisecond)
	at := d.o.Now().Add(wait)
	if d.restoreTimer != nil && !d.restoreAt.IsZero() && d.restoreAt.Before(at) {
		return
	}
	if d.restoreTimer == nil {
		d.restoreTimer = time.NewTimer(wait)
	} else {
		d.restoreTimer.Reset(wait)
	}
	d.restoreAt = at
}

// restoreDue runs a delayed restore, and ends the degraded state once the
// restores of the last minute are below the limit again.
func (d *Daemon) restoreDue() {
	d.restoreAt = time.Time{}
	if c := d.pendingRestore; c != nil {
		d.pendingRestore = nil
		d.restore(*c)
	}
	now := d.o.Now()
	if d.guard.fought(now) {
		if d.restoreAt.IsZero() {
			d.armRestoreTimer(d.guard.calmAt().Sub(now))
		}
		return
	}
	if d.fightIssue != "" {
		d.fightIssue = ""
		d.log.Info("the firewall is left alone again; state recovers")
		d.updateState()
		d.publish()
	}
}

// restoreTimerC is the restore timer's channel, nil when none is armed.
func (d *Daemon) restoreTimerC() <-chan time.Time {
	if d.restoreTimer == nil || d.restoreAt.IsZero() {
		return nil
	}
	return d.restoreTimer.C
}

// checkIntegrity is the periodic fallback: it finds what events cannot
// show (a change while nobody listened, for one) and restores the same way.
func (d *Daemon) checkIntegrity(ctx context.Context) {
	if !d.hasApplied {
		return
	}
	intact, err := d.fw.Intact()
	if err != nil {
		d.log.Warn("firewall integrity check failed", "err", err)
		return
	}
	if !intact {
		d.wantRestore(firewall.Change{What: "the periodic check found the rules removed or changed"})
	}
}

// hotSources are the sources dropped most often, which a backend reloading
// a large list puts in first; nil without drop monitoring.
func (d *Daemon) hotSources() []netip.Addr {
	if d.monitor == nil {
		return nil
	}
	var out []netip.Addr
	for _, c := range d.monitor.TopBlocked(hotSourceCount) {
		out = append(out, c.Src)
	}
	return out
}

// hotSourceCount bounds the hot sources of a restore: enough for a
// distributed flood, few enough for a first transaction of milliseconds.
const hotSourceCount = 4096

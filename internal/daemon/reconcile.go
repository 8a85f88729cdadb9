package daemon

import (
	"context"
	"errors"

	"github.com/sikkerapi/sikkerguard/internal/feed"
)

// inputs gathers the decision's inputs from the daemon's state.
func (d *Daemon) inputs() Inputs {
	in := Inputs{
		Never: d.protect.never().Set(), StripPrivate: d.cfg.Safety.StripPrivate,
		IPv6: d.cfg.Firewall.IPv6, Limits: LimitsOf(d.cfg), Scopes: len(d.cfg.FirewallSettings().Scopes),
	}
	roles := d.cfg.Roles()
	for _, f := range d.feeds {
		in.Feeds = append(in.Feeds, FeedInput{Name: f.name, Accepted: f.inUse, Candidate: f.pending, MayBeEmpty: f.mayBeEmpty, Role: roles[f.name]})
	}
	if m, ok := d.manualInput(); ok {
		in.Feeds = append(in.Feeds, m) // always last: see isManual
	}
	return in
}

// isManual reports whether verdict i of a decision on d.inputs() is the
// manual entries'.
func (d *Daemon) isManual(i int) bool { return i >= len(d.feeds) }

// reconcile decides what to enforce from the feeds' lists and the
// never-block list, and applies it if it differs from what the kernel
// holds: verified, and rolled back on lost connectivity. Accepted lists
// become their feeds' last good lists only once they are in force.
func (d *Daemon) reconcile(ctx context.Context) {
	dec, err := Decide(d.inputs())
	d.manualRefused = nil
	for i, v := range dec.Feeds {
		if v.Refused != nil && d.isManual(i) {
			d.manualRefused = v.Refused
			d.log.Warn("list rejected", "feed", v.Name, "err", v.Refused)
			continue
		}
		if v.Refused != nil {
			f := d.feeds[i]
			f.problem, f.pending = v.Refused.Error(), nil
			d.log.Warn("list rejected", "feed", f.name, "err", v.Refused)
		}
	}
	d.planIssue = ""
	plan := dec.Plan
	if err != nil {
		d.planIssue = err.Error()
		d.log.Warn("list rejected", "err", err)
		d.dropPending()
		if d.hasApplied {
			d.updateState()
			return
		}
		plan = plan.Empty() // first start: at least the table and the whitelist
	}
	if d.hasApplied && plan.Lists.Equal(d.applied.Lists) {
		d.accept(dec)
		d.updateState()
		return
	}
	if d.badPlan != nil && plan.Lists.Equal(d.badPlan.Lists) {
		d.planIssue = "the current lists broke connectivity before; waiting for them to change"
		d.dropPending()
		d.updateState()
		return
	}
	prev := d.applied
	if !d.hasApplied {
		prev = plan.Empty() // nothing was blocked before sikkerguard started
	}
	e := enforcer{fw: d.fw, prober: d.o.Prober, verify: d.cfg.Safety.VerifyConnectivity && !d.cfg.DryRun}
	err = e.enforce(ctx, plan, prev, d.protect.targets())
	var ae *ApplyError
	switch {
	case errors.As(err, &ae):
		// Candidates stay pending: the next reconcile tries them again.
		d.planIssue = err.Error()
		d.log.Error("ApplyFailed", "err", ae.Err)
		d.updateState()
		if d.bus != nil {
			d.bus.ApplyFailed(d.planIssue)
		}
		return
	case rolledBack(err):
		d.rolledBack(plan, prev, err)
		return
	}
	if err == nil && plan.Block.IsEmpty() && d.planIssue != "" {
		// The empty first-start table of a refused plan: in force, and the
		// refusal stays the state's reason.
		d.setApplied(plan)
		d.updateState()
		return
	}
	d.accept(dec)
	d.setApplied(plan)
	logBlocking(d.log, plan.Block, d.cfg.Firewall.IPv6)
	d.updateState()
	d.publish()
	if d.bus != nil {
		d.bus.BlocklistUpdated(d.status.BlockedIPv4, d.status.BlockedIPv6)
	}
	d.notify(d.statusLine())
}

// accept makes the decision's accepted candidates their feeds' lists in
// force and their last good lists on disk.
func (d *Daemon) accept(dec Decision) {
	srcs := make([]*feed.CachedSource, len(dec.Feeds)) // none for the manual entries: saved by changeManual
	for i, f := range d.feeds {
		srcs[i] = f.src
		if dec.Feeds[i].Accepted {
			dec.Feeds[i].InUse = shareEqual(dec.Feeds[i].InUse, f.inUse)
		}
	}
	commitAccepted(dec, srcs, d.log)
	d.noteSources(dec)
	for i, v := range dec.Feeds {
		if d.isManual(i) {
			if v.Accepted {
				d.manualInUse = v.InUse
			}
			d.manualPending = nil
			continue
		}
		f := d.feeds[i]
		if v.Accepted {
			f.inUse = v.InUse
		}
		f.pending = nil
	}
}

// shareEqual returns next, holding prev's arrays when both lists are equal:
// the same list pulled again would otherwise be kept twice, once by the
// feed and its cache and once by the applied plan and the backend, which
// still hold the earlier one.
func shareEqual(next, prev *feed.Snapshot) *feed.Snapshot {
	if next == nil || prev == nil || next == prev || !next.Set.Equal(prev.Set) {
		return next
	}
	s := *next
	s.Set = prev.Set
	return &s
}

func (d *Daemon) dropPending() {
	for _, f := range d.feeds {
		f.pending = nil
	}
	d.manualPending = nil
}

// setApplied records what the kernel holds now.
func (d *Daemon) setApplied(plan Plan) {
	d.applied, d.hasApplied, d.badPlan = plan, true, nil
	d.noteRoles()
	allow := plan.Allow
	d.allowNow.Store(&allow)
	d.mu.Lock()
	d.counts = CountBlocked(plan.Block)
	d.mu.Unlock()
}

// rolledBack records a plan that broke connectivity; the kernel holds prev
// again unless restoring it failed too.
func (d *Daemon) rolledBack(plan, prev Plan, err error) {
	var rb *RollbackError
	errors.As(err, &rb)
	if rb.Restore != nil {
		d.log.Error("rollback failed", "err", rb.Restore)
	} else {
		d.setApplied(prev)
	}
	d.dropPending()
	d.badPlan = &plan
	d.planIssue = err.Error()
	d.log.Error("RolledBack", "reason", rb.Lost)
	d.updateState()
	d.publish()
	if d.bus != nil {
		d.bus.RolledBack(d.planIssue)
	}
}

// noteSources records the settings each newly accepted list was pulled
// with, for the next start's decision whether to pull again. A cached list
// accepted at start counts too: it carries the fingerprint it had.
func (d *Daemon) noteSources(dec Decision) {
	if d.sources == nil {
		d.sources = map[string]string{}
	}
	changed := false
	for i, v := range dec.Feeds {
		if !v.Accepted || d.isManual(i) || v.InUse.FromCache {
			continue
		}
		if fp := d.feeds[i].spec.fingerprint(); d.sources[v.Name] != fp {
			d.sources[v.Name], changed = fp, true
		}
	}
	if !changed {
		return
	}
	if err := saveSources(d.cfg.StateDir, d.sources); err != nil {
		d.log.Warn("cannot save the feed fingerprints; the next start pulls again", "err", err)
	}
}

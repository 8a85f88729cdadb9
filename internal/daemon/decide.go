package daemon

import (
	"errors"
	"fmt"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/safety"
)

// The decision is the one place where sikkerguard chooses what to enforce.
// The daemon (at start, after each pull, after a whitelist change) and
// `--once` call Decide with the same kinds of inputs and apply its plan
// through the same apply → verify → rollback step (apply.go), so no mode
// can skip a check that another makes.

// FeedInput is one feed as the decision sees it.
type FeedInput struct {
	Name string
	// Accepted is the feed's list in force: the last one a decision
	// accepted (in memory, or its last good list on disk). Nil when none.
	Accepted *feed.Snapshot
	// Candidate is a new list to judge against Accepted; nil when the feed
	// has nothing new.
	Candidate *feed.Snapshot
	// MayBeEmpty is set for local files: a custom blacklist that is empty
	// on purpose is a valid list.
	MayBeEmpty bool
	// ByHand marks the entries blocked with `sikkerctl block`: the
	// administrator changes them one at a time, so the growth and shrink
	// checks between two lists do not apply; every merged-list check does.
	ByHand bool
	// Role says which list of the plan the feed's entries go to; the zero
	// value is read as config.EnforceInbound.
	Role config.Role
}

// Inputs are everything a decision depends on. Decide reads nothing else.
type Inputs struct {
	Feeds []FeedInput
	// Never is the complete never-block set: discovered, configured,
	// runtime and loopback (NeverBlock.Set()).
	Never        ipnet.Set
	StripPrivate bool
	// IPv6 false leaves IPv6 entries out of what the kernel holds, and so
	// out of the merged-list checks.
	IPv6   bool
	Limits safety.Limits
	// Scopes is the number of scopes (config FirewallSettings().Scopes):
	// the plan has one scoped list per scope.
	Scopes int
}

// FeedVerdict is what the decision made of one feed.
type FeedVerdict struct {
	Name string
	// InUse is the list the feed contributes to the plan (nil: none).
	InUse *feed.Snapshot
	// Accepted is set when the candidate became InUse: the caller commits
	// it as the feed's last good list once the plan is in the kernel.
	Accepted bool
	// Refused says why the candidate was refused; nil when it was
	// accepted or when there was none.
	Refused error
}

// Decision is the outcome of Decide.
type Decision struct {
	Plan  Plan
	Feeds []FeedVerdict
}

// Accepted reports whether any candidate was accepted.
func (d Decision) Accepted() bool {
	for _, f := range d.Feeds {
		if f.Accepted {
			return true
		}
	}
	return false
}

// LimitsOf are the configured list checks.
func LimitsOf(cfg config.Config) safety.Limits {
	return safety.Limits{
		MaxGrowth: cfg.Safety.MaxGrowth, MaxShrink: cfg.Safety.MaxShrink,
		MaxEntries: cfg.Safety.MaxEntries, MaxBlockShare: cfg.Safety.MaxBlockShare,
	}
}

// Decide judges each candidate against its feed's accepted list, merges
// what is in use, subtracts the never-block set and checks the merged list.
//
// A merged list that fails its checks because of new candidates refuses
// those candidates and keeps the lists in force. When the lists in force
// fail on their own (a lowered limit, a tampered cache), Decide returns the
// refusal as its error together with the Decision it would have made; the
// caller keeps what the kernel holds, or at first start applies
// Plan.Empty().
func Decide(in Inputs) (Decision, error) {
	dec := Decision{Feeds: make([]FeedVerdict, len(in.Feeds))}
	anyNew := false
	for i, f := range in.Feeds {
		v := FeedVerdict{Name: f.Name, InUse: f.Accepted}
		if f.Candidate != nil {
			if err := judge(f, in.Limits); err != nil {
				v.Refused = fmt.Errorf("feed %s: %w", f.Name, err)
			} else {
				v.InUse, v.Accepted, anyNew = f.Candidate, true, true
			}
		}
		dec.Feeds[i] = v
	}
	dec.Plan = planOf(dec.Feeds, in)
	err := checkPlan(dec.Plan, in)
	if err == nil || !anyNew {
		return dec, err
	}
	// The new lists made the merged one unacceptable: refuse them all, as
	// any of them may be the cause, and judge what was in force alone.
	for i, f := range in.Feeds {
		if dec.Feeds[i].Accepted {
			dec.Feeds[i] = FeedVerdict{Name: f.Name, InUse: f.Accepted,
				Refused: fmt.Errorf("feed %s: with this list the merged list is refused: %w", f.Name, err)}
		}
	}
	dec.Plan = planOf(dec.Feeds, in)
	return dec, checkPlan(dec.Plan, in)
}

var errQuotaCut = errors.New("the server cut the list short: the daily quota ran out during the pull")

// judge checks one candidate against the feed's accepted list.
func judge(f FeedInput, lim safety.Limits) error {
	if f.Candidate.QuotaCut {
		// What was left of the day's quota, not the list: taking it would
		// drop most of the blocklist until the next pull.
		return errQuotaCut
	}
	if f.ByHand {
		return nil
	}
	next := safety.SizeOf(f.Candidate.Set)
	if next.Ranges == 0 && f.MayBeEmpty {
		return nil
	}
	var prev safety.Size
	if f.Accepted != nil {
		prev = safety.SizeOf(f.Accepted.Set)
	}
	return safety.CheckList(prev, next, lim)
}

// planOf splits the feeds in use by role: enforcing inbound feeds make the
// blocklist (BuildPlan), monitor feeds the monitor list, feeds with
// direction outbound or both the outbound list, scoped feeds their
// scope's list. Every list is stripped and loses the never-block set like
// the blocklist; the monitor and scoped lists also lose what the
// blocklist drops anyway, since an enforcing feed's entry is dropped
// whatever a monitor feed says.
func planOf(feeds []FeedVerdict, in Inputs) Plan {
	var block, monitor, out []*feed.Snapshot
	scoped := make([][]ipnet.Set, in.Scopes)
	for i, f := range feeds {
		if f.InUse == nil {
			continue
		}
		r := roleOf(in.Feeds, i)
		switch {
		case r.Mode == config.ModeMonitor:
			monitor = append(monitor, f.InUse)
			continue
		case r.Outbound():
			out = append(out, f.InUse)
		}
		switch {
		case !r.Inbound():
		case r.Scope >= 0 && r.Scope < in.Scopes:
			scoped[r.Scope] = append(scoped[r.Scope], f.InUse.Set)
		default:
			block = append(block, f.InUse)
		}
	}
	p := BuildPlan(block, in.Never, in.StripPrivate)
	p.Monitor, _ = guarded(union(monitor), ipnet.Union(p.Allow, p.Block), in.StripPrivate)
	p.Out, _ = guarded(union(out), p.Allow, in.StripPrivate)
	if in.Scopes > 0 {
		p.Scoped = make([]ipnet.Set, in.Scopes)
		for i, sets := range scoped {
			p.Scoped[i], _ = guarded(ipnet.Union(sets...), ipnet.Union(p.Allow, p.Block), in.StripPrivate)
		}
	}
	p.Lists = p.Lists.Family(in.IPv6)
	return p
}

func roleOf(feeds []FeedInput, i int) config.Role {
	if i >= len(feeds) || feeds[i].Role.Mode == "" {
		return config.EnforceInbound
	}
	return feeds[i].Role
}

func union(snaps []*feed.Snapshot) ipnet.Set {
	sets := make([]ipnet.Set, len(snaps))
	for i, s := range snaps {
		sets[i] = s.Set
	}
	return ipnet.Union(sets...)
}

// checkPlan applies the merged-list checks to every list of the plan: a
// monitor or outbound list is held to the same limits as the blocklist.
func checkPlan(p Plan, in Inputs) error {
	if err := safety.CheckPlan(p.Block, in.Limits); err != nil {
		return fmt.Errorf("merged list: %w", err)
	}
	for _, l := range []struct {
		name string
		set  ipnet.Set
	}{{"monitor list", p.Monitor}, {"outbound list", p.Out}} {
		if err := safety.CheckPlan(l.set, in.Limits); err != nil {
			return fmt.Errorf("merged %s: %w", l.name, err)
		}
	}
	for i, s := range p.Scoped {
		if err := safety.CheckPlan(s, in.Limits); err != nil {
			return fmt.Errorf("merged list of scope %d: %w", i, err)
		}
	}
	return nil
}

// Empty is the plan of a host that enforces nothing yet: the table and its
// allow set, with an empty blocklist.
func (p Plan) Empty() Plan {
	var e Plan
	e.Allow = p.Allow
	return e
}

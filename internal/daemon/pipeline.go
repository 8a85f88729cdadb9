// Package daemon is sikkerguard's lifecycle: it turns the configuration into
// feed sources, pulls them, decides what to block (decide.go, pure), applies
// it with verification and rollback (apply.go) and schedules the next pull
// (schedule.go, pure). `sikkerguard --once` runs one pass of the same
// decision and the same apply step.
package daemon

import (
	"context"
	"errors"
	"net/netip"
	"sync"

	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// fetchAll fetches every source concurrently; snaps[i] and errs[i] are
// sources[i]'s answer.
func fetchAll(ctx context.Context, srcs []*feed.CachedSource) (snaps []*feed.Snapshot, errs []error) {
	snaps, errs = make([]*feed.Snapshot, len(srcs)), make([]error, len(srcs))
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snaps[i], errs[i] = s.Fetch(ctx)
		}()
	}
	wg.Wait()
	return snaps, errs
}

// Plan is what the firewall should hold.
// Block is the union of the enforcing inbound feeds, stripped and
// whitelisted; Allow is accepted before any list is consulted; the role
// lists (Monitor, Out, Scoped) are split by roleLists.
type Plan struct {
	firewall.Lists
	// StrippedRanges counts the feed ranges that touched non-global space.
	StrippedRanges int
}

// alwaysAllowed are addresses no list may ever block, whatever the config:
// the host talking to itself.
var alwaysAllowed = ipnet.FromPrefixes(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))

// BuildPlan merges the feeds' lists, strips non-global space when asked,
// and subtracts the allowlist (interval subtraction: an allowed /32 inside a
// blocked /16 splits it). It is pure.
func BuildPlan(snaps []*feed.Snapshot, allow ipnet.Set, stripPrivate bool) Plan {
	sets := make([]ipnet.Set, 0, len(snaps))
	for _, s := range snaps {
		sets = append(sets, s.Set)
	}
	var p Plan
	p.Allow = ipnet.Union(allow, alwaysAllowed)
	p.Block, p.StrippedRanges = guarded(ipnet.Union(sets...), p.Allow, stripPrivate)
	return p
}

// guarded is a merged list with non-global space stripped when asked and
// the never-block set subtracted: what every list of a plan goes through.
func guarded(s, never ipnet.Set, stripPrivate bool) (ipnet.Set, int) {
	n := 0
	if stripPrivate {
		s, n = ipnet.StripNonGlobal(s)
	}
	return s.Subtract(never), n
}

// ErrNoFeeds means there is nothing to pull from.
var ErrNoFeeds = errors.New("no feed configured: set an API key or add feeds")

// ErrNoList means every feed failed and none has a last good list.
var ErrNoList = errors.New("no feed produced a list")

// Package safety keeps sikkerguard from hurting the host it protects: it
// decides which pulled lists are trustworthy enough to enforce, and (in the
// daemon) which addresses must never be blocked.
package safety

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// Limits are the sanity bounds a pulled list must respect (config safety.*).
// A zero limit is off, except that an empty list is always refused.
type Limits struct {
	MaxGrowth  float64 // a list more than MaxGrowth × the previous one (ranges or addresses) is refused
	MaxShrink  float64 // a list smaller than MaxShrink × the previous one (ranges) is refused
	MaxEntries int     // hard cap on entries (merged ranges) per feed and per apply
	// MaxBlockShare caps the share of global unicast IPv4 one merged list
	// may block: a feed line such as 0.0.0.0/1 that slipped past the
	// prefix minimum would otherwise cut the host off from the internet.
	MaxBlockShare float64
}

// Size measures a list in the three units the checks compare: merged
// ranges (what the kernel holds), IPv4 addresses and IPv6 addresses.
type Size struct {
	Ranges int
	Addrs4 uint64
	Addrs6 float64
}

// SizeOf measures a merged set.
func SizeOf(s ipnet.Set) Size {
	v4, v6 := s.Len()
	a4, a6 := s.Addresses()
	return Size{Ranges: v4 + v6, Addrs4: a4, Addrs6: a6}
}

// Reason says why a list was refused; the daemon reports it in its state.
type Reason string

const (
	ReasonEmpty      Reason = "empty"
	ReasonTooLarge   Reason = "too_large"
	ReasonGrowth     Reason = "growth"
	ReasonShrink     Reason = "shrink"
	ReasonBlockShare Reason = "block_share"
)

// ErrRejected matches every *RejectError with errors.Is.
var ErrRejected = errors.New("list rejected")

// RejectError is a refused list: the current list stays in force.
type RejectError struct {
	Reason Reason
	Unit   string // "entries", "IPv4 addresses", …: what Prev and Next count
	Prev   float64
	Next   float64
	Limit  float64
}

func (e *RejectError) Error() string {
	const keep = "; keeping the current one"
	switch e.Reason {
	case ReasonEmpty:
		return "list rejected: the new list is empty" + keep
	case ReasonTooLarge:
		return fmt.Sprintf("list rejected: %.0f entries exceed safety.max_entries %.0f"+keep, e.Next, e.Limit)
	case ReasonShrink:
		return fmt.Sprintf("list rejected: %.0f %s is less than %.2g× the previous %.0f (safety.max_shrink)"+keep,
			e.Next, e.Unit, e.Limit, e.Prev)
	case ReasonBlockShare:
		return fmt.Sprintf("list rejected: it would block %.1f %% of all global %s addresses, more than safety.max_block_share %.3g"+keep,
			100*e.Next, e.Unit, e.Limit)
	default:
		return fmt.Sprintf("list rejected: %.0f %s is more than %.2g× the previous %.0f (safety.max_growth)"+keep,
			e.Next, e.Unit, e.Limit, e.Prev)
	}
}

func (e *RejectError) Is(target error) bool { return target == ErrRejected }

// CheckList decides whether a list of size next may replace one of size
// prev. Growth is judged on ranges and on addresses of each family, so that
// a feed swapping its /32s for a few /8s is caught although its range count
// shrinks; shrinking is judged on ranges, the unit a cut-short answer loses.
// A zero prev means nothing was enforced before, so neither can be judged.
func CheckList(prev, next Size, lim Limits) error {
	if next.Ranges == 0 {
		return &RejectError{Reason: ReasonEmpty, Unit: "entries", Prev: float64(prev.Ranges)}
	}
	if lim.MaxEntries > 0 && next.Ranges > lim.MaxEntries {
		return &RejectError{Reason: ReasonTooLarge, Unit: "entries", Prev: float64(prev.Ranges), Next: float64(next.Ranges), Limit: float64(lim.MaxEntries)}
	}
	if lim.MaxGrowth > 0 {
		for _, c := range []struct {
			unit       string
			prev, next float64
		}{
			{"entries", float64(prev.Ranges), float64(next.Ranges)},
			{"IPv4 addresses", float64(prev.Addrs4), float64(next.Addrs4)},
			{"IPv6 addresses", prev.Addrs6, next.Addrs6},
		} {
			if c.prev > 0 && c.next > lim.MaxGrowth*c.prev {
				return &RejectError{Reason: ReasonGrowth, Unit: c.unit, Prev: c.prev, Next: c.next, Limit: lim.MaxGrowth}
			}
		}
	}
	if lim.MaxShrink > 0 && prev.Ranges > 0 && float64(next.Ranges) < lim.MaxShrink*float64(prev.Ranges) {
		return &RejectError{Reason: ReasonShrink, Unit: "entries", Prev: float64(prev.Ranges), Next: float64(next.Ranges), Limit: lim.MaxShrink}
	}
	return nil
}

// globalIPv4 is the number of global unicast IPv4 addresses: the whole
// space less ipnet's non-global table.
var globalIPv4 = func() uint64 {
	all := ipnet.FromPrefixes(netip.MustParsePrefix("0.0.0.0/0"))
	n, _ := all.Subtract(ipnet.NonGlobal()).Addresses()
	return n
}()

// globalIPv6 is the size of IPv6's global unicast space, 2000::/3 less
// what the non-global table holds in it.
var globalIPv6 = func() float64 {
	all := ipnet.FromPrefixes(netip.MustParsePrefix("2000::/3"))
	_, n := all.Subtract(ipnet.NonGlobal()).Addresses()
	return n
}()

// CheckPlan decides whether a merged blocklist may be enforced at all,
// whatever the lists it came from: its entry count and the share of the
// global IPv4 space it covers.
func CheckPlan(block ipnet.Set, lim Limits) error {
	size := SizeOf(block)
	if lim.MaxEntries > 0 && size.Ranges > lim.MaxEntries {
		return &RejectError{Reason: ReasonTooLarge, Unit: "entries", Next: float64(size.Ranges), Limit: float64(lim.MaxEntries)}
	}
	if lim.MaxBlockShare > 0 {
		g4, g6 := block.Subtract(ipnet.NonGlobal()).Addresses()
		if share := float64(g4) / float64(globalIPv4); share > lim.MaxBlockShare {
			return &RejectError{Reason: ReasonBlockShare, Unit: "IPv4", Next: share, Limit: lim.MaxBlockShare}
		}
		// The same cap holds for IPv6, against its global unicast space:
		// half a million /19 lines, each above min_prefix6, merge into ::/0.
		if share := g6 / globalIPv6; share > lim.MaxBlockShare {
			return &RejectError{Reason: ReasonBlockShare, Unit: "IPv6", Next: share, Limit: lim.MaxBlockShare}
		}
	}
	return nil
}

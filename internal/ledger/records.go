package ledger

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// MaxTopDestinations is how many destinations a Record lists, most hit first.
const MaxTopDestinations = 10

// Record is a feed's line in the ledger: its facts, its counts and advice.
// Window sums cover the span before the time Records was called.
type Record struct {
	Name        string
	Mode        string
	Entries     uint64
	Addresses   uint64
	KernelBytes uint64

	Drops24h, Drops7d, DropsTotal uint64
	// Unique drops came from sources no other enforcing feed lists: what
	// would get through without this feed.
	Unique7d, Unique30d, UniqueTotal uint64
	// HitsPer1000 is the last 7 days' drops (would-block drops for a
	// monitor feed) per 1,000 entries.
	HitsPer1000 float64
	LastHit     time.Time

	// DataChanged is when the feed's data last changed, or the newest
	// lastSeen of its entries when the source gives them; ListAge is the
	// time since.
	DataChanged time.Time
	ListAge     time.Duration
	LastPull    time.Time
	// PullRatio is the share of successful pulls over 7 days; -1 when
	// there was none.
	PullRatio float64

	Outbound7d, OutboundTotal     uint64
	BlockedOut7d, BlockedOutTotal uint64
	// OutboundHosts counts the destinations hit over 7 days (at most
	// DefaultMaxDestinations are tracked).
	OutboundHosts int
	Destinations  []Destination // the most hit, at most MaxTopDestinations

	WouldUnsolicited, WouldReplies     uint64 // totals
	WouldUnsolicited7d, WouldReplies7d uint64
	Latency                            Histogram
	Since                              time.Time // the ledger's first sight of the feed
	Advice                             string
}

// Destination is one outbound address a feed lists that the host tried to reach.
type Destination struct {
	Addr       netip.Addr
	Outbound   uint64
	BlockedOut uint64
	Last       time.Time
}

// Histogram is the lastSeen → in-kernel histogram: Counts per bucket of
// LatencyBounds, the last bucket unbounded.
type Histogram struct {
	Counts []uint64
	Sum    float64 // seconds
}

// Records returns one Record per feed named by SetFeeds, in that order.
func (l *Ledger) Records() []Record {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Record, 0, len(l.order))
	for _, name := range l.order {
		if r := l.feeds[name]; r != nil {
			out = append(out, r.record(l.facts[name], now))
		}
	}
	return out
}

func (r *feedRec) record(f Facts, now time.Time) Record {
	rec := Record{
		Name: f.Name, Mode: f.Mode, Entries: f.Entries, Addresses: f.Addresses, KernelBytes: f.KernelBytes,
		Drops24h: r.DropSeries.sum(now, day), Drops7d: r.DropSeries.sum(now, 7*day), DropsTotal: r.Drops,
		Unique7d: r.UniqueSeries.sum(now, 7*day), Unique30d: r.UniqueSeries.sum(now, 30*day), UniqueTotal: r.Unique,
		LastHit: r.LastHit, LastPull: f.LastPull, PullRatio: -1,
		Outbound7d: r.OutboundSeries.sum(now, 7*day), OutboundTotal: r.Outbound,
		BlockedOut7d: r.BlockedOutSeries.sum(now, 7*day), BlockedOutTotal: r.BlockedOut,
		WouldUnsolicited: r.WouldUnsolicited, WouldReplies: r.WouldReply,
		WouldUnsolicited7d: r.WouldUnsolicitedSeries.sum(now, 7*day), WouldReplies7d: r.WouldReplySeries.sum(now, 7*day),
		Latency: Histogram{Counts: slices.Clone(r.Latency.Counts), Sum: r.Latency.Sum},
		Since:   r.Since,
	}
	rec.DataChanged = r.Changed
	if !f.NewestData.IsZero() {
		rec.DataChanged = f.NewestData
	}
	if !rec.DataChanged.IsZero() {
		rec.ListAge = max(now.Sub(rec.DataChanged), 0)
	}
	if ok, bad := r.PullOK.sum(now, 7*day), r.PullFailed.sum(now, 7*day); ok+bad > 0 {
		rec.PullRatio = float64(ok) / float64(ok+bad)
	}
	hits := rec.Drops7d
	if f.Mode == ModeMonitor {
		hits = rec.WouldUnsolicited7d + rec.WouldReplies7d
	}
	if f.Entries > 0 {
		rec.HitsPer1000 = float64(hits) * 1000 / float64(f.Entries)
	}
	for a, d := range r.Dests {
		if now.Sub(d.Last) <= 7*day {
			rec.OutboundHosts++
		}
		rec.Destinations = append(rec.Destinations, Destination{Addr: a, Outbound: d.Outbound, BlockedOut: d.BlockedOut, Last: d.Last})
	}
	slices.SortFunc(rec.Destinations, func(x, y Destination) int {
		return cmp.Or(cmp.Compare(y.Outbound+y.BlockedOut, x.Outbound+x.BlockedOut), x.Addr.Compare(y.Addr))
	})
	rec.Destinations = slices.Clip(rec.Destinations[:min(len(rec.Destinations), MaxTopDestinations)])
	rec.Advice = Advise(rec, now)
	return rec
}

// Advise says in a few words what to do about a feed, from its record.
// It is a pure function of the record and the time.
func Advise(r Record, now time.Time) string {
	var out []string
	age := now.Sub(r.Since)
	if r.PullRatio >= 0 && r.PullRatio < 0.5 {
		out = append(out, fmt.Sprintf("pulls failing: %.0f %% succeeded in 7 days", r.PullRatio*100))
	}
	if r.Mode == ModeMonitor {
		switch {
		case r.WouldReplies > 0:
			out = append(out, fmt.Sprintf("monitor: would drop %s unsolicited, %s replies — enforcing breaks traffic",
				Thousands(r.WouldUnsolicited), Thousands(r.WouldReplies)))
		case r.WouldUnsolicited > 0:
			out = append(out, fmt.Sprintf("monitor: would drop %s unsolicited, 0 replies — safe to enforce", Thousands(r.WouldUnsolicited)))
		default:
			out = append(out, "monitor: no match yet")
		}
	}
	if r.OutboundHosts > 0 {
		verb := "breaks"
		if r.Mode == ModeMonitor {
			verb = "would break"
		}
		out = append(out, fmt.Sprintf("%s outbound traffic: %d hosts", verb, r.OutboundHosts))
	}
	if r.Mode != ModeMonitor {
		switch {
		case age >= 30*day && r.Unique30d == 0:
			out = append(out, "no unique drop in 30 days")
		case age >= 7*day && r.Drops7d == 0:
			out = append(out, "no drop in 7 days")
		}
	}
	if r.ListAge >= 7*day {
		out = append(out, fmt.Sprintf("data unchanged for %d days", int(r.ListAge/day)))
	}
	if len(out) == 0 {
		return "ok"
	}
	return strings.Join(out, "; ")
}

// Thousands writes n with a comma between groups of three digits.
func Thousands(n uint64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

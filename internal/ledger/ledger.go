// Package ledger keeps the value ledger of the feeds: what each feed
// dropped (and dropped alone), what a monitor feed would have dropped, which
// of the host's own connections a feed breaks, how fresh its data is and how
// reliably it pulls. It is fed hits and per-feed facts, saves itself in the
// state directory and answers with one Record per feed, advice included.
//
// Memory does not depend on the traffic: a feed's record is a fixed set of
// time-bucket rings, a latency histogram and at most MaxDestinations
// outbound destinations, and only feeds named by SetFeeds have a record, so
// a hit naming anything else is dropped. A flood from any number of sources
// costs nothing here beyond the counting (see BenchmarkFlood).
package ledger

import (
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Kind is what a hit was.
type Kind uint8

const (
	// Drop is an inbound packet dropped because enforcing feeds list its source.
	Drop Kind = iota + 1
	// WouldUnsolicited is an unsolicited inbound packet from an address a
	// monitor feed lists: enforcing the feed would drop it.
	WouldUnsolicited
	// WouldReply is a reply to a connection this host opened, from an
	// address a monitor feed lists: enforcing the feed would break it.
	WouldReply
	// Outbound is the host's own connection attempt to a listed address.
	Outbound
	// BlockedOut is the host's own packet to a listed address, dropped by
	// an outbound feed.
	BlockedOut
)

var kindNames = map[Kind]string{Drop: "drop", WouldUnsolicited: "would_unsolicited", WouldReply: "would_reply",
	Outbound: "outbound", BlockedOut: "blocked_out"}

// ParseKind is the Kind of a name String returns.
func ParseKind(name string) (Kind, bool) {
	for k, n := range kindNames {
		if n == name {
			return k, true
		}
	}
	return 0, false
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "unknown"
}

// Feed modes.
const (
	ModeEnforce = "enforce"
	ModeMonitor = "monitor"
)

// Bounds and windows of a feed's record.
const (
	// DefaultMaxDestinations caps the outbound destinations kept per feed;
	// at the cap the least recently hit one gives way.
	DefaultMaxDestinations = 256
	// DefaultSaveEvery is how often the daemon saves the ledger.
	DefaultSaveEvery = time.Minute

	hour = time.Hour
	day  = 24 * time.Hour
	// dropHours is the hourly drop ring: 7 days, for the 24 h and 7 d sums.
	dropHours = 7 * 24
	// uniqueDays is the daily unique-drop ring: 31 days, for "no unique
	// drop in 30 days".
	uniqueDays = 31
	// weekDays is the daily ring of the other kinds and of pulls.
	weekDays = 7
)

// Hit is one counted observation: packets of one kind from or to Addr,
// which the feeds named in Feeds list.
type Hit struct {
	Kind    Kind
	Addr    netip.Addr
	Feeds   []string
	Packets uint64
	Time    time.Time
}

// Facts are what the daemon knows of a feed's list in force.
type Facts struct {
	Name        string
	Mode        string // ModeEnforce or ModeMonitor; "" is enforce
	Entries     uint64 // ranges, after merging
	Addresses   uint64 // IPv4 addresses covered (IPv6 counts in Entries only)
	KernelBytes uint64 // estimated kernel memory of the feed's ranges
	// ListHash fingerprints the list's content; when it differs from the
	// last one seen, the data changed at ListTime.
	ListHash string
	ListTime time.Time
	// NewestData is the newest lastSeen of the list's entries, when the
	// source says (SikkerAPI JSON); it dates the data better than a change.
	NewestData time.Time
	LastPull   time.Time // last successful pull; zero = none yet
}

// Config tunes a Ledger; everything may be left zero.
type Config struct {
	Path            string // state file; "" keeps the ledger in memory only
	MaxDestinations int    // 0 = DefaultMaxDestinations
	Now             func() time.Time
}

// Ledger is safe for concurrent use.
type Ledger struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	feeds map[string]*feedRec
	order []string // the feeds in the order SetFeeds named them
	facts map[string]Facts
	dirty bool // something changed since the last save
}

// New returns a ledger, loaded from cfg.Path when the file is there; a
// corrupt file is ignored with a warning.
func New(cfg Config, log *slog.Logger) *Ledger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxDestinations <= 0 {
		cfg.MaxDestinations = DefaultMaxDestinations
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Ledger{cfg: cfg, log: log, feeds: map[string]*feedRec{}, facts: map[string]Facts{}}
	l.load()
	return l
}

// SetFeeds names the feeds in force, with their facts. A feed new to the
// ledger gets an empty record; a record of a feed no longer named is
// dropped with its history. It returns the feeds whose ListHash is new:
// their list's content changed since the ledger last saw it (across
// restarts too).
func (l *Ledger) SetFeeds(facts []Facts) (changed []string) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := make(map[string]bool, len(facts))
	l.order = l.order[:0]
	clear(l.facts)
	for _, f := range facts {
		if keep[f.Name] {
			continue
		}
		keep[f.Name] = true
		l.order = append(l.order, f.Name)
		if f.Mode == "" {
			f.Mode = ModeEnforce
		}
		l.facts[f.Name] = f
		r := l.feeds[f.Name]
		if r == nil {
			r = newFeedRec(now)
			l.feeds[f.Name] = r
			l.dirty = true
		}
		if f.ListHash != "" && f.ListHash != r.ListHash {
			r.ListHash, r.Changed = f.ListHash, orNow(f.ListTime, now)
			changed = append(changed, f.Name)
			l.dirty = true
		}
	}
	for name := range l.feeds {
		if !keep[name] {
			delete(l.feeds, name)
			l.dirty = true
		}
	}
	return changed
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

// Add counts one hit. Drop and BlockedOut count for the enforcing feeds
// named, the would-block kinds for the monitor feeds named and Outbound for
// every feed named; a drop is unique for a feed that is the only enforcing
// feed named. Feeds the ledger does not know are skipped.
func (l *Ledger) Add(h Hit) {
	if h.Packets == 0 {
		return
	}
	if h.Time.IsZero() {
		h.Time = l.cfg.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dirty = true
	enforcing := 0
	for _, name := range h.Feeds {
		if f, ok := l.facts[name]; ok && f.Mode != ModeMonitor {
			enforcing++
		}
	}
	for i, name := range h.Feeds {
		r, f := l.feeds[name], l.facts[name]
		if r == nil || slices.Contains(h.Feeds[:i], name) {
			continue
		}
		monitor := f.Mode == ModeMonitor
		switch h.Kind {
		case Drop:
			if monitor {
				continue
			}
			r.Drops += h.Packets
			r.DropSeries.add(h.Time, h.Packets)
			if enforcing == 1 {
				r.Unique += h.Packets
				r.UniqueSeries.add(h.Time, h.Packets)
			}
		case WouldUnsolicited, WouldReply:
			if !monitor {
				continue
			}
			if h.Kind == WouldReply {
				r.WouldReply += h.Packets
				r.WouldReplySeries.add(h.Time, h.Packets)
			} else {
				r.WouldUnsolicited += h.Packets
				r.WouldUnsolicitedSeries.add(h.Time, h.Packets)
			}
		case Outbound, BlockedOut:
			if h.Kind == BlockedOut && monitor {
				continue
			}
			if h.Addr.IsValid() {
				r.dest(h.Addr, h.Time, l.cfg.MaxDestinations).add(h.Kind, h.Packets, h.Time)
			}
			if h.Kind == BlockedOut {
				r.BlockedOut += h.Packets
				r.BlockedOutSeries.add(h.Time, h.Packets)
			} else {
				r.Outbound += h.Packets
				r.OutboundSeries.add(h.Time, h.Packets)
			}
			continue // the last hit is of inbound traffic
		default:
			continue
		}
		if h.Time.After(r.LastHit) {
			r.LastHit = h.Time
		}
	}
}

// Pulled records the outcome of one pull of a feed, for its success ratio.
// A feed's first pulls come before its list is in force, hence before
// SetFeeds names it: the record is made here then. Only the daemon's own
// feeds are pulled, so this cannot grow the ledger beyond the configuration
// (and SetFeeds drops a record no feed has).
func (l *Ledger) Pulled(name string, ok bool, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dirty = true
	r := l.feeds[name]
	if r == nil {
		r = newFeedRec(l.cfg.Now())
		l.feeds[name] = r
	}
	if ok {
		r.PullOK.add(at, 1)
	} else {
		r.PullFailed.add(at, 1)
	}
}

// Drops returns each feed's logged drops in all (Record.DropsTotal), for
// callers that need no more: it costs one map entry per feed.
func (l *Ledger) Drops() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.feeds))
	for name, r := range l.feeds {
		out[name] = r.Drops
	}
	return out
}

// Observe adds the delays between the lastSeen of a list's entries and the
// time they were in the kernel to the feed's histogram.
func (l *Ledger) Observe(name string, delays []time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.feeds[name]; r != nil {
		l.dirty = true
		for _, d := range delays {
			r.Latency.observe(d)
		}
	}
}

// ObserveHistogram adds a distribution of such delays, counted per bucket
// of LatencyBounds (the last bucket unbounded) with their sum in seconds,
// to the feed's histogram: what a source that summarises its list instead
// of keeping every entry hands over. Counts of another shape are refused.
func (l *Ledger) ObserveHistogram(name string, counts []uint64, sum float64) error {
	if len(counts) != len(LatencyBounds)+1 {
		return fmt.Errorf("latency histogram of %d buckets, want %d", len(counts), len(LatencyBounds)+1)
	}
	if math.IsNaN(sum) || math.IsInf(sum, 0) || sum < 0 {
		return fmt.Errorf("latency sum %v is not a duration", sum)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.feeds[name]; r != nil {
		l.dirty = true
		for i, c := range counts {
			r.Latency.Counts[i] += c
		}
		r.Latency.Sum += sum
	}
	return nil
}

package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/statefile"
)

// feedRec is one feed's history, as saved. Its size is fixed but for
// Dests, which is capped.
type feedRec struct {
	Since time.Time `json:"since"` // when the ledger first saw the feed

	Drops            uint64 `json:"drops"`
	Unique           uint64 `json:"unique"`
	WouldUnsolicited uint64 `json:"wouldUnsolicited"`
	WouldReply       uint64 `json:"wouldReply"`
	Outbound         uint64 `json:"outbound"`
	BlockedOut       uint64 `json:"blockedOut"`

	DropSeries             series `json:"dropSeries"`             // hourly, 7 days
	UniqueSeries           series `json:"uniqueSeries"`           // daily, 31 days
	WouldUnsolicitedSeries series `json:"wouldUnsolicitedSeries"` // daily, 7 days
	WouldReplySeries       series `json:"wouldReplySeries"`
	OutboundSeries         series `json:"outboundSeries"`
	BlockedOutSeries       series `json:"blockedOutSeries"`
	PullOK                 series `json:"pullOk"`
	PullFailed             series `json:"pullFailed"`

	LastHit  time.Time `json:"lastHit"`
	ListHash string    `json:"listHash"`
	Changed  time.Time `json:"changed"` // when the list's content last changed

	Dests   map[netip.Addr]*dest `json:"dests"`
	Latency histogram            `json:"latency"`
}

func newFeedRec(now time.Time) *feedRec {
	return &feedRec{
		Since:                  now,
		DropSeries:             newSeries(hour, dropHours),
		UniqueSeries:           newSeries(day, uniqueDays),
		WouldUnsolicitedSeries: newSeries(day, weekDays),
		WouldReplySeries:       newSeries(day, weekDays),
		OutboundSeries:         newSeries(day, weekDays),
		BlockedOutSeries:       newSeries(day, weekDays),
		PullOK:                 newSeries(day, weekDays),
		PullFailed:             newSeries(day, weekDays),
		Dests:                  map[netip.Addr]*dest{},
		Latency:                newHistogram(),
	}
}

// valid checks a loaded record's shape, so that a file edited by hand
// cannot make the rings index out of range. A ring whose newest bucket
// lies in the future (saved while the clock was ahead) would ignore every
// count until the clock caught up; it starts again empty instead.
func (r *feedRec) valid(now time.Time) error {
	rings := []struct {
		s     *series
		width time.Duration
		n     int
	}{
		{&r.DropSeries, hour, dropHours}, {&r.UniqueSeries, day, uniqueDays},
		{&r.WouldUnsolicitedSeries, day, weekDays}, {&r.WouldReplySeries, day, weekDays},
		{&r.OutboundSeries, day, weekDays}, {&r.BlockedOutSeries, day, weekDays},
		{&r.PullOK, day, weekDays}, {&r.PullFailed, day, weekDays},
	}
	for i, g := range rings {
		if !g.s.valid(g.width, g.n) {
			return fmt.Errorf("time series %d has the wrong shape", i)
		}
		if g.s.Last > now.Unix()/g.s.Width {
			*g.s = newSeries(g.width, g.n)
		}
	}
	if len(r.Latency.Counts) != len(LatencyBounds)+1 {
		return errors.New("latency histogram has the wrong shape")
	}
	if r.Dests == nil {
		r.Dests = map[netip.Addr]*dest{}
	}
	for a, d := range r.Dests {
		if !a.IsValid() || d == nil {
			return errors.New("invalid outbound destination")
		}
	}
	return nil
}

// dest is one outbound destination of a feed.
type dest struct {
	Outbound   uint64    `json:"outbound"`
	BlockedOut uint64    `json:"blockedOut"`
	Last       time.Time `json:"last"`
}

func (d *dest) add(k Kind, n uint64, t time.Time) {
	if k == BlockedOut {
		d.BlockedOut += n
	} else {
		d.Outbound += n
	}
	if t.After(d.Last) {
		d.Last = t
	}
}

// dest returns a's record, making room at the cap by evicting the least
// recently hit destination (a linear pass over at most max entries, paid
// only for a destination new to a full map).
func (r *feedRec) dest(a netip.Addr, now time.Time, max int) *dest {
	a = a.Unmap()
	if d := r.Dests[a]; d != nil {
		return d
	}
	r.trim(max - 1)
	d := &dest{Last: now}
	r.Dests[a] = d
	return d
}

// trim evicts the least recently hit destinations until at most n are left.
func (r *feedRec) trim(n int) {
	for len(r.Dests) > n {
		var old netip.Addr
		var oldT time.Time
		for x, d := range r.Dests {
			if !old.IsValid() || d.Last.Before(oldT) || d.Last.Equal(oldT) && x.Less(old) {
				old, oldT = x, d.Last
			}
		}
		delete(r.Dests, old)
	}
}

// LatencyBounds are the upper bounds of the lastSeen → in-kernel histogram.
var LatencyBounds = []time.Duration{
	5 * time.Minute, 15 * time.Minute, time.Hour, 4 * time.Hour, 12 * time.Hour,
	day, 3 * day, 7 * day, 30 * day,
}

// histogram counts delays per bucket of LatencyBounds (the last bucket is
// everything longer), as a Prometheus histogram wants them.
type histogram struct {
	Counts []uint64 `json:"counts"` // per bucket, not cumulative
	Sum    float64  `json:"sum"`    // seconds
}

func newHistogram() histogram { return histogram{Counts: make([]uint64, len(LatencyBounds)+1)} }

func (h *histogram) observe(d time.Duration) {
	d = max(d, 0)
	i := 0
	for i < len(LatencyBounds) && d > LatencyBounds[i] {
		i++
	}
	h.Counts[i]++
	h.Sum += d.Seconds()
}

// stateVersion is the ledger file's format; another version is ignored
// like a corrupt file.
const stateVersion = 1

type stateFile struct {
	Version int                 `json:"version"`
	Saved   time.Time           `json:"saved"`
	Feeds   map[string]*feedRec `json:"feeds"`
}

// Save writes the ledger to its file atomically when anything changed
// since the last save; without a Path it does nothing.
func (l *Ledger) Save() error {
	if l.cfg.Path == "" {
		return nil
	}
	l.mu.Lock()
	if !l.dirty {
		l.mu.Unlock()
		return nil
	}
	// Encoding under the lock keeps the copy consistent; the file is a few
	// kilobytes per feed.
	buf, err := json.Marshal(stateFile{Version: stateVersion, Saved: l.cfg.Now().UTC(), Feeds: l.feeds})
	l.dirty = false
	l.mu.Unlock()
	if err == nil {
		err = statefile.WriteAtomic(l.cfg.Path, func(w io.Writer) error {
			_, err := w.Write(append(buf, '\n'))
			return err
		}, 0o640)
	}
	if err != nil {
		l.mu.Lock()
		l.dirty = true // the next save tries again
		l.mu.Unlock()
		return fmt.Errorf("save feed ledger: %w", err)
	}
	return nil
}

// load reads the file; a missing one starts empty, a corrupt one is
// logged and ignored.
func (l *Ledger) load() {
	if l.cfg.Path == "" {
		return
	}
	var sf stateFile
	err := statefile.Read(l.cfg.Path, func(r io.Reader) error {
		dec := json.NewDecoder(r)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sf); err != nil {
			return err
		}
		if dec.More() {
			return errors.New("trailing data")
		}
		if sf.Version != stateVersion {
			return fmt.Errorf("format version %d, want %d", sf.Version, stateVersion)
		}
		for name, r := range sf.Feeds {
			if r == nil {
				return fmt.Errorf("feed %q: empty record", name)
			}
			if err := r.valid(l.cfg.Now()); err != nil {
				return fmt.Errorf("feed %q: %w", name, err)
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		l.log.Warn("feed ledger unreadable; ignored", "path", l.cfg.Path, "err", err)
	default:
		for name, r := range sf.Feeds {
			// A file written with a larger cap keeps its newest entries.
			r.trim(l.cfg.MaxDestinations)
			l.feeds[name] = r
		}
	}
}

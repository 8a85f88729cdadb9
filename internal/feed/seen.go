package feed

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// How a SeenSummary reads a lastSeen that cannot be right.
const (
	// SeenFutureSlack is how far after the fetch a lastSeen may lie and
	// still count, as a sighting "now": the API's clock may run a little
	// ahead of the host's. Later ones are counted in Future.
	SeenFutureSlack = 5 * time.Minute
	// seenNearWindow and seenNearStep are the fine bins kept below each
	// bound, so that moving the ages to the moment the list is in force
	// is exact (see Histogram).
	seenNearWindow = 15 * time.Minute
	seenNearStep   = time.Second
	seenNearBins   = int(seenNearWindow / seenNearStep)
)

// seenEpoch is the earliest lastSeen taken for a date: SikkerAPI did not
// exist before; an earlier one is a default value or garbage.
var seenEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// SeenSummary is what a SikkerAPI JSON list says about when its entries
// were last seen, in a size fixed by its bounds whatever the length of the
// list: a histogram of the entries' ages (At − lastSeen) per bucket of
// Bounds, and the newest lastSeen. An entry's lastSeen never decides
// whether it is blocked: one that is missing, unreadable or in the future
// is counted here and the entry stays in the list.
type SeenSummary struct {
	At     time.Time       // ages are taken at this time: the fetch
	Bounds []time.Duration // upper bounds of the buckets, ascending
	// Counts holds the dated entries per bucket of Bounds; the last bucket
	// is everything older than the last bound.
	Counts []uint64
	Sum    float64 // of the dated entries' ages, in seconds
	Newest time.Time

	Missing uint64 // no lastSeen (absent, null or "")
	Invalid uint64 // not a time, or before 2000
	Future  uint64 // more than SeenFutureSlack after At

	// near[i][k] counts ages in (Bounds[i]−(k+1)s, Bounds[i]−k s].
	near [][]uint32
}

// NewSeenSummary returns an empty summary at time at, or nil without
// bounds. The bounds are copied, sorted and stripped of non-positive and
// repeated values.
func NewSeenSummary(at time.Time, bounds []time.Duration) *SeenSummary {
	b := slices.Clone(bounds)
	slices.Sort(b)
	b = slices.Compact(slices.DeleteFunc(b, func(d time.Duration) bool { return d <= 0 }))
	if len(b) == 0 {
		return nil
	}
	s := &SeenSummary{At: at, Bounds: b, Counts: make([]uint64, len(b)+1), near: make([][]uint32, len(b))}
	for i := range s.near {
		s.near[i] = make([]uint32, seenNearBins)
	}
	return s
}

// Dated is the number of entries with a usable lastSeen.
func (s *SeenSummary) Dated() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += c
	}
	return n
}

// add counts one entry's raw lastSeen.
func (s *SeenSummary) add(raw json.RawMessage) {
	t, present := seenTime(raw)
	if present && t.IsZero() {
		s.Invalid++
		return
	}
	s.Add(t)
}

// Add counts one entry's lastSeen; the zero time is a missing one.
func (s *SeenSummary) Add(t time.Time) {
	switch {
	case t.IsZero():
		s.Missing++
		return
	case t.Before(seenEpoch):
		s.Invalid++
		return
	case t.Sub(s.At) > SeenFutureSlack:
		s.Future++
		return
	}
	age := max(s.At.Sub(t), 0) // within the slack: seen "now"
	if t.After(s.At) {
		t = s.At
	}
	if t.After(s.Newest) {
		s.Newest = t
	}
	i, _ := slices.BinarySearch(s.Bounds, age) // first bound ≥ age
	s.Counts[i]++
	s.Sum += age.Seconds()
	for j := i; j < len(s.Bounds); j++ {
		k := int((s.Bounds[j] - age) / seenNearStep)
		if k >= seenNearBins {
			break // farther below every later bound too
		}
		// At most the list's length, which Limits keeps far below 2³².
		if s.near[j][k] < math.MaxUint32 {
			s.near[j][k]++
		}
	}
}

// Histogram moves the ages to time t, when the list was in the kernel:
// each dated entry's delay is its age plus d = t − At, counted per bucket
// of Bounds (d below zero is taken as zero). sum is in seconds.
//
// The result is exact for d rounded to whole seconds, as long as d is at
// most 15 minutes: an entry crosses bound b when its age lies in
// (b − d, b], and the fine bins below each bound count exactly those. d is
// rounded because the moment a list is "in the kernel" is not known closer
// than that. For a longer d, the entries aged (b − d, b − 15 min] still
// count below b: at most that many per bound are one bucket too low.
func (s *SeenSummary) Histogram(t time.Time) (counts []uint64, sum float64) {
	d := max(t.Sub(s.At), 0).Round(seenNearStep)
	steps := min(int(d/seenNearStep), seenNearBins)
	// cum[i] is the number of entries whose delay is at most Bounds[i].
	var total, below uint64
	counts = make([]uint64, len(s.Counts))
	for i := range s.Bounds {
		below += s.Counts[i]
		var crossing uint64
		for _, c := range s.near[i][:steps] {
			crossing += uint64(c)
		}
		cum := below - min(crossing, below)
		counts[i] = cum - total
		total = cum
	}
	all := s.Dated()
	counts[len(s.Bounds)] = all - total
	return counts, s.Sum + float64(all)*d.Seconds()
}

// seenTime reads a lastSeen: epoch milliseconds (documented), epoch
// seconds or RFC 3339. present is false when the field is absent, null or
// an empty string; a present value that is no time gives the zero time.
func seenTime(raw json.RawMessage) (t time.Time, present bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" || string(raw) == `""` {
		return time.Time{}, false
	}
	n, isInt := digits(raw)
	s := ""
	if !isInt {
		s = strings.TrimSpace(flexString(raw))
		var err error
		n, err = strconv.ParseInt(s, 10, 64)
		isInt = err == nil
	}
	if isInt {
		switch {
		case n <= 0:
			return time.Time{}, true
		case n < 1e11: // before 1973 in ms: it is seconds
			return time.Unix(n, 0).UTC(), true
		}
		return time.UnixMilli(n).UTC(), true
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	return time.Time{}, true
}

// digits reads a bare JSON number of at most 18 digits without a string
// copy: the common case of a million rows.
func digits(raw []byte) (int64, bool) {
	if len(raw) == 0 || len(raw) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

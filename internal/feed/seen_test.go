package feed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/mock"
)

// The bounds of the ledger's histogram (internal/ledger.LatencyBounds).
var testBounds = []time.Duration{5 * time.Minute, 15 * time.Minute, time.Hour, 4 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 72 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}

var seenAt = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// bucketsOf counts delays per bucket the way the ledger does: the first
// bound not below the delay.
func bucketsOf(delays []time.Duration) []uint64 {
	out := make([]uint64, len(testBounds)+1)
	for _, d := range delays {
		i := 0
		for i < len(testBounds) && d > testBounds[i] {
			i++
		}
		out[i]++
	}
	return out
}

func ms(t time.Time) []byte { return fmt.Appendf(nil, "%d", t.UnixMilli()) }

// Moving the summary to the moment the list is in force gives the same
// buckets as taking every entry's delay at that moment, for any shift of
// whole seconds up to the fine window, with many ages at or next to the
// bounds.
func TestSeenHistogramIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	s := NewSeenSummary(seenAt, testBounds)
	var ages []time.Duration
	for range 20000 {
		var age time.Duration
		switch r.IntN(3) {
		case 0: // anywhere in 40 days
			age = time.Duration(r.Int64N(int64(40*24*time.Hour/time.Millisecond))) * time.Millisecond
		default: // within 20 minutes of a bound, either side
			b := testBounds[r.IntN(len(testBounds))]
			age = max(b+time.Duration(r.Int64N(int64(40*time.Minute/time.Millisecond)))*time.Millisecond-20*time.Minute, 0)
		}
		ages = append(ages, age)
		s.add(ms(seenAt.Add(-age)))
	}
	for _, shift := range []time.Duration{0, time.Second, 7 * time.Second, 90 * time.Second, 5 * time.Minute,
		14*time.Minute + 59*time.Second, 15 * time.Minute, 1200 * time.Millisecond} {
		d := shift.Round(time.Second)
		delays := make([]time.Duration, len(ages))
		var sum float64
		for i, a := range ages {
			delays[i] = a + d
			sum += delays[i].Seconds()
		}
		got, gotSum := s.Histogram(seenAt.Add(shift))
		if want := bucketsOf(delays); !slices.Equal(got, want) {
			t.Errorf("shift %v: buckets %v, want %v", shift, got, want)
		}
		if diff := gotSum - sum; diff > 1e-3*sum/float64(len(ages)) || diff < -1e-3*sum/float64(len(ages)) {
			t.Errorf("shift %v: sum %v, want %v", shift, gotSum, sum)
		}
	}
	// A clock that went backwards moves nothing.
	if got, _ := s.Histogram(seenAt.Add(-time.Hour)); !slices.Equal(got, s.Counts) {
		t.Errorf("negative shift: %v, want %v", got, s.Counts)
	}
}

// Beyond the fine window the buckets are off by at most the entries aged
// between bound − shift and bound − 15 minutes, which count one bucket low.
func TestSeenHistogramBeyondTheWindow(t *testing.T) {
	s := NewSeenSummary(seenAt, testBounds)
	// Aged 10 min and 50 min: an hour later they are 70 and 110 minutes.
	for _, age := range []time.Duration{10 * time.Minute, 50 * time.Minute} {
		s.add(ms(seenAt.Add(-age)))
	}
	got, _ := s.Histogram(seenAt.Add(time.Hour))
	// Exact would be 0,0,0,2: the 50-minute one lies inside the last
	// 15 minutes below 1 h and moves; the 10-minute one is 50 minutes
	// below 1 h, outside the window, and stays one bucket low.
	if want := []uint64{0, 0, 1, 1, 0, 0, 0, 0, 0, 0}; !slices.Equal(got, want) {
		t.Errorf("buckets %v, want %v", got, want)
	}
}

// Every kind of hostile lastSeen is counted apart from the dated ones and
// none keeps its entry out of the list, dates the list in the future or
// panics.
func TestSeenHostileValues(t *testing.T) {
	rows := []struct {
		lastSeen string // "" leaves the field out
		kind     string // dated, missing, invalid, future
	}{
		{string(ms(seenAt.Add(-time.Minute))), "dated"},
		{fmt.Sprint(seenAt.Add(-2 * time.Hour).Unix()), "dated"},             // seconds
		{`"` + seenAt.Add(-3*time.Hour).Format(time.RFC3339) + `"`, "dated"}, // RFC 3339
		{`"` + string(ms(seenAt.Add(-4*time.Hour))) + `"`, "dated"},          // ms as a string
		{string(ms(seenAt.Add(2 * time.Minute))), "dated"},                   // within the slack: now
		{"", "missing"}, {"null", "missing"}, {`""`, "missing"},
		{"0", "invalid"}, {"-1760000000000", "invalid"}, {`"yesterday"`, "invalid"},
		{"1.76e12", "invalid"}, {"true", "invalid"}, {`{"ms":1}`, "invalid"}, {`[1760000000000]`, "invalid"},
		{"99999999999999999999", "invalid"}, {`"0001-01-01T00:00:00Z"`, "invalid"},
		{"946684799", "invalid"}, // 1999-12-31T23:59:59Z, in seconds
		{string(ms(seenAt.Add(time.Hour))), "future"},
		{"9223372036854775807", "future"}, {`"9999-12-31T23:59:59Z"`, "future"},
		{"253402300800000", "future"}, // year 10000 in ms
	}
	var b strings.Builder
	b.WriteString(`{"data":[`)
	want := map[string]uint64{}
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"ip":"198.51.100.%d"`, i+1)
		if r.lastSeen != "" {
			fmt.Fprintf(&b, `,"lastSeen":%s`, r.lastSeen)
		}
		b.WriteByte('}')
		want[r.kind]++
	}
	b.WriteString(`]}`)
	res, err := parseJSONList(strings.NewReader(b.String()), false, Limits{}, NewSeenSummary(seenAt, testBounds))
	if err != nil {
		t.Fatal(err)
	}
	s := res.seen
	if res.stats.Entries != len(rows) || res.stats.Malformed != 0 {
		t.Errorf("stats %+v: every row should be in the list", res.stats)
	}
	if s.Dated() != want["dated"] || s.Missing != want["missing"] || s.Invalid != want["invalid"] || s.Future != want["future"] {
		t.Errorf("dated %d missing %d invalid %d future %d, want %v", s.Dated(), s.Missing, s.Invalid, s.Future, want)
	}
	if !s.Newest.Equal(seenAt) {
		t.Errorf("newest %v, want the fetch time %v (a sighting within the slack)", s.Newest, seenAt)
	}
	wantCounts := []uint64{2, 0, 0, 3, 0, 0, 0, 0, 0, 0}
	if !slices.Equal(s.Counts, wantCounts) {
		t.Errorf("counts %v, want %v", s.Counts, wantCounts)
	}
	if wantSum := (time.Minute + 9*time.Hour).Seconds(); s.Sum != wantSum {
		t.Errorf("sum %v, want %v", s.Sum, wantSum)
	}
}

// A JSON pull with SeenBounds carries the summary and no entries; the
// mock's lastSeen are the documented epoch milliseconds.
func TestSikkerJSONSeenSummary(t *testing.T) {
	entries := mock.Generate(mock.GenerateOptions{N: 300, Seed: 3, Base: seenAt.Add(-time.Minute)})
	srv := startMock(t, mock.Options{Entries: entries})
	c, _ := newClient(t, srv, func(o *SikkerOptions) {
		o.Format, o.ScoreMin, o.SeenBounds, o.Now = FormatJSON, 1, testBounds, func() time.Time { return seenAt }
	})
	snap, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := snap.Seen
	if s == nil || snap.Entries != nil {
		t.Fatalf("seen %v, %d entries kept", s, len(snap.Entries))
	}
	var delays []time.Duration
	newest := time.Time{}
	for _, e := range entries {
		delays = append(delays, seenAt.Sub(e.LastSeen))
		if e.LastSeen.After(newest) {
			newest = e.LastSeen
		}
	}
	if got := bucketsOf(delays); !slices.Equal(s.Counts, got) || !s.Newest.Equal(newest) || s.Missing+s.Invalid+s.Future != 0 {
		t.Errorf("summary %+v, want counts %v newest %v", s, got, newest)
	}
	// Plaintext has no lastSeen.
	p, _ := newClient(t, srv, func(o *SikkerOptions) { o.ScoreMin, o.SeenBounds = 1, testBounds })
	if snap, err := p.Fetch(context.Background()); err != nil || snap.Seen != nil {
		t.Errorf("plaintext: seen %v, err %v", snap.Seen, err)
	}
}

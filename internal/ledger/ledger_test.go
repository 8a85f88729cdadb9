package ledger

import (
	"bytes"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func newTest(t *testing.T, path string) (*Ledger, *clock) {
	t.Helper()
	c := &clock{t0}
	l := New(Config{Path: path, Now: c.now}, nil)
	l.SetFeeds([]Facts{
		{Name: "a", Entries: 2000, ListHash: "h1", ListTime: t0.Add(-time.Hour)},
		{Name: "b", Entries: 10},
		{Name: "m", Mode: ModeMonitor, Entries: 100},
	})
	return l, c
}

func record(t *testing.T, l *Ledger, name string) Record {
	t.Helper()
	for _, r := range l.Records() {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no record of %s", name)
	return Record{}
}

func TestDropsUniqueAndMonitor(t *testing.T) {
	l, c := newTest(t, "")
	src := addr("192.0.2.7")
	l.Add(Hit{Kind: Drop, Addr: src, Feeds: []string{"a"}, Packets: 5, Time: c.t})
	l.Add(Hit{Kind: Drop, Addr: src, Feeds: []string{"a", "b", "m"}, Packets: 3, Time: c.t})
	// The monitor feed does not make a drop shared, nor count it.
	l.Add(Hit{Kind: Drop, Addr: src, Feeds: []string{"b", "m", "unknown"}, Packets: 2, Time: c.t})
	l.Add(Hit{Kind: WouldUnsolicited, Addr: src, Feeds: []string{"m", "a"}, Packets: 7, Time: c.t})
	l.Add(Hit{Kind: WouldReply, Addr: src, Feeds: []string{"m"}, Packets: 1, Time: c.t})
	a, b, m := record(t, l, "a"), record(t, l, "b"), record(t, l, "m")
	if a.DropsTotal != 8 || a.UniqueTotal != 5 || a.Drops24h != 8 || a.Unique30d != 5 || a.WouldUnsolicited != 0 {
		t.Errorf("a: drops %d unique %d 24h %d unique30 %d would %d", a.DropsTotal, a.UniqueTotal, a.Drops24h, a.Unique30d, a.WouldUnsolicited)
	}
	if b.DropsTotal != 5 || b.UniqueTotal != 2 {
		t.Errorf("b: drops %d unique %d, want 5 2", b.DropsTotal, b.UniqueTotal)
	}
	if m.DropsTotal != 0 || m.WouldUnsolicited != 7 || m.WouldReplies != 1 || !m.LastHit.Equal(t0) {
		t.Errorf("m: drops %d would %d/%d last %v", m.DropsTotal, m.WouldUnsolicited, m.WouldReplies, m.LastHit)
	}
	if d := l.Drops(); d["a"] != 8 || d["b"] != 5 || d["m"] != 0 {
		t.Errorf("Drops() = %v", d)
	}
	if a.HitsPer1000 != 4 {
		t.Errorf("a: hits per 1000 = %v, want 4", a.HitsPer1000)
	}
	if want := "monitor: would drop 7 unsolicited, 1 replies — enforcing breaks traffic"; m.Advice != want {
		t.Errorf("m advice %q, want %q", m.Advice, want)
	}
}

func TestWindows(t *testing.T) {
	l, c := newTest(t, "")
	l.Add(Hit{Kind: Drop, Addr: addr("192.0.2.1"), Feeds: []string{"a"}, Packets: 1, Time: c.t})
	c.t = c.t.Add(30 * time.Hour)
	l.Add(Hit{Kind: Drop, Addr: addr("192.0.2.1"), Feeds: []string{"a"}, Packets: 10, Time: c.t})
	r := record(t, l, "a")
	if r.Drops24h != 10 || r.Drops7d != 11 || r.DropsTotal != 11 {
		t.Errorf("after 30 h: 24h %d 7d %d total %d, want 10 11 11", r.Drops24h, r.Drops7d, r.DropsTotal)
	}
	c.t = c.t.Add(8 * day)
	r = record(t, l, "a")
	if r.Drops24h != 0 || r.Drops7d != 0 || r.DropsTotal != 11 || r.Unique30d != 11 {
		t.Errorf("after 9 days: 24h %d 7d %d total %d unique30 %d, want 0 0 11 11", r.Drops24h, r.Drops7d, r.DropsTotal, r.Unique30d)
	}
	c.t = c.t.Add(30 * day)
	r = record(t, l, "a")
	if r.Unique30d != 0 || !strings.Contains(r.Advice, "no unique drop in 30 days") {
		t.Errorf("after 39 days: unique30 %d advice %q", r.Unique30d, r.Advice)
	}
}

func TestPullsAndAge(t *testing.T) {
	l, c := newTest(t, "")
	for i := range 4 {
		l.Pulled("a", i != 0, c.t)
	}
	l.Pulled("new", true, c.t) // pulled before its list is in force
	l.SetFeeds([]Facts{{Name: "a", ListHash: "h1"}, {Name: "b"}, {Name: "m", Mode: ModeMonitor}, {Name: "new"}})
	if r := record(t, l, "new"); r.PullRatio != 1 {
		t.Errorf("a feed pulled before SetFeeds named it: ratio %v, want 1", r.PullRatio)
	}
	r := record(t, l, "a")
	if r.PullRatio != 0.75 || r.ListAge != time.Hour || record(t, l, "b").PullRatio != -1 {
		t.Errorf("ratio %v age %v, b ratio %v", r.PullRatio, r.ListAge, record(t, l, "b").PullRatio)
	}
	// The same content pulled again later does not make the data younger;
	// new content does.
	c.t = c.t.Add(8 * day)
	l.SetFeeds([]Facts{{Name: "a", ListHash: "h1", ListTime: c.t}})
	if r := record(t, l, "a"); r.ListAge != 8*day+time.Hour || !strings.Contains(r.Advice, "data unchanged for 8 days") {
		t.Errorf("unchanged list: age %v advice %q", r.ListAge, r.Advice)
	}
	l.SetFeeds([]Facts{{Name: "a", ListHash: "h2", ListTime: c.t}})
	if r := record(t, l, "a"); r.ListAge != 0 {
		t.Errorf("changed list: age %v, want 0", r.ListAge)
	}
	if n := len(l.Records()); n != 1 {
		t.Errorf("%d records after dropping b and m, want 1", n)
	}
}

func TestOutboundBounded(t *testing.T) {
	c := &clock{t0}
	l := New(Config{MaxDestinations: 3, Now: c.now}, nil)
	l.SetFeeds([]Facts{{Name: "a"}})
	for i := range 5 {
		c.t = c.t.Add(time.Second)
		l.Add(Hit{Kind: Outbound, Addr: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), Feeds: []string{"a"}, Packets: uint64(i + 1), Time: c.t})
	}
	l.Add(Hit{Kind: BlockedOut, Addr: addr("203.0.113.4"), Feeds: []string{"a"}, Packets: 2, Time: c.t})
	l.Add(Hit{Kind: Outbound, Feeds: []string{"a"}, Packets: 1, Time: c.t}) // no address: counted, not kept
	r := record(t, l, "a")
	if r.OutboundHosts != 3 || r.OutboundTotal != 16 || r.BlockedOutTotal != 2 || !r.LastHit.IsZero() {
		t.Fatalf("hosts %d outbound %d blocked %d last hit %v", r.OutboundHosts, r.OutboundTotal, r.BlockedOutTotal, r.LastHit)
	}
	want := []Destination{
		{addr("203.0.113.4"), 5, 2, c.t}, {addr("203.0.113.3"), 4, 0, c.t.Add(-time.Second)}, {addr("203.0.113.2"), 3, 0, c.t.Add(-2 * time.Second)},
	}
	if !reflect.DeepEqual(r.Destinations, want) {
		t.Errorf("destinations %v, want %v", r.Destinations, want)
	}
	if want := "breaks outbound traffic: 3 hosts"; r.Advice != want {
		t.Errorf("advice %q, want %q", r.Advice, want)
	}
}

func TestSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	l, c := newTest(t, path)
	l.Add(Hit{Kind: Drop, Addr: addr("192.0.2.7"), Feeds: []string{"a"}, Packets: 4, Time: c.t})
	l.Add(Hit{Kind: Outbound, Addr: addr("203.0.113.9"), Feeds: []string{"b"}, Packets: 1, Time: c.t})
	l.Add(Hit{Kind: WouldReply, Addr: addr("192.0.2.8"), Feeds: []string{"m"}, Packets: 2, Time: c.t})
	l.Pulled("a", true, c.t)
	l.Observe("a", []time.Duration{time.Minute, 2 * time.Hour, 90 * day})
	if err := l.Save(); err != nil {
		t.Fatal(err)
	}
	before := l.Records()
	// Nothing changed: the file is not written again.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("an unchanged ledger was written again")
	}
	l.Pulled("a", true, c.t)
	if err := l.Save(); err != nil {
		t.Fatal(err)
	}
	before = l.Records()
	l2, _ := newTest(t, path)
	if after := l2.Records(); !reflect.DeepEqual(before, after) {
		t.Errorf("after restart:\n%+v\nbefore:\n%+v", after, before)
	}
	if h := before[0].Latency; h.Counts[0] != 1 || h.Counts[3] != 1 || h.Counts[len(LatencyBounds)] != 1 {
		t.Errorf("histogram %v", h.Counts)
	}
}

// A ledger saved while the clock was ahead keeps its totals and counts
// again at once, rather than when the clock catches up.
func TestSavedInTheFuture(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.json")
	l, c := newTest(t, path)
	c.t = t0.Add(365 * day)
	l.Add(Hit{Kind: Drop, Addr: addr("192.0.2.7"), Feeds: []string{"a"}, Packets: 4, Time: c.t})
	if err := l.Save(); err != nil {
		t.Fatal(err)
	}
	l2, c2 := newTest(t, path)
	l2.Add(Hit{Kind: Drop, Addr: addr("192.0.2.7"), Feeds: []string{"a"}, Packets: 1, Time: c2.t})
	if r := record(t, l2, "a"); r.DropsTotal != 5 || r.Drops24h != 1 {
		t.Errorf("drops %d, 24 h %d; want 5 and 1", r.DropsTotal, r.Drops24h)
	}
}

func TestCorruptFileIgnored(t *testing.T) {
	for name, text := range map[string]string{
		"garbage":   "{not json",
		"version":   `{"version":9,"feeds":{}}`,
		"shape":     `{"version":1,"feeds":{"a":{"dropSeries":{"width":3600,"last":0,"counts":[1]}}}}`,
		"unknown":   `{"version":1,"feeds":{},"extra":1}`,
		"trailing":  `{"version":1,"feeds":{}} {}`,
		"nilRecord": `{"version":1,"feeds":{"a":null}}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ledger.json")
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			l := New(Config{Path: path}, slog.New(slog.NewTextHandler(&buf, nil)))
			l.SetFeeds([]Facts{{Name: "a"}})
			if r := l.Records()[0]; r.DropsTotal != 0 || !strings.Contains(buf.String(), "feed ledger unreadable; ignored") {
				t.Errorf("drops %d, log %q", r.DropsTotal, buf.String())
			}
		})
	}
}

func TestAdvice(t *testing.T) {
	now := t0
	old := now.Add(-40 * day)
	for _, c := range []struct {
		r    Record
		want string
	}{
		{Record{Mode: ModeEnforce, Since: now, PullRatio: -1}, "ok"},
		{Record{Mode: ModeEnforce, Since: old, PullRatio: 1, Drops7d: 5}, "no unique drop in 30 days"},
		{Record{Mode: ModeEnforce, Since: now.Add(-8 * day), PullRatio: 1}, "no drop in 7 days"},
		{Record{Mode: ModeMonitor, Since: old, PullRatio: -1, WouldUnsolicited: 3412}, "monitor: would drop 3,412 unsolicited, 0 replies — safe to enforce"},
		{Record{Mode: ModeMonitor, Since: now, PullRatio: -1}, "monitor: no match yet"},
		{Record{Mode: ModeEnforce, Since: now, PullRatio: 0.25, OutboundHosts: 12}, "pulls failing: 25 % succeeded in 7 days; breaks outbound traffic: 12 hosts"},
	} {
		if got := Advise(c.r, now); got != c.want {
			t.Errorf("Advise(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
	if Thousands(1234567) != "1,234,567" || Thousands(999) != "999" {
		t.Error("Thousands")
	}
}

// A summarised distribution adds to the histogram like the delays it
// stands for; one of another shape or with a sum that is no duration is
// refused and changes nothing.
func TestObserveHistogram(t *testing.T) {
	l, _ := newTest(t, "")
	l.Observe("a", []time.Duration{time.Minute})
	counts := make([]uint64, len(LatencyBounds)+1)
	counts[0], counts[3] = 2, 1
	if err := l.ObserveHistogram("a", counts, 3600+60+60); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		counts []uint64
		sum    float64
	}{{counts[1:], 1}, {counts, math.NaN()}, {counts, -1}, {counts, math.Inf(1)}} {
		if err := l.ObserveHistogram("a", bad.counts, bad.sum); err == nil {
			t.Errorf("ObserveHistogram(%v, %v) accepted", bad.counts, bad.sum)
		}
	}
	h := record(t, l, "a").Latency
	if h.Counts[0] != 3 || h.Counts[3] != 1 || h.Sum != 3600+3*60 {
		t.Errorf("histogram %v sum %v", h.Counts, h.Sum)
	}
}

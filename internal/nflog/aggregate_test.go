package nflog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/sikkerapi/sikkerguard/internal/logging"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

var services = map[uint16]string{22: "ssh", 23: "telnet", 2222: "ssh", 53: "dns"}

func newTestAggregator(t *testing.T, cfg AggregatorConfig) (*Aggregator, *clock, *bytes.Buffer) {
	t.Helper()
	c := &clock{t: time.Date(2025, 10, 9, 8, 0, 0, 0, time.UTC)}
	var buf bytes.Buffer
	cfg.Now = c.Now
	if cfg.Services == nil {
		cfg.Services = services
	}
	return NewAggregator(cfg, slog.New(logging.Check(slog.NewJSONHandler(&buf, nil), t.Errorf))), c, &buf
}

func ev(src string, port uint16, transport string) Event {
	return Event{Src: netip.MustParseAddr(src), DstPort: port, Transport: transport}
}

func TestCountLine(t *testing.T) {
	tests := []struct {
		c    Count
		want string
	}{
		{Count{netip.MustParseAddr("185.16.39.79"), 23, TransportTCP, "telnet", 47}, "BLOCKED 185.16.39.79:23 (telnet) proto=TCP x47"},
		{Count{netip.MustParseAddr("2001:db8::1"), 22, TransportTCP, "ssh", 2}, "BLOCKED [2001:db8::1]:22 (ssh) proto=TCP x2"},
		{Count{netip.MustParseAddr("1.2.3.4"), 0, TransportICMP, "icmp", 3}, "BLOCKED 1.2.3.4 (icmp) proto=ICMP x3"},
		{Count{netip.MustParseAddr("2001:db8::2"), 0, TransportICMPv6, "icmpv6", 1}, "BLOCKED 2001:db8::2 (icmpv6) proto=ICMPv6 x1"},
		{Count{netip.MustParseAddr("198.51.100.1"), 31337, TransportUDP, "unknown", 9}, "BLOCKED 198.51.100.1:31337 (unknown) proto=UDP x9"},
		{Count{netip.MustParseAddr("198.51.100.1"), 0, TransportOther, "other", 1}, "BLOCKED 198.51.100.1 (other) proto=other x1"},
	}
	for _, tt := range tests {
		if got := tt.c.Line(); got != tt.want {
			t.Errorf("Line() = %q, want %q", got, tt.want)
		}
	}
}

func TestServiceName(t *testing.T) {
	tests := []struct {
		port      uint16
		transport string
		want      string
	}{
		{22, TransportTCP, "ssh"}, {2222, TransportUDP, "ssh"}, {8, TransportTCP, ServiceUnknown},
		{0, TransportICMP, ServiceICMP}, {22, TransportICMPv6, ServiceICMPv6}, {0, TransportOther, ServiceOther},
	}
	for _, tt := range tests {
		if got := ServiceName(services, tt.port, tt.transport); got != tt.want {
			t.Errorf("ServiceName(%d, %s) = %q, want %q", tt.port, tt.transport, got, tt.want)
		}
	}
}

func TestAggregatorWindow(t *testing.T) {
	a, c, buf := newTestAggregator(t, AggregatorConfig{})
	for range 47 {
		a.Add(ev("185.16.39.79", 23, TransportTCP))
	}
	for range 3 {
		a.Add(ev("1.2.3.4", 0, TransportICMP))
	}
	a.Add(ev("2001:db8::1", 22, TransportTCP))
	// An IPv4-mapped source counts as the IPv4 address.
	a.Add(ev("::ffff:1.2.3.4", 0, TransportICMP))

	c.Advance(9 * time.Second)
	if got := a.Tick(); got != nil {
		t.Fatalf("Tick before the window ended = %v", got)
	}
	if buf.Len() != 0 {
		t.Fatalf("logged before the window ended: %s", buf)
	}
	c.Advance(time.Second)
	got := a.Tick()
	want := []string{
		"BLOCKED 185.16.39.79:23 (telnet) proto=TCP x47",
		"BLOCKED 1.2.3.4 (icmp) proto=ICMP x4",
		"BLOCKED [2001:db8::1]:22 (ssh) proto=TCP x1",
	}
	var lines []string
	for _, cnt := range got {
		lines = append(lines, cnt.Line())
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("window = %q, want %q", lines, want)
	}

	// The journal gets the same lines with structured attributes, in the
	// fields-only group so that the text stays the line itself.
	var logged []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		logged = append(logged, m)
	}
	f, _ := logged[0][logging.FieldsOnly].(map[string]any)
	if len(logged) != 3 || logged[0]["msg"] != want[0] || f["src"] != "185.16.39.79" ||
		f["port"] != 23.0 || f["service"] != "telnet" || f["proto"] != "TCP" || f["count"] != 47.0 {
		t.Fatalf("logged %v", logged)
	}

	// A new window starts empty.
	c.Advance(10 * time.Second)
	if got := a.Tick(); len(got) != 0 {
		t.Fatalf("empty window = %v", got)
	}
	a.Add(ev("185.16.39.79", 23, TransportTCP))
	if got := a.Flush(); len(got) != 1 || got[0].Count != 1 {
		t.Fatalf("Flush = %v", got)
	}

	if n := a.SourceTotal(netip.MustParseAddr("185.16.39.79")); n != 48 {
		t.Errorf("SourceTotal = %d, want 48", n)
	}
	wantSvc := map[string]uint64{"telnet": 48, "icmp": 4, "ssh": 1}
	if got := a.ServiceTotals(); fmt.Sprint(got) != fmt.Sprint(wantSvc) {
		t.Errorf("ServiceTotals = %v, want %v", got, wantSvc)
	}
	if s := a.Stats(); s.Sources != 3 || s.Packets != 53 || s.Evicted != 0 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestTopBlocked(t *testing.T) {
	a, _, _ := newTestAggregator(t, AggregatorConfig{})
	add := func(src string, port uint16, tr string, n int) {
		for range n {
			a.Add(ev(src, port, tr))
		}
	}
	add("198.51.100.1", 22, TransportTCP, 5)
	add("198.51.100.1", 23, TransportTCP, 7)
	add("198.51.100.2", 22, TransportUDP, 5)
	add("2001:db8::9", 0, TransportICMPv6, 1)
	add("198.51.100.3", 9999, TransportTCP, 6)

	got := a.TopBlocked(4)
	want := []Count{
		{netip.MustParseAddr("198.51.100.1"), 23, TransportTCP, "telnet", 7},
		{netip.MustParseAddr("198.51.100.3"), 9999, TransportTCP, "unknown", 6},
		{netip.MustParseAddr("198.51.100.1"), 22, TransportTCP, "ssh", 5},
		{netip.MustParseAddr("198.51.100.2"), 22, TransportUDP, "ssh", 5},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("TopBlocked(4) = %v, want %v", got, want)
	}
	if got := a.TopBlocked(100); len(got) != 5 {
		t.Fatalf("TopBlocked(100) has %d rows, want 5", len(got))
	}
	if got := a.TopBlocked(0); got != nil {
		t.Fatalf("TopBlocked(0) = %v", got)
	}
}

func TestAggregatorEviction(t *testing.T) {
	a, c, _ := newTestAggregator(t, AggregatorConfig{MaxSources: 200, MaxPortsPerSource: 3})
	// 200 sources: the first 100 with 2 packets, the rest with 1; among
	// equals the older ones go first.
	for i := range 200 {
		src := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		a.Add(Event{Src: src, DstPort: 22, Transport: TransportTCP, Time: c.Now()})
		if i < 100 {
			a.Add(Event{Src: src, DstPort: 22, Transport: TransportTCP, Time: c.Now()})
		}
		c.Advance(time.Second)
	}
	a.Add(ev("192.0.2.1", 22, TransportTCP))
	s := a.Stats()
	// 1 % of 200 is 2: the two oldest one-packet sources, .100 and .101.
	if s.Sources != 199 || s.Evicted != 2 || s.Packets != 301 {
		t.Fatalf("Stats = %+v", s)
	}
	for _, gone := range []string{"198.51.100.100", "198.51.100.101"} {
		if a.SourceTotal(netip.MustParseAddr(gone)) != 0 {
			t.Errorf("%s kept", gone)
		}
	}
	for _, kept := range []string{"198.51.100.0", "198.51.100.102", "192.0.2.1"} {
		if a.SourceTotal(netip.MustParseAddr(kept)) == 0 {
			t.Errorf("%s evicted", kept)
		}
	}

	// A source scanning ports keeps its busiest pairs and its full total.
	scanner := "203.0.113.5"
	for range 5 {
		a.Add(ev(scanner, 22, TransportTCP))
	}
	for p := range uint16(10) {
		a.Add(ev(scanner, 1000+p, TransportTCP))
	}
	if got := a.SourceTotal(netip.MustParseAddr(scanner)); got != 15 {
		t.Errorf("scanner total = %d, want 15", got)
	}
	var pairs []Count
	for _, cnt := range a.TopBlocked(1000) {
		if cnt.Src == netip.MustParseAddr(scanner) {
			pairs = append(pairs, cnt)
		}
	}
	if len(pairs) != 3 || pairs[0].Port != 22 || pairs[0].Count != 5 {
		t.Errorf("scanner pairs = %v", pairs)
	}
	if a.Stats().PortsEvicted != 8 {
		t.Errorf("PortsEvicted = %d, want 8", a.Stats().PortsEvicted)
	}
}

func TestAggregatorPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blocked.json")
	a, _, _ := newTestAggregator(t, AggregatorConfig{StatePath: path})
	for range 4 {
		a.Add(ev("185.16.39.79", 23, TransportTCP))
	}
	a.Add(ev("2001:db8::1", 0, TransportICMPv6))
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}
	b, _, buf := newTestAggregator(t, AggregatorConfig{StatePath: path})
	if buf.Len() != 0 {
		t.Fatalf("warnings on a good file: %s", buf)
	}
	if !slices.Equal(a.TopBlocked(10), b.TopBlocked(10)) {
		t.Fatalf("reloaded TopBlocked = %v, want %v", b.TopBlocked(10), a.TopBlocked(10))
	}
	if a.Stats() != b.Stats() || fmt.Sprint(a.ServiceTotals()) != fmt.Sprint(b.ServiceTotals()) {
		t.Fatalf("reloaded stats %+v %v, want %+v %v", b.Stats(), b.ServiceTotals(), a.Stats(), a.ServiceTotals())
	}
	// Totals keep growing on top of what was loaded.
	b.Add(ev("185.16.39.79", 23, TransportTCP))
	if n := b.SourceTotal(netip.MustParseAddr("185.16.39.79")); n != 5 {
		t.Fatalf("total after restart = %d, want 5", n)
	}
}

func TestAggregatorBadStateFile(t *testing.T) {
	tests := map[string]string{
		"garbage":           "{not json",
		"wrong version":     `{"version":99,"sources":[]}`,
		"unknown field":     `{"version":1,"extra":1}`,
		"bad address":       `{"version":1,"sources":[{"ip":"nope","count":1}]}`,
		"unknown transport": `{"version":1,"sources":[{"ip":"192.0.2.1","count":1,"ports":[{"port":1,"transport":"SCTP","count":1}]}]}`,
		"trailing data":     `{"version":1} {}`,
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "blocked.json")
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			a, _, buf := newTestAggregator(t, AggregatorConfig{StatePath: path})
			if !strings.Contains(buf.String(), "block statistics ignored") {
				t.Fatalf("no warning for a %s file: %q", name, buf)
			}
			if s := a.Stats(); s.Sources != 0 || s.Packets != 0 {
				t.Fatalf("Stats after a bad file = %+v", s)
			}
		})
	}
	a, _, buf := newTestAggregator(t, AggregatorConfig{StatePath: filepath.Join(t.TempDir(), "missing.json")})
	if buf.Len() != 0 || a.Stats().Sources != 0 {
		t.Fatalf("missing file: %q %+v", buf, a.Stats())
	}
}

func BenchmarkAggregatorAdd(b *testing.B) {
	a := NewAggregator(AggregatorConfig{Services: services}, slog.New(slog.DiscardHandler))
	evs := make([]Event, 4096)
	for i := range evs {
		evs[i] = Event{Src: netip.AddrFrom4([4]byte{203, 0, byte(i >> 8), byte(i)}), DstPort: uint16(i % 50), Transport: TransportTCP}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		a.Add(evs[i%len(evs)])
	}
}

// fill adds sources × ports pairs with varied counts: pair (s, p) gets
// 1 + (s*ports+p) % spread packets.
func fill(a *Aggregator, sources, ports, spread int) {
	for s := range sources {
		src := netip.AddrFrom4([4]byte{198, 51, byte(s >> 8), byte(s)})
		if s >= 1<<16 {
			src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(s >> 24), 13: byte(s >> 16), 14: byte(s >> 8), 15: byte(s)})
		}
		for p := range ports {
			for range 1 + (s*ports+p)%spread {
				a.Add(Event{Src: src, DstPort: uint16(1000 + p), Transport: TransportTCP})
			}
		}
	}
}

// naiveTop is the reference: every pair, sorted.
func naiveTop(a *Aggregator, n int) []Count {
	var all []Count
	a.mu.Lock()
	for src, st := range a.sources {
		for _, p := range st.ports {
			all = append(all, Count{Src: src, Port: p.Port, Transport: p.Transport,
				Service: ServiceName(a.cfg.Services, p.Port, p.Transport), Count: p.Count})
		}
	}
	a.mu.Unlock()
	sortCounts(all)
	return all[:min(n, len(all))]
}

func TestTopBlockedMatchesFullSort(t *testing.T) {
	a, _, _ := newTestAggregator(t, AggregatorConfig{MaxPortsPerSource: 16})
	fill(a, 300, 16, 97) // 4800 pairs, more than MaxTop
	for _, n := range []int{1, 7, 500, MaxTop, MaxTop + 1, 10 * MaxTop} {
		got, want := a.TopBlocked(n), naiveTop(a, min(n, MaxTop))
		if !slices.Equal(got, want) {
			t.Fatalf("TopBlocked(%d): %d rows differ from the full sort (%d rows)", n, len(got), len(want))
		}
	}
}

// bytesPerCall measures the heap allocated by f, per call, over runs calls.
func bytesPerCall(runs int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// A local user can call TopBlocked as often as they like: a call must cost
// the rows it returns, not a copy of every (source, port) pair. With 10 000
// sources × 16 ports the old full copy allocated over 10 MB per call.
func TestTopBlockedBoundedCost(t *testing.T) {
	a, c, _ := newTestAggregator(t, AggregatorConfig{MaxPortsPerSource: 16})
	fill(a, 10_000, 16, 2)
	const rowBytes = uint64(unsafe.Sizeof(Count{}))

	a.TopBlocked(10) // the first call builds the snapshot
	if n := testing.AllocsPerRun(100, func() { a.TopBlocked(10) }); n > 1 {
		t.Errorf("TopBlocked(10) on an unchanged snapshot: %.0f allocations per call, want 1", n)
	}
	if b := bytesPerCall(100, func() { a.TopBlocked(10) }); b > 10*rowBytes+512 {
		t.Errorf("TopBlocked(10): %d bytes per call, want about %d", b, 10*rowBytes)
	}
	// Totals that change under a steady stream of calls: at most one pass a
	// second, and a pass allocates no more than its heap of MaxTop rows.
	busy := bytesPerCall(100, func() {
		a.Add(ev("192.0.2.1", 22, TransportTCP))
		a.TopBlocked(MaxTop)
	})
	if limit := 2 * MaxTop * rowBytes; busy > limit {
		t.Errorf("TopBlocked(%d) while totals change: %d bytes per call, want at most %d", MaxTop, busy, limit)
	}
	rebuild := bytesPerCall(20, func() {
		a.Add(ev("192.0.2.1", 22, TransportTCP))
		c.Advance(TopRefresh)
		a.TopBlocked(MaxTop)
	})
	if limit := 4 * MaxTop * rowBytes; rebuild > limit {
		t.Errorf("TopBlocked(%d) rebuilding every call: %d bytes per call, want at most %d", MaxTop, rebuild, limit)
	}
}

// The snapshot follows the totals, at most TopRefresh late.
func TestTopBlockedRefresh(t *testing.T) {
	a, c, _ := newTestAggregator(t, AggregatorConfig{})
	a.Add(ev("198.51.100.1", 22, TransportTCP))
	if got := a.TopBlocked(1); len(got) != 1 || got[0].Count != 1 {
		t.Fatalf("TopBlocked = %v", got)
	}
	for range 3 {
		a.Add(ev("198.51.100.2", 23, TransportTCP))
	}
	c.Advance(TopRefresh - time.Millisecond)
	if got := a.TopBlocked(1); got[0].Src != netip.MustParseAddr("198.51.100.1") {
		t.Errorf("rebuilt before TopRefresh: %v", got)
	}
	c.Advance(time.Millisecond)
	if got := a.TopBlocked(1); got[0].Src != netip.MustParseAddr("198.51.100.2") || got[0].Count != 3 || got[0].Service != "telnet" {
		t.Errorf("after TopRefresh: %v, want 198.51.100.2:23 x3", got)
	}
	// A clock that steps back does not freeze the snapshot.
	a.Add(ev("198.51.100.3", 53, TransportUDP))
	c.Advance(-time.Hour)
	if got := a.TopBlocked(3); len(got) != 3 {
		t.Errorf("after the clock stepped back: %v", got)
	}
	// A caller may change what it was given.
	got := a.TopBlocked(1)
	got[0].Count = 99
	if a.TopBlocked(1)[0].Count == 99 {
		t.Error("TopBlocked returned the snapshot itself")
	}
}

// Concurrent callers and a stream of events (run with -race).
func TestTopBlockedConcurrent(t *testing.T) {
	a, _, _ := newTestAggregator(t, AggregatorConfig{})
	fill(a, 50, 4, 97)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if got := a.TopBlocked(5); len(got) != 5 {
					t.Errorf("TopBlocked(5) = %d rows", len(got))
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 2000 {
			a.Add(ev("192.0.2.9", uint16(i%7), TransportUDP))
		}
	})
	wg.Wait()
}

// A random-port flood from one source is one scan line per window, not one
// line per port; a source that hits a few ports keeps its per-port lines,
// and the counts returned (for reports and top) stay per port.
func TestAggregatorScanLine(t *testing.T) {
	a, c, buf := newTestAggregator(t, AggregatorConfig{})
	for p := range uint16(493) {
		a.Add(ev("192.0.2.2", 1000+p*7, TransportUDP))
	}
	a.Add(ev("192.0.2.2", 22, TransportUDP))
	a.Add(ev("192.0.2.2", 23, TransportUDP))
	a.Add(ev("192.0.2.2", 80, TransportUDP))
	a.Add(ev("192.0.2.2", 80, TransportUDP))
	// The same source over TCP, a few ports: per-port lines.
	a.Add(ev("192.0.2.2", 22, TransportTCP))
	// Another source at exactly the threshold: still per port.
	for p := range uint16(DefaultScanPorts) {
		a.Add(ev("198.51.100.9", 22+p, TransportTCP))
	}
	c.Advance(DefaultWindow)
	got := a.Tick()
	if len(got) != 496+1+DefaultScanPorts {
		t.Errorf("Tick returned %d counts, want one per port: %d", len(got), 496+1+DefaultScanPorts)
	}

	var lines []string
	var scan map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		msg, _ := m["msg"].(string)
		lines = append(lines, msg)
		if strings.HasSuffix(msg, " scan") {
			scan, _ = m[logging.FieldsOnly].(map[string]any)
		}
	}
	const want = "BLOCKED 192.0.2.2 (496 ports: 22, 23, 80, …) proto=UDP x497 scan"
	if !slices.Contains(lines, want) {
		t.Errorf("no line %q in:\n%s", want, strings.Join(lines, "\n"))
	}
	if n := len(lines); n != 1+1+DefaultScanPorts {
		t.Errorf("%d lines, want the scan, the TCP line and %d per-port lines:\n%s", n, DefaultScanPorts, strings.Join(lines, "\n"))
	}
	for _, w := range []string{"BLOCKED 192.0.2.2:22 (ssh) proto=TCP x1", "BLOCKED 198.51.100.9:22 (ssh) proto=TCP x1"} {
		if !slices.Contains(lines, w) {
			t.Errorf("no per-port line %q", w)
		}
	}
	if scan["src"] != "192.0.2.2" || scan["ports"] != 496.0 || scan["count"] != 497.0 || scan["proto"] != "UDP" ||
		scan["service"] != ServiceScan || scan["port"] != 22.0 {
		t.Errorf("scan line fields = %v", scan)
	}
	// Per-port totals for sikkerctl top are unchanged by the scan line.
	if top := a.TopBlocked(1); len(top) != 1 || top[0].Port != 80 || top[0].Count != 2 {
		t.Errorf("TopBlocked(1) = %v, want port 80 x2", top)
	}
}

func TestScanLine(t *testing.T) {
	src := netip.MustParseAddr("192.0.2.2")
	for _, tc := range []struct {
		ports []uint16
		want  string
	}{
		{[]uint16{22, 23, 80, 443}, "BLOCKED 192.0.2.2 (4 ports: 22, 23, 80, …) proto=UDP x9 scan"},
		{[]uint16{22, 23, 80}, "BLOCKED 192.0.2.2 (3 ports: 22, 23, 80) proto=UDP x9 scan"},
	} {
		if got := ScanLine(src, tc.ports, TransportUDP, 9); got != tc.want {
			t.Errorf("ScanLine(%v) = %q, want %q", tc.ports, got, tc.want)
		}
	}
}

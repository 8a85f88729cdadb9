package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSource hands out a fixed snapshot that a test may change.
type fakeSource struct {
	mu   sync.Mutex
	snap Snapshot
}

func (f *fakeSource) Snapshot() Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	running = Snapshot{
		State: StateRunning, Version: "1.4.0", Started: t0.Add(-90 * time.Minute),
		BlockedIPv4: 41000, BlockedIPv6: 120, LastPull: t0.Add(-time.Hour),
		Feeds: []Feed{
			{Name: "sikkerapi", Entries: 40000, LastPull: t0.Add(-time.Hour)},
			{Name: "blocklist.de", Entries: 1200, Error: "HTTP 503"},
		},
		Drops4Packets: 900, Drops4Bytes: 54000, Drops6Packets: 7, Drops6Bytes: 560,
		NFLOGEvents: 880, NFLOGOverruns: 2, NFLOGQueueDrops: 1,
		Reported: 300, ReportPending: 12, ReportRejected: 3,
		ServiceTotals: map[string]uint64{"ssh": 500, "telnet": 47},
	}
)

func newTest(t *testing.T, snap Snapshot) (*Server, *fakeSource) {
	t.Helper()
	src := &fakeSource{snap: snap}
	s, err := New("127.0.0.1:0", src, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return t0 }
	return s, src
}

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, localRequest(method, path, nil))
	return rec.Result()
}

// localRequest is a request as a local client sends it to the unbound test
// server (127.0.0.1:0); httptest's default Host, example.com, is refused.
func localRequest(method, path string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, path, body)
	r.Host = "127.0.0.1:0"
	return r
}

func readBody(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNewRefusesNonLoopback(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"0.0.0.0:9547", `health: listen address "0.0.0.0:9547": 0.0.0.0 is not a loopback address; the endpoint has no authentication, so it only listens on localhost`},
		{"[::]:9547", `health: listen address "[::]:9547": :: is not a loopback address; the endpoint has no authentication, so it only listens on localhost`},
		{"192.0.2.1:9547", `health: listen address "192.0.2.1:9547": 192.0.2.1 is not a loopback address; the endpoint has no authentication, so it only listens on localhost`},
		{":9547", `health: listen address ":9547": "" is not an IP address; use 127.0.0.1 or [::1]`},
		{"localhost:9547", `health: listen address "localhost:9547": "localhost" is not an IP address; use 127.0.0.1 or [::1]`},
		{"9547", `health: listen address "9547" is not host:port (e.g. 127.0.0.1:9547)`},
		{"127.0.0.1:http", `health: listen address "127.0.0.1:http": port "http" is not a number in 0..65535`},
		{"127.0.0.1:65536", `health: listen address "127.0.0.1:65536": port "65536" is not a number in 0..65535`},
	} {
		_, err := New(tc.addr, &fakeSource{}, nil)
		if err == nil || err.Error() != tc.want {
			t.Errorf("New(%q) = %v\n want %s", tc.addr, err, tc.want)
		}
	}
	for _, ok := range []string{"127.0.0.1:9547", "[::1]:9547", "127.0.0.53:1", "[::ffff:127.0.0.1]:9547"} {
		if _, err := New(ok, &fakeSource{}, nil); err != nil {
			t.Errorf("New(%q): %v", ok, err)
		}
	}
	if _, err := New("127.0.0.1:9547", nil, nil); err == nil {
		t.Error("New accepted a nil source")
	}
}

func TestHealthz(t *testing.T) {
	for _, tc := range []struct {
		state, reason string
		code          int
		body          string
	}{
		{StateRunning, "", 200, "ok\n"},
		{StateRunning, "stale reason", 200, "ok\n"},
		{StateDegraded, "feed blocklist.de: HTTP 503", 200, "degraded: feed blocklist.de: HTTP 503\n"},
		{StateDegraded, "", 200, "degraded\n"},
		{StateStarting, "", 503, "starting\n"},
		{StateFailed, "apply: operation not permitted\nhint", 503, "failed: apply: operation not permitted hint\n"},
		{"", "", 503, "unknown\n"},
		{"bogus", "x", 503, "bogus: x\n"},
	} {
		snap := running
		snap.State, snap.Reason = tc.state, tc.reason
		s, _ := newTest(t, snap)
		r := get(t, s.Handler(), "GET", "/healthz")
		if body := readBody(t, r); r.StatusCode != tc.code || body != tc.body {
			t.Errorf("%s/%q: %d %q, want %d %q", tc.state, tc.reason, r.StatusCode, body, tc.code, tc.body)
		}
		if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
	}
}

func TestMethods(t *testing.T) {
	s, _ := newTest(t, running)
	for _, path := range []string{"/healthz", "/status", "/metrics"} {
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			r := get(t, s.Handler(), m, path)
			if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d Allow=%q, want 405 with Allow", m, path, r.StatusCode, r.Header.Get("Allow"))
			}
		}
		if r := get(t, s.Handler(), "HEAD", path); r.StatusCode != 200 {
			t.Errorf("HEAD %s: %d", path, r.StatusCode)
		}
	}
	if r := get(t, s.Handler(), "GET", "/"); r.StatusCode != 404 {
		t.Errorf("GET /: %d, want 404", r.StatusCode)
	}
	if r := get(t, s.Handler(), "GET", "/status/x"); r.StatusCode != 404 {
		t.Errorf("GET /status/x: %d, want 404", r.StatusCode)
	}
}

func TestStatusJSON(t *testing.T) {
	s, _ := newTest(t, running)
	r := get(t, s.Handler(), "GET", "/status")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	body := readBody(t, r)
	// Exact text: field names and order are what the container's clients parse.
	want := `{"status":"running","blockedIps":41120,"lastPull":"2026-03-01T11:00:00Z","lastReport":null,` +
		`"dryRun":false,"uptime":5400,"version":"1.4.0","feeds":[` +
		`{"name":"sikkerapi","entries":40000,"lastPull":"2026-03-01T11:00:00Z"},` +
		`{"name":"blocklist.de","entries":1200,"lastPull":null,"error":"HTTP 503"}]}` + "\n"
	if body != want {
		t.Errorf("body\n%s\nwant\n%s", body, want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"status", "blockedIps", "lastPull", "lastReport", "dryRun", "uptime"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing", k)
		}
	}
}

func TestStatusStates(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Snapshot)
		want map[string]any
	}{
		{"starting, nothing yet", func(s *Snapshot) {
			*s = Snapshot{State: StateStarting, Version: "dev", Started: t0}
		}, map[string]any{"status": "starting", "blockedIps": 0.0, "lastPull": nil, "lastReport": nil, "uptime": 0.0, "feeds": []any{}}},
		{"degraded with reason", func(s *Snapshot) {
			s.State, s.Reason, s.DryRun, s.LastReport = StateDegraded, "rolled back: gateway unreachable", true, t0.Add(-90*time.Second)
		}, map[string]any{"status": "degraded", "reason": "rolled back: gateway unreachable", "dryRun": true, "lastReport": "2026-03-01T11:58:30Z"}},
		{"running hides a stale reason", func(s *Snapshot) { s.Reason = "old" }, map[string]any{"reason": nil}},
		{"clock behind start", func(s *Snapshot) { s.Started = t0.Add(time.Minute) }, map[string]any{"uptime": 0.0}},
		{"local times become UTC", func(s *Snapshot) {
			s.LastPull = time.Date(2026, 3, 1, 13, 0, 5, 999, time.FixedZone("CET", 3600))
		}, map[string]any{"lastPull": "2026-03-01T12:00:05Z"}},
	} {
		snap := running
		tc.mod(&snap)
		s, _ := newTest(t, snap)
		var got map[string]any
		if err := json.Unmarshal([]byte(readBody(t, get(t, s.Handler(), "GET", "/status"))), &got); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for k, v := range tc.want {
			if fmt.Sprint(got[k]) != fmt.Sprint(v) {
				t.Errorf("%s: %s = %#v, want %#v", tc.name, k, got[k], v)
			}
		}
	}
}

func TestMetrics(t *testing.T) {
	snap := running
	snap.State = StateDegraded
	snap.Feeds = append(snap.Feeds, Feed{Name: "odd \"name\" \\ with\nnewline", Entries: 5},
		Feed{Name: "paid", Error: "401", State: "failed"})
	snap.Quota = &Quota{Used: 4605, Limit: 5000, Remaining: 395, Reset: t0.Add(2 * time.Hour)}
	snap.Version = `v1"2`
	snap.RulesRestored = 4
	snap.ListenerWarnings = 2
	s, _ := newTest(t, snap)
	r := get(t, s.Handler(), "GET", "/metrics")
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("status %d, Content-Type %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	samples, err := parseExposition(readBody(t, r))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{`sikkerguard_up`, 1},
		{`sikkerguard_state{state="starting"}`, 0},
		{`sikkerguard_state{state="running"}`, 0},
		{`sikkerguard_state{state="degraded"}`, 1},
		{`sikkerguard_state{state="failed"}`, 0},
		{`sikkerguard_build_info{version="v1\"2"}`, 1},
		{`sikkerguard_blocked_ipv4_addresses`, 41000},
		{`sikkerguard_blocked_ipv6_ranges`, 120},
		{`sikkerguard_last_pull_timestamp_seconds`, float64(t0.Add(-time.Hour).Unix())},
		{`sikkerguard_last_report_timestamp_seconds`, 0},
		{`sikkerguard_feed_entries{feed="sikkerapi"}`, 40000},
		{`sikkerguard_feed_up{feed="sikkerapi"}`, 1},
		{`sikkerguard_feed_up{feed="blocklist.de"}`, 0},
		{`sikkerguard_feed_last_pull_timestamp_seconds{feed="blocklist.de"}`, 0},
		{`sikkerguard_feed_entries{feed="odd \"name\" \\ with\nnewline"}`, 5},
		{`sikkerguard_dropped_packets_total{family="ipv4"}`, 900},
		{`sikkerguard_dropped_bytes_total{family="ipv6"}`, 560},
		{`sikkerguard_nflog_events_total`, 880},
		{`sikkerguard_nflog_overruns_total`, 2},
		{`sikkerguard_nflog_queue_drops_total`, 1},
		{`sikkerguard_rules_restored_total`, 4},
		{`sikkerguard_nftables_listener_warnings_total`, 2},
		{`sikkerguard_reports_sent_total`, 300},
		{`sikkerguard_reports_pending`, 12},
		{`sikkerguard_reports_rejected_total`, 3},
		{`sikkerguard_blocked_by_service_total{service="ssh"}`, 500},
		{`sikkerguard_blocked_by_service_total{service="telnet"}`, 47},
		{`sikkerguard_api_quota_used{endpoint="blacklist"}`, 4605},
		{`sikkerguard_api_quota_limit{endpoint="blacklist"}`, 5000},
		{`sikkerguard_api_quota_remaining{endpoint="blacklist"}`, 395},
		{`sikkerguard_api_quota_reset_timestamp_seconds{endpoint="blacklist"}`, float64(t0.Add(2 * time.Hour).Unix())},
		{`sikkerguard_feed_failed{feed="paid"}`, 1},
		{`sikkerguard_feed_failed{feed="sikkerapi"}`, 0},
	} {
		got, ok := samples[tc.series]
		if !ok {
			t.Errorf("series %s missing", tc.series)
		} else if got != tc.want {
			t.Errorf("%s = %v, want %v", tc.series, got, tc.want)
		}
	}
}

func TestMetricsStates(t *testing.T) {
	for _, st := range states {
		s, _ := newTest(t, Snapshot{State: st})
		samples, err := parseExposition(readBody(t, get(t, s.Handler(), "GET", "/metrics")))
		if err != nil {
			t.Fatalf("%s: %v", st, err)
		}
		hot := 0.0
		for _, other := range states {
			hot += samples[`sikkerguard_state{state="`+other+`"}`]
		}
		if hot != 1 || samples[`sikkerguard_state{state="`+st+`"}`] != 1 {
			t.Errorf("%s: state series not one-hot: %v", st, samples)
		}
		if want := b2u(protecting(st)); samples["sikkerguard_up"] != float64(want) {
			t.Errorf("%s: sikkerguard_up = %v, want %d", st, samples["sikkerguard_up"], want)
		}
		// No feeds, no services: those families are left out rather than empty.
		for k := range samples {
			if strings.HasPrefix(k, "sikkerguard_feed_") || strings.HasPrefix(k, "sikkerguard_blocked_by_service") {
				t.Errorf("%s: unexpected %s", st, k)
			}
		}
	}
}

func TestServeShutsDownOnCancel(t *testing.T) {
	_, src, addr, stop := serveTest(t)
	url := "http://" + addr
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("live /healthz: %d %q", resp.StatusCode, body)
	}
	resp.Body.Close()
	src.mu.Lock()
	src.snap.State, src.snap.Reason = StateFailed, "nft: permission denied"
	src.mu.Unlock()
	resp, err = http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	if body := readBody(t, resp); resp.StatusCode != 503 || body != "failed: nft: permission denied\n" {
		t.Errorf("live /healthz after failure: %d %q", resp.StatusCode, body)
	}
	resp.Body.Close()

	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Error("still answering after shutdown")
	}
}

func TestServeBusyPort(t *testing.T) {
	a, _ := newTest(t, running)
	if err := a.Listen(); err != nil {
		t.Fatal(err)
	}
	defer a.ln.Close()
	b, err := New(a.Addr().String(), &fakeSource{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Serve(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "health: listen: ") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Serve on a busy port: %v", err)
	}
}

func TestServeIgnoresRequestBody(t *testing.T) {
	s, _ := newTest(t, running)
	req := localRequest("GET", "/healthz", errReader{})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("GET with an unreadable body: %d", rec.Code)
	}
}

// errReader fails the test's request if a handler tried to read a body.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("body read") }

// parseExposition checks text against the rules of format 0.0.4 that matter
// to a scraper and returns each series (name plus labels as written) with its
// value: every sample belongs to a family declared by a preceding TYPE line,
// a family's samples are contiguous, no series repeats, label values are
// properly escaped.
func parseExposition(text string) (map[string]float64, error) {
	samples := map[string]float64{}
	typed := map[string]string{}
	helped := map[string]bool{}
	closed := map[string]bool{}
	current := ""
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("no final newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n := i + 1
		if strings.HasPrefix(line, "#") {
			f := strings.SplitN(line, " ", 4)
			if len(f) < 4 || (f[1] != "HELP" && f[1] != "TYPE") {
				return nil, fmt.Errorf("line %d: bad comment %q", n, line)
			}
			name := f[2]
			if !validName(name) {
				return nil, fmt.Errorf("line %d: bad metric name %q", n, name)
			}
			if f[1] == "HELP" {
				if helped[name] {
					return nil, fmt.Errorf("line %d: second HELP for %s", n, name)
				}
				helped[name] = true
				continue
			}
			if _, dup := typed[name]; dup {
				return nil, fmt.Errorf("line %d: second TYPE for %s", n, name)
			}
			switch f[3] {
			case "counter", "gauge", "untyped":
			default:
				return nil, fmt.Errorf("line %d: type %q", n, f[3])
			}
			if current != "" {
				closed[current] = true
			}
			typed[name], current = f[3], name
			continue
		}
		name, rest := line, ""
		if j := strings.IndexAny(line, "{ "); j >= 0 {
			name, rest = line[:j], line[j:]
		}
		if _, ok := typed[name]; !ok {
			return nil, fmt.Errorf("line %d: sample of %s before its TYPE", n, name)
		}
		if name != current || closed[name] {
			return nil, fmt.Errorf("line %d: sample of %s outside its family's block", n, name)
		}
		if typed[name] == "counter" && !strings.HasSuffix(name, "_total") {
			return nil, fmt.Errorf("line %d: counter %s without _total", n, name)
		}
		series := name
		if strings.HasPrefix(rest, "{") {
			end, err := scanLabels(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			series, rest = name+rest[:end], rest[end:]
		}
		if !strings.HasPrefix(rest, " ") {
			return nil, fmt.Errorf("line %d: no space before the value", n)
		}
		v, err := strconv.ParseFloat(rest[1:], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value: %w", n, err)
		}
		if _, dup := samples[series]; dup {
			return nil, fmt.Errorf("line %d: series %s repeated", n, series)
		}
		samples[series] = v
	}
	return samples, nil
}

// scanLabels reads `{name="value",...}` at the start of s and returns the
// index just past the closing brace.
func scanLabels(s string) (int, error) {
	i := 1
	for {
		j := strings.Index(s[i:], `="`)
		if j < 0 {
			return 0, fmt.Errorf("label without =\" in %q", s)
		}
		if !validName(s[i : i+j]) {
			return 0, fmt.Errorf("bad label name %q", s[i:i+j])
		}
		i += j + 2
		for ; ; i++ {
			if i >= len(s) || s[i] == '\n' {
				return 0, fmt.Errorf("unterminated label value in %q", s)
			}
			if s[i] == '"' {
				break
			}
			if s[i] == '\\' {
				if i+1 >= len(s) || !strings.ContainsRune(`\"n`, rune(s[i+1])) {
					return 0, fmt.Errorf("bad escape in %q", s)
				}
				i++
			}
		}
		i++
		switch {
		case i < len(s) && s[i] == '}':
			return i + 1, nil
		case i < len(s) && s[i] == ',':
			i++
		default:
			return 0, fmt.Errorf("label list not closed in %q", s)
		}
	}
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		ok := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// DNS rebinding: a page on attacker.example rebinds its name to 127.0.0.1,
// and the browser then sends Host: attacker.example:PORT. Only loopback
// names with the listening port are answered.
func TestHostMustBeLoopback(t *testing.T) {
	s, _ := newTest(t, running)
	s.port.Store(9547)
	for host, want := range map[string]int{
		"127.0.0.1:9547":                  200,
		"127.0.0.2:9547":                  200,
		"[::1]:9547":                      200,
		"localhost:9547":                  200,
		"LOCALHOST.:9547":                 200,
		"":                                200, // HTTP/1.0 without Host: never a browser
		"attacker.example:9547":           421,
		"attacker.example":                421,
		"localhost.attacker.example:9547": 421,
		"127.0.0.1.nip.io:9547":           421,
		"192.0.2.1:9547":                  421,
		"[fe80::1%25lo]:9547":             421,
		"127.0.0.1:80":                    421, // another port: not this endpoint
		"127.0.0.1":                       421,
		"localhost:9547:1":                421,
		"[::1":                            421,
	} {
		r := localRequest("GET", "/status", nil)
		r.Host = host
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("Host %q: %d, want %d", host, rec.Code, want)
		}
		if want == 421 && strings.Contains(rec.Body.String(), "blockedIps") {
			t.Errorf("Host %q: status leaked: %s", host, rec.Body)
		}
	}
	// Port 80 may be left out, as browsers do.
	s.port.Store(80)
	for _, host := range []string{"localhost", "127.0.0.1", "[::1]"} {
		r := localRequest("GET", "/healthz", nil)
		r.Host = host
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, r)
		if rec.Code != 200 {
			t.Errorf("Host %q on port 80: %d", host, rec.Code)
		}
	}
}

// serveTest serves a test server on a free loopback port until stop is
// called or the test ends; stop returns Serve's error.
func serveTest(t *testing.T) (s *Server, src *fakeSource, addr string, stop func() error) {
	t.Helper()
	s, src = newTest(t, running)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(ShutdownTimeout + 3*time.Second):
			return errors.New("Serve did not return after cancel")
		}
	})
	t.Cleanup(func() { stop() })
	return s, src, s.Addr().String(), stop
}

// The bound port, not the configured 0, is the one a Host must name.
func TestHostPortIsTheBoundOne(t *testing.T) {
	s, _, addr, _ := serveTest(t)
	for host, want := range map[string]int{addr: 200, "evil.example:" + strconv.Itoa(s.Addr().(*net.TCPAddr).Port): 421} {
		req, err := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %q: %d, want %d", host, resp.StatusCode, want)
		}
	}
}

// A local program holding MaxConns idle connections must not get more: the
// next client waits until one of them closes.
func TestConnectionLimit(t *testing.T) {
	_, _, addr, _ := serveTest(t)

	var idle []net.Conn
	t.Cleanup(func() {
		for _, c := range idle {
			c.Close()
		}
	})
	for range MaxConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// Every idle connection has been accepted once a request behind them
	// cannot be: wait for that rather than guess a delay.
	client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("request %d answered (%d) while %d connections were open", MaxConns+1, resp.StatusCode, MaxConns)
	}
	idle[0].Close()
	client.Timeout = 5 * time.Second
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("after one connection closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after one connection closed: %d", resp.StatusCode)
	}
}

package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/logging"
	"github.com/sikkerapi/sikkerguard/internal/mock"
	"github.com/sikkerapi/sikkerguard/internal/nflog"
)

const testKey = "sk_free_test"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func startMock(t *testing.T, opt mock.Options) *mock.Server {
	t.Helper()
	opt.Key = testKey
	if opt.ReportQuota == 0 {
		opt.ReportQuota = -1
	}
	srv, err := mock.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func newReporter(t *testing.T, srv *mock.Server, c *clock, dir string, mod func(*Config)) (*Reporter, *bytes.Buffer) {
	t.Helper()
	return newReporterAt(t, srv.URL(), c, dir, mod)
}

func newReporterAt(t *testing.T, url string, c *clock, dir string, mod func(*Config)) (*Reporter, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	cfg := Config{URL: url, Key: testKey, StateDir: dir, Now: c.Now}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg, slog.New(logging.Check(slog.NewTextHandler(&buf, nil), t.Errorf)))
	if err != nil {
		t.Fatal(err)
	}
	return r, &buf
}

func drop(src string, port uint16, transport, service string, n uint64) nflog.Count {
	return nflog.Count{Src: netip.MustParseAddr(src), Port: port, Transport: transport, Service: service, Count: n}
}

// received renders the mock's reports as comparable strings, sorted.
func received(srv *mock.Server) []string {
	var out []string
	for _, r := range srv.Reports() {
		out = append(out, fmt.Sprintf("%s %s %s %q", r.IP, r.Category, r.Protocol, r.Comment))
	}
	slices.Sort(out)
	return out
}

func newClock() *clock { return &clock{t: time.Date(2025, 10, 9, 8, 0, 0, 0, time.UTC)} }

func TestReportRows(t *testing.T) {
	srv := startMock(t, mock.Options{})
	c := newClock()
	r, _ := newReporter(t, srv, c, t.TempDir(), func(cfg *Config) {
		cfg.Filter = func(a netip.Addr) bool { return a != netip.MustParseAddr("9.9.9.9") }
		cfg.Categories = map[string]string{"http": "web_exploit"}
	})
	r.Add(
		drop("185.16.39.79", 22, nflog.TransportTCP, "ssh", 40),
		drop("185.16.39.79", 22, nflog.TransportTCP, "ssh", 7),
		drop("185.16.39.79", 23, nflog.TransportTCP, "telnet", 3),
		drop("203.0.114.10", 2222, nflog.TransportTCP, "ssh", 1),
		drop("203.0.114.10", 22, nflog.TransportTCP, "ssh", 2),
		drop("8.8.4.4", 31337, nflog.TransportUDP, "unknown", 5),
		drop("1.1.1.1", 0, nflog.TransportICMP, "icmp", 3),
		drop("2a00:1450::1", 80, nflog.TransportTCP, "http", 4),
		drop("::ffff:4.4.4.4", 5432, nflog.TransportTCP, "postgres", 1),
		drop("10.1.2.3", 22, nflog.TransportTCP, "ssh", 9),  // private
		drop("192.0.2.1", 22, nflog.TransportTCP, "ssh", 9), // documentation
		drop("9.9.9.9", 22, nflog.TransportTCP, "ssh", 9),   // filtered
	)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`1.1.1.1 port_scan  "sikkerguard: 3 icmp packets dropped"`,
		`185.16.39.79 brute_force ssh "sikkerguard: 47 packets to port 22/tcp dropped"`,
		`185.16.39.79 brute_force telnet "sikkerguard: 3 packets to port 23/tcp dropped"`,
		`203.0.114.10 brute_force ssh "sikkerguard: 3 packets to ports 2222/tcp, 22/tcp dropped"`,
		`2a00:1450::1 web_exploit http "sikkerguard: 4 packets to port 80/tcp dropped"`,
		`4.4.4.4 brute_force postgres "sikkerguard: 1 packets to port 5432/tcp dropped"`,
		`8.8.4.4 port_scan  "sikkerguard: 5 packets to port 31337/udp dropped"`,
	}
	if got := received(srv); !slices.Equal(got, want) {
		t.Fatalf("reports:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/v1/key/bulk-report" || reqs[0].Auth != "bearer" || !reqs[0].KeyValid || reqs[0].UserAgent == "" {
		t.Fatalf("requests %+v", reqs)
	}
	if s := r.Stats(); s.Sent != 7 || s.Filtered != 3 || s.Pending != 0 || !s.LastReport.Equal(c.Now()) {
		t.Fatalf("stats %+v", s)
	}
}

func TestReportDedup(t *testing.T) {
	srv := startMock(t, mock.Options{})
	c := newClock()
	r, _ := newReporter(t, srv, c, t.TempDir(), nil)
	ssh := drop("185.16.39.79", 22, nflog.TransportTCP, "ssh", 1)
	r.Add(ssh)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Within 24 h the pair is not reported again; another service of the
	// same source is.
	c.Advance(23 * time.Hour)
	r.Add(ssh, drop("185.16.39.79", 23, nflog.TransportTCP, "telnet", 1))
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Reports()); n != 2 {
		t.Fatalf("%d reports after the second cycle, want 2: %v", n, received(srv))
	}
	if r.Stats().Duplicates != 1 {
		t.Fatalf("stats %+v", r.Stats())
	}
	c.Advance(time.Hour)
	r.Add(ssh)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Reports()); n != 3 {
		t.Fatalf("%d reports after 24 h, want 3", n)
	}
	// An empty cycle sends nothing.
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := srv.RequestCount(""); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

func TestReport429ThenRestart(t *testing.T) {
	srv := startMock(t, mock.Options{})
	c := newClock()
	dir := t.TempDir()
	if err := srv.SetFault(mock.Fault{Mode: mock.Fault429, Count: 1, RetryAfter: "1"}); err != nil {
		t.Fatal(err)
	}
	r, _ := newReporter(t, srv, c, dir, nil)
	r.Add(drop("185.16.39.79", 22, nflog.TransportTCP, "ssh", 5), drop("8.8.8.8", 23, nflog.TransportTCP, "telnet", 1))
	err := r.Flush(context.Background())
	if !errors.Is(err, ErrRetryLater) {
		t.Fatalf("Flush under 429 = %v, want ErrRetryLater", err)
	}
	if len(srv.Reports()) != 0 || r.Stats().Pending != 2 || !r.Stats().RetryAt.Equal(c.Now().Add(time.Second)) {
		t.Fatalf("after 429: reports %v, stats %+v", received(srv), r.Stats())
	}
	// Added after the 429 and not yet in a cycle: survives the restart too.
	r.Add(drop("8.8.8.8", 21, nflog.TransportTCP, "ftp", 2))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.Run(ctx) // saves the spool on the way out

	// Before Retry-After has passed the restarted reporter waits.
	r2, _ := newReporter(t, srv, c, dir, nil)
	if err := r2.Flush(context.Background()); !errors.Is(err, ErrRetryLater) {
		t.Fatalf("Flush before Retry-After = %v", err)
	}
	if n := srv.RequestCount(""); n != 1 {
		t.Fatalf("%d requests before Retry-After passed, want 1", n)
	}
	c.Advance(2 * time.Second)
	r3, _ := newReporter(t, srv, c, dir, nil)
	if err := r3.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r3.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`185.16.39.79 brute_force ssh "sikkerguard: 5 packets to port 22/tcp dropped"`,
		`8.8.8.8 brute_force ftp "sikkerguard: 2 packets to port 21/tcp dropped"`,
		`8.8.8.8 brute_force telnet "sikkerguard: 1 packets to port 23/tcp dropped"`,
	}
	if got := received(srv); !slices.Equal(got, want) {
		t.Fatalf("reports after restart:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A fourth instance knows they were reported.
	r4, _ := newReporter(t, srv, c, dir, nil)
	r4.Add(drop("8.8.8.8", 23, nflog.TransportTCP, "telnet", 1))
	if err := r4.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Reports()); n != 3 {
		t.Fatalf("%d reports after a second restart, want 3", n)
	}
}

func TestReportOutageKeepsRows(t *testing.T) {
	srv := startMock(t, mock.Options{})
	c := newClock()
	r, _ := newReporter(t, srv, c, t.TempDir(), nil)
	if err := srv.SetFault(mock.Fault{Mode: mock.Fault500, Count: 1}); err != nil {
		t.Fatal(err)
	}
	r.Add(drop("185.16.39.79", 22, nflog.TransportTCP, "ssh", 5))
	if err := r.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("Flush under 500 = %v", err)
	}
	// Packets counted while the row waits are added to it.
	r.Add(drop("185.16.39.79", 2222, nflog.TransportTCP, "ssh", 1))
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{`185.16.39.79 brute_force ssh "sikkerguard: 6 packets to ports 22/tcp, 2222/tcp dropped"`}
	if got := received(srv); !slices.Equal(got, want) {
		t.Fatalf("reports %q, want %q", got, want)
	}
}

func TestReportPartialRejection(t *testing.T) {
	for _, oneBased := range []bool{false, true} {
		t.Run(fmt.Sprint("oneBased=", oneBased), func(t *testing.T) {
			srv := startMock(t, mock.Options{OneBasedRows: oneBased})
			c := newClock()
			// strip_private off: documentation addresses are sent, and the
			// API refuses them.
			r, logs := newReporter(t, srv, c, t.TempDir(), func(cfg *Config) { cfg.AllowNonGlobal = true })
			r.Add(drop("8.8.8.8", 22, nflog.TransportTCP, "ssh", 1),
				drop("192.0.2.7", 22, nflog.TransportTCP, "ssh", 1),
				drop("192.0.2.7", 23, nflog.TransportTCP, "telnet", 1),
				drop("9.9.9.9", 22, nflog.TransportTCP, "ssh", 1))
			if err := r.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if s := r.Stats(); s.Sent != 2 || s.Rejected != 2 || s.Pending != 0 {
				t.Fatalf("stats %+v", s)
			}
			for _, proto := range []string{"protocol=ssh", "protocol=telnet"} {
				if !strings.Contains(logs.String(), `msg="report row rejected" ip=192.0.2.7 `+proto) {
					t.Errorf("no rejection logged for 192.0.2.7 %s:\n%s", proto, logs)
				}
			}
			// Rejected rows are not retried.
			if err := r.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := srv.RequestCount(""); n != 1 {
				t.Fatalf("%d requests, want 1", n)
			}
		})
	}
}

func TestReportSplitsLargeBatches(t *testing.T) {
	srv := startMock(t, mock.Options{})
	c := newClock()
	r, _ := newReporter(t, srv, c, t.TempDir(), nil)
	const n = MaxRows + 2345
	drops := make([]nflog.Count, n)
	for i := range drops {
		drops[i] = nflog.Count{Src: netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), byte(i)}), Port: 22,
			Transport: nflog.TransportTCP, Service: "ssh", Count: 1}
	}
	r.Add(drops...)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := srv.RequestCount("/v1/key/bulk-report"); got != 2 {
		t.Fatalf("%d requests, want 2", got)
	}
	reps := srv.Reports()
	if len(reps) != n {
		t.Fatalf("%d reports, want %d", len(reps), n)
	}
	seen := map[netip.Addr]bool{}
	for _, rep := range reps {
		seen[rep.IP] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct addresses, want %d", len(seen), n)
	}
}

func TestReportCorruptSpool(t *testing.T) {
	srv := startMock(t, mock.Options{})
	for name, content := range map[string]string{
		"garbage": "{", "version": `{"version":2}`, "no address": `{"version":1,"pending":[{"service":"ssh","count":1}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, SpoolFile), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			r, logs := newReporter(t, srv, newClock(), dir, nil)
			if !strings.Contains(logs.String(), "report spool ignored") || r.Stats().Pending != 0 {
				t.Fatalf("logs %q, stats %+v", logs, r.Stats())
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Key: "k"}, "no API URL"},
		{Config{URL: "http://x"}, "no API key"},
		{Config{URL: "http://x", Key: "k", DefaultCategory: "nope"}, `unknown default category "nope"`},
		{Config{URL: "http://x", Key: "k", Categories: map[string]string{"ssh": "bruteforce"}}, `service "ssh": unknown category "bruteforce"`},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 10, 9, 8, 0, 0, 0, time.UTC)
	tests := map[string]time.Time{
		"120":                           now.Add(2 * time.Minute),
		"Thu, 09 Oct 2025 23:59:59 GMT": time.Date(2025, 10, 9, 23, 59, 59, 0, time.UTC),
		"soon":                          now.Add(30 * time.Minute),
		"":                              now.Add(30 * time.Minute),
	}
	for h, want := range tests {
		if got := retryAfter(h, now, 30*time.Minute); !got.Equal(want) {
			t.Errorf("retryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestRowMatching(t *testing.T) {
	a, b, c := netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("9.9.9.9"), netip.MustParseAddr("1.1.1.1")
	batch := []Row{{IP: a, Protocol: "ssh"}, {IP: a, Protocol: "telnet"}, {IP: b}, {IP: c}}
	tests := []struct {
		name string
		errs []rowError
		want []int
	}{
		{"zero-based", []rowError{{Row: 0, IP: "8.8.8.8"}, {Row: 3, IP: "1.1.1.1"}}, []int{0, 3}},
		{"one-based", []rowError{{Row: 1, IP: "8.8.8.8"}, {Row: 4, IP: "1.1.1.1"}}, []int{0, 3}},
		{"one-based same address", []rowError{{Row: 2, IP: "8.8.8.8"}, {Row: 3, IP: "9.9.9.9"}}, []int{1, 2}},
		{"rows off, matched by address", []rowError{{Row: 7, IP: "9.9.9.9"}, {Row: 7, IP: "8.8.8.8"}}, []int{2, 0}},
		{"unknown address", []rowError{{Row: 0, IP: "4.4.4.4"}}, []int{-1}},
	}
	for _, tt := range tests {
		base := rowBase(batch, tt.errs)
		taken := map[int]string{}
		var got []int
		for _, e := range tt.errs {
			i := matchRow(batch, e.Row-base, e.IP, taken)
			if i >= 0 {
				taken[i] = e.Error
			}
			got = append(got, i)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: rows %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The time of the last answered report is part of the spool, so a
// restarted daemon does not claim it never reported.
func TestReportLastReportSurvivesRestart(t *testing.T) {
	srv := startMock(t, mock.Options{})
	c := newClock()
	dir := t.TempDir()
	r, _ := newReporter(t, srv, c, dir, nil)
	r.Add(drop("185.16.39.79", 22, nflog.TransportTCP, "ssh", 5))
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	sent := c.Now()
	c.Advance(time.Hour)
	r2, _ := newReporter(t, srv, c, dir, nil)
	if got := r2.Stats().LastReport; !got.Equal(sent) {
		t.Fatalf("LastReport after restart = %v, want %v", got, sent)
	}
	// A fresh state directory has no report yet.
	r3, _ := newReporter(t, srv, c, t.TempDir(), nil)
	if got := r3.Stats().LastReport; !got.IsZero() {
		t.Fatalf("LastReport without a spool = %v, want zero", got)
	}
}

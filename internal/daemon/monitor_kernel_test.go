package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/mock"
	"github.com/sikkerapi/sikkerguard/internal/nflog"
	"github.com/sikkerapi/sikkerguard/internal/nft"
	"github.com/sikkerapi/sikkerguard/internal/report"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// Drop monitoring against the kernel: a lab namespace, the nftables backend
// logging to NFLOG, and floods from listed sources.

var (
	monGood4  = netip.MustParseAddr("192.0.2.2")
	monBad4   = netip.MustParseAddr("192.0.2.50")
	monFlood4 = netip.MustParseAddr("192.0.2.60")
	monLate4  = netip.MustParseAddr("192.0.2.61")
)

const monGroup = 7

// monLab is the shared two-namespace lab with the nft backend and NFLOG
// logging in Host, and listed and unlisted addresses in Peer.
type monLab struct {
	*testnet.Lab
	backend *nft.Backend
}

func newMonLab(t *testing.T, rate uint32, blocked ...netip.Addr) *monLab {
	t.Helper()
	testnet.RequireRoot(t)
	peerAddrs := []netip.Prefix{netip.PrefixFrom(monGood4, 24)}
	for _, a := range blocked {
		peerAddrs = append(peerAddrs, netip.PrefixFrom(a, 24))
	}
	l := &monLab{Lab: testnet.NewLab(t, "mon", testnet.Link{Host: []netip.Prefix{netip.PrefixFrom(testnet.Host4, 24)}, Peer: peerAddrs})}
	// No neighbour probe from a listed address may be dropped and logged
	// beside the packets under test.
	l.PinNeighbours()
	b, err := nft.New(firewall.Settings{Hooks: []firewall.Hook{nft.HookInput}, Action: firewall.ActionDrop, LogGroup: monGroup, LogRate: rate, LogPer: time.Second, IPv6: true},
		slog.New(slog.DiscardHandler), nft.WithNetNSFd(l.Host.FD()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Remove(); err != nil {
			t.Errorf("remove table: %v", err)
		}
	})
	if err := b.Apply(firewall.Lists{Block: ipnet.FromAddrs(blocked...), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	l.backend = b
	return l
}

// syns sends n TCP SYNs from src to the firewall's telnet port, one per
// dial: 300 ms is below the first retransmission (1 s).
func (l *monLab) syns(t *testing.T, src netip.Addr, n int) {
	t.Helper()
	for range n {
		if err := l.Peer.DialTCP(src, netip.AddrPortFrom(testnet.Host4, 23), 300*time.Millisecond); err == nil {
			t.Fatalf("TCP from listed %v connected", src)
		}
	}
}

func TestMonitorLogsAndReportsDrops(t *testing.T) {
	l := newMonLab(t, 1000, monBad4)
	const apiKey = "sk_test_monitor_000000000000"
	srv, err := mock.New(mock.Options{Key: apiKey, ReportQuota: -1})
	if err != nil {
		t.Fatal(err)
	}
	// The mock, like the API, refuses documentation addresses as not
	// public, so the rows are read off the wire before it answers.
	rows := &monRows{}
	api := httptest.NewServer(rows.tap(srv))
	t.Cleanup(api.Close)

	cfg := monConfig(t, monGroup)
	cfg.Report.Enabled = true
	cfg.Report.Interval = 300 * time.Millisecond
	cfg.Safety.StripPrivate = false
	cfg.API.URL = "http://192.0.2.99:1" // replaced by ReportURL
	clock := &monClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	rec := &monLog{}
	var filtered []netip.Addr
	var fmu sync.Mutex
	opt := MonitorOptions{
		NetNSFd: l.Host.FD(), Window: 200 * time.Millisecond, ReportURL: api.URL, Now: clock.Now,
		Filter: func(a netip.Addr) bool {
			fmu.Lock()
			filtered = append(filtered, a)
			fmu.Unlock()
			return true
		},
	}
	m, err := NewMonitor(cfg, config.NewSecret(apiKey), slog.New(rec), opt)
	if err != nil {
		t.Fatal(err)
	}
	stop := monStart(t, m)
	monWait(t, "the listener", func() bool { return m.Stats().Listening })

	const n = 4
	before := l.Drops(t).V4
	l.syns(t, monBad4, n)
	monWait(t, "the nft counter", func() bool { return l.Drops(t).V4-before >= n })
	if d := l.Drops(t).V4 - before; d != n {
		t.Fatalf("nft counter dropped %d packets, sent %d SYNs", d, n)
	}
	// Every SYN is within the rule's rate, so each was logged.
	monWait(t, "the events", func() bool { return m.Stats().Events >= n })
	if got := rec.with("BLOCKED "); len(got) != 0 {
		t.Fatalf("BLOCKED lines %q before the window ended", got)
	}
	clock.Advance(opt.Window)
	want := fmt.Sprintf("BLOCKED %v:23 (telnet) proto=TCP x%d", monBad4, n)
	monWait(t, want, func() bool { return rec.count(want) == 1 })
	if got := rec.with("BLOCKED "); len(got) != 1 {
		t.Errorf("BLOCKED lines %q, want only %q", got, want)
	}
	top := m.TopBlocked(1)
	if len(top) != 1 || top[0].Src != monBad4 || top[0].Port != 23 || top[0].Service != "telnet" ||
		top[0].Transport != nflog.TransportTCP || top[0].Count != n {
		t.Errorf("TopBlocked(1) = %v, want %v:23 telnet x%d", top, monBad4, n)
	}
	if got := m.SourceTotal(monBad4); got != n {
		t.Errorf("SourceTotal(%v) = %d, want %d", monBad4, got, n)
	}
	if got := m.SourceTotal(monGood4); got != 0 {
		t.Errorf("SourceTotal(unlisted %v) = %d", monGood4, got)
	}

	monWait(t, "the bulk report", func() bool { return len(rows.all()) >= 1 })
	// Two more SYNs in a window that only stop ends: the line comes from the
	// last flush, and the pair, already reported, is not reported again.
	before = l.Drops(t).V4
	l.syns(t, monBad4, 2)
	monWait(t, "two more events", func() bool { return m.Stats().Events >= n+2 })
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if d := l.Drops(t).V4 - before; d != 2 {
		t.Errorf("nft counter dropped %d packets, sent 2 SYNs", d)
	}
	if last := fmt.Sprintf("BLOCKED %v:23 (telnet) proto=TCP x2", monBad4); rec.count(last) != 1 {
		t.Errorf("no %q on stop; BLOCKED lines %q", last, rec.with("BLOCKED "))
	}
	sent := rows.all()
	if len(sent) != 1 {
		t.Fatalf("%d rows sent %+v, want 1", len(sent), sent)
	}
	if r := sent[0]; r.IP != monBad4 || r.Protocol != "telnet" || r.Category == "" || !strings.Contains(r.Comment, "port 23/tcp") {
		t.Errorf("row %+v, want one for %v telnet", r, monBad4)
	}
	if n := srv.RequestCount("/v1/key/bulk-report"); n != 1 {
		t.Errorf("%d bulk requests reached the mock, want 1", n)
	}
	fmu.Lock()
	if !slices.Contains(filtered, monBad4) {
		t.Errorf("the filter was not asked about %v (asked %v)", monBad4, filtered)
	}
	fmu.Unlock()
	st := m.Stats()
	// Answered, so out of the spool; the mock rejects documentation space.
	if st.Reported+st.ReportRejected != 1 || st.ReportPending != 0 || st.ReportDuplicates == 0 || st.Events != n+2 ||
		st.ParseErrors != 0 || st.Overruns != 0 || st.QueueDrops != 0 || st.Foreign != 0 || st.Opens != 1 || st.Failures != 0 {
		t.Errorf("stats %+v", st)
	}
	for _, q := range srv.Requests() {
		if q.Auth != "bearer" || !strings.HasPrefix(q.UserAgent, "sikkerguard") {
			t.Errorf("request %+v: want a bearer key and sikkerguard's user agent", q)
		}
	}

	// The totals survive a restart.
	again, err := NewMonitor(cfg, config.Secret{}, nil, MonitorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.SourceTotal(monBad4); got != n+2 {
		t.Errorf("SourceTotal after restart = %d, want %d", got, n+2)
	}
}

// monRows records the bulk-report rows sent through it.
type monRows struct {
	mu   sync.Mutex
	rows []report.Row
}

func (m *monRows) tap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/key/bulk-report" {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var doc struct {
				Reports []report.Row `json:"reports"`
			}
			if err := json.Unmarshal(body, &doc); err == nil {
				m.mu.Lock()
				m.rows = append(m.rows, doc.Reports...)
				m.mu.Unlock()
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

func (m *monRows) all() []report.Row {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.rows)
}

const monFloodEnv = "SIKKER_MONITOR_FLOOD"

// TestMonitorFloodSender is the sender of TestMonitorFlood, run in the peer
// namespace as a separate process so that the monitor's CPU time is not
// mixed with the sender's. It sends UDP from the address in the
// environment for the given time and prints how many datagrams it sent.
func TestMonitorFloodSender(t *testing.T) {
	spec := os.Getenv(monFloodEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	// src>dst,duration
	srcDst, dur, ok := strings.Cut(spec, ",")
	src, dst, ok2 := strings.Cut(srcDst, ">")
	d, err := time.ParseDuration(dur)
	if !ok || !ok2 || err != nil {
		t.Fatalf("bad %s=%q", monFloodEnv, spec)
	}
	c, err := testnet.DialUDP(netip.MustParseAddrPort(src).Addr(), netip.MustParseAddrPort(dst))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	stop := testnet.Flood(c)
	time.Sleep(d)
	sent := stop()
	fmt.Printf("sent %d %d\n", sent, time.Since(start).Nanoseconds())
}

func monRusage(t *testing.T, who int) syscall.Rusage {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		t.Fatal(err)
	}
	return ru
}

func monCPU(ru syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A flood from a listed source: the kernel logs only log_rate of it, and
// the monitor stays alive and small. The figures are logged, not asserted.
func TestMonitorFlood(t *testing.T) {
	const rate = 1000
	l := newMonLab(t, rate, monFlood4, monLate4)
	rec := &monLog{}
	m, err := NewMonitor(monConfig(t, monGroup), config.Secret{}, slog.New(rec),
		MonitorOptions{NetNSFd: l.Host.FD(), Window: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	stop := monStart(t, m)
	monWait(t, "the listener", func() bool { return m.Stats().Listening })

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	before4 := l.Drops(t).V4
	self0 := monRusage(t, syscall.RUSAGE_SELF)
	child0 := monRusage(t, syscall.RUSAGE_CHILDREN)
	ev0 := m.Stats().Events
	t0 := time.Now()
	cmd := exec.Command("ip", "netns", "exec", l.Peer.Name, exe, "-test.run=^TestMonitorFloodSender$", "-test.count=1")
	cmd.Env = append(os.Environ(), monFloodEnv+"="+netip.AddrPortFrom(monFlood4, 0).String()+">"+
		netip.AddrPortFrom(testnet.Host4, 5060).String()+",3s")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sender: %v\n%s", err, out)
	}
	var sent int
	var sending time.Duration
	for sc := bufio.NewScanner(strings.NewReader(string(out))); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), "sent "); ok {
			n, ns, _ := strings.Cut(v, " ")
			sent, _ = strconv.Atoi(n)
			nsec, _ := strconv.ParseInt(ns, 10, 64)
			sending = time.Duration(nsec)
		}
	}
	if sent == 0 || sending <= 0 {
		t.Fatalf("sender sent nothing:\n%s", out)
	}
	// Let the last logged packets through aggregation before measuring.
	monWait(t, "the counter to settle", func() bool {
		a := m.Stats().Events
		time.Sleep(300 * time.Millisecond)
		return m.Stats().Events == a
	})
	elapsed := time.Since(t0)
	self1 := monRusage(t, syscall.RUSAGE_SELF)
	child1 := monRusage(t, syscall.RUSAGE_CHILDREN)
	st := m.Stats()
	dropped := l.Drops(t).V4 - before4
	events := st.Events - ev0

	if events == 0 {
		t.Fatalf("no events during the flood; stats %+v", st)
	}
	// The kernel never logs more than the rate over the whole run plus its
	// burst: measuring from the monitor's start only loosens the bound.
	if bound := uint64(rate*time.Since(started).Seconds()) + 5; st.Events > bound {
		t.Errorf("%d events in %v, above the rule's %d/s limit", st.Events, time.Since(started), rate)
	}
	if events > dropped {
		t.Errorf("%d events but only %d packets dropped", events, dropped)
	}
	if got := m.SourceTotal(monFlood4); got != st.Packets {
		t.Errorf("SourceTotal(flooder) = %d, totals hold %d", got, st.Packets)
	}

	// Still alive: a new source after the flood is counted and logged.
	l.syns(t, monLate4, 1)
	monWait(t, "the post-flood SYN", func() bool { return m.SourceTotal(monLate4) == 1 })
	late := fmt.Sprintf("BLOCKED %v:23 (telnet) proto=TCP x1", monLate4)
	monWait(t, late, func() bool { return rec.count(late) == 1 })
	if top := m.TopBlocked(1); len(top) != 1 || top[0].Src != monFlood4 || top[0].Service != "sip" {
		t.Errorf("TopBlocked(1) = %v, want the flooder on sip", top)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}

	maxRSS := self1.Maxrss * 1024 // kilobytes on Linux
	cpu := monCPU(self1) - monCPU(self0)
	t.Logf("flood: sender %d datagrams in %v (%.0f/s, %.3f s CPU in the sender), nft dropped %d",
		sent, sending.Round(time.Millisecond), float64(sent)/sending.Seconds(), (monCPU(child1) - monCPU(child0)).Seconds(), dropped)
	t.Logf("flood: monitor handled %d events (%.0f/s of sending; rule limit %d/s), received %d, overruns %d, queue drops %d, sources %d",
		events, float64(events)/sending.Seconds(), rate, st.Received, st.Overruns, st.QueueDrops, st.Sources)
	t.Logf("flood: test process CPU %.3f s over %v (monitor and test helpers; the sender is a child), max RSS %.1f MB",
		cpu.Seconds(), elapsed.Round(time.Millisecond), float64(maxRSS)/(1<<20))
	if maxRSS > 200<<20 {
		t.Errorf("max RSS %d MB, want under 200 MB", maxRSS>>20)
	}
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/logging"
	"github.com/sikkerapi/sikkerguard/internal/mock"
	"github.com/sikkerapi/sikkerguard/internal/safety"
)

// These tests drive the whole lifecycle in-process: the mock SikkerAPI on
// loopback, a fake firewall, and systemd's notify protocol over a real
// unixgram socket. The kernel side is covered by cmd/sikkerguard's tests.

const key = "sk_test_daemon_000000000000"

// fakeFirewall records what it holds; block makes Apply hang until released.
type fakeFirewall struct {
	mu      sync.Mutex
	block   ipnet.Set
	allow   ipnet.Set
	applies int
	removed bool
	fail    error
	stuck   chan struct{}
	// inStuck, when set, is closed as an Apply starts waiting on stuck.
	inStuck chan struct{}
	// last is what the last Apply gave, which Restore puts back; changes,
	// when set, is what Watch returns.
	last, lastAllow ipnet.Set
	restores        int
	changes         chan firewall.Change
	lists           firewall.Lists // the role lists of the last Apply
}

func (f *fakeFirewall) Apply(l firewall.Lists) error {
	block, allow := l.Block, l.Allow
	f.mu.Lock()
	stuck, fail, in := f.stuck, f.fail, f.inStuck
	if stuck != nil {
		f.inStuck = nil
	}
	f.mu.Unlock()
	if stuck != nil {
		if in != nil {
			close(in)
		}
		<-stuck
	}
	if fail != nil {
		return fail
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.block, f.allow, f.lists = block.Clone(), allow.Clone(), l
	f.last, f.lastAllow = f.block, f.allow
	f.applies++
	return nil
}

// Restore puts the last applied lists back.
func (f *fakeFirewall) Restore([]netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.block, f.allow = f.last.Clone(), f.lastAllow.Clone()
	f.restores++
	return nil
}

// Watch hands out the test's channel of changes (nil: none).
func (f *fakeFirewall) Watch(context.Context) (<-chan firewall.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changes == nil {
		return nil, nil
	}
	return f.changes, nil
}

func (f *fakeFirewall) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.block, f.allow, f.removed = ipnet.Set{}, ipnet.Set{}, true
	return nil
}

// Intact is true: nothing removes the fake's rules (see tamperableFirewall).
func (f *fakeFirewall) Intact() (bool, error) { return true, nil }

// Counters are zero: the fake drops no packets.
func (f *fakeFirewall) Counters() (firewall.Counters, error) { return firewall.Counters{}, nil }

func (f *fakeFirewall) blocks(a string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	addr := netip.MustParseAddr(a)
	return f.block.Contains(addr) && !f.allow.Contains(addr)
}

func (f *fakeFirewall) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applies
}

// notifySocket listens where sd_notify writes and collects the messages.
type notifySocket struct {
	mu   sync.Mutex
	msgs []string
	conn *net.UnixConn
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", path)
	n := &notifySocket{conn: conn}
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, strings.Split(string(buf[:k]), "\n")...)
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

func (n *notifySocket) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// waitFor polls until cond holds or fails the test after a generous bound;
// nothing is asserted about how long it took.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (n *notifySocket) waitCount(t *testing.T, msg string, count int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d× %s", count, msg), func() bool {
		c := 0
		for _, m := range n.all() {
			if m == msg {
				c++
			}
		}
		return c >= count
	})
}

type lab struct {
	t     *testing.T
	srv   *mock.Server
	fw    *fakeFirewall
	cfg   config.Config
	note  *notifySocket
	logs  *syncBuffer
	dir   string
	never safety.NeverBlock
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newLab(t *testing.T, list string) *lab {
	t.Helper()
	entries, err := mock.ParseList(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := mock.New(mock.Options{Key: key, Entries: entries, BlacklistQuota: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	l := &lab{t: t, srv: srv, fw: &fakeFirewall{}, note: listenNotify(t), logs: &syncBuffer{}, dir: t.TempDir()}
	l.cfg = config.Default()
	l.cfg.API.URL = srv.URL()
	l.cfg.StateDir = l.dir
	l.cfg.Safety.VerifyConnectivity = false
	l.cfg.Safety.StripPrivate = false
	return l
}

// start runs a daemon until the returned stop is called; stop returns
// Run's error.
func (l *lab) start(mutate func(*Options)) (*Daemon, func() error) {
	l.t.Helper()
	o := Options{
		Config: l.cfg, Key: config.NewSecret(key),
		Log:         slog.New(logging.Check(slog.NewTextHandler(l.logs, &slog.HandlerOptions{Level: slog.LevelDebug}), l.t.Errorf)),
		NewFirewall: func(config.Config) (firewall.Firewall, error) { return l.fw, nil },
		Discover: func(context.Context, config.Config) (safety.NeverBlock, error) {
			return l.never, nil
		},
		RetryMin: 20 * time.Millisecond,
		// As outside systemd, whatever runs the tests.
		KeepOnStop: func() (bool, string) { return false, "" },
	}
	if mutate != nil {
		mutate(&o)
	}
	d, err := New(o)
	if err != nil {
		l.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(15 * time.Second):
				runErr = errors.New("Run did not return after cancel")
			}
		})
		return runErr
	}
	l.t.Cleanup(func() { stop() })
	return d, stop
}

func TestReadyOnlyAfterTheListIsApplied(t *testing.T) {
	l := newLab(t, "203.0.113.7\n198.51.100.0/24\n")
	var appliedAtReady bool
	l.start(func(o *Options) {
		inner := SdNotify
		o.Notify = func(s string) error {
			if strings.HasPrefix(s, "READY=1") {
				appliedAtReady = l.fw.blocks("203.0.113.7")
			}
			return inner(s)
		}
	})
	l.note.waitCount(t, "READY=1", 1)
	if !appliedAtReady {
		t.Fatal("READY=1 was sent before the list was in the firewall")
	}
	msgs := l.note.all()
	for i, m := range msgs {
		if m == "READY=1" && (i+1 == len(msgs) || !strings.HasPrefix(msgs[i+1], "STATUS=running: blocking 257 IPv4 addresses in 2 ranges and 0 IPv6 ranges")) {
			t.Errorf("READY=1 not followed by the status: %q", msgs)
		}
	}
	for _, want := range []string{"Safety whitelist: ", "Firewall ready", "Blocking 257 IPs"} {
		if !strings.Contains(l.logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestStopNotifiesAndCleansUp(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	_, stop := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	l.note.waitCount(t, "STOPPING=1", 1)
	msgs := l.note.all()
	if msgs[len(msgs)-1] != "STOPPING=1" {
		t.Errorf("last message %q, want STOPPING=1", msgs[len(msgs)-1])
	}
	if !l.fw.removed {
		t.Error("cleanup_on_stop did not remove the firewall objects")
	}

	l2 := newLab(t, "203.0.113.7\n")
	l2.cfg.CleanupOnStop = false
	_, stop2 := l2.start(nil)
	l2.note.waitCount(t, "READY=1", 1)
	stop2()
	if l2.fw.removed || !l2.fw.blocks("203.0.113.7") {
		t.Error("cleanup_on_stop: false removed the list")
	}
}

func TestPullsOnScheduleAndReloads(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	l.cfg.API.PullInterval = 200 * time.Millisecond // below the config's floor, for the test only
	reload := make(chan struct{})
	l.start(func(o *Options) {
		o.Reload = reload
		o.Load = func() (config.Config, config.Secret, error) { return l.cfg, config.NewSecret(key), nil }
	})
	l.note.waitCount(t, "READY=1", 1)
	waitFor(t, "three scheduled pulls", func() bool { return l.srv.RequestCount("/v1/key/blacklist") >= 3 })

	// A changed list is applied by the next scheduled pull.
	grown, _ := mock.ParseList(strings.NewReader("203.0.113.7\n203.0.113.8\n"))
	l.srv.SetEntries(grown)
	waitFor(t, "the new entry to be applied", func() bool { return l.fw.blocks("203.0.113.8") })

	// A reload pulls only the feeds whose source settings changed.
	l.cfg.API.PullInterval = time.Hour
	time.Sleep(300 * time.Millisecond) // a pull scheduled before stays due
	before := l.srv.RequestCount("/v1/key/blacklist")
	reload <- struct{}{}
	l.note.waitCount(t, "RELOADING=1", 1)
	l.note.waitCount(t, "READY=1", 2)
	time.Sleep(100 * time.Millisecond)
	if got := l.srv.RequestCount("/v1/key/blacklist"); got > before+1 {
		t.Errorf("a reload of unchanged sources pulled %d times", got-before)
	}
	// The pull that was due before the first reload may still be on its
	// way on a busy machine: count the pulls of the new score minimum.
	l.cfg.API.ScoreMin = 60
	reload <- struct{}{}
	l.note.waitCount(t, "READY=1", 3)
	time.Sleep(100 * time.Millisecond)
	at60 := 0
	for _, r := range l.srv.Requests() {
		if r.Path == "/v1/key/blacklist" && r.Query.Get("scoreMinimum") == "60" {
			at60++
		}
	}
	if at60 != 1 {
		t.Errorf("a reload with a new score minimum made %d pulls with it, want 1", at60)
	}
	msgs := l.note.all()
	iReload, iReady := -1, -1
	for i, m := range msgs {
		if m == "RELOADING=1" && iReload < 0 {
			iReload = i
		}
		if m == "READY=1" {
			iReady = i
		}
	}
	if iReload > iReady {
		t.Errorf("READY=1 did not follow RELOADING=1: %q", msgs)
	}
}

func TestWatchdogPingsStopWhenTheLoopIsStuck(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	l.cfg.API.PullInterval = 100 * time.Millisecond
	d, _ := l.start(func(o *Options) { o.Watchdog = 10 * time.Millisecond })
	l.note.waitCount(t, "WATCHDOG=1", 3)

	// Make the next apply hang: the main loop blocks in it.
	release, entered := make(chan struct{}), make(chan struct{})
	l.fw.mu.Lock()
	l.fw.stuck, l.fw.inStuck = release, entered
	l.fw.mu.Unlock()
	grown, _ := mock.ParseList(strings.NewReader("203.0.113.7\n203.0.113.9\n"))
	l.srv.SetEntries(grown)
	select {
	case <-entered:
	case <-time.After(15 * time.Second):
		t.Fatal("the main loop never reached the stuck apply")
	}
	time.Sleep(50 * time.Millisecond) // let a ping in flight land
	count := func() int {
		n := 0
		for _, m := range l.note.all() {
			if m == "WATCHDOG=1" {
				n++
			}
		}
		return n
	}
	frozen := count()
	time.Sleep(200 * time.Millisecond) // twenty ping intervals
	if got := count(); got != frozen {
		t.Errorf("watchdog pinged %d times while the main loop was stuck", got-frozen)
	}
	close(release)
	l.note.waitCount(t, "WATCHDOG=1", frozen+1)
	_ = d
}

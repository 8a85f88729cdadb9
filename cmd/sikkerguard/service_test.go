package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
	"github.com/sikkerapi/sikkerguard/internal/mock"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// The service end to end: the real binary as the long-running daemon in a
// namespace, sd_notify over a unixgram socket, and real packets from a peer
// namespace that holds the attacker, a friend, the gateway, the resolver
// and the API.

var (
	svcAttacker = netip.MustParseAddr("192.0.2.66")
	svcFriend   = netip.MustParseAddr("192.0.2.77")
	svcGateway  = netip.MustParseAddr("192.0.2.254")
	svcDNS      = netip.MustParseAddr("192.0.2.53")
	svcAPI      = netip.MustParseAddr("192.0.2.80")
)

type svcLab struct {
	probes
	env     []string // extra environment for the daemon
	bin     string
	host    *testnet.NS
	peer    *testnet.NS
	srv     *mock.Server
	dir     string
	cfgPath string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newSvcLab(t *testing.T, list, extraConfig string) *svcLab {
	testnet.RequireRoot(t)
	l := &svcLab{probes: probes{t: t}, bin: buildBinary(t), dir: t.TempDir()}
	var peer []netip.Prefix
	for _, a := range []netip.Addr{svcFriend, svcGateway, svcAttacker, svcDNS, svcAPI} {
		peer = append(peer, netip.PrefixFrom(a, 24))
	}
	l.lab = testnet.NewLab(t, "s", testnet.Link{HostIf: "eth0", PeerIf: "eth0", Host: []netip.Prefix{netip.PrefixFrom(testnet.Host4, 24)}, Peer: peer})
	l.host, l.peer = l.lab.Host, l.lab.Peer
	l.host.MustRun("ip", "route", "add", "default", "via", svcGateway.String())

	// `ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf over
	// /etc/resolv.conf, which gives the daemon its own resolver.
	etc := filepath.Join("/etc/netns", l.host.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+svcDNS.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	entries, err := mock.ParseList(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	l.srv, err = mock.New(mock.Options{Key: testKey, Entries: entries, BlacklistQuota: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.peer.Do(func() error { return l.srv.Start(netip.AddrPortFrom(svcAPI, 8580).String()) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.srv.Close() })

	l.cfgPath = filepath.Join(l.dir, "sikkerguard.yaml")
	cfg := "api:\n  url: http://" + svcAPI.String() + ":8580\n  key_file: " + filepath.Join(l.dir, "absent.key") + "\n" +
		"firewall:\n  log_group: 0\n" +
		"state_dir: " + filepath.Join(l.dir, "state") + "\n" + extraConfig
	if !strings.Contains(extraConfig, "safety:") {
		cfg += "safety:\n  strip_private: false\n"
	}
	if err := os.WriteFile(l.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

// withBus gives the next daemons a private system bus and returns a
// client of it: a pull on request goes through D-Bus, since a reload
// pulls only the feeds whose settings changed.
func (l *svcLab) withBus() *dbusapi.Client {
	l.t.Helper()
	bus := dbustest.StartBus(l.t, dbustest.Shipped)
	l.env = []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.Address}
	return dbusapi.NewClient(bus.Connect(l.t))
}

// pull pulls every feed through the bus and returns the call's error.
func pull(t *testing.T, c *dbusapi.Client) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Pull(ctx, "")
}

// statusAfterPull pulls on request and returns the STATUS= line the daemon
// sent once the result was decided (it is sent before Pull returns).
func (s *service) statusAfterPull(t *testing.T, c *dbusapi.Client) string {
	t.Helper()
	pull(t, c) // a failing feed is an error here; the state tells
	last := ""
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-s.notes:
			s.seen = append(s.seen, m)
			if strings.HasPrefix(m, "STATUS=") {
				last = m
			}
		case <-time.After(300 * time.Millisecond):
			if last != "" {
				return last
			}
		case <-timeout:
			t.Fatalf("no STATUS after a pull; seen %q", s.seen)
		}
	}
}

// service is one running daemon process.
type service struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	notes  chan string
	seen   []string
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited is closed
}

func (l *svcLab) start(args ...string) *service {
	l.t.Helper()
	sock := filepath.Join(l.t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		l.t.Fatal(err)
	}
	s := &service{stderr: &lockedBuffer{}, notes: make(chan string, 1024), exited: make(chan struct{})}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			for _, m := range strings.Split(string(buf[:n]), "\n") {
				s.notes <- m
			}
		}
	}()
	full := append([]string{"netns", "exec", l.host.Name, "env", "SIKKER_API_KEY=" + testKey,
		"NOTIFY_SOCKET=" + sock}, l.env...)
	full = append(append(full, l.bin, "-c", l.cfgPath), args...)
	s.cmd = exec.Command("ip", full...)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	l.t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
		conn.Close()
		l.host.Run("nft", "delete", "table", "inet", "sikkerguard")
	})
	return s
}

// await reads notify messages until want arrives; it returns those seen.
func (s *service) await(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-s.notes:
			s.seen = append(s.seen, m)
			if m == want {
				return
			}
		case <-s.exited:
			t.Fatalf("daemon exited (%v) before %s; stderr:\n%s", s.err, want, s.stderr.String())
		case <-timeout:
			t.Fatalf("no %s from the daemon; seen %q; stderr:\n%s", want, s.seen, s.stderr.String())
		}
	}
}

// awaitLog waits until stderr holds want: stderr is copied from a pipe
// and may trail a notify message sent after the line was written.
func (s *service) awaitLog(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", want, s.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *service) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

func (s *service) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-s.exited:
		return s.err
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not exit")
		return nil
	}
}

func (l *svcLab) ruleset() string {
	return l.host.MustRun("nft", "list", "ruleset")
}

func (l *svcLab) inTable(a netip.Addr) bool {
	out, err := l.host.Run("nft", "list", "table", "inet", "sikkerguard")
	return err == nil && strings.Contains(out, a.String())
}

func TestServiceLifecycle(t *testing.T) {
	list := strings.Join([]string{svcAttacker.String(), svcGateway.String(), svcDNS.String(), "203.0.113.0/24"}, "\n")
	l := newSvcLab(t, list, "")
	c := l.withBus()
	before := l.ruleset()
	if !l.delivered(svcAttacker) {
		t.Fatal("attacker blocked before the daemon ran: the lab is broken")
	}

	s := l.start()
	s.await(t, "READY=1")
	// READY=1 promises the list is in the kernel already.
	if !l.inTable(svcAttacker) {
		t.Fatal("READY=1 arrived before the blocklist was in the kernel")
	}
	if ok, why := l.blocked(svcAttacker); !ok {
		t.Errorf("listed attacker not blocked: %s", why)
	}
	if !l.delivered(svcFriend) {
		t.Error("unlisted friend was blocked")
	}
	// The gateway and the resolver are listed by the feed, yet the safety
	// whitelist keeps them reachable.
	if !l.delivered(svcGateway) || !l.delivered(svcDNS) {
		t.Error("the listed gateway or resolver was blocked")
	}
	for _, want := range []string{"Score threshold: 50 | Pull every 24h | Reports every 30m",
		"Safety whitelist: ", "Firewall ready", "Blocking 257 IPs"} {
		s.awaitLog(t, want)
	}

	// SIGHUP reloads; an unchanged configuration costs no pull. A pull on
	// request does.
	pulls := l.srv.RequestCount("/v1/key/blacklist")
	s.signal(t, syscall.SIGHUP)
	s.await(t, "RELOADING=1")
	s.await(t, "READY=1")
	if got := l.srv.RequestCount("/v1/key/blacklist"); got != pulls {
		t.Errorf("SIGHUP with an unchanged configuration pulled %d times", got-pulls)
	}
	if err := pull(t, c); err != nil {
		t.Fatal(err)
	}
	if l.srv.RequestCount("/v1/key/blacklist") != pulls+1 {
		t.Error("Pull did not pull")
	}

	s.signal(t, syscall.SIGTERM)
	s.await(t, "STOPPING=1")
	if err := s.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.stderr.String())
	}
	if after := l.ruleset(); after != before {
		t.Errorf("ruleset after SIGTERM differs:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

func TestServiceRollsBackWhenTheAPIIsCutOff(t *testing.T) {
	// Discovery's whitelisting is off, so a feed listing the API's address
	// really cuts the host off it; verification must notice and roll back.
	l := newSvcLab(t, svcAttacker.String()+"\n", "safety:\n  strip_private: false\n  auto_whitelist: false\n")
	c := l.withBus()
	s := l.start()
	s.await(t, "READY=1")

	es, _ := mock.ParseList(strings.NewReader(svcAttacker.String() + "\n" + svcAPI.String() + "\n"))
	l.srv.SetEntries(es)
	if err := pull(t, c); err == nil {
		t.Error("Pull of a list that was rolled back reported success")
	}
	s.awaitLog(t, "RolledBack")
	if l.inTable(svcAPI) || !l.delivered(svcAPI) {
		t.Error("the API address is still blocked after the rollback")
	}
	if ok, why := l.blocked(svcAttacker); !l.inTable(svcAttacker) || !ok {
		t.Errorf("the rollback lost the previous list: %s", why)
	}
}

func TestServiceKillAndRestartLeavesNoGap(t *testing.T) {
	l := newSvcLab(t, svcAttacker.String()+"\n203.0.113.0/24\n", "")
	before := l.ruleset()
	s := l.start()
	s.await(t, "READY=1")

	// A continuous flood from the attacker across the crash and restart.
	stop := l.lab.Flood(svcAttacker)

	s.signal(t, syscall.SIGKILL)
	s.wait(t)
	if !l.inTable(svcAttacker) {
		stop()
		t.Fatal("the table did not survive SIGKILL")
	}
	s2 := l.start()
	s2.await(t, "READY=1")
	time.Sleep(100 * time.Millisecond) // probes after READY as well
	// The restart adopts the table with its counters.
	r := stop()
	l.lab.AssertFloodBlocked(t, r, "SIGKILL and restart")
	if r.Sent < 100 {
		t.Errorf("only %d probes sent: the probe did not cover the restart", r.Sent)
	}
	s2.signal(t, syscall.SIGTERM)
	s2.wait(t)
	if after := l.ruleset(); after != before {
		t.Errorf("ruleset after SIGTERM differs:\n%s", after)
	}
}

func TestServiceDryRunNeverTouchesTheRuleset(t *testing.T) {
	l := newSvcLab(t, svcAttacker.String()+"\n", "")
	before := l.ruleset()
	s := l.start("--dry-run")
	s.await(t, "READY=1")
	if after := l.ruleset(); after != before {
		t.Errorf("dry run changed the ruleset:\n%s", after)
	}
	if !l.delivered(svcAttacker) {
		t.Error("dry run blocked the attacker")
	}
	s.awaitLog(t, "Dry run: would block 1 IPs")
	s.signal(t, syscall.SIGTERM)
	s.wait(t)
}

func TestServiceControlOverDBus(t *testing.T) {
	l := newSvcLab(t, svcAttacker.String()+"\n203.0.113.0/24\n", "")
	bus := dbustest.StartBus(t, dbustest.Shipped)
	l.env = []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.Address}
	ctl := buildCommand(t, "../sikkerctl")
	sikkerctl := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(ctl, append([]string{"--address", bus.Address}, args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}

	s := l.start()
	s.await(t, "READY=1")
	if out, code := sikkerctl("status"); code != 0 || !strings.Contains(out, "running") {
		t.Errorf("sikkerctl status: exit %d\n%s", code, out)
	}
	if out, code := sikkerctl("check", svcAttacker.String()); code != 1 || !strings.Contains(out, "listed by sikkerapi") {
		t.Errorf("sikkerctl check: exit %d\n%s", code, out)
	}
	if ok, why := l.blocked(svcAttacker); !ok {
		t.Fatalf("attacker not blocked before the whitelist change: %s", why)
	}
	if out, code := sikkerctl("whitelist", "add", svcAttacker.String()); code != 0 {
		t.Fatalf("whitelist add: exit %d\n%s", code, out)
	}
	// Open at once: the call returns after the transaction.
	if !l.delivered(svcAttacker) {
		t.Error("the whitelisted attacker is still blocked")
	}
	if out, code := sikkerctl("whitelist", "add", "300.1.1.1"); code != 1 || !strings.Contains(out, "300.1.1.1") {
		t.Errorf("whitelist add 300.1.1.1: exit %d, want 1 naming the address\n%s", code, out)
	}

	// The entry survives a restart of the daemon.
	s.signal(t, syscall.SIGTERM)
	s.wait(t)
	s2 := l.start()
	s2.await(t, "READY=1")
	if !l.delivered(svcAttacker) {
		t.Error("the run-time whitelist did not survive a restart")
	}
	if out, _ := sikkerctl("whitelist", "list"); !strings.Contains(out, svcAttacker.String()) {
		t.Errorf("whitelist list lacks the entry:\n%s", out)
	}
	if out, code := sikkerctl("whitelist", "remove", svcAttacker.String()); code != 0 {
		t.Fatalf("whitelist remove: exit %d\n%s", code, out)
	}
	if ok, why := l.blocked(svcAttacker); !ok {
		t.Errorf("the attacker not blocked after the whitelist entry was removed: %s", why)
	}
	s2.signal(t, syscall.SIGTERM)
	s2.wait(t)
}

func TestServiceKeepsTheListThroughAPIFaults(t *testing.T) {
	l := newSvcLab(t, svcAttacker.String()+"\n", "")
	c := l.withBus()
	s := l.start()
	s.await(t, "READY=1")
	good, _ := mock.ParseList(strings.NewReader(svcAttacker.String() + "\n"))

	for _, tc := range []struct {
		name  string
		fault mock.Fault
		list  string
	}{
		{name: "401", fault: mock.Fault{Mode: mock.Fault401}},
		{name: "500", fault: mock.Fault{Mode: mock.Fault500}},
		{name: "empty", fault: mock.Fault{Mode: mock.FaultEmpty}},
		{name: "garbage", fault: mock.Fault{Mode: mock.FaultGarbage}},
		{name: "truncated", fault: mock.Fault{Mode: mock.FaultTruncated}},
		{name: "3x growth", list: svcAttacker.String() + "\n203.0.113.1\n203.0.113.9\n"},
	} {
		if tc.list != "" {
			es, _ := mock.ParseList(strings.NewReader(tc.list))
			l.srv.SetEntries(es)
		} else if err := l.srv.SetFault(tc.fault); err != nil {
			t.Fatal(err)
		}
		if st := s.statusAfterPull(t, c); !strings.HasPrefix(st, "STATUS=degraded") {
			t.Errorf("%s: %q, want degraded", tc.name, st)
		}
		if ok, why := l.blocked(svcAttacker); !l.inTable(svcAttacker) || !ok {
			t.Errorf("%s: the current list was not kept: %s", tc.name, why)
		}
		if l.inTable(netip.MustParseAddr("203.0.113.9")) {
			t.Errorf("%s: a refused list reached the kernel", tc.name)
		}
		// Recovery: a good pull brings the state back to running.
		l.srv.ClearFault()
		l.srv.SetEntries(good)
		if st := s.statusAfterPull(t, c); !strings.HasPrefix(st, "STATUS=running") {
			t.Errorf("%s: after recovery %q, want running", tc.name, st)
		}
	}

	// A slow answer holds nothing up: blocking and the main loop go on.
	l.srv.SetFault(mock.Fault{Mode: mock.FaultSlow, Delay: 2 * time.Second, Count: 1})
	done := make(chan error, 1)
	go func() { done <- pull(t, c) }()
	time.Sleep(200 * time.Millisecond)
	if ok, why := l.blocked(svcAttacker); !ok {
		t.Errorf("slow pull: the attacker not blocked meanwhile: %s", why)
	}
	<-done

	// 429: the list stays, and no request is made before Retry-After.
	l.srv.SetFault(mock.Fault{Mode: mock.Fault429, RetryAfter: "3600"})
	if st := s.statusAfterPull(t, c); !strings.HasPrefix(st, "STATUS=degraded") {
		t.Errorf("429: %q, want degraded", st)
	}
	n := l.srv.RequestCount("/v1/key/blacklist")
	s.statusAfterPull(t, c)
	if got := l.srv.RequestCount("/v1/key/blacklist"); got != n {
		t.Errorf("429: %d requests before Retry-After", got-n)
	}
	if ok, why := l.blocked(svcAttacker); !l.inTable(svcAttacker) || !ok {
		t.Errorf("429: the current list was not kept: %s", why)
	}
	s.awaitLog(t, "429")
}

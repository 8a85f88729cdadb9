package main

import (
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/mock"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// These tests run the real binary under `ip netns exec` against the mock
// SikkerAPI served inside the same namespace, and judge it by real packets
// and by the namespace's ruleset.

const testKey = "sk_test_once_0123456789"

var (
	attackerAddr = netip.MustParseAddr("192.0.2.66")
	friendAddr   = netip.MustParseAddr("192.0.2.77")
	whiteAddr    = netip.MustParseAddr("192.0.2.99") // listed, but whitelisted
)

// buildBinary compiles sikkerguard for the test.
func buildBinary(t *testing.T) string {
	t.Helper()
	return buildCommand(t, ".")
}

// buildCommand compiles the command in dir (relative to this package).
func buildCommand(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(t.TempDir(), filepath.Base(filepath.Clean(dir)))
	if dir == "." {
		out = filepath.Join(filepath.Dir(out), "sikkerguard")
	}
	cmd := exec.Command(goBin, "build", "-o", out, dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

type onceLab struct {
	probes
	bin      string
	host     *testnet.NS
	srv      *mock.Server
	cfgPath  string
	stateDir string
	firewall string // the config's firewall section
}

const nftFirewall = "firewall:\n  hooks: [input]\n  log_group: 0\n"

func newOnceLab(t *testing.T, list string) *onceLab {
	return newOnceLabWith(t, list, nftFirewall)
}

func newOnceLabWith(t *testing.T, list, firewall string) *onceLab {
	testnet.RequireRoot(t)
	l := &onceLab{probes: probes{t: t}, bin: buildBinary(t), firewall: firewall}
	l.lab = testnet.NewLab(t, "o", testnet.Link{HostIf: "eth0", PeerIf: "eth0",
		Host: []netip.Prefix{netip.PrefixFrom(testnet.Host4, 24)},
		Peer: []netip.Prefix{netip.PrefixFrom(friendAddr, 24), netip.PrefixFrom(attackerAddr, 24), netip.PrefixFrom(whiteAddr, 24)}})
	l.host = l.lab.Host

	entries, err := mock.ParseList(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	l.srv, err = mock.New(mock.Options{Key: testKey, Entries: entries})
	if err != nil {
		t.Fatal(err)
	}
	// The listener is created inside the host namespace, where the binary
	// will run; it keeps serving from any goroutine afterwards.
	if err := l.host.Do(func() error { return l.srv.Start("127.0.0.1:0") }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.srv.Close() })

	dir := t.TempDir()
	l.stateDir = filepath.Join(dir, "state")
	l.cfgPath = filepath.Join(dir, "sikkerguard.yaml")
	// strip_private is off: the test addresses are documentation space,
	// which the default strips as non-global.
	l.writeConfig("")
	return l
}

func (l *onceLab) writeConfig(extra string) {
	cfg := "api:\n  url: " + l.srv.URL() + "\n  key_file: " + filepath.Join(filepath.Dir(l.cfgPath), "absent.key") + "\n" +
		l.firewall +
		"whitelist: [" + whiteAddr.String() + "]\n" +
		"safety:\n  strip_private: false\n" +
		"state_dir: " + l.stateDir + "\n" + extra
	if err := os.WriteFile(l.cfgPath, []byte(cfg), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// sikkerguard runs the binary in the host namespace; it returns the output
// and the exit code.
func (l *onceLab) sikkerguard(args ...string) (string, int) {
	l.t.Helper()
	full := append([]string{"SIKKER_API_KEY=" + testKey, l.bin, "-c", l.cfgPath}, args...)
	out, err := l.host.Run("env", full...)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out, ee.ExitCode()
	}
	if err != nil {
		l.t.Fatalf("run sikkerguard: %v", err)
	}
	return out, 0
}

// probes sends UDP from the lab's peer to its host, for the tests of the
// binary.
type probes struct {
	t   *testing.T
	lab *testnet.Lab
}

// delivered reports whether UDP from src reaches the host (see
// testnet.Lab.Delivers).
func (p probes) delivered(src netip.Addr) bool {
	p.t.Helper()
	return p.lab.Delivers(p.t, p.lab.UDP(src))
}

// blocked reports whether UDP from src is dropped by sikkerguard's rules
// (see testnet.Lab.Blocked), and the reason when it is not.
func (p probes) blocked(src netip.Addr) (bool, string) {
	p.t.Helper()
	return p.lab.Blocked(p.t, p.lab.UDP(src))
}

// ruleset is everything either backend could have changed.
// iptables-save's "# Generated … on <time>" lines are left out.
func (l *onceLab) ruleset() string {
	out := l.host.MustRun("nft", "list", "ruleset") + l.host.MustRun("iptables-save") +
		l.host.MustRun("ip6tables-save") + l.host.MustRun("ipset", "list", "-n")
	var kept []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "#") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

func TestOnceAppliesAndCleanupRemoves(t *testing.T) {
	for _, tc := range []struct{ name, firewall string }{
		{"nftables", nftFirewall},
		{"iptables", "firewall:\n  backend: iptables\n  hooks: [INPUT]\n  log_group: 0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) { testOnceAppliesAndCleanupRemoves(t, tc.firewall) })
	}
}

func testOnceAppliesAndCleanupRemoves(t *testing.T, firewall string) {
	l := newOnceLabWith(t, attackerAddr.String()+"\n"+whiteAddr.String()+"\n203.0.113.0/24\n", firewall)
	// The administrator's own rules, which must survive untouched.
	l.host.MustRun("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "2222", "-j", "ACCEPT")
	l.host.MustRun("ip6tables", "-A", "INPUT", "-p", "tcp", "--dport", "2222", "-j", "ACCEPT")
	l.host.MustRun("nft", "add table inet admin")
	before := l.ruleset()
	if !l.delivered(attackerAddr) {
		t.Fatal("attacker blocked before sikkerguard ran: the lab is broken")
	}

	out, code := l.sikkerguard("--once")
	if code != 0 {
		t.Fatalf("--once exit %d:\n%s", code, out)
	}
	for _, want := range []string{"Score threshold: 50 | Pull every 24h | Reports every 30m", "Blocking 257 IPs"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, testKey) {
		t.Error("the API key appears in the output")
	}
	if ok, why := l.blocked(attackerAddr); !ok {
		t.Errorf("listed attacker not blocked after --once: %s", why)
	}
	if !l.delivered(friendAddr) {
		t.Error("unlisted friend was blocked")
	}
	if !l.delivered(whiteAddr) {
		t.Error("whitelisted address was blocked although listed")
	}
	if reqs := l.srv.Requests(); len(reqs) != 1 || !strings.Contains(reqs[0].UserAgent, "sikkerguard/") || reqs[0].Auth != "bearer" || reqs[0].Query.Get("scoreMinimum") != "50" {
		t.Errorf("mock saw %d requests, want one with a sikkerguard User-Agent, a bearer key and scoreMinimum=50", len(reqs))
	}
	if _, err := os.Stat(filepath.Join(l.stateDir, "feeds", "sikkerapi.list")); err != nil {
		t.Errorf("last good list not saved: %v", err)
	}

	for i := range 2 { // cleanup is idempotent
		if out, code := l.sikkerguard("--cleanup"); code != 0 {
			t.Fatalf("--cleanup #%d exit %d:\n%s", i+1, code, out)
		}
	}
	if after := l.ruleset(); after != before {
		t.Errorf("ruleset after --cleanup differs from before:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if !l.delivered(attackerAddr) {
		t.Error("attacker still blocked after --cleanup")
	}
}

func TestOnceKeepsListWhenSourceFailsOrGrowsTooMuch(t *testing.T) {
	l := newOnceLab(t, attackerAddr.String()+"\n")
	if out, code := l.sikkerguard("--once"); code != 0 {
		t.Fatalf("--once exit %d:\n%s", code, out)
	}

	// A failing API: the last good list is enforced again, exit 0.
	if err := l.srv.SetFault(mock.Fault{Mode: mock.Fault500}); err != nil {
		t.Fatal(err)
	}
	out, code := l.sikkerguard("--once")
	if code != 0 || !strings.Contains(out, "last good list") {
		t.Fatalf("--once with a failing API: exit %d, want 0 and a warning:\n%s", code, out)
	}
	if ok, why := l.blocked(attackerAddr); !ok {
		t.Errorf("attacker not blocked while the API failed: %s", why)
	}
	l.srv.ClearFault()

	// Three times the entries: refused, exit 1, the old list stays.
	grown, _ := mock.ParseList(strings.NewReader(attackerAddr.String() + "\n203.0.113.1\n203.0.113.9\n"))
	l.srv.SetEntries(grown)
	out, code = l.sikkerguard("--once")
	if code != 1 || !strings.Contains(out, "max_growth") {
		t.Fatalf("--once with 3× growth: exit %d, want 1 naming max_growth:\n%s", code, out)
	}
	if !strings.Contains(l.host.MustRun("nft", "list", "set", "inet", "sikkerguard", "blocklist4"), attackerAddr.String()) &&
		!strings.Contains(l.host.MustRun("nft", "list", "set", "inet", "sikkerguard", "blockhost4"), attackerAddr.String()) {
		t.Error("old list lost after a refused update")
	}
	if ok, why := l.blocked(attackerAddr); !ok {
		t.Errorf("attacker not blocked after a refused update: %s", why)
	}
	l.sikkerguard("--cleanup")
}

func TestDryRunNeverTouchesTheFirewall(t *testing.T) {
	l := newOnceLab(t, attackerAddr.String()+"\n")
	before := l.ruleset()
	out, code := l.sikkerguard("--once", "--dry-run")
	if code != 0 || !strings.Contains(out, "Dry run: would block 1 IPs") {
		t.Fatalf("--dry-run exit %d:\n%s", code, out)
	}
	if after := l.ruleset(); after != before {
		t.Errorf("--dry-run changed the ruleset:\n%s", after)
	}
	if !l.delivered(attackerAddr) {
		t.Error("attacker blocked by a dry run")
	}
}

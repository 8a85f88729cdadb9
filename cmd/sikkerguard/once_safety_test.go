package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/mock"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// The never-block list of `--once` is the daemon's: the peer namespace is
// the host's gateway, resolver and API server at once, and sends from each
// of those addresses and from an address of the runtime whitelist.
var (
	gatewayAddr  = netip.MustParseAddr("192.0.2.2")
	resolverAddr = netip.MustParseAddr("192.0.2.53")
	apiAddr      = netip.MustParseAddr("198.51.100.80")
	runtimeAddr  = netip.MustParseAddr("198.51.100.99")
)

type safetyLab struct {
	*onceLab
}

// newSafetyLab builds host ⇄ peer where the peer is the default gateway,
// runs the mock API on apiAddr inside the peer, and lists the host's
// resolver in /etc/netns/<host>/resolv.conf, which `ip netns exec` mounts
// over /etc/resolv.conf for the binary.
func newSafetyLab(t *testing.T, list, safetyExtra string) *safetyLab {
	testnet.RequireRoot(t)
	l := &onceLab{probes: probes{t: t}, bin: buildBinary(t), firewall: nftFirewall}
	var peer []netip.Prefix
	for _, a := range []netip.Addr{gatewayAddr, resolverAddr, attackerAddr, friendAddr, apiAddr, runtimeAddr} {
		peer = append(peer, netip.PrefixFrom(a, 24))
	}
	l.lab = testnet.NewLab(t, "os", testnet.Link{HostIf: "eth0", PeerIf: "eth0",
		Host: []netip.Prefix{netip.PrefixFrom(testnet.Host4, 24)}, Peer: peer})
	l.host = l.lab.Host
	l.host.MustRun("ip", "route", "add", "default", "via", gatewayAddr.String())
	l.lab.Peer.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")

	resolvDir := filepath.Join("/etc/netns", l.host.Name)
	if err := os.MkdirAll(resolvDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(resolvDir) })
	if err := os.WriteFile(filepath.Join(resolvDir, "resolv.conf"), []byte("nameserver "+resolverAddr.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	entries, err := mock.ParseList(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	if l.srv, err = mock.New(mock.Options{Key: testKey, Entries: entries}); err != nil {
		t.Fatal(err)
	}
	if err := l.lab.Peer.Do(func() error { return l.srv.Start(netip.AddrPortFrom(apiAddr, 8080).String()) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.srv.Close() })

	dir := t.TempDir()
	l.stateDir = filepath.Join(dir, "state")
	l.cfgPath = filepath.Join(dir, "sikkerguard.yaml")
	if err := os.MkdirAll(l.stateDir, 0o750); err != nil {
		t.Fatal(err)
	}
	wl := `{"prefixes":["` + runtimeAddr.String() + `/32"]}`
	if err := os.WriteFile(filepath.Join(l.stateDir, "whitelist.json"), []byte(wl), 0o640); err != nil {
		t.Fatal(err)
	}
	sl := &safetyLab{l}
	sl.writeSafety(safetyExtra)
	return sl
}

// writeSafety writes the lab's config with extra keys in its safety
// section.
func (l *safetyLab) writeSafety(extra string) {
	cfg := "api:\n  url: " + l.srv.URL() + "\n" + l.firewall +
		"safety:\n  strip_private: false\n" + extra +
		"state_dir: " + l.stateDir + "\n"
	if err := os.WriteFile(l.cfgPath, []byte(cfg), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

func TestOnceNeverBlocksGatewayResolverAPIAndRuntimeWhitelist(t *testing.T) {
	protected := []netip.Addr{gatewayAddr, resolverAddr, apiAddr, runtimeAddr}
	var list strings.Builder
	for _, a := range append(protected, attackerAddr) {
		list.WriteString(a.String() + "\n")
	}
	l := newSafetyLab(t, list.String(), "")
	out, code := l.sikkerguard("--once")
	if code != 0 {
		t.Fatalf("--once exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "Safety whitelist: ") || !strings.Contains(out, "Blocking 1 IPs") {
		t.Errorf("output lacks the safety line or blocks more than the attacker:\n%s", out)
	}
	for _, a := range protected {
		if !l.delivered(a) {
			t.Errorf("%s is listed and protected, but its packets were dropped", a)
		}
	}
	if ok, why := l.blocked(attackerAddr); !ok {
		t.Errorf("the listed attacker not blocked: %s", why)
	}
	if !l.delivered(friendAddr) {
		t.Error("an unlisted address was blocked")
	}
	l.sikkerguard("--cleanup")
}

func TestOnceRollsBackAListThatCutsTheAPIOff(t *testing.T) {
	// Without auto_whitelist nothing protects the API: the list cuts it
	// off, the check after the apply sees it and restores the empty table.
	l := newSafetyLab(t, apiAddr.String()+"\n"+attackerAddr.String()+"\n", "  auto_whitelist: false\n")
	out, code := l.sikkerguard("--once")
	if code != 1 || !strings.Contains(out, "RolledBack") || !strings.Contains(out, "api "+apiAddr.String()+":8080") {
		t.Fatalf("--once exit %d, want 1 with a rollback naming the API:\n%s", code, out)
	}
	if !l.delivered(apiAddr) || !l.delivered(attackerAddr) {
		t.Error("the rolled-back list is still in force")
	}
	if _, err := os.Stat(filepath.Join(l.stateDir, "feeds", "sikkerapi.list")); err == nil {
		t.Error("the rolled-back list was saved as the last good list")
	}
	l.sikkerguard("--cleanup")
}

package nft

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/logging"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

var (
	goodAddr4 = netip.MustParseAddr("192.0.2.2")
	badAddr4  = netip.MustParseAddr("192.0.2.50") // in 192.0.2.48/28
	wlAddr4   = netip.MustParseAddr("192.0.2.55") // in the range, whitelisted
	newAddr4  = netip.MustParseAddr("192.0.2.77") // listed only by the "new" lists
	goodAddr6 = netip.MustParseAddr("2001:db8:2::2")
	badAddr6  = netip.MustParseAddr("2001:db8:1::bad")
	wlAddr6   = netip.MustParseAddr("2001:db8:1::55")
)

// lab is the shared two-namespace lab: the backend runs in Host, every
// source address is in Peer.
type lab struct{ *testnet.Lab }

func newLab(t *testing.T) lab {
	t.Helper()
	testnet.RequireRoot(t)
	pfx := func(a netip.Addr, bits int) netip.Prefix { return netip.PrefixFrom(a, bits) }
	return lab{testnet.NewLab(t, "n", testnet.Link{
		Host: []netip.Prefix{pfx(testnet.Host4, 24), pfx(testnet.Host6, 64), netip.MustParsePrefix("2001:db8:2::1/64")},
		Peer: []netip.Prefix{pfx(goodAddr4, 24), pfx(badAddr4, 24), pfx(wlAddr4, 24), pfx(newAddr4, 24),
			pfx(goodAddr6, 64), pfx(badAddr6, 64), pfx(wlAddr6, 64)},
	})}
}

var set = testnet.Set

func (l lab) backend(t *testing.T, cfg testConfig) *Backend {
	t.Helper()
	b, err := New(cfg.settings(), logging.Checked(t), WithNetNSFd(l.Host.FD()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var blockList = []string{"192.0.2.48/28", "2001:db8:1::bad/128"}

func TestBlocksTrafficPerHook(t *testing.T) {
	for _, hook := range []firewall.Hook{HookPrerouting, HookInput} {
		t.Run(string(hook), func(t *testing.T) {
			l := newLab(t)
			b := l.backend(t, testConfig{Hooks: []firewall.Hook{hook}, IPv6: true, LogGroup: 7})
			if err := b.Apply(firewall.Lists{Block: set(blockList...), Allow: set("192.0.2.55/32", "2001:db8:1::55/128")}); err != nil {
				t.Fatal(err)
			}
			for _, fam := range []struct {
				fw, good, bad, wl netip.Addr
			}{{testnet.Host4, goodAddr4, badAddr4, wlAddr4}, {testnet.Host6, goodAddr6, badAddr6, wlAddr6}} {
				if !l.Delivers(t, l.UDP(fam.good)) {
					t.Errorf("UDP from unlisted %v was dropped", fam.good)
				}
				if !l.Delivers(t, l.UDP(fam.wl)) {
					t.Errorf("UDP from whitelisted %v inside a listed range was dropped", fam.wl)
				}
				l.AssertBlocked(t, l.UDP(fam.bad))
				tcp := netip.AddrPortFrom(fam.fw, 5001)
				l.Host.ServeTCP(tcp)
				if !l.Delivers(t, l.TCP(fam.good, tcp)) {
					t.Errorf("TCP from unlisted %v did not connect", fam.good)
				}
				l.AssertBlocked(t, l.TCP(fam.bad, tcp))
				if !l.Delivers(t, l.ICMP(fam.good, fam.fw)) {
					t.Errorf("ping from unlisted %v unanswered", fam.good)
				}
				l.AssertBlocked(t, l.ICMP(fam.bad, fam.fw))
			}
			d, err := b.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if d.Packets4 == 0 || d.Packets6 == 0 {
				t.Errorf("counters %+v, want drops in both families", d)
			}
		})
	}
}

// TestNeighbourDiscoveryAcrossBlockedPrefix blocks the whole /48 holding the
// peer: the firewall must still resolve the peer's link-layer address.
func TestNeighbourDiscoveryAcrossBlockedPrefix(t *testing.T) {
	for _, hook := range []firewall.Hook{HookPrerouting, HookInput} {
		t.Run(string(hook), func(t *testing.T) {
			l := newLab(t)
			b := l.backend(t, testConfig{Hooks: []firewall.Hook{hook}, IPv6: true})
			if err := b.Apply(firewall.Lists{Block: set("2001:db8:1::/48"), Allow: ipnet.Set{}}); err != nil {
				t.Fatal(err)
			}
			l.Host.MustRun("ip", "-6", "neigh", "flush", "dev", "fw0")
			// Any packet towards the peer triggers a neighbour solicitation;
			// a freshly created veth may lose the first one, so retry a little.
			var out string
			for range 4 {
				_ = l.Host.Ping(testnet.Host6, badAddr6, 1, time.Second)
				out = l.Host.MustRun("ip", "-6", "neigh", "show", badAddr6.String(), "dev", "fw0")
				if strings.Contains(out, "lladdr") {
					return
				}
			}
			t.Errorf("neighbour %v unresolved with its prefix blocked: %q", badAddr6, out)
		})
	}
}

func TestRejectAction(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{Hooks: []firewall.Hook{HookInput}, Action: firewall.ActionReject, IPv6: true})
	if err := b.Apply(firewall.Lists{Block: set(blockList...), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	tcp := netip.AddrPortFrom(testnet.Host4, 5001)
	l.Host.ServeTCP(tcp)
	start := time.Now()
	err := l.Peer.DialTCP(badAddr4, tcp, 3*time.Second)
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("TCP from listed source: %v, want a reset (connection refused)", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("reset took %v", time.Since(start))
	}
	out, _ := l.Peer.Run("ping", "-n", "-c", "1", "-W", "1", "-I", badAddr4.String(), testnet.Host4.String())
	if !strings.Contains(strings.ToLower(out), "prohibited") && !strings.Contains(strings.ToLower(out), "filtered") {
		t.Errorf("ping from listed source: no ICMP prohibited reply in %q", out)
	}
}

func TestGolden(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{IPv6: true, LogGroup: 7, LogRate: 20, LogPer: time.Minute})
	if err := b.Apply(firewall.Lists{Block: set("192.0.2.48/28", "255.255.255.255/32", "2001:db8:1::/48", "2001:db8::bad/128"), Allow: set("192.0.2.55/32", "2001:db8:1::55/128")}); err != nil {
		t.Fatal(err)
	}
	got := normalRecords(l.Host.MustRun("nft", "list", "table", "inet", TableName))
	const file = "testdata/table.golden"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("nft list table differs from %s (go test -update):\n%s", file, got)
	}
}

func hasElement(t *testing.T, ns *testnet.NS, set, elem string) bool {
	t.Helper()
	_, err := ns.Run("nft", "get", "element", "inet", TableName, set, "{ "+elem+" }")
	return err == nil
}

func TestAddressSpaceEdges(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{IPv6: true})
	all := set("0.0.0.0/0", "::/0").Subtract(set("192.0.2.0/24", "2001:db8::/32"))
	block := ipnet.Union(all, set("255.255.255.255/32"))
	if err := b.Apply(firewall.Lists{Block: block, Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		set, elem string
		want      bool
	}{
		{SetBlock4, "0.0.0.0", true},
		{SetBlock4, "192.0.1.255", true},
		{SetBlock4, "192.0.2.1", false},
		{SetBlock4, "255.255.255.254", true},
		{SetBlock4, "255.255.255.255", true},
		{SetBlock6, "::", true},
		{SetBlock6, "2001:db8::1", false},
		{SetBlock6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
	} {
		if got := hasElement(t, l.Host, c.set, c.elem); got != c.want {
			t.Errorf("%s holds %s = %v, want %v", c.set, c.elem, got, c.want)
		}
	}
	// Delete the open-ended top ranges again (delta), and add single tops.
	next := set("10.0.0.0/8", "255.255.255.255/32", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")
	if err := b.Update(next); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		set, elem string
		want      bool
	}{
		{SetBlock4, "255.255.255.254", false},
		{SetHosts4, "255.255.255.255", true},
		{SetBlock4, "10.1.2.3", true},
		{SetHosts6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true},
		{SetBlock6, "fffe::", false},
	} {
		if got := hasElement(t, l.Host, c.set, c.elem); got != c.want {
			t.Errorf("after update: %s holds %s = %v, want %v", c.set, c.elem, got, c.want)
		}
	}
	// Traffic from inside the huge IPv4 range is blocked, the hole passes.
	if err := b.Apply(firewall.Lists{Block: set("0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/24", "192.0.2.48/28", "192.0.3.0/24", "193.0.0.0/8"), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	if !l.Delivers(t, l.UDP(goodAddr4)) {
		t.Error("range edges: good source dropped")
	}
	l.AssertBlocked(t, l.UDP(badAddr4))
}

func TestRemoveRestoresRuleset(t *testing.T) {
	l := newLab(t)
	l.Host.MustRun("nft", "add table inet other { chain c { type filter hook input priority 0; counter; }; }")
	before := l.Host.MustRun("nft", "list", "ruleset")
	b := l.backend(t, testConfig{IPv6: true, LogGroup: 3})
	if err := b.Apply(firewall.Lists{Block: set(blockList...), Allow: set("192.0.2.55/32")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(set("192.0.2.0/24")); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Exists(); !ok || err != nil {
		t.Fatalf("Exists() = %v, %v after Apply", ok, err)
	}
	for i := range 2 { // the second Remove finds nothing and must succeed
		if err := b.Remove(); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if after := l.Host.MustRun("nft", "list", "ruleset"); after != before {
		t.Errorf("ruleset after Remove:\n%s\nwant:\n%s", after, before)
	}
	if ok, err := b.Exists(); ok || err != nil {
		t.Errorf("Exists() = %v, %v after Remove", ok, err)
	}
}

// TestFailedTransactionKeepsCopy sends an overlapping list: the kernel
// refuses the whole batch, and the next delta, computed from the backend's
// copy, must still apply cleanly.
func TestFailedTransactionKeepsCopy(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{})
	if err := b.Apply(firewall.Lists{Block: set("10.0.0.0/24", "10.0.2.0/24"), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	bad := ipnet.Set{V4: []ipnet.Range4{{Lo: 0x0a010000, Hi: 0x0a0100ff}, {Lo: 0x0a010010, Hi: 0x0a0101ff}}}
	err := b.ReplaceAll(bad)
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("overlapping replace: %v, want EEXIST", err)
	}
	if got := len(b.block.V4); got != 2 {
		t.Errorf("copy has %d ranges after a failed replace, want 2", got)
	}
	if !hasElement(t, l.Host, SetBlock4, "10.0.2.1") {
		t.Error("kernel lost the old list after a failed replace")
	}
	if err := b.Update(set("10.0.0.0/24", "10.0.4.0/24")); err != nil {
		t.Fatalf("update after failure: %v", err)
	}
	if hasElement(t, l.Host, SetBlock4, "10.0.2.1") || !hasElement(t, l.Host, SetBlock4, "10.0.4.1") {
		t.Error("update after a failed replace did not apply")
	}
}

func TestIntactNoticesAFlushedRuleset(t *testing.T) {
	l := newLab(t)
	cfg := testConfig{Hooks: []firewall.Hook{HookInput}, IPv6: true}
	b := l.backend(t, cfg)
	if ok, err := b.Intact(); err != nil || ok {
		t.Fatalf("Intact before any Apply = %v, %v; want false", ok, err)
	}
	if err := b.Apply(firewall.Lists{Block: set(badAddr4.String() + "/32"), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Intact(); err != nil || !ok {
		t.Fatalf("Intact after Apply = %v, %v; want true", ok, err)
	}
	// What a restart of nftables.service does with the stock nftables.conf.
	l.Host.MustRun("nft", "flush", "ruleset")
	if ok, err := b.Intact(); err != nil || ok {
		t.Fatalf("Intact after flush ruleset = %v, %v; want false", ok, err)
	}
	// A fresh backend, as the daemon builds one, restores it in full.
	b2 := l.backend(t, cfg)
	if err := b2.Apply(firewall.Lists{Block: set(badAddr4.String() + "/32"), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b2.Intact(); !ok || !hasElement(t, l.Host, SetHosts4, badAddr4.String()) {
		t.Error("the rebuilt table is incomplete")
	}
	b2.Remove()
}

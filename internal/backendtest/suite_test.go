package backendtest

import (
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"net/netip"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

var (
	blockList = set("192.0.2.48/28", "192.0.2.70/32", "2001:db8:1::100/120", "2001:db8:1::bad/128")
	allowList = set("192.0.2.55/32", "2001:db8:1::155/128")
)

// TestVerdicts checks what passes with a small list loaded: single
// addresses and addresses inside a range are dropped, unlisted and
// whitelisted ones (inside a listed range) pass, over UDP and TCP, IPv4 and
// IPv6.
func TestVerdicts(t *testing.T) {
	cases := []struct {
		name string
		src  netip.Addr
		pass bool
	}{
		{"v4 single address", host4, false},
		{"v4 inside a CIDR", range4, false},
		{"v4 unlisted", good4, true},
		{"v4 whitelisted inside a CIDR", wl4, true},
		{"v6 single address", host6, false},
		{"v6 inside a CIDR", range6, false},
		{"v6 unlisted", good6, true},
		{"v6 whitelisted inside a CIDR", wl6, true},
	}
	forEach(t, func(t *testing.T, l lab, bk backend) {
		fw := l.open(t, bk)
		if err := fw.Apply(firewall.Lists{Block: blockList, Allow: allowList}); err != nil {
			t.Fatal(err)
		}
		l.Host.ServeTCP(netip.AddrPortFrom(testnet.Host4, 5001))
		l.Host.ServeTCP(netip.AddrPortFrom(testnet.Host6, 5001))
		for _, tc := range cases {
			for _, p := range []struct {
				proto string
				probe testnet.Probe
			}{
				{"udp", l.UDP(tc.src)},
				{"tcp", l.TCP(tc.src, netip.AddrPortFrom(l.HostAddr(tc.src), 5001))},
			} {
				t.Run(tc.name+"/"+p.proto, func(t *testing.T) {
					if !tc.pass {
						l.AssertBlocked(t, p.probe)
					} else if !l.Delivers(t, p.probe) {
						t.Errorf("%s dropped, want it through", p.probe.Name)
					}
				})
			}
		}
	})
}

// movingList is list i of the replacement tests. It always holds
// 192.0.2.48/28 and 2001:db8:1::100/120; 192.0.2.70 and 2001:db8:1::bad are
// single entries in even lists and inside a range in odd ones. The random
// part changes every third list (seed), alternating between about 3,000 and
// 15,000 entries: list 1, 4, 7 … are new lists (a full replacement), the
// two after each are the same list with only the moving addresses changed (a
// small delta), so moves happen in full and delta replacements, both ways.
// 198.51.100.0/31 and 2001:db8:3::/126 keep the ranges' prefix lengths in
// use in every list.
func movingList(i int) ipnet.Set {
	seed := uint64(i+2) / 3
	n := 3000
	if seed%2 == 1 {
		n = 15_000
	}
	fixed := []string{"192.0.2.48/28", "2001:db8:1::100/120", "198.51.100.0/31", "2001:db8:3::/126"}
	if i%2 == 0 {
		return randomList(seed, n, append(fixed, "192.0.2.70/32", "2001:db8:1::bad/128")...)
	}
	return randomList(seed, n, append(fixed, "192.0.2.70/31", "2001:db8:1::bac/126")...)
}

// listed is every flooding source; each is in every list.
var listed = []netip.Addr{range4, host4, range6, host6}

// TestAtomicReplacement floods from sources listed in every list while 36
// replacements run (see movingList): not one datagram may pass. Afterwards an
// address new to the list is blocked as soon as Apply returns.
func TestAtomicReplacement(t *testing.T) {
	forEach(t, func(t *testing.T, l lab, bk backend) {
		fw := l.open(t, bk)
		if err := fw.Apply(firewall.Lists{Block: movingList(0), Allow: allowList}); err != nil {
			t.Fatal(err)
		}
		stop := l.Flood(listed...)
		for i := 1; i <= 36; i++ {
			if err := fw.Apply(firewall.Lists{Block: movingList(i), Allow: allowList}); err != nil {
				stop()
				t.Fatalf("replacement %d: %v", i, err)
			}
		}
		l.AssertFloodBlocked(t, stop(), "36 replacements")
		for _, a := range []netip.Addr{good4, good6, wl4, wl6, new4, new6} {
			if !l.Delivers(t, l.UDP(a)) {
				t.Errorf("control: %v dropped, but it is not listed", a)
			}
		}
		last := ipnet.Union(movingList(36), set("192.0.2.77/32", "2001:db8:1::77/128"))
		if err := fw.Apply(firewall.Lists{Block: last, Allow: allowList}); err != nil {
			t.Fatal(err)
		}
		for _, a := range []netip.Addr{new4, new6} {
			l.AssertBlocked(t, l.UDP(a)) // right after Apply returned
		}
	})
}

// TestAdoptAfterCrash: the first instance is abandoned with its objects in
// the kernel (a crash); five new instances, as five restarts would, each
// load another list while listed sources flood. Not one datagram may pass,
// and the last restart, loading the first list again, leaves the same layout
// as the first instance did: no duplicated rule, chain or set.
func TestAdoptAfterCrash(t *testing.T) {
	forEach(t, func(t *testing.T, l lab, bk backend) {
		if err := l.open(t, bk).Apply(firewall.Lists{Block: movingList(0), Allow: allowList}); err != nil {
			t.Fatal(err)
		}
		first := layout(t, l.Host)
		stop := l.Flood(listed...)
		for i, list := range []int{1, 2, 4, 3, 0} {
			if err := l.open(t, bk).Apply(firewall.Lists{Block: movingList(list), Allow: allowList}); err != nil {
				stop()
				t.Fatalf("restart %d: %v", i+1, err)
			}
		}
		if r := stop(); bk.keepsCounters {
			l.AssertFloodBlocked(t, r, "5 adoptions")
		} else if testnet.AssertNonePassed(t, r, "5 adoptions") {
			for _, a := range listed {
				l.AssertBlocked(t, l.UDP(a))
			}
		}
		if got := layout(t, l.Host); got != first {
			t.Errorf("layout after 5 adoptions differs from the first load:\n--- first\n%s\n--- now\n%s", first, got)
		}
		if !l.Delivers(t, l.UDP(wl4)) || !l.Delivers(t, l.UDP(good6)) {
			t.Error("control: whitelisted or unlisted source dropped after adoption")
		}
	})
}

// TestRemoveRestoresRuleset: with the administrator's own iptables,
// ip6tables and nftables rules in place, loading lists (full, delta, an
// adoption) and removing leaves `nft list ruleset`, iptables-save,
// ip6tables-save and the ipset names exactly as they were.
func TestRemoveRestoresRuleset(t *testing.T) {
	forEach(t, func(t *testing.T, l lab, bk backend) {
		l.Host.MustRun("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
		l.Host.MustRun("ip6tables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
		l.Host.MustRun("nft", "add", "table", "inet", "admin")
		l.Host.MustRun("nft", "add", "chain", "inet", "admin", "input", "{ type filter hook input priority 0; policy accept; }")
		l.Host.MustRun("nft", "add", "rule", "inet", "admin", "input", "tcp", "dport", "2222", "counter", "accept")
		before := ruleset(t, l.Host)

		a := l.open(t, bk)
		for _, i := range []int{0, 1, 2} {
			if err := a.Apply(firewall.Lists{Block: movingList(i), Allow: allowList}); err != nil {
				t.Fatalf("apply list %d: %v", i, err)
			}
		}
		b := l.open(t, bk)
		if err := b.Apply(firewall.Lists{Block: movingList(3), Allow: allowList}); err != nil {
			t.Fatalf("adopt: %v", err)
		}
		if ok, err := b.Exists(); err != nil || !ok {
			t.Errorf("Exists() = %v, %v after Apply", ok, err)
		}
		if during := ruleset(t, l.Host); during == before {
			t.Fatal("the ruleset did not change while lists were loaded")
		}
		// Both instances remove; the second call finds nothing.
		for _, fw := range []backendUnderTest{b, a} {
			if err := fw.Remove(); err != nil {
				t.Fatalf("Remove: %v", err)
			}
		}
		if after := ruleset(t, l.Host); after != before {
			t.Errorf("ruleset after Remove differs:\n--- before\n%s--- after\n%s", before, after)
		}
		if ok, err := a.Exists(); err != nil || ok {
			t.Errorf("Exists() = %v, %v after Remove", ok, err)
		}
	})
}

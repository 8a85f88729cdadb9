package backendtest

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

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
		if err := fw.Apply(blockList, allowList); err != nil {
			t.Fatal(err)
		}
		dst := func(src netip.Addr, port uint16) netip.AddrPort {
			if src.Is4() {
				return netip.AddrPortFrom(fw4, port)
			}
			return netip.AddrPortFrom(fw6, port)
		}
		sinks := map[bool]*testnet.UDPSink{}
		for _, v4 := range []bool{true, false} {
			a := fw6
			if v4 {
				a = fw4
			}
			sinks[v4] = l.fw.ListenUDP(netip.AddrPortFrom(a, 5000))
			l.fw.ServeTCP(netip.AddrPortFrom(a, 5001))
		}
		for _, tc := range cases {
			t.Run(tc.name+"/udp", func(t *testing.T) {
				rounds := 1
				if tc.pass {
					rounds = 3
				}
				if got := l.udpPasses(t, sinks[tc.src.Is4()], tc.src, rounds); got != tc.pass {
					t.Errorf("UDP from %v passed = %v, want %v", tc.src, got, tc.pass)
				}
			})
			t.Run(tc.name+"/tcp", func(t *testing.T) {
				timeout := 500 * time.Millisecond
				if tc.pass {
					timeout = 3 * time.Second
				}
				err := l.peer.DialTCP(tc.src, dst(tc.src, 5001), timeout)
				if got := err == nil; got != tc.pass {
					t.Errorf("TCP from %v connected = %v (%v), want %v", tc.src, got, err, tc.pass)
				}
			})
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

// floodTargets starts a UDP receiver per family in fw.
func (l lab) floodTargets() (sinks map[bool]*testnet.UDPSink, dst map[bool]netip.AddrPort) {
	sinks = map[bool]*testnet.UDPSink{
		true:  l.fw.ListenUDP(netip.AddrPortFrom(fw4, 5000)),
		false: l.fw.ListenUDP(netip.AddrPortFrom(fw6, 5000)),
	}
	return sinks, map[bool]netip.AddrPort{true: sinks[true].Addr(), false: sinks[false].Addr()}
}

// listed is every flooding source; each is in every list.
var listed = []netip.Addr{range4, host4, range6, host6}

// passed sums what arrived from the listed sources, per source.
func passed(sinks map[bool]*testnet.UDPSink) (total int64, per string) {
	var b strings.Builder
	for _, a := range listed {
		n := sinks[a.Is4()].CountFrom(a)
		total += n
		if n > 0 {
			b.WriteString(" " + a.String() + ":" + strconv.FormatInt(n, 10))
		}
	}
	return total, b.String()
}

// TestAtomicReplacement floods from sources listed in every list while 36
// replacements run (see movingList): not one datagram may pass. Afterwards an
// address new to the list is blocked as soon as Apply returns.
func TestAtomicReplacement(t *testing.T) {
	forEach(t, func(t *testing.T, l lab, bk backend) {
		fw := l.open(t, bk)
		sinks, dst := l.floodTargets()
		if err := fw.Apply(movingList(0), allowList); err != nil {
			t.Fatal(err)
		}
		stop := l.flood(t, dst, listed...)
		for i := 1; i <= 36; i++ {
			if err := fw.Apply(movingList(i), allowList); err != nil {
				stop()
				t.Fatalf("replacement %d: %v", i, err)
			}
		}
		sent := stop()
		time.Sleep(100 * time.Millisecond)
		if got, per := passed(sinks); got != 0 || sent == 0 {
			t.Errorf("%d of %d probes from listed sources passed during 36 replacements:%s", got, sent, per)
		} else {
			t.Logf("0 of %d probes passed", sent)
		}
		for _, a := range []netip.Addr{good4, good6, wl4, wl6, new4, new6} {
			if !l.udpPasses(t, sinks[a.Is4()], a, 3) {
				t.Errorf("control: %v dropped, but it is not listed", a)
			}
		}
		last := ipnet.Union(movingList(36), set("192.0.2.77/32", "2001:db8:1::77/128"))
		if err := fw.Apply(last, allowList); err != nil {
			t.Fatal(err)
		}
		for _, a := range []netip.Addr{new4, new6} {
			if l.udpPasses(t, sinks[a.Is4()], a, 1) {
				t.Errorf("newly listed %v passed right after Apply returned", a)
			}
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
		sinks, dst := l.floodTargets()
		if err := l.open(t, bk).Apply(movingList(0), allowList); err != nil {
			t.Fatal(err)
		}
		first := layout(t, l.fw)
		stop := l.flood(t, dst, listed...)
		for i, list := range []int{1, 2, 4, 3, 0} {
			if err := l.open(t, bk).Apply(movingList(list), allowList); err != nil {
				stop()
				t.Fatalf("restart %d: %v", i+1, err)
			}
		}
		sent := stop()
		time.Sleep(100 * time.Millisecond)
		if got, per := passed(sinks); got != 0 || sent == 0 {
			t.Errorf("%d of %d probes from listed sources passed during 5 adoptions:%s", got, sent, per)
		} else {
			t.Logf("0 of %d probes passed", sent)
		}
		if got := layout(t, l.fw); got != first {
			t.Errorf("layout after 5 adoptions differs from the first load:\n--- first\n%s\n--- now\n%s", first, got)
		}
		if !l.udpPasses(t, sinks[true], wl4, 3) || !l.udpPasses(t, sinks[false], good6, 3) {
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
		l.fw.MustRun("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
		l.fw.MustRun("ip6tables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
		l.fw.MustRun("nft", "add", "table", "inet", "admin")
		l.fw.MustRun("nft", "add", "chain", "inet", "admin", "input", "{ type filter hook input priority 0; policy accept; }")
		l.fw.MustRun("nft", "add", "rule", "inet", "admin", "input", "tcp", "dport", "2222", "counter", "accept")
		before := ruleset(t, l.fw)

		a := l.open(t, bk)
		for _, i := range []int{0, 1, 2} {
			if err := a.Apply(movingList(i), allowList); err != nil {
				t.Fatalf("apply list %d: %v", i, err)
			}
		}
		b := l.open(t, bk)
		if err := b.Apply(movingList(3), allowList); err != nil {
			t.Fatalf("adopt: %v", err)
		}
		if ok, err := b.Exists(); err != nil || !ok {
			t.Errorf("Exists() = %v, %v after Apply", ok, err)
		}
		if during := ruleset(t, l.fw); during == before {
			t.Fatal("the ruleset did not change while lists were loaded")
		}
		// Both instances remove; the second call finds nothing.
		for _, fw := range []firewall{b, a} {
			if err := fw.Remove(); err != nil {
				t.Fatalf("Remove: %v", err)
			}
		}
		if after := ruleset(t, l.fw); after != before {
			t.Errorf("ruleset after Remove differs:\n--- before\n%s--- after\n%s", before, after)
		}
		if ok, err := a.Exists(); err != nil || ok {
			t.Errorf("Exists() = %v, %v after Remove", ok, err)
		}
	})
}

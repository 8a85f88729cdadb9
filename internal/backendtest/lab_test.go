package backendtest

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	sgfw "github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/firewall/firewalltest"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/ipset"
	"github.com/sikkerapi/sikkerguard/internal/nft"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// firewall is what the daemon asks of a backend.
type firewall interface {
	Apply(block, allow ipnet.Set) error
	Remove() error
	Exists() (bool, error)
}

// backend opens one more instance of a backend in a namespace, as a new
// process would.
type backend struct {
	name string
	open func(ns *testnet.NS) (firewall, error)
}

var discard = slog.New(slog.DiscardHandler)

// settings are the config file's defaults on one hook.
func settings(hook sgfw.Hook) sgfw.Settings {
	return firewalltest.Settings(sgfw.Settings{IPv6: true, LogGroup: 7}, hook)
}

// backends is every backend and hook the suite runs against.
var backends = []backend{
	{"nft-input", func(ns *testnet.NS) (firewall, error) {
		return nft.New(settings(nft.HookInput), discard, nft.WithNetNSFd(ns.FD()))
	}},
	{"nft-prerouting", func(ns *testnet.NS) (firewall, error) {
		return nft.New(settings(nft.HookPrerouting), discard, nft.WithNetNSFd(ns.FD()))
	}},
	{"iptables-INPUT", func(ns *testnet.NS) (firewall, error) {
		return ipset.New(settings(ipset.HookInput), discard, ipset.WithNetNS(ns.Name))
	}},
}

// Addresses of the lab. The peer owns every source address; fw runs the
// backend and the receivers.
var (
	fw4    = netip.MustParseAddr("192.0.2.1")
	good4  = netip.MustParseAddr("192.0.2.2")  // never listed
	range4 = netip.MustParseAddr("192.0.2.50") // inside 192.0.2.48/28
	wl4    = netip.MustParseAddr("192.0.2.55") // inside the range, whitelisted
	host4  = netip.MustParseAddr("192.0.2.70") // a single entry, or inside 192.0.2.70/31
	new4   = netip.MustParseAddr("192.0.2.77") // listed only at the end
	fw6    = netip.MustParseAddr("2001:db8:1::1")
	good6  = netip.MustParseAddr("2001:db8:1::2")
	range6 = netip.MustParseAddr("2001:db8:1::150") // inside 2001:db8:1::100/120
	wl6    = netip.MustParseAddr("2001:db8:1::155")
	host6  = netip.MustParseAddr("2001:db8:1::bad") // a single entry, or inside 2001:db8:1::bac/126
	new6   = netip.MustParseAddr("2001:db8:1::77")
)

// lab is a firewall namespace and a peer namespace joined by a veth pair.
type lab struct {
	fw, peer *testnet.NS
}

func newLab(t *testing.T) lab {
	t.Helper()
	testnet.RequireRoot(t)
	l := lab{fw: testnet.New(t, "bfw"), peer: testnet.New(t, "bpe")}
	var peer []netip.Prefix
	for _, a := range []netip.Addr{good4, range4, wl4, host4, new4} {
		peer = append(peer, netip.PrefixFrom(a, 24))
	}
	for _, a := range []netip.Addr{good6, range6, wl6, host6, new6} {
		peer = append(peer, netip.PrefixFrom(a, 64))
	}
	testnet.Veth(t, l.fw, "fw0", []netip.Prefix{netip.PrefixFrom(fw4, 24), netip.PrefixFrom(fw6, 64)}, l.peer, "pe0", peer)
	l.peer.WaitLink(t, [2]netip.Addr{good4, fw4}, [2]netip.Addr{good6, fw6})
	return l
}

// open returns a new instance of bk working in the lab's firewall namespace.
func (l lab) open(t *testing.T, bk backend) firewall {
	t.Helper()
	fw, err := bk.open(l.fw)
	if err != nil {
		t.Fatalf("new %s backend: %v", bk.name, err)
	}
	return fw
}

// forEach runs f in a fresh lab for every backend.
func forEach(t *testing.T, f func(t *testing.T, l lab, bk backend)) {
	for _, bk := range backends {
		t.Run(bk.name, func(t *testing.T) { f(t, newLab(t), bk) })
	}
}

func set(prefixes ...string) ipnet.Set {
	var s ipnet.Set
	for _, p := range prefixes {
		s.AddPrefix(netip.MustParsePrefix(p))
	}
	s.Merge()
	return s
}

// randomList returns about n entries plus extra: IPv4 single addresses and
// /24s from 10.0.0.0/8, and a quarter as many IPv6 addresses and /64s from
// 2001:db8:ff00::/40. No lab address is in the random part.
func randomList(seed uint64, n int, extra ...string) ipnet.Set {
	r := rand.New(rand.NewPCG(seed, 1))
	s := set(extra...)
	for range n {
		a := 0x0a000000 | r.Uint32N(1<<24)
		if r.IntN(10) == 0 {
			s.V4 = append(s.V4, ipnet.Range4{Lo: a &^ 0xff, Hi: a | 0xff})
		} else {
			s.V4 = append(s.V4, ipnet.Range4{Lo: a, Hi: a})
		}
	}
	for range n / 4 {
		hi := 0x20010db8ff000000 | r.Uint64N(1<<24)
		if r.IntN(10) == 0 {
			s.V6 = append(s.V6, ipnet.Range6{Lo: ipnet.U128{Hi: hi}, Hi: ipnet.U128{Hi: hi, Lo: ^uint64(0)}})
		} else {
			a := ipnet.U128{Hi: hi, Lo: r.Uint64()}
			s.V6 = append(s.V6, ipnet.Range6{Lo: a, Hi: a})
		}
	}
	s.Merge()
	return s
}

// udpPasses sends a few datagrams from src, up to rounds times, and reports
// whether any arrived. Checks that expect a pass use several rounds, so a
// busy machine (make check runs packages in parallel) does not fail them;
// checks that expect a drop need one 300 ms window.
func (l lab) udpPasses(t *testing.T, sink *testnet.UDPSink, src netip.Addr, rounds int) bool {
	t.Helper()
	s := l.peer.DialUDP(src, sink.Addr())
	before := sink.CountFrom(src)
	for range rounds {
		for range 3 {
			if err := s.Send([]byte("probe")); err != nil {
				t.Fatalf("send from %v: %v", src, err)
			}
		}
		deadline := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(deadline) {
			if sink.CountFrom(src) > before {
				return true
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return false
}

// flood sends UDP from every src until stop is called, which returns the
// number of datagrams sent.
func (l lab) flood(t *testing.T, dst map[bool]netip.AddrPort, srcs ...netip.Addr) (stop func() int64) {
	t.Helper()
	senders := make([]*testnet.UDPSender, len(srcs))
	for i, src := range srcs {
		senders[i] = l.peer.DialUDP(src, dst[src.Is4()])
	}
	return testnet.Flood(senders...)
}

var (
	// "# Generated by iptables-nft-save v1.8.9 (nf_tables) on Sun Nov 22 …"
	// and "# Completed on …" carry the time of the dump.
	savedTime = regexp.MustCompile(`(?m)^# (Generated by|Completed on) .*\n`)
	counters  = regexp.MustCompile(`packets \d+ bytes \d+|\[\d+:\d+\]`)
)

// ruleset is the firewall state of ns that Remove must restore: the whole
// nftables ruleset (elements included), both iptables dumps and the ipset
// names.
func ruleset(t *testing.T, ns *testnet.NS) string {
	t.Helper()
	return "## nft list ruleset\n" + ns.MustRun("nft", "list", "ruleset") +
		"## iptables-save\n" + savedTime.ReplaceAllString(ns.MustRun("iptables-save"), "") +
		"## ip6tables-save\n" + savedTime.ReplaceAllString(ns.MustRun("ip6tables-save"), "") +
		"## ipset list -n\n" + ns.MustRun("ipset", "list", "-n")
}

// layout is the ruleset without set elements and counter values, its lines
// sorted: two instances that loaded the same configuration must leave the
// same layout, whatever the lists, and a duplicated rule shows as an extra
// line.
func layout(t *testing.T, ns *testnet.NS) string {
	t.Helper()
	all := ns.MustRun("nft", "-t", "list", "ruleset") + ns.MustRun("iptables-save") + ns.MustRun("ip6tables-save") +
		ns.MustRun("ipset", "list", "-n")
	all = counters.ReplaceAllString(savedTime.ReplaceAllString(all, ""), "")
	lines := strings.Split(all, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

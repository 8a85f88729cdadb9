package ipset

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

var (
	fwAddr4   = netip.MustParseAddr("192.0.2.1")
	goodAddr4 = netip.MustParseAddr("192.0.2.2")
	badAddr4  = netip.MustParseAddr("192.0.2.50") // in 192.0.2.48/28
	wlAddr4   = netip.MustParseAddr("192.0.2.55") // in the range, whitelisted
	hostAddr4 = netip.MustParseAddr("192.0.2.70") // listed as a single address
	newAddr4  = netip.MustParseAddr("192.0.2.77") // listed only by the "new" lists
	fwAddr6   = netip.MustParseAddr("2001:db8:1::1")
	goodAddr6 = netip.MustParseAddr("2001:db8:2::2")
	badAddr6  = netip.MustParseAddr("2001:db8:1::150") // in 2001:db8:1::100/120
	wlAddr6   = netip.MustParseAddr("2001:db8:1::155")
	hostAddr6 = netip.MustParseAddr("2001:db8:1::bad")
)

var (
	blockList = []string{"192.0.2.48/28", "192.0.2.70/32", "2001:db8:1::100/120", "2001:db8:1::bad/128"}
	allowList = []string{"192.0.2.55/32", "2001:db8:1::155/128"}
)

// lab is a firewall namespace (fw) and a peer namespace sending to it.
type lab struct {
	fw, peer *testnet.NS
}

func newLab(t *testing.T) lab {
	t.Helper()
	testnet.RequireRoot(t)
	l := lab{fw: testnet.New(t, "ipf"), peer: testnet.New(t, "ipp")}
	pfx := func(a netip.Addr, bits int) netip.Prefix { return netip.PrefixFrom(a, bits) }
	testnet.Veth(t, l.fw, "fw0", []netip.Prefix{pfx(fwAddr4, 24), pfx(fwAddr6, 64), netip.MustParsePrefix("2001:db8:2::1/64")},
		l.peer, "pe0", []netip.Prefix{pfx(goodAddr4, 24), pfx(badAddr4, 24), pfx(wlAddr4, 24), pfx(hostAddr4, 24), pfx(newAddr4, 24),
			pfx(badAddr6, 64), pfx(wlAddr6, 64), pfx(hostAddr6, 64), pfx(goodAddr6, 64)})
	l.peer.WaitLink(t, [2]netip.Addr{goodAddr4, fwAddr4}, [2]netip.Addr{goodAddr6, fwAddr6})
	return l
}

func (l lab) backend(t *testing.T, cfg testConfig) *Backend {
	t.Helper()
	b, err := New(cfg.settings(), nil, WithNetNS(l.fw.Name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// udpPasses sends a few datagrams from src and reports whether any arrived.
func (l lab) udpPasses(t *testing.T, sink *testnet.UDPSink, src netip.Addr) bool {
	t.Helper()
	s := l.peer.DialUDP(src, sink.Addr())
	before := sink.CountFrom(src)
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
	return false
}

func TestBlocksTraffic(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{IPv6: true, LogGroup: 7})
	if err := b.Apply(set(blockList...), set(allowList...)); err != nil {
		t.Fatal(err)
	}
	if c, err := b.Counters(); err != nil || c != (firewall.Counters{}) {
		t.Errorf("Counters before any drop = %+v, %v; want zero", c, err)
	}
	for _, fam := range []struct {
		fw, good, bad, host, wl netip.Addr
	}{{fwAddr4, goodAddr4, badAddr4, hostAddr4, wlAddr4}, {fwAddr6, goodAddr6, badAddr6, hostAddr6, wlAddr6}} {
		sink := l.fw.ListenUDP(netip.AddrPortFrom(fam.fw, 5000))
		if !l.udpPasses(t, sink, fam.good) {
			t.Errorf("UDP from unlisted %v was dropped", fam.good)
		}
		if !l.udpPasses(t, sink, fam.wl) {
			t.Errorf("UDP from whitelisted %v inside a listed range was dropped", fam.wl)
		}
		if l.udpPasses(t, sink, fam.bad) {
			t.Errorf("UDP from %v inside a listed range passed", fam.bad)
		}
		if l.udpPasses(t, sink, fam.host) {
			t.Errorf("UDP from listed single address %v passed", fam.host)
		}
		tcp := netip.AddrPortFrom(fam.fw, 5001)
		l.fw.ServeTCP(tcp)
		if err := l.peer.DialTCP(fam.good, tcp, 2*time.Second); err != nil {
			t.Errorf("TCP from unlisted %v: %v", fam.good, err)
		}
		if err := l.peer.DialTCP(fam.bad, tcp, 500*time.Millisecond); err == nil {
			t.Errorf("TCP from listed %v connected", fam.bad)
		}
	}
	if got := l.fw.MustRun("ipset", "list", "-t", SetNets6); !strings.Contains(got, "family inet6") {
		t.Errorf("%s is not an inet6 set:\n%s", SetNets6, got)
	}
	// The backend's own copy, from which it plans the next change.
	if !b.synced || !b.rules || len(b.block.V4) != 2 || len(b.block.V6) != 2 || len(b.allow.V4) != 1 {
		t.Errorf("copy: synced %v, rules %v, block %d+%d ranges, allow %d; want true, true, 2+2, 1",
			b.synced, b.rules, len(b.block.V4), len(b.block.V6), len(b.allow.V4))
	}
	// The drops above, and only those, were counted: the good and the
	// whitelisted sources reached the sink.
	c, err := b.Counters()
	if err != nil || c.Packets4 == 0 || c.Packets6 == 0 || c.Bytes4 < 20*c.Packets4 || c.Bytes6 < 40*c.Packets6 {
		t.Errorf("Counters after drops = %+v, %v; want packets and bytes in both families", c, err)
	}
}

func TestRejectAction(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{Action: firewall.ActionReject})
	if err := b.Apply(set(blockList...), ipnet.Set{}); err != nil {
		t.Fatal(err)
	}
	tcp := netip.AddrPortFrom(fwAddr4, 5001)
	l.fw.ServeTCP(tcp)
	err := l.peer.DialTCP(badAddr4, tcp, 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("TCP from listed %v: %v, want connection refused by REJECT", badAddr4, err)
	}
	if c, err := b.Counters(); err != nil || c.Packets4 == 0 {
		t.Errorf("Counters after a reject = %+v, %v; want the rejected SYN counted", c, err)
	}
	if err := l.peer.DialTCP(goodAddr4, tcp, 2*time.Second); err != nil {
		t.Errorf("TCP from unlisted %v: %v", goodAddr4, err)
	}
}

func TestDockerUserHook(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{Hooks: []firewall.Hook{HookDockerUser}})
	err := b.Apply(set(blockList...), ipnet.Set{})
	if err == nil || !strings.Contains(err.Error(), "DOCKER-USER: chain not found") {
		t.Fatalf("Apply without a DOCKER-USER chain: %v", err)
	}
	l.fw.MustRun("iptables", "-N", string(HookDockerUser))
	l.fw.MustRun("iptables", "-A", string(HookDockerUser), "-j", "RETURN")
	if err := b.Apply(set(blockList...), ipnet.Set{}); err != nil {
		t.Fatal(err)
	}
	if first := rulesOf(t, l.fw, "iptables", string(HookDockerUser))[0]; first != "-A DOCKER-USER -m comment --comment sikkerguard -j SIKKERGUARD" {
		t.Errorf("first DOCKER-USER rule = %q", first)
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(t, l.fw, "iptables", string(HookDockerUser)); len(got) != 1 {
		t.Errorf("DOCKER-USER after Remove: %q", got)
	}
}

// rulesOf returns the -A lines of one chain.
func rulesOf(t *testing.T, ns *testnet.NS, ipt, chain string) []string {
	t.Helper()
	var rules []string
	for _, l := range strings.Split(ns.MustRun(ipt, "-S", chain), "\n") {
		if strings.HasPrefix(l, "-A ") {
			rules = append(rules, l)
		}
	}
	return rules
}

var savedComment = regexp.MustCompile(`(?m)^#.*\n`)

// snapshot is everything Remove must leave as it found it.
func snapshot(t *testing.T, ns *testnet.NS) string {
	t.Helper()
	return savedComment.ReplaceAllString(ns.MustRun("iptables-save")+ns.MustRun("ip6tables-save"), "") +
		ns.MustRun("ipset", "list", "-n")
}

func TestRemoveRestoresState(t *testing.T) {
	l := newLab(t)
	// The host's own rules and sets, which must survive untouched.
	for _, ipt := range []string{"iptables", "ip6tables"} {
		l.fw.MustRun(ipt, "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
		l.fw.MustRun(ipt, "-A", "FORWARD", "-p", "udp", "--dport", "53", "-j", "ACCEPT")
	}
	l.fw.MustRun("ipset", "create", "admin-list", "hash:ip")
	before := snapshot(t, l.fw)

	cfg := testConfig{Hooks: []firewall.Hook{HookInput, HookForward}, IPv6: true, LogGroup: 3}
	b := l.backend(t, cfg)
	for range 2 {
		if err := b.Apply(set(blockList...), set(allowList...)); err != nil {
			t.Fatal(err)
		}
	}
	// A second Backend adopting the objects must not add a jump either.
	if err := l.backend(t, cfg).Apply(set(blockList...), set(allowList...)); err != nil {
		t.Fatal(err)
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, h := range cfg.Hooks {
			hook := string(h)
			rules := rulesOf(t, l.fw, ipt, hook)
			if len(rules) != 2 || rules[0] != "-A "+hook+" -m comment --comment sikkerguard -j SIKKERGUARD" {
				t.Errorf("%s %s: %q, want the jump first and once", ipt, hook, rules)
			}
		}
		if n := len(rulesOf(t, l.fw, ipt, Chain)); n != 3 {
			t.Errorf("%s %s has %d rules, want 3", ipt, Chain, n)
		}
	}
	if ok, err := b.Exists(); err != nil || !ok {
		t.Errorf("Exists() = %v, %v after Apply", ok, err)
	}
	for range 2 {
		if err := b.Remove(); err != nil {
			t.Fatal(err)
		}
	}
	if after := snapshot(t, l.fw); after != before {
		t.Errorf("state after Remove differs:\n--- before\n%s--- after\n%s", before, after)
	}
	if ok, err := b.Exists(); err != nil || ok {
		t.Errorf("Exists() = %v, %v after Remove", ok, err)
	}
}

// randomList returns n single addresses and /24s from 10.0.0.0/8 plus extra.
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
	s.Merge()
	return s
}

// flood sends UDP from each src until stop is called, which returns the
// number of datagrams sent.
func (l lab) flood(t *testing.T, dst netip.AddrPort, srcs ...netip.Addr) (stop func() int64) {
	senders := make([]*testnet.UDPSender, len(srcs))
	for i, src := range srcs {
		senders[i] = l.peer.DialUDP(src, dst)
	}
	return testnet.Flood(senders...)
}

// movingList is list i of the replacement tests: 192.0.2.48/28 always, and
// 192.0.2.70 alternately as a single address and inside 192.0.2.70/31, so
// it moves between the host and the net set. 198.51.100.0/31 keeps /31 in
// use, so that the move can be sent as a delta (see sentinel).
func movingList(seed uint64, n int, i int) ipnet.Set {
	if i%2 == 0 {
		return randomList(seed, n, "192.0.2.48/28", "192.0.2.70/32", "198.51.100.0/31")
	}
	return randomList(seed, n, "192.0.2.48/28", "192.0.2.70/31", "198.51.100.0/31")
}

// TestAtomicReplacement probes from listed addresses while 30 replacements
// (full swaps and deltas alternating) run: not one datagram may pass.
func TestAtomicReplacement(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{})
	sink := l.fw.ListenUDP(netip.AddrPortFrom(fwAddr4, 5000))
	if err := b.Apply(movingList(0, 2000, 0), ipnet.Set{}); err != nil {
		t.Fatal(err)
	}
	stop := l.flood(t, sink.Addr(), badAddr4, hostAddr4)
	seed := uint64(0)
	for i := 1; i <= 30; i++ {
		if i%2 == 1 {
			seed++ // a new random list: a full swap
		}
		// Same seed, host moved: a delta of a few elements.
		if err := b.Apply(movingList(seed, 2000, i), ipnet.Set{}); err != nil {
			t.Fatalf("replacement %d: %v", i, err)
		}
	}
	sent := stop()
	time.Sleep(100 * time.Millisecond)
	if got := sink.CountFrom(badAddr4) + sink.CountFrom(hostAddr4); got != 0 || sent == 0 {
		t.Errorf("%d of %d probes from listed sources passed during replacements (%v: %d)", got, sent, hostAddr4, sink.CountFrom(hostAddr4))
	}
	if b.stats.full < 15 || b.stats.delta < 14 {
		t.Errorf("replacements: %d full, %d delta; want both kinds", b.stats.full, b.stats.delta)
	}
	if !l.udpPasses(t, sink, goodAddr4) {
		t.Error("control: unlisted source dropped")
	}
	if !l.udpPasses(t, sink, newAddr4) {
		t.Fatal("control: 192.0.2.77 dropped before it was listed")
	}
	next := randomList(seed, 2000, "192.0.2.48/28", "192.0.2.70/32", "192.0.2.77/32")
	if err := b.Apply(next, ipnet.Set{}); err != nil {
		t.Fatal(err)
	}
	if l.udpPasses(t, sink, newAddr4) {
		t.Error("newly listed 192.0.2.77 passed right after Apply returned")
	}
}

// TestAdoptWithoutGap: a new Backend (a restart after a crash) takes over
// sets and rules left in place while listed sources keep probing.
func TestAdoptWithoutGap(t *testing.T) {
	l := newLab(t)
	sink := l.fw.ListenUDP(netip.AddrPortFrom(fwAddr4, 5000))
	cfg := testConfig{IPv6: true, LogGroup: 5}
	if err := l.backend(t, cfg).Apply(movingList(1, 5000, 0), ipnet.Set{}); err != nil {
		t.Fatal(err)
	}
	stop := l.flood(t, sink.Addr(), badAddr4, hostAddr4)
	for i := 1; i <= 5; i++ {
		if err := l.backend(t, cfg).Apply(movingList(uint64(i+1), 5000, i), set(allowList...)); err != nil {
			t.Fatalf("adopt %d: %v", i, err)
		}
	}
	sent := stop()
	time.Sleep(100 * time.Millisecond)
	if got := sink.CountFrom(badAddr4) + sink.CountFrom(hostAddr4); got != 0 || sent == 0 {
		t.Errorf("%d of %d probes passed while the sets were adopted", got, sent)
	}
	if rules := rulesOf(t, l.fw, "iptables", string(HookInput)); len(rules) != 1 {
		t.Errorf("INPUT after 5 adoptions: %q", rules)
	}
	if !l.udpPasses(t, sink, wlAddr4) {
		t.Error("whitelist of the last adoption not in effect")
	}
	if got := l.fw.MustRun("ipset", "list", "-n"); strings.Contains(got, TempSuffix) {
		t.Errorf("temporary sets left behind:\n%s", got)
	}
}

// TestLargeList loads more than ipset's default maxelem of 65,536.
func TestLargeList(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{})
	list := randomList(9, 150_000, "192.0.2.48/28")
	hosts, nets := counts(list, false)
	if hosts <= 65536 {
		t.Fatalf("test list has only %d single addresses", hosts)
	}
	if err := b.Apply(list, ipnet.Set{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{SetHosts4: hosts, SetNets4: nets + 1} { // + the sentinel
		hdr := l.fw.MustRun("ipset", "list", "-t", name)
		if !strings.Contains(hdr, "Number of entries: "+strconv.Itoa(want)+"\n") {
			t.Errorf("%s: want %d entries:\n%s", name, want, hdr)
		}
	}
	sink := l.fw.ListenUDP(netip.AddrPortFrom(fwAddr4, 5000))
	if l.udpPasses(t, sink, badAddr4) {
		t.Error("listed source passed with a large list loaded")
	}
	// A 1% change is sent as a delta into the same sets.
	next := randomList(9, 150_000, "192.0.2.48/28", "192.0.2.70/32")
	if err := b.Apply(next, ipnet.Set{}); err != nil {
		t.Fatal(err)
	}
	if b.stats.delta != 1 {
		t.Errorf("stats = %+v, want one delta", b.stats)
	}
	if l.udpPasses(t, sink, hostAddr4) {
		t.Error("source added by the delta passed")
	}
}

func TestIntactNoticesFlushedChains(t *testing.T) {
	l := newLab(t)
	cfg := testConfig{Hooks: []firewall.Hook{HookInput}, IPv6: true}
	b := l.backend(t, cfg)
	t.Cleanup(func() { b.Remove() })
	block := ipnet.FromAddrs(badAddr4, badAddr6)
	if err := b.Apply(block, ipnet.Set{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Intact(); err != nil || !ok {
		t.Fatalf("Intact after Apply = %v, %v; want true", ok, err)
	}
	// A firewall script flushing the built-in chain drops the jump.
	l.fw.MustRun("ip6tables", "-F", "INPUT")
	if ok, err := b.Intact(); err != nil || ok {
		t.Fatalf("Intact after ip6tables -F INPUT = %v, %v; want false", ok, err)
	}
	// A fresh backend, as the daemon builds one, puts the jump back once.
	b2 := l.backend(t, cfg)
	if err := b2.Apply(block, ipnet.Set{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := b2.Intact(); err != nil || !ok {
		t.Fatalf("Intact after restoring = %v, %v; want true", ok, err)
	}
	jumps := 0
	for _, r := range rulesOf(t, l.fw, "ip6tables", "INPUT") {
		if strings.Contains(r, "-j "+Chain) {
			jumps++
		}
	}
	if jumps != 1 {
		t.Errorf("%d jumps into %s after restoring, want 1", jumps, Chain)
	}
}

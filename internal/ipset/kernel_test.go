package ipset

import (
	"errors"
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
	goodAddr4 = netip.MustParseAddr("192.0.2.2")
	badAddr4  = netip.MustParseAddr("192.0.2.50") // in 192.0.2.48/28
	wlAddr4   = netip.MustParseAddr("192.0.2.55") // in the range, whitelisted
	hostAddr4 = netip.MustParseAddr("192.0.2.70") // listed as a single address
	newAddr4  = netip.MustParseAddr("192.0.2.77") // listed only by the "new" lists
	goodAddr6 = netip.MustParseAddr("2001:db8:2::2")
	badAddr6  = netip.MustParseAddr("2001:db8:1::150") // in 2001:db8:1::100/120
	wlAddr6   = netip.MustParseAddr("2001:db8:1::155")
	hostAddr6 = netip.MustParseAddr("2001:db8:1::bad")
)

var (
	blockList = []string{"192.0.2.48/28", "192.0.2.70/32", "2001:db8:1::100/120", "2001:db8:1::bad/128"}
	allowList = []string{"192.0.2.55/32", "2001:db8:1::155/128"}
)

// lab is the shared two-namespace lab: the backend runs in Host, every
// source address is in Peer.
type lab struct{ *testnet.Lab }

func newLab(t *testing.T) lab {
	t.Helper()
	testnet.RequireRoot(t)
	pfx := func(a netip.Addr, bits int) netip.Prefix { return netip.PrefixFrom(a, bits) }
	return lab{testnet.NewLab(t, "i", testnet.Link{
		Host: []netip.Prefix{pfx(testnet.Host4, 24), pfx(testnet.Host6, 64), netip.MustParsePrefix("2001:db8:2::1/64")},
		Peer: []netip.Prefix{pfx(goodAddr4, 24), pfx(badAddr4, 24), pfx(wlAddr4, 24), pfx(hostAddr4, 24), pfx(newAddr4, 24),
			pfx(goodAddr6, 64), pfx(badAddr6, 64), pfx(wlAddr6, 64), pfx(hostAddr6, 64)},
	})}
}

func (l lab) backend(t *testing.T, cfg testConfig) *Backend {
	t.Helper()
	b, err := New(cfg.settings(), nil, WithNetNS(l.Host.Name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlocksTraffic(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{IPv6: true, LogGroup: 7})
	if err := b.Apply(firewall.Lists{Block: set(blockList...), Allow: set(allowList...)}); err != nil {
		t.Fatal(err)
	}
	if c, err := b.Counters(); err != nil || c != (firewall.Counters{}) {
		t.Errorf("Counters before any drop = %+v, %v; want zero", c, err)
	}
	for _, fam := range []struct {
		fw, good, bad, host, wl netip.Addr
	}{{testnet.Host4, goodAddr4, badAddr4, hostAddr4, wlAddr4}, {testnet.Host6, goodAddr6, badAddr6, hostAddr6, wlAddr6}} {
		if !l.Delivers(t, l.UDP(fam.good)) {
			t.Errorf("UDP from unlisted %v was dropped", fam.good)
		}
		if !l.Delivers(t, l.UDP(fam.wl)) {
			t.Errorf("UDP from whitelisted %v inside a listed range was dropped", fam.wl)
		}
		l.AssertBlocked(t, l.UDP(fam.bad))  // inside a listed range
		l.AssertBlocked(t, l.UDP(fam.host)) // a listed single address
		tcp := netip.AddrPortFrom(fam.fw, 5001)
		l.Host.ServeTCP(tcp)
		if !l.Delivers(t, l.TCP(fam.good, tcp)) {
			t.Errorf("TCP from unlisted %v did not connect", fam.good)
		}
		l.AssertBlocked(t, l.TCP(fam.bad, tcp))
	}
	if got := l.Host.MustRun("ipset", "list", "-t", SetNets6); !strings.Contains(got, "family inet6") {
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
	if err := b.Apply(firewall.Lists{Block: set(blockList...), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	tcp := netip.AddrPortFrom(testnet.Host4, 5001)
	l.Host.ServeTCP(tcp)
	err := l.Peer.DialTCP(badAddr4, tcp, 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("TCP from listed %v: %v, want connection refused by REJECT", badAddr4, err)
	}
	if c, err := b.Counters(); err != nil || c.Packets4 == 0 {
		t.Errorf("Counters after a reject = %+v, %v; want the rejected SYN counted", c, err)
	}
	if !l.Delivers(t, l.TCP(goodAddr4, tcp)) {
		t.Errorf("TCP from unlisted %v did not connect", goodAddr4)
	}
}

func TestDockerUserHook(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{Hooks: []firewall.Hook{HookDockerUser}})
	err := b.Apply(firewall.Lists{Block: set(blockList...), Allow: ipnet.Set{}})
	if err == nil || !strings.Contains(err.Error(), "DOCKER-USER: chain not found") {
		t.Fatalf("Apply without a DOCKER-USER chain: %v", err)
	}
	l.Host.MustRun("iptables", "-N", string(HookDockerUser))
	l.Host.MustRun("iptables", "-A", string(HookDockerUser), "-j", "RETURN")
	if err := b.Apply(firewall.Lists{Block: set(blockList...), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	if first := rulesOf(t, l.Host, "iptables", string(HookDockerUser))[0]; first != "-A DOCKER-USER -m comment --comment sikkerguard -j SIKKERGUARD" {
		t.Errorf("first DOCKER-USER rule = %q", first)
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := rulesOf(t, l.Host, "iptables", string(HookDockerUser)); len(got) != 1 {
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
		l.Host.MustRun(ipt, "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
		l.Host.MustRun(ipt, "-A", "FORWARD", "-p", "udp", "--dport", "53", "-j", "ACCEPT")
	}
	l.Host.MustRun("ipset", "create", "admin-list", "hash:ip")
	before := snapshot(t, l.Host)

	cfg := testConfig{Hooks: []firewall.Hook{HookInput, HookForward}, IPv6: true, LogGroup: 3}
	b := l.backend(t, cfg)
	for range 2 {
		if err := b.Apply(firewall.Lists{Block: set(blockList...), Allow: set(allowList...)}); err != nil {
			t.Fatal(err)
		}
	}
	// A second Backend adopting the objects must not add a jump either.
	if err := l.backend(t, cfg).Apply(firewall.Lists{Block: set(blockList...), Allow: set(allowList...)}); err != nil {
		t.Fatal(err)
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, h := range cfg.Hooks {
			hook := string(h)
			rules := rulesOf(t, l.Host, ipt, hook)
			if len(rules) != 2 || rules[0] != "-A "+hook+" -m comment --comment sikkerguard -j SIKKERGUARD" {
				t.Errorf("%s %s: %q, want the jump first and once", ipt, hook, rules)
			}
		}
		if n := len(rulesOf(t, l.Host, ipt, Chain)); n != 3 {
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
	if after := snapshot(t, l.Host); after != before {
		t.Errorf("state after Remove differs:\n--- before\n%s--- after\n%s", before, after)
	}
	if ok, err := b.Exists(); err != nil || ok {
		t.Errorf("Exists() = %v, %v after Remove", ok, err)
	}
}

// randomList returns about n IPv4 entries plus extra (see
// testnet.RandomList).
func randomList(seed uint64, n int, extra ...string) ipnet.Set {
	return testnet.RandomList(seed, n, 0, extra...)
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
	if err := b.Apply(firewall.Lists{Block: movingList(0, 2000, 0), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	stop := l.Flood(badAddr4, hostAddr4)
	seed := uint64(0)
	for i := 1; i <= 30; i++ {
		if i%2 == 1 {
			seed++ // a new random list: a full swap
		}
		// Same seed, host moved: a delta of a few elements.
		if err := b.Apply(firewall.Lists{Block: movingList(seed, 2000, i), Allow: ipnet.Set{}}); err != nil {
			stop()
			t.Fatalf("replacement %d: %v", i, err)
		}
	}
	l.AssertFloodBlocked(t, stop(), "30 replacements")
	if b.stats.full < 15 || b.stats.delta < 14 {
		t.Errorf("replacements: %d full, %d delta; want both kinds", b.stats.full, b.stats.delta)
	}
	if !l.Delivers(t, l.UDP(goodAddr4)) {
		t.Error("control: unlisted source dropped")
	}
	if !l.Delivers(t, l.UDP(newAddr4)) {
		t.Fatal("control: 192.0.2.77 dropped before it was listed")
	}
	next := randomList(seed, 2000, "192.0.2.48/28", "192.0.2.70/32", "192.0.2.77/32")
	if err := b.Apply(firewall.Lists{Block: next, Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	l.AssertBlocked(t, l.UDP(newAddr4)) // right after Apply returned
}

// TestAdoptWithoutGap: a new Backend (a restart after a crash) takes over
// sets and rules left in place while listed sources keep probing.
func TestAdoptWithoutGap(t *testing.T) {
	l := newLab(t)
	cfg := testConfig{IPv6: true, LogGroup: 5}
	if err := l.backend(t, cfg).Apply(firewall.Lists{Block: movingList(1, 5000, 0), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	stop := l.Flood(badAddr4, hostAddr4)
	for i := 1; i <= 5; i++ {
		if err := l.backend(t, cfg).Apply(firewall.Lists{Block: movingList(uint64(i+1), 5000, i), Allow: set(allowList...)}); err != nil {
			stop()
			t.Fatalf("adopt %d: %v", i, err)
		}
	}
	// An adopting instance declares its chains again, which zeroes their
	// counters: count from the last one.
	if testnet.AssertNonePassed(t, stop(), "5 adoptions") {
		l.AssertBlocked(t, l.UDP(badAddr4))
		l.AssertBlocked(t, l.UDP(hostAddr4))
	}
	if rules := rulesOf(t, l.Host, "iptables", string(HookInput)); len(rules) != 1 {
		t.Errorf("INPUT after 5 adoptions: %q", rules)
	}
	if !l.Delivers(t, l.UDP(wlAddr4)) {
		t.Error("whitelist of the last adoption not in effect")
	}
	if got := l.Host.MustRun("ipset", "list", "-n"); strings.Contains(got, TempSuffix) {
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
	if err := b.Apply(firewall.Lists{Block: list, Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{SetHosts4: hosts, SetNets4: nets + 1} { // + the sentinel
		hdr := l.Host.MustRun("ipset", "list", "-t", name)
		if !strings.Contains(hdr, "Number of entries: "+strconv.Itoa(want)+"\n") {
			t.Errorf("%s: want %d entries:\n%s", name, want, hdr)
		}
	}
	l.AssertBlocked(t, l.UDP(badAddr4)) // with a large list loaded
	// A 1% change is sent as a delta into the same sets.
	next := randomList(9, 150_000, "192.0.2.48/28", "192.0.2.70/32")
	if err := b.Apply(firewall.Lists{Block: next, Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	if b.stats.delta != 1 {
		t.Errorf("stats = %+v, want one delta", b.stats)
	}
	l.AssertBlocked(t, l.UDP(hostAddr4)) // added by the delta
}

func TestIntactNoticesFlushedChains(t *testing.T) {
	l := newLab(t)
	cfg := testConfig{Hooks: []firewall.Hook{HookInput}, IPv6: true}
	b := l.backend(t, cfg)
	t.Cleanup(func() { b.Remove() })
	block := ipnet.FromAddrs(badAddr4, badAddr6)
	if err := b.Apply(firewall.Lists{Block: block, Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Intact(); err != nil || !ok {
		t.Fatalf("Intact after Apply = %v, %v; want true", ok, err)
	}
	// A firewall script flushing the built-in chain drops the jump.
	l.Host.MustRun("ip6tables", "-F", "INPUT")
	if ok, err := b.Intact(); err != nil || ok {
		t.Fatalf("Intact after ip6tables -F INPUT = %v, %v; want false", ok, err)
	}
	// A fresh backend, as the daemon builds one, puts the jump back once.
	b2 := l.backend(t, cfg)
	if err := b2.Apply(firewall.Lists{Block: block, Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := b2.Intact(); err != nil || !ok {
		t.Fatalf("Intact after restoring = %v, %v; want true", ok, err)
	}
	jumps := 0
	for _, r := range rulesOf(t, l.Host, "ip6tables", "INPUT") {
		if strings.Contains(r, "-j "+Chain) {
			jumps++
		}
	}
	if jumps != 1 {
		t.Errorf("%d jumps into %s after restoring, want 1", jumps, Chain)
	}
}

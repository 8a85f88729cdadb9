package testnet

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	labHost4 = netip.MustParseAddr("192.0.2.1")
	labGood4 = netip.MustParseAddr("192.0.2.2")
	labOurs4 = netip.MustParseAddr("192.0.2.50") // dropped by a sikkerguard-like table
	labFor4  = netip.MustParseAddr("192.0.2.60") // dropped by another table
	labHost6 = netip.MustParseAddr("2001:db8:1::1")
	labGood6 = netip.MustParseAddr("2001:db8:1::2")
	labOurs6 = netip.MustParseAddr("2001:db8:1::50")
)

func newTestLab(t *testing.T) *Lab {
	t.Helper()
	RequireRoot(t)
	pfx := func(a netip.Addr) netip.Prefix {
		if a.Is4() {
			return netip.PrefixFrom(a, 24)
		}
		return netip.PrefixFrom(a, 64)
	}
	return NewLab(t, "lab", Link{
		Host: []netip.Prefix{pfx(labHost4), pfx(labHost6)},
		Peer: []netip.Prefix{pfx(labGood4), pfx(labOurs4), pfx(labFor4), pfx(labGood6), pfx(labOurs6)},
	})
}

// recorder is a testing.TB that keeps errors, failures and skips instead
// of acting on them, so that a test can assert that a check fails.
type recorder struct {
	testing.TB
	errs        []string
	fatal, skip string
}

func (r *recorder) Helper()           {}
func (r *recorder) Fatal(args ...any) { r.fatal = fmt.Sprint(args...) }
func (r *recorder) Skip(args ...any)  { r.skip = fmt.Sprint(args...) }

func (r *recorder) Error(args ...any) { r.errs = append(r.errs, fmt.Sprint(args...)) }
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Logf(string, ...any) {}

// TestLabBlockedNeedsOurCounter drops three sources with nftables: ours
// through a counter named as sikkerguard's table names it, the other
// through another table. Only ours is blocked; the other's datagrams do
// not arrive either, and AssertBlocked must still fail for it.
func TestLabBlockedNeedsOurCounter(t *testing.T) {
	l := newTestLab(t)
	l.Host.MustRun("nft", "add table inet sikkerguard { counter dropped4 {}; counter dropped6 {}; "+
		"chain in { type filter hook input priority -300; "+
		"ip saddr "+labOurs4.String()+" counter name dropped4 drop; ip6 saddr "+labOurs6.String()+" counter name dropped6 drop; }; }")
	l.Host.MustRun("nft", "add table inet other { chain in { type filter hook input priority 0; ip saddr "+labFor4.String()+" drop; }; }")
	tcp4 := netip.AddrPortFrom(labHost4, 5001)
	l.Host.ServeTCP(tcp4)

	for _, p := range []Probe{l.UDP(labGood4), l.UDP(labGood6), l.TCP(labGood4, tcp4), l.ICMP(labGood6, labHost6)} {
		if !l.Delivers(t, p) {
			t.Errorf("%s: not delivered", p.Name)
		}
	}
	before := l.Drops(t)
	for _, p := range []Probe{l.UDP(labOurs4), l.UDP(labOurs6), l.TCP(labOurs4, tcp4), l.ICMP(labOurs6, labHost6)} {
		l.AssertBlocked(t, p)
	}
	if d := l.Drops(t); d.V4-before.V4 < 3+1 || d.V6-before.V6 < 3+1 {
		t.Errorf("drops %+v → %+v, want 4 more per family", before, d)
	}

	l.countWait = time.Second // the counters of these never rise
	for _, c := range []struct {
		probe Probe
		want  string
	}{
		{l.UDP(labFor4), "not by the 3 packets sent"},
		{l.TCP(labFor4, tcp4), "not by the 1 packets sent"},
		{l.UDP(labGood4), "passed, want it blocked"},
	} {
		r := &recorder{TB: t}
		l.AssertBlocked(r, c.probe)
		if len(r.errs) != 1 || !strings.Contains(r.errs[0], c.want) {
			t.Errorf("AssertBlocked(%s) reported %q, want one error with %q", c.probe.Name, r.errs, c.want)
		}
	}
}

// TestLabIptablesCounters: the counters of the SIKKERGUARD-BLOCK chains
// count, per family.
func TestLabIptablesCounters(t *testing.T) {
	l := newTestLab(t)
	for ipt, src := range map[string]netip.Addr{"iptables": labOurs4, "ip6tables": labOurs6} {
		l.Host.MustRun(ipt, "-N", iptChainBlock)
		l.Host.MustRun(ipt, "-A", iptChainBlock, "-j", "DROP")
		l.Host.MustRun(ipt, "-I", "INPUT", "-s", src.String(), "-j", iptChainBlock)
	}
	before := l.Drops(t)
	l.AssertBlocked(t, l.UDP(labOurs4))
	l.AssertBlocked(t, l.UDP(labOurs6))
	if d := l.Drops(t); d.V4-before.V4 != 3 || d.V6-before.V6 != 3 {
		t.Errorf("drops %+v → %+v, want 3 more per family", before, d)
	}
	if !l.Delivers(t, l.UDP(labGood4)) {
		t.Error("unlisted source dropped")
	}
}

// TestLabFlood: a flood dropped by our counter is accounted in full; one
// dropped elsewhere fails the counter check, one that passes fails at once.
func TestLabFlood(t *testing.T) {
	l := newTestLab(t)
	l.Host.MustRun("nft", "add table inet sikkerguard { counter dropped4 {}; chain in { type filter hook input priority -300; "+
		"ip saddr "+labOurs4.String()+" counter name dropped4 drop; }; }")
	l.Host.MustRun("nft", "add table inet other { chain in { type filter hook input priority 0; ip saddr "+labFor4.String()+" drop; }; }")
	for _, c := range []struct {
		src  netip.Addr
		want string // "" = no error
	}{
		{labOurs4, ""},
		{labFor4, "drop counters rose by only"},
		{labGood4, "flood datagrams passed"},
	} {
		stop := l.Flood(c.src)
		time.Sleep(200 * time.Millisecond)
		r := &recorder{TB: t}
		l.AssertFloodBlocked(r, stop(), "a test")
		if c.want == "" && len(r.errs) != 0 || c.want != "" && (len(r.errs) != 1 || !strings.Contains(r.errs[0], c.want)) {
			t.Errorf("flood from %v: errors %q, want %q", c.src, r.errs, c.want)
		}
	}
}

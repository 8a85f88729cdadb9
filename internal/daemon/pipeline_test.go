package daemon

import (
	"net/netip"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

func set(t *testing.T, ps ...string) ipnet.Set {
	t.Helper()
	var s ipnet.Set
	for _, p := range ps {
		s.AddPrefix(netip.MustParsePrefix(p))
	}
	s.Merge()
	return s
}

func TestBuildPlan(t *testing.T) {
	snaps := []*feed.Snapshot{
		{Name: "a", Set: set(t, "8.8.0.0/16", "10.0.0.0/8", "127.0.0.5/32")},
		{Name: "b", Set: set(t, "8.9.0.0/16", "2001:4860::/32", "fd00::/8")},
	}
	allow := set(t, "8.8.8.8/32")

	p := BuildPlan(snaps, allow, true)
	// 8.8.0.0/16 and 8.9.0.0/16 are adjacent and merge; the allowed /32
	// splits them; private, ULA and loopback space is stripped.
	want := set(t, "8.8.0.0/21", "8.8.8.0/29", "8.8.8.9/32", "8.8.8.10/31", "8.8.8.12/30",
		"8.8.8.16/28", "8.8.8.32/27", "8.8.8.64/26", "8.8.8.128/25", "8.8.9.0/24", "8.8.10.0/23",
		"8.8.12.0/22", "8.8.16.0/20", "8.8.32.0/19", "8.8.64.0/18", "8.8.128.0/17", "8.9.0.0/16",
		"2001:4860::/32")
	if !p.Block.Equal(want) {
		t.Errorf("block = %v\nwant    %v", p.Block, want)
	}
	if p.StrippedRanges != 3 {
		t.Errorf("StrippedRanges = %d, want 3 (10/8, 127.0.0.5, fd00::/8)", p.StrippedRanges)
	}
	if !p.Allow.Contains(netip.MustParseAddr("127.0.0.1")) || !p.Allow.Contains(netip.MustParseAddr("::1")) ||
		!p.Allow.Contains(netip.MustParseAddr("8.8.8.8")) {
		t.Errorf("allow = %v lacks loopback or the whitelist", p.Allow)
	}
}

func TestBuildPlanKeepsPrivateWhenAskedButNeverLoopback(t *testing.T) {
	p := BuildPlan([]*feed.Snapshot{{Set: set(t, "10.1.0.0/16", "127.0.0.0/8", "::1/128")}}, ipnet.Set{}, false)
	if !p.Block.Equal(set(t, "10.1.0.0/16")) {
		t.Errorf("block = %v, want only 10.1.0.0/16: loopback is never blocked", p.Block)
	}
	if p.StrippedRanges != 0 {
		t.Errorf("StrippedRanges = %d with stripping off", p.StrippedRanges)
	}
}

func TestBlockedCount(t *testing.T) {
	s := set(t, "203.0.113.0/24", "198.51.100.7/32", "2001:db8::/32", "2001:db9::1/128")
	if got := BlockedCount(s, true); got != 259 {
		t.Errorf("BlockedCount = %d, want 257 IPv4 addresses + 2 IPv6 ranges", got)
	}
	if got := BlockedCount(s, false); got != 257 {
		t.Errorf("BlockedCount without IPv6 = %d, want 257", got)
	}
}

package daemon

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/safety"
)

func snap(t *testing.T, name string, ps ...string) *feed.Snapshot {
	t.Helper()
	return &feed.Snapshot{Name: name, Set: set(t, ps...)}
}

// hosts returns n distinct, non-adjacent /32s from 45.0.0.0/16.
func hosts(t *testing.T, name string, n int) *feed.Snapshot {
	t.Helper()
	return hostsFrom(t, name, "45.0.0.1", n)
}

// hostsFrom returns n distinct, non-adjacent /32s counted up from base.
func hostsFrom(t *testing.T, name, base string, n int) *feed.Snapshot {
	t.Helper()
	var s ipnet.Set
	a := netip.MustParseAddr(base)
	for range n {
		s.AddAddr(a)
		a = a.Next().Next() // not adjacent: each stays its own range
	}
	s.Merge()
	return &feed.Snapshot{Name: name, Set: s}
}

var testLimits = safety.Limits{MaxGrowth: 2, MaxShrink: 0.5, MaxEntries: 1000, MaxBlockShare: 0.10}

func TestDecideJudgesEachFeed(t *testing.T) {
	for _, tt := range []struct {
		name       string
		in         FeedInput
		wantReason safety.Reason // "" = the candidate is accepted
		wantInUse  int           // ranges in use afterwards
	}{
		{"first list", FeedInput{Candidate: hosts(t, "f", 10)}, "", 10},
		{"cached list at start", FeedInput{Candidate: hosts(t, "f", 500)}, "", 500},
		{"same size", FeedInput{Accepted: hosts(t, "f", 10), Candidate: hosts(t, "f", 10)}, "", 10},
		{"empty", FeedInput{Accepted: hosts(t, "f", 10), Candidate: snap(t, "f")}, safety.ReasonEmpty, 10},
		{"empty first", FeedInput{Candidate: snap(t, "f")}, safety.ReasonEmpty, 0},
		{"empty file", FeedInput{Accepted: hosts(t, "f", 10), Candidate: snap(t, "f"), MayBeEmpty: true}, "", 0},
		{"growth in ranges", FeedInput{Accepted: hosts(t, "f", 2), Candidate: hosts(t, "f", 20)}, safety.ReasonGrowth, 2},
		{"growth in addresses", FeedInput{Accepted: hosts(t, "f", 2), Candidate: snap(t, "f", "45.0.0.0/16")}, safety.ReasonGrowth, 2},
		{"cut short", FeedInput{Accepted: hosts(t, "f", 200), Candidate: hosts(t, "f", 99)}, safety.ReasonShrink, 200},
		{"too many entries", FeedInput{Candidate: hosts(t, "f", 1001)}, safety.ReasonTooLarge, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Name = "f"
			dec, err := Decide(Inputs{Feeds: []FeedInput{tt.in}, Limits: testLimits, IPv6: true})
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			v := dec.Feeds[0]
			var re *safety.RejectError
			switch {
			case tt.wantReason == "" && (v.Refused != nil || !v.Accepted):
				t.Fatalf("verdict = %+v, want accepted", v)
			case tt.wantReason != "" && (!errors.As(v.Refused, &re) || re.Reason != tt.wantReason || v.Accepted):
				t.Fatalf("verdict = %+v, want refused for %s", v, tt.wantReason)
			}
			if v.Refused != nil && !strings.HasPrefix(v.Refused.Error(), "feed f: list rejected") {
				t.Errorf("refusal %q does not name the feed", v.Refused)
			}
			if got, _ := dec.Plan.Block.Len(); got != tt.wantInUse {
				t.Errorf("plan holds %d ranges, want %d", got, tt.wantInUse)
			}
		})
	}
}

func TestDecideMergedListChecks(t *testing.T) {
	// Each feed alone is fine; together the new lists pass max_entries, so
	// the new lists are refused and the lists in force stay.
	a := FeedInput{Name: "a", Accepted: hosts(t, "a", 400), Candidate: hosts(t, "a", 600)}
	b := FeedInput{Name: "b", Accepted: hostsFrom(t, "b", "46.0.0.1", 300), Candidate: hostsFrom(t, "b", "46.0.0.1", 450)}
	dec, err := Decide(Inputs{Feeds: []FeedInput{a, b}, Limits: testLimits, IPv6: true})
	if err != nil {
		t.Fatalf("Decide: %v (the lists in force are acceptable)", err)
	}
	for _, v := range dec.Feeds {
		if v.Accepted || v.Refused == nil || !strings.Contains(v.Refused.Error(), "merged list is refused") {
			t.Errorf("verdict %s = %+v, want refused for the merged list", v.Name, v)
		}
	}
	if dec.Accepted() {
		t.Error("Accepted() with every candidate refused")
	}
	if n, _ := dec.Plan.Block.Len(); n != 700 {
		t.Errorf("plan holds %d ranges, want the 700 in force", n)
	}

	// A line that covers most of the internet slipped into a feed.
	wide := FeedInput{Name: "w", Accepted: snap(t, "w", "203.0.113.9/32"), Candidate: snap(t, "w", "0.0.0.0/1", "203.0.113.9/32")}
	testLimits := testLimits
	testLimits.MaxGrowth = 0 // the share cap alone
	dec, err = Decide(Inputs{Feeds: []FeedInput{wide}, Limits: testLimits, IPv6: true})
	var re *safety.RejectError
	if err != nil || !errors.As(dec.Feeds[0].Refused, &re) || re.Reason != safety.ReasonBlockShare {
		t.Fatalf("wide list: %+v, %v; want it refused for the block share", dec.Feeds[0], err)
	}
	if !dec.Plan.Block.Equal(set(t, "203.0.113.9/32")) {
		t.Errorf("plan = %v, want the list in force", dec.Plan.Block)
	}

	// The lists in force fail alone (a lowered limit): an error, and the
	// caller keeps the kernel as it is.
	testLimits.MaxEntries = 100
	_, err = Decide(Inputs{Feeds: []FeedInput{{Name: "a", Accepted: hosts(t, "a", 400)}}, Limits: testLimits})
	if !errors.As(err, &re) || re.Reason != safety.ReasonTooLarge || !strings.HasPrefix(err.Error(), "merged list: ") {
		t.Fatalf("err = %v, want the merged list refused for max_entries", err)
	}
}

func TestDecideNeverBlocksProtectedAddresses(t *testing.T) {
	listed := snap(t, "f", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "127.0.0.0/8", "::1/128", "2001:db8::/32")
	found := safety.NeverBlock{
		Gateways: []netip.Addr{netip.MustParseAddr("192.0.2.1")},
		DNS:      []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53")},
		Own:      []netip.Addr{netip.MustParseAddr("192.0.2.10")},
		API:      []netip.Addr{netip.MustParseAddr("198.51.100.80")},
		Subnets:  []netip.Prefix{netip.MustParsePrefix("203.0.113.128/25")},
	}
	p := protection{
		found: found, auto: true,
		user:    []netip.Prefix{netip.MustParsePrefix("198.51.100.200/30")},
		runtime: []netip.Prefix{netip.MustParsePrefix("192.0.2.99/32")},
	}
	for _, auto := range []bool{true, false} {
		p.auto = auto
		dec, err := Decide(Inputs{Feeds: []FeedInput{{Name: "f", Candidate: listed}}, Never: p.never().Set(), IPv6: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			addr string
			why  string
			auto bool // protected only with auto_whitelist
		}{
			{"192.0.2.1", "gateway", true},
			{"192.0.2.53", "resolver", true},
			{"2001:db8::53", "IPv6 resolver", true},
			{"192.0.2.10", "own address", true},
			{"198.51.100.80", "API endpoint", true},
			{"203.0.113.200", "connected private subnet", true},
			{"198.51.100.201", "config whitelist", false},
			{"192.0.2.99", "runtime whitelist", false},
			{"127.0.0.1", "loopback", false},
			{"::1", "loopback", false},
		} {
			a := netip.MustParseAddr(tt.addr)
			protected := !tt.auto || auto
			if dec.Plan.Block.Contains(a) == protected {
				t.Errorf("auto=%v: %s (%s) blocked = %v", auto, tt.addr, tt.why, !protected)
			}
			if protected && !dec.Plan.Allow.Contains(a) {
				t.Errorf("auto=%v: %s (%s) not in the allow set", auto, tt.addr, tt.why)
			}
		}
		if !dec.Plan.Block.Contains(netip.MustParseAddr("192.0.2.2")) {
			t.Errorf("auto=%v: an unprotected listed address is not blocked", auto)
		}
	}
}

func TestDecideFamiliesAndPrivateSpace(t *testing.T) {
	listed := snap(t, "f", "10.0.0.0/8", "185.16.39.0/24", "2001:4860::/32")
	dec, _ := Decide(Inputs{Feeds: []FeedInput{{Name: "f", Candidate: listed}}, StripPrivate: true, IPv6: false})
	if !dec.Plan.Block.Equal(set(t, "185.16.39.0/24")) {
		t.Errorf("strip_private, no IPv6: block = %v", dec.Plan.Block)
	}
	dec, _ = Decide(Inputs{Feeds: []FeedInput{{Name: "f", Candidate: listed}}, StripPrivate: false, IPv6: true})
	if !dec.Plan.Block.Equal(listed.Set) {
		t.Errorf("no stripping, IPv6: block = %v", dec.Plan.Block)
	}
}

// A list the server cut short when the quota ran out is refused even where
// the size checks would pass (a 25 % drop is within max_shrink 0.5), and
// with no list before it.
func TestDecideRefusesAQuotaCutList(t *testing.T) {
	cut := hosts(t, "sikkerapi", 150)
	cut.QuotaCut = true
	for _, accepted := range []*feed.Snapshot{hosts(t, "sikkerapi", 200), nil} {
		dec, err := Decide(Inputs{Feeds: []FeedInput{{Name: "sikkerapi", Accepted: accepted, Candidate: cut}}, Limits: testLimits, IPv6: true})
		if err != nil {
			t.Fatal(err)
		}
		v := dec.Feeds[0]
		if v.Accepted || !errors.Is(v.Refused, errQuotaCut) || v.InUse != accepted {
			t.Fatalf("verdict %+v, want the cut list refused and %v kept", v, accepted)
		}
	}
}

// Entries blocked by hand skip the growth and shrink checks (one entry to
// three, three to none) but not the merged-list checks.
func TestDecideManualEntries(t *testing.T) {
	one, three := hosts(t, "manual", 1), hosts(t, "manual", 3)
	for _, tc := range []struct{ from, to *feed.Snapshot }{{one, three}, {three, snap(t, "manual")}} {
		dec, err := Decide(Inputs{Feeds: []FeedInput{{Name: "manual", Accepted: tc.from, Candidate: tc.to, MayBeEmpty: true, ByHand: true}},
			Limits: testLimits, IPv6: true})
		if err != nil || !dec.Feeds[0].Accepted {
			t.Fatalf("manual change refused: %v %+v", err, dec.Feeds[0])
		}
	}
	wide := snap(t, "manual", "64.0.0.0/2")
	dec, _ := Decide(Inputs{Feeds: []FeedInput{{Name: "manual", Candidate: wide, MayBeEmpty: true, ByHand: true}},
		Limits: testLimits, IPv6: true, Never: set(t, "127.0.0.0/8")})
	if dec.Feeds[0].Accepted {
		t.Fatal("a manual /2 over max_block_share was accepted")
	}
}

package safety

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

func ranges(n int) Size { return Size{Ranges: n, Addrs4: uint64(n)} }

func TestCheckList(t *testing.T) {
	lim := Limits{MaxGrowth: 2.0, MaxShrink: 0.5, MaxEntries: 1000}
	tests := []struct {
		name       string
		prev, next Size
		want       Reason // "" = accepted
		msg        string
	}{
		{"first list", Size{}, ranges(500), "", ""},
		{"empty", ranges(100), Size{}, ReasonEmpty, "empty"},
		{"empty first", Size{}, Size{}, ReasonEmpty, "empty"},
		{"exactly double", ranges(100), ranges(200), "", ""},
		{"just over double", ranges(100), ranges(201), ReasonGrowth, "201 entries is more than 2× the previous 100"},
		{"three times", ranges(100), ranges(300), ReasonGrowth, "safety.max_growth"},
		{"half is fine", ranges(200), ranges(100), "", ""},
		{"cut short", ranges(200), ranges(99), ReasonShrink, "99 entries is less than 0.5× the previous 200 (safety.max_shrink)"},
		{"at the cap", ranges(999), ranges(1000), "", ""},
		{"over the cap", ranges(999), ranges(1001), ReasonTooLarge, "exceed safety.max_entries 1000"},
		{"cap before growth", ranges(10), ranges(5000), ReasonTooLarge, "max_entries"},
		// Fewer ranges, but two /8s instead of single addresses.
		{"address growth", Size{Ranges: 4, Addrs4: 4}, Size{Ranges: 3, Addrs4: 1<<25 + 1}, ReasonGrowth, "IPv4 addresses is more than 2×"},
		{"ipv6 address growth", Size{Ranges: 4, Addrs6: 4}, Size{Ranges: 4, Addrs6: 1 << 80}, ReasonGrowth, "IPv6 addresses"},
		{"first ipv6 is fine", Size{Ranges: 4, Addrs4: 4}, Size{Ranges: 5, Addrs4: 4, Addrs6: 1 << 80}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckList(tt.prev, tt.next, lim)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckList(%v, %v) = %v, want nil", tt.prev, tt.next, err)
				}
				return
			}
			var re *RejectError
			if !errors.As(err, &re) || re.Reason != tt.want {
				t.Fatalf("CheckList(%v, %v) = %v, want reason %s", tt.prev, tt.next, err, tt.want)
			}
			if !errors.Is(err, ErrRejected) {
				t.Errorf("errors.Is(%v, ErrRejected) = false", err)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "keeping the current one") {
				t.Errorf("message %q lacks %q", err.Error(), tt.msg)
			}
		})
	}
}

func TestCheckListZeroLimitsDisableChecks(t *testing.T) {
	if err := CheckList(ranges(1), ranges(1_000_000), Limits{}); err != nil {
		t.Fatalf("zero limits: %v", err)
	}
	if err := CheckList(ranges(1000), ranges(1), Limits{}); err != nil {
		t.Fatalf("zero limits, shrink: %v", err)
	}
	if err := CheckList(ranges(1), Size{}, Limits{}); err == nil {
		t.Fatal("an empty list must be refused even without limits")
	}
}

func TestCheckPlanBlockShare(t *testing.T) {
	lim := Limits{MaxBlockShare: 0.10, MaxEntries: 10}
	set := func(ps ...string) ipnet.Set {
		var out []netip.Prefix
		for _, p := range ps {
			out = append(out, netip.MustParsePrefix(p))
		}
		return ipnet.FromPrefixes(out...)
	}
	for _, tt := range []struct {
		name  string
		block ipnet.Set
		want  Reason
	}{
		{"a few hosts", set("203.0.113.7/32", "185.16.39.0/24"), ""},
		// A /8 is 0.45 % of the global space; a /4 7.2 %, a /3 14.5 %.
		{"a /8", set("45.0.0.0/8"), ""},
		{"a /4", set("32.0.0.0/4"), ""},
		{"a /3", set("32.0.0.0/3"), ReasonBlockShare},
		{"the whole internet", set("0.0.0.0/0"), ReasonBlockShare},
		{"half of it", set("128.0.0.0/1"), ReasonBlockShare},
		// Non-global space does not count: it is stripped or harmless.
		{"private space", set("10.0.0.0/8", "172.16.0.0/12", "100.64.0.0/10", "192.168.0.0/16"), ""},
		{"ipv6 hosts and a /32", set("2001:db8::/32", "2a00:1450::/32", "2a01::1/128"), ""},
		// 2000::/3 is the global unicast space: a /6 is 12.5 % of it.
		{"an ipv6 /8", set("2a00::/8"), ""},
		{"an ipv6 /6", set("2800::/6"), ReasonBlockShare},
		{"all of ipv6", set("::/0"), ReasonBlockShare},
		{"too many entries", set("1.0.0.1/32", "1.0.0.3/32", "1.0.0.5/32", "1.0.0.7/32", "1.0.0.9/32", "1.0.0.11/32",
			"1.0.0.13/32", "1.0.0.15/32", "1.0.0.17/32", "1.0.0.19/32", "1.0.0.21/32"), ReasonTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPlan(tt.block, lim)
			var re *RejectError
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("CheckPlan = %v, want nil", err)
			case tt.want != "" && (!errors.As(err, &re) || re.Reason != tt.want):
				t.Fatalf("CheckPlan = %v, want reason %s", err, tt.want)
			}
		})
	}
	if err := CheckPlan(set("0.0.0.0/0"), Limits{}); err != nil {
		t.Fatalf("a zero share limit is off: %v", err)
	}
	err := CheckPlan(set("0.0.0.0/0"), lim)
	if err == nil || !strings.Contains(err.Error(), "100.0 % of all global IPv4 addresses") {
		t.Fatalf("message: %v", err)
	}
}

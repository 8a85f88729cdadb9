package ipnet

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// mk builds an unmerged set from ParseRange strings.
func mk(t testing.TB, entries ...string) Set {
	t.Helper()
	var s Set
	for _, e := range entries {
		r, err := ParseRange(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func strs(s Set) []string {
	out := []string{}
	for _, r := range s.V4 {
		out = append(out, r.String())
	}
	for _, r := range s.V6 {
		out = append(out, r.String())
	}
	return out
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"empty", nil, []string{}},
		{"adjacent v4", []string{"192.0.2.0/25", "192.0.2.128/25"}, []string{"192.0.2.0/24"}},
		{"adjacent singles", []string{"10.0.0.2", "10.0.0.1", "10.0.0.3", "10.0.0.0"}, []string{"10.0.0.0/30"}},
		{"gap of one", []string{"10.0.0.1", "10.0.0.3"}, []string{"10.0.0.1/32", "10.0.0.3/32"}},
		{"nested", []string{"10.0.0.0/8", "10.1.0.0/16", "10.255.255.255"}, []string{"10.0.0.0/8"}},
		{"overlap", []string{"10.0.0.0-10.0.0.9", "10.0.0.5-10.0.0.20"}, []string{"10.0.0.0-10.0.0.20"}},
		{"duplicates", []string{"10.0.0.1", "10.0.0.1", "10.0.0.1"}, []string{"10.0.0.1/32"}},
		{"whole v4", []string{"1.2.3.4", "0.0.0.0/0", "255.255.255.255"}, []string{"0.0.0.0/0"}},
		{"top v4", []string{"255.255.255.255", "255.255.255.254", "0.0.0.0"}, []string{"0.0.0.0/32", "255.255.255.254/31"}},
		{"top v4 nested", []string{"255.255.255.0/24", "255.255.255.255"}, []string{"255.255.255.0/24"}},
		{"whole v6", []string{"2001:db8::1", "::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, []string{"::/0"}},
		{"top v6", []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"}, []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"}},
		{"adjacent v6 across 64-bit halves", []string{"2001:db8::-2001:db8:0:0:ffff:ffff:ffff:ffff", "2001:db8:0:1::"}, []string{"2001:db8::-2001:db8:0:1::"}},
		{"v6 gap", []string{"2001:db8::1", "2001:db8::3"}, []string{"2001:db8::1/128", "2001:db8::3/128"}},
		{"families apart", []string{"::ffff:10.0.0.1", "10.0.0.0", "::a00:2"}, []string{"10.0.0.0/31", "::a00:2/128"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mk(t, tt.in...)
			s.Merge()
			if got := strs(s); !slices.Equal(got, tt.want) {
				t.Errorf("Merge = %q, want %q", got, tt.want)
			}
			if !s.IsMerged() {
				t.Error("IsMerged false after Merge")
			}
		})
	}
}

func TestIsMerged(t *testing.T) {
	for _, tt := range []struct {
		s    Set
		want bool
	}{
		{Set{}, true},
		{Set{V4: []Range4{{1, 2}, {4, 5}}}, true},
		{Set{V4: []Range4{{1, 2}, {3, 5}}}, false},
		{Set{V4: []Range4{{4, 5}, {1, 2}}}, false},
		{Set{V4: []Range4{{2, 1}}}, false},
		{Set{V6: []Range6{{U128{0, 1}, U128{0, 2}}, {U128{0, 4}, MaxU128}}}, true},
		{Set{V6: []Range6{{U128{0, 1}, U128{0, ^uint64(0)}}, {U128{1, 0}, MaxU128}}}, false},
		{Set{V6: []Range6{{U128{0, 2}, U128{0, 1}}}}, false},
	} {
		if got := tt.s.IsMerged(); got != tt.want {
			t.Errorf("%v.IsMerged() = %v", tt.s, got)
		}
	}
}

func TestSubtract(t *testing.T) {
	tests := []struct {
		name   string
		s, del []string
		want   []string
	}{
		{"hole splits", []string{"10.0.0.0/16"}, []string{"10.0.1.1"}, []string{"10.0.0.0-10.0.1.0", "10.0.1.2-10.0.255.255"}},
		{"edges", []string{"10.0.0.0/24"}, []string{"10.0.0.0", "10.0.0.255"}, []string{"10.0.0.1-10.0.0.254"}},
		{"all", []string{"10.0.0.0/24", "2001:db8::/64"}, []string{"0.0.0.0/0", "::/0"}, []string{}},
		{"nothing", []string{"10.0.0.0/24"}, []string{"11.0.0.0/8"}, []string{"10.0.0.0/24"}},
		{"one del over two", []string{"10.0.0.1", "10.0.0.5", "10.0.0.9"}, []string{"10.0.0.0-10.0.0.6"}, []string{"10.0.0.9/32"}},
		{"many holes", []string{"10.0.0.0/28"}, []string{"10.0.0.1", "10.0.0.3", "10.0.0.5-10.0.0.14"}, []string{"10.0.0.0/32", "10.0.0.2/32", "10.0.0.4/32", "10.0.0.15/32"}},
		{"top v4", []string{"0.0.0.0/0"}, []string{"255.255.255.255", "0.0.0.0"}, []string{"0.0.0.1-255.255.255.254"}},
		{"top v6", []string{"::/0"}, []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::"}, []string{"::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"}},
		{"v6 hole", []string{"2001:db8::/32"}, []string{"2001:db8:0:1::/64"}, []string{"2001:db8::/64", "2001:db8:0:2::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"}},
		{"unmerged inputs", []string{"10.0.0.5", "10.0.0.0/24", "10.0.0.7"}, []string{"10.0.0.128/25", "10.0.0.0/25"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, del := mk(t, tt.s...), mk(t, tt.del...)
			s0, d0 := s.Clone(), del.Clone()
			got := s.Subtract(del)
			if g := strs(got); !slices.Equal(g, tt.want) {
				t.Errorf("Subtract = %q, want %q", g, tt.want)
			}
			if !got.IsMerged() {
				t.Error("result not merged")
			}
			if !s.Equal(s0) || !del.Equal(d0) {
				t.Error("Subtract modified its inputs")
			}
		})
	}
}

func TestUnionIntersect(t *testing.T) {
	a := mk(t, "10.0.0.0/24", "2001:db8::/64")
	b := mk(t, "10.0.1.0/24", "10.0.0.128/25", "2001:db8::5")
	if got, want := strs(Union(a, b)), []string{"10.0.0.0/23", "2001:db8::/64"}; !slices.Equal(got, want) {
		t.Errorf("Union = %q, want %q", got, want)
	}
	if got, want := strs(Intersect(a, b)), []string{"10.0.0.128/25", "2001:db8::5/128"}; !slices.Equal(got, want) {
		t.Errorf("Intersect = %q, want %q", got, want)
	}
	if u := Union(); u.V4 != nil || u.V6 != nil {
		t.Errorf("Union() = %v", u)
	}
	if got := strs(Union(a)); !slices.Equal(got, []string{"10.0.0.0/24", "2001:db8::/64"}) {
		t.Errorf("Union(a) = %q", got)
	}
}

func TestDiff(t *testing.T) {
	prev := mk(t, "10.0.0.0/24", "10.0.2.0/24", "10.0.4.0/24", "2001:db8::/64")
	next := mk(t, "10.0.0.0/24", "10.0.2.0/25", "10.0.5.0/24", "2001:db8::/64", "2001:db8:1::1")
	added, removed := Diff(prev, next)
	if got, want := strs(added), []string{"10.0.2.0/25", "10.0.5.0/24", "2001:db8:1::1/128"}; !slices.Equal(got, want) {
		t.Errorf("added = %q, want %q", got, want)
	}
	if got, want := strs(removed), []string{"10.0.2.0/24", "10.0.4.0/24"}; !slices.Equal(got, want) {
		t.Errorf("removed = %q, want %q", got, want)
	}
	// Applying the delta to prev's elements gives next's.
	pm := prev.Clone()
	pm.Merge()
	applied := applyDelta(pm, added, removed)
	nm := next.Clone()
	nm.Merge()
	if !applied.Equal(nm) {
		t.Errorf("prev - removed + added = %v, want %v", applied, nm)
	}
	a, r := Diff(nm, nm)
	if !a.IsEmpty() || !r.IsEmpty() {
		t.Errorf("Diff(x, x) = %v, %v", a, r)
	}
}

// applyDelta removes the removed elements from prev and adds the added ones,
// as an nftables interval set does, and returns the sorted elements.
func applyDelta(prev, added, removed Set) Set {
	var out Set
	for _, r := range prev.V4 {
		if !slices.Contains(removed.V4, r) {
			out.V4 = append(out.V4, r)
		}
	}
	for _, r := range prev.V6 {
		if !slices.Contains(removed.V6, r) {
			out.V6 = append(out.V6, r)
		}
	}
	out.V4 = append(out.V4, added.V4...)
	out.V6 = append(out.V6, added.V6...)
	slices.SortFunc(out.V4, func(a, b Range4) int { return cmp4(a.Lo, b.Lo) })
	slices.SortFunc(out.V6, func(a, b Range6) int { return a.Lo.Cmp(b.Lo) })
	return out
}

func TestContainsLookup(t *testing.T) {
	s := mk(t, "10.0.0.0/8", "192.0.2.7", "255.255.255.255", "2001:db8::/32", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	s.Merge()
	tests := []struct {
		addr string
		want string // containing range, "" for none
	}{
		{"10.0.0.0", "10.0.0.0/8"},
		{"10.255.255.255", "10.0.0.0/8"},
		{"9.255.255.255", ""},
		{"11.0.0.0", ""},
		{"192.0.2.7", "192.0.2.7/32"},
		{"192.0.2.8", ""},
		{"255.255.255.255", "255.255.255.255/32"},
		{"0.0.0.0", ""},
		{"::ffff:10.1.2.3", "10.0.0.0/8"},
		{"2001:db8:ffff::1", "2001:db8::/32"},
		{"2001:db9::", ""},
		{"::", "::/128"},
		{"::1", ""},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"},
		{"fe80::1%eth0", ""},
		{"2001:db8::1%eth0", "2001:db8::/32"},
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		r, ok := s.Lookup(a)
		if got := s.Contains(a); got != (tt.want != "") || ok != got {
			t.Errorf("Contains(%s) = %v, Lookup ok %v", tt.addr, got, ok)
		}
		if ok && r.String() != tt.want {
			t.Errorf("Lookup(%s) = %s, want %s", tt.addr, r, tt.want)
		}
	}
	if s.Contains(netip.Addr{}) {
		t.Error("Contains(zero Addr)")
	}
	if (Set{}).Contains(netip.MustParseAddr("1.1.1.1")) {
		t.Error("empty set contains 1.1.1.1")
	}
}

func TestPrefixes(t *testing.T) {
	tests := []struct {
		r    string
		want []string
	}{
		{"0.0.0.0/0", []string{"0.0.0.0/0"}},
		{"255.255.255.255", []string{"255.255.255.255/32"}},
		{"0.0.0.1-255.255.255.255", []string{"0.0.0.1/32", "0.0.0.2/31", "0.0.0.4/30", "0.0.0.8/29", "0.0.0.16/28", "0.0.0.32/27", "0.0.0.64/26", "0.0.0.128/25", "0.0.1.0/24", "0.0.2.0/23", "0.0.4.0/22", "0.0.8.0/21", "0.0.16.0/20", "0.0.32.0/19", "0.0.64.0/18", "0.0.128.0/17", "0.1.0.0/16", "0.2.0.0/15", "0.4.0.0/14", "0.8.0.0/13", "0.16.0.0/12", "0.32.0.0/11", "0.64.0.0/10", "0.128.0.0/9", "1.0.0.0/8", "2.0.0.0/7", "4.0.0.0/6", "8.0.0.0/5", "16.0.0.0/4", "32.0.0.0/3", "64.0.0.0/2", "128.0.0.0/1"}},
		{"10.0.0.1-10.0.0.6", []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}},
		{"128.0.0.0-255.255.255.254", nil}, // checked by count below
		{"::/0", []string{"::/0"}},
		{"::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", nil},
		{"2001:db8::-2001:db8::2", []string{"2001:db8::/127", "2001:db8::2/128"}},
		{"2001:db8:0:0:ffff:ffff:ffff:ffff-2001:db8:0:1::", []string{"2001:db8::ffff:ffff:ffff:ffff/128", "2001:db8:0:1::/128"}},
		{"8000::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"8000::/1"}},
	}
	for _, tt := range tests {
		s := mk(t, tt.r)
		ps := s.AppendPrefixes(nil)
		var got []string
		for _, p := range ps {
			got = append(got, p.String())
		}
		if tt.want != nil && !slices.Equal(got, tt.want) {
			t.Errorf("Prefixes(%s) = %q, want %q", tt.r, got, tt.want)
		}
		// Whatever the range, the cover is exact, ordered, and disjoint.
		var back Set
		for _, p := range ps {
			if p != p.Masked() {
				t.Errorf("Prefixes(%s): %s not masked", tt.r, p)
			}
			back.AddPrefix(p)
		}
		if !back.IsMerged() && len(ps) > 1 {
			// Adjacent prefixes are expected; merging must restore the range.
			back.Merge()
		}
		want := s.Clone()
		want.Merge()
		if !back.Equal(want) {
			t.Errorf("Prefixes(%s) cover %v, want %v", tt.r, back, want)
		}
	}
	if n := len(Range4{1, math.MaxUint32 - 1}.Prefixes(nil)); n != 62 {
		t.Errorf("worst IPv4 range has %d prefixes, want 62", n)
	}
	if n := len((Range6{U128{0, 1}, MaxU128.Sub1()}).Prefixes(nil)); n != 254 {
		t.Errorf("worst IPv6 range has %d prefixes, want 254", n)
	}
	if ps := (Range4{5, 4}).Prefixes(nil); len(ps) != 0 {
		t.Errorf("reversed range gave %v", ps)
	}
}

func TestAllPrefixesStops(t *testing.T) {
	s := mk(t, "10.0.0.1-10.0.0.6", "2001:db8::-2001:db8::2")
	var all []netip.Prefix
	for p := range s.AllPrefixes() {
		all = append(all, p)
	}
	if !slices.Equal(all, s.AppendPrefixes(nil)) {
		t.Errorf("AllPrefixes = %v", all)
	}
	var rs []string
	for r := range s.Ranges() {
		rs = append(rs, r.String())
		if len(rs) == 2 {
			break
		}
	}
	if !slices.Equal(rs, []string{"10.0.0.1-10.0.0.6", "2001:db8::-2001:db8::2"}) {
		t.Errorf("Ranges = %q", rs)
	}
	n := 0
	for range s.AllPrefixes() {
		n++
		if n == 5 {
			break
		}
	}
	if n != 5 {
		t.Errorf("break after 5 gave %d", n)
	}
}

func TestRangeString(t *testing.T) {
	tests := []struct {
		r    Range4
		want string
	}{
		{Range4{0, math.MaxUint32}, "0.0.0.0/0"},
		{Range4{math.MaxUint32, math.MaxUint32}, "255.255.255.255/32"},
		{Range4{0x80000000, math.MaxUint32}, "128.0.0.0/1"},
		{Range4{1, 2}, "0.0.0.1-0.0.0.2"},
		{Range4{2, 3}, "0.0.0.2/31"},
		{Range4{0, math.MaxUint32 - 1}, "0.0.0.0-255.255.255.254"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%v.String() = %s, want %s", tt.r, got, tt.want)
		}
		if got := tt.r.Range().String(); got != tt.want {
			t.Errorf("%v.Range().String() = %s, want %s", tt.r, got, tt.want)
		}
	}
	tests6 := []struct {
		r    Range6
		want string
	}{
		{Range6{U128{}, MaxU128}, "::/0"},
		{Range6{MaxU128, MaxU128}, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"},
		{Range6{U128{1 << 63, 0}, MaxU128}, "8000::/1"},
		{Range6{U128{}, U128{0, math.MaxUint64}}, "::/64"},
		{Range6{U128{}, U128{1, math.MaxUint64}}, "::/63"},
		{Range6{U128{}, U128{2, math.MaxUint64}}, "::-::2:ffff:ffff:ffff:ffff"},
		{Range6{U128{0, 1}, U128{0, 2}}, "::1-::2"},
	}
	for _, tt := range tests6 {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%v.String() = %s, want %s", tt.r, got, tt.want)
		}
		if got := tt.r.Range().String(); got != tt.want {
			t.Errorf("%v.Range().String() = %s, want %s", tt.r, got, tt.want)
		}
	}
	if got := (Range{}).String(); got != "invalid range" {
		t.Errorf("zero Range = %q", got)
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{"192.0.2.1", "192.0.2.1/32", false},
		{" 192.0.2.1/24 ", "192.0.2.0/24", false},
		{"::ffff:192.0.2.1", "192.0.2.1/32", false},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24", false},
		{"192.0.2.1-192.0.2.4", "192.0.2.1-192.0.2.4", false},
		{"192.0.2.0 - 192.0.2.255", "192.0.2.0/24", false},
		{"2001:db8::/48", "2001:db8::/48", false},
		{"192.0.2.4-192.0.2.1", "", true},
		{"192.0.2.4-2001:db8::", "", true},
		{"192.0.2.300", "", true},
		{"192.0.2.0/33", "", true},
		{"x-192.0.2.1", "", true},
		{"192.0.2.1-x", "", true},
		{"", "", true},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("ParseRange(%q) err = %v", tt.in, err)
			continue
		}
		if err == nil && r.String() != tt.want {
			t.Errorf("ParseRange(%q) = %s, want %s", tt.in, r, tt.want)
		}
	}
	_, err := ParseRange("192.0.2.4-192.0.2.1")
	if !errors.Is(err, ErrBadRange) {
		t.Errorf("reversed range error %v is not ErrBadRange", err)
	}
}

func TestAddErrors(t *testing.T) {
	var s Set
	a4, a6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for _, tc := range [][2]netip.Addr{{a4, a6}, {a6, a4}, {a4, netip.Addr{}}, {netip.MustParseAddr("192.0.2.2"), a4}} {
		if err := s.AddRange(tc[0], tc[1]); !errors.Is(err, ErrBadRange) {
			t.Errorf("AddRange(%v, %v) = %v", tc[0], tc[1], err)
		}
	}
	s.AddAddr(netip.Addr{})
	s.AddPrefix(netip.Prefix{})
	if !s.IsEmpty() {
		t.Errorf("invalid input added %v", s)
	}
	s.AddPrefix(netip.MustParsePrefix("::ffff:0:0/96"))
	s.AddPrefix(netip.MustParsePrefix("10.1.2.3/8"))
	if got := strs(s); !slices.Equal(got, []string{"0.0.0.0/0", "10.0.0.0/8"}) {
		t.Errorf("AddPrefix = %q", got)
	}
}

func TestAddresses(t *testing.T) {
	s := mk(t, "0.0.0.0/0", "::/0")
	v4, v6 := s.Addresses()
	if v4 != 1<<32 || v6 != math.Pow(2, 128) {
		t.Errorf("Addresses = %d, %g", v4, v6)
	}
	s = mk(t, "10.0.0.0/24", "192.0.2.1", "2001:db8::/120", "2001:db8:1::1")
	v4, v6 = s.Addresses()
	if v4 != 257 || v6 != 257 {
		t.Errorf("Addresses = %d, %g", v4, v6)
	}
}

func TestFamilyCloneEqual(t *testing.T) {
	s := mk(t, "10.0.0.0/8", "2001:db8::/32")
	if v4, v6 := s.Len(); v4 != 1 || v6 != 1 {
		t.Errorf("Len = %d, %d", v4, v6)
	}
	a, b := s.Split()
	if !a.Equal(s.Family(IPv4)) || !b.Equal(s.Family(IPv6)) || len(a.V6) != 0 || len(b.V4) != 0 {
		t.Errorf("Split = %v, %v", a, b)
	}
	if !s.Family(Family(0)).IsEmpty() {
		t.Error("Family(0) not empty")
	}
	c := s.Clone()
	c.V4[0].Lo++
	if c.Equal(s) || s.V4[0].Lo != 10<<24 {
		t.Error("Clone shares memory")
	}
}

func TestU128(t *testing.T) {
	if MaxU128.Add1() != (U128{}) || (U128{}).Sub1() != MaxU128 {
		t.Error("wrap at the ends")
	}
	if (U128{0, math.MaxUint64}).Add1() != (U128{1, 0}) || (U128{1, 0}).Sub1() != (U128{0, math.MaxUint64}) {
		t.Error("carry between halves")
	}
	if (U128{1, 0}).Cmp(U128{0, 5}) != 1 || (U128{0, 5}).Cmp(U128{1, 0}) != -1 || MaxU128.Cmp(MaxU128) != 0 {
		t.Error("Cmp")
	}
	a := netip.MustParseAddr("2001:db8::1")
	if AddrFrom6(U128From(a)) != a {
		t.Error("U128 round trip")
	}
	if AddrFrom4(U32(netip.MustParseAddr("192.0.2.1"))) != netip.MustParseAddr("192.0.2.1") {
		t.Error("U32 round trip")
	}
	if U32(netip.MustParseAddr("::ffff:192.0.2.1")) != 0xc0000201 || U32(a) != 0 || U128From(netip.Addr{}) != (U128{}) {
		t.Error("U32 of mapped / IPv6, U128From of zero")
	}
}

// The radix sort behind Merge only runs on large inputs; check it against a
// comparison sort, with keys that share high bytes (skipped passes, one
// bucket holding everything), spread over every top byte, and ties.
func TestMergeLarge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, mask := range []uint32{0xffffffff, 0x0000ffff, 0xff00ff00, 0x000000ff, 0, 0xff0000ff, 0xfff00000} {
		rs := make([]Range4, 20000)
		for i := range rs {
			lo := rng.Uint32() & mask
			if mask>>24 != 0xff {
				lo |= 0x0a000000
			}
			rs[i] = Range4{lo, lo + uint32(rng.IntN(3))}
		}
		want := slices.Clone(rs)
		slices.SortFunc(want, func(a, b Range4) int { return cmp4(a.Lo, b.Lo) })
		got := slices.Clone(rs)
		sort4(got)
		for i := range got {
			if got[i].Lo != want[i].Lo {
				t.Fatalf("mask %x: sort4[%d].Lo = %d, want %d", mask, i, got[i].Lo, want[i].Lo)
			}
		}
		s := Set{V4: slices.Clone(rs)}
		s.Merge()
		// Reference: mark every address in a map, then compare membership.
		in := map[uint32]bool{}
		for _, r := range rs {
			for v := uint64(r.Lo); v <= uint64(r.Hi); v++ {
				in[uint32(v)] = true
			}
		}
		var n uint64
		for _, r := range s.V4 {
			n += uint64(r.Hi-r.Lo) + 1
			for v := uint64(r.Lo); v <= uint64(r.Hi); v++ {
				if !in[uint32(v)] {
					t.Fatalf("mask %x: merged %v holds %d, not in the input", mask, r, v)
				}
			}
		}
		if n != uint64(len(in)) || !s.IsMerged() {
			t.Fatalf("mask %x: merged holds %d addresses, want %d (merged %v)", mask, n, len(in), s.IsMerged())
		}
	}
}

// A blocklist is held by the feed, the plan and the backend at once; the
// operations that build the plan must not copy it when they change nothing.
func TestUnionAndSubtractShareWhatTheyDoNotChange(t *testing.T) {
	big := randomSet(5, 5000)
	// The address after a range of a merged set is in the gap before the next.
	allow := FromAddrs(AddrFrom4(big.V4[3].Hi+1), netip.MustParseAddr("::1"))
	same := func(a, b []Range4) bool { return len(a) > 0 && len(a) == len(b) && &a[0] == &b[0] }
	if u := Union(big, Set{V6: allow.V6}); !same(u.V4, big.V4) {
		t.Error("Union copied the only IPv4 input")
	}
	if d := big.Subtract(allow); !same(d.V4, big.V4) {
		t.Error("Subtract copied a family that lost nothing")
	}
	hit := FromAddrs(AddrFrom4(big.V4[7].Lo))
	if d := big.Subtract(hit); same(d.V4, big.V4) || len(d.V4) > len(big.V4) || d.Contains(AddrFrom4(big.V4[7].Lo)) {
		t.Error("Subtract of an address in the set must return a new array without it")
	}
	if u := Union(big, big); same(u.V4, big.V4) || !u.Equal(big) {
		t.Error("Union of two inputs must merge into a new array")
	}
}

// A long list parsed from a stream of unknown length ends in an array of
// its own length, and merging that shrinks it moves it to a fitting one.
func TestLongListsEndInFittingArrays(t *testing.T) {
	var b []byte
	for i := range 3 * block4 {
		b = fmt.Appendf(b, "10.%d.%d.%d\n", i>>16, i>>8&0xff, i&0xff)
	}
	s, st, err := Parse(struct{ io.Reader }{bytesReader(b)}, ParseOptions{})
	if err != nil || st.Entries != 3*block4 {
		t.Fatal(err, st.Entries)
	}
	if len(s.V4) != 3*block4 || cap(s.V4) != len(s.V4) {
		t.Fatalf("parsed %d ranges into an array of %d", len(s.V4), cap(s.V4))
	}
	for i, r := range s.V4 {
		if r.Lo != 10<<24|uint32(i) {
			t.Fatalf("range %d is %v: blocks joined out of order", i, r)
		}
	}
	parsed := &s.V4[0]
	s.Merge() // one range: 10.0.0.0-10.2.255.255
	if len(s.V4) != 1 || cap(s.V4) != 1 || &s.V4[0] == parsed {
		t.Fatalf("merged into %d ranges in an array of %d (the parsed one: %v)", len(s.V4), cap(s.V4), &s.V4[0] == parsed)
	}
}

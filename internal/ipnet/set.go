package ipnet

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"sort"
)

// AddAddr appends the single address a to s, leaving s unmerged.
// IPv4-mapped IPv6 addresses are added as IPv4, zones are dropped, and the
// zero Addr is ignored.
func (s *Set) AddAddr(a netip.Addr) {
	a = a.Unmap()
	switch {
	case a.Is4():
		v := U32(a)
		s.V4 = append(s.V4, Range4{v, v})
	case a.Is6():
		v := U128From(a)
		s.V6 = append(s.V6, Range6{v, v})
	}
}

// AddPrefix appends p (host bits masked) to s, leaving s unmerged. A prefix
// inside ::ffff:0:0/96 is added as the IPv4 prefix it maps; an invalid
// prefix is ignored.
func (s *Set) AddPrefix(p netip.Prefix) {
	if !p.IsValid() {
		return
	}
	a, n := p.Addr(), p.Bits()
	if a.Is4In6() && n >= 96 {
		a, n = a.Unmap(), n-96
	}
	if a.Is4() {
		m := hostMask4(n)
		lo := U32(a) &^ m
		s.V4 = append(s.V4, Range4{lo, lo | m})
		return
	}
	s.V6 = append(s.V6, prefix6(netip.PrefixFrom(a, n)))
}

// prefix6 returns the range of an IPv6 prefix as it is, without unmapping.
func prefix6(p netip.Prefix) Range6 {
	m := hostMask6(p.Bits())
	v := U128From(p.Addr())
	lo := U128{v.Hi &^ m.Hi, v.Lo &^ m.Lo}
	return Range6{lo, U128{lo.Hi | m.Hi, lo.Lo | m.Lo}}
}

// ErrBadRange is wrapped by AddRange and ParseRange for a range whose ends
// are of different families or in the wrong order.
var ErrBadRange = errors.New("bad address range")

// AddRange appends the inclusive range lo..hi to s, leaving s unmerged. Both
// ends are unmapped first; they must then be of the same family and lo ≤ hi.
func (s *Set) AddRange(lo, hi netip.Addr) error {
	lo, hi = lo.Unmap(), hi.Unmap()
	switch {
	case !lo.IsValid() || !hi.IsValid():
		return fmt.Errorf("%w: invalid address", ErrBadRange)
	case lo.Is4() != hi.Is4():
		return fmt.Errorf("%w: %s-%s mixes IPv4 and IPv6", ErrBadRange, lo, hi)
	case hi.Less(lo):
		return fmt.Errorf("%w: %s-%s ends before it starts", ErrBadRange, lo, hi)
	}
	if lo.Is4() {
		s.V4 = append(s.V4, Range4{U32(lo), U32(hi)})
	} else {
		s.V6 = append(s.V6, Range6{U128From(lo), U128From(hi)})
	}
	return nil
}

// Add appends the range r (as returned by ParseRange or Lookup) to s.
func (s *Set) Add(r Range) error { return s.AddRange(r.Lo, r.Hi) }

// Merge sorts s and coalesces overlapping and adjacent ranges, in place.
// Afterwards s is merged; a result much shorter than its array is moved to
// one of its own size, so that the slack is not kept with the list.
func (s *Set) Merge() {
	s.V4 = merge4(s.V4)
	s.V6 = merge6(s.V6)
}

// IsMerged reports whether s is sorted, disjoint and without adjacent ranges.
func (s Set) IsMerged() bool {
	for i := 1; i < len(s.V4); i++ {
		if uint64(s.V4[i].Lo) <= uint64(s.V4[i-1].Hi)+1 {
			return false
		}
	}
	for i := 1; i < len(s.V6); i++ {
		if !s.V6[i-1].Hi.Less(s.V6[i].Lo) || s.V6[i-1].Hi.Add1() == s.V6[i].Lo {
			return false
		}
	}
	for _, r := range s.V4 {
		if r.Hi < r.Lo {
			return false
		}
	}
	for _, r := range s.V6 {
		if r.Hi.Less(r.Lo) {
			return false
		}
	}
	return true
}

// merged returns s itself when it is already merged and a merged copy
// otherwise, so that operations documented to take merged sets stay correct
// (if slower) when handed unmerged ones.
func (s Set) merged() Set {
	if s.IsMerged() {
		return s
	}
	c := s.Clone()
	c.Merge()
	return c
}

func merge4(rs []Range4) []Range4 {
	if len(rs) < 2 {
		return rs
	}
	if !sorted4(rs) { // a cached list is read back sorted: no sort buffer then
		sort4(rs)
	}
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		// uint64 so that last.Hi == 255.255.255.255 cannot wrap to 0.
		if uint64(r.Lo) <= uint64(last.Hi)+1 {
			if r.Hi > last.Hi {
				last.Hi = r.Hi
			}
			continue
		}
		out = append(out, r)
	}
	clear(rs[len(out):])
	return fit(out, cap(rs))
}

// fit returns rs in an array of its own length when the array it shares
// (of capacity c) is more than an eighth larger: a list parsed by growing a
// slice, or shrunk by merging, would otherwise keep the slack for as long as
// it is in force.
func fit[R any](rs []R, c int) []R {
	if c < 1024 || c-len(rs) <= c/8 {
		return rs[:len(rs):len(rs)]
	}
	return slices.Clone(rs)
}

func sorted4(rs []Range4) bool {
	for i := 1; i < len(rs); i++ {
		if rs[i].Lo < rs[i-1].Lo {
			return false
		}
	}
	return true
}

func merge6(rs []Range6) []Range6 {
	if len(rs) < 2 {
		return rs
	}
	slices.SortFunc(rs, func(a, b Range6) int {
		if c := a.Lo.Cmp(b.Lo); c != 0 {
			return c
		}
		return a.Hi.Cmp(b.Hi)
	})
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if !last.Hi.Less(r.Lo) || (last.Hi != MaxU128 && last.Hi.Add1() == r.Lo) {
			if last.Hi.Less(r.Hi) {
				last.Hi = r.Hi
			}
			continue
		}
		out = append(out, r)
	}
	clear(rs[len(out):])
	return fit(out, cap(rs))
}

// sort4 sorts by Lo (ties in any order: merging does not care), in place.
// Large lists, the million-address feeds, take a radix sort, about five
// times faster than a comparison sort at that size: an in-place pass on the
// top byte (American flag sort) splits the list into 256 buckets, and each
// bucket is sorted on the three lower bytes by an LSD radix sort through a
// buffer of the bucket's size. A list spread over the address space thus
// needs a few kilobytes besides itself instead of a second array as large.
func sort4(rs []Range4) {
	if len(rs) < 4096 {
		slices.SortFunc(rs, func(a, b Range4) int { return cmp4(a.Lo, b.Lo) })
		return
	}
	start, end := partitionTop4(rs)
	var buf []Range4
	for b := range 256 {
		bucket := rs[start[b]:end[b]]
		if len(bucket) < 256 {
			slices.SortFunc(bucket, func(a, b Range4) int { return cmp4(a.Lo, b.Lo) })
			continue
		}
		if cap(buf) < len(bucket) {
			buf = make([]Range4, len(bucket))
		}
		radixLow4(bucket, buf[:len(bucket)])
	}
}

// partitionTop4 reorders rs by the top byte of Lo in place and returns
// where each byte's bucket starts and ends.
func partitionTop4(rs []Range4) (start, end [256]int) {
	for _, r := range rs {
		end[byte(r.Lo>>24)]++
	}
	sum := 0
	for d, n := range end {
		start[d] = sum
		sum += n
		end[d] = sum
	}
	next := start
	// Each range goes straight to the next free slot of its bucket, taking
	// up the range found there, until one belongs where the cycle started.
	for b := range 256 {
		for next[b] < end[b] {
			r := rs[next[b]]
			for d := byte(r.Lo >> 24); int(d) != b; d = byte(r.Lo >> 24) {
				rs[next[d]], r = r, rs[next[d]]
				next[d]++
			}
			rs[next[b]] = r
			next[b]++
		}
	}
	return start, end
}

// radixLow4 sorts rs on the three lower bytes of Lo (an LSD radix sort
// through buf, as long as rs).
func radixLow4(rs, buf []Range4) {
	var counts [3][256]int
	for _, r := range rs {
		counts[0][byte(r.Lo)]++
		counts[1][byte(r.Lo>>8)]++
		counts[2][byte(r.Lo>>16)]++
	}
	src, dst := rs, buf
	for pass := range 3 {
		c := &counts[pass]
		if c[byte(src[0].Lo>>(8*pass))] == len(src) {
			continue // every key has the same byte here
		}
		sum := 0
		for i, n := range c {
			c[i] = sum
			sum += n
		}
		shift := 8 * pass
		for _, r := range src {
			d := byte(r.Lo >> shift)
			dst[c[d]] = r
			c[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &rs[0] {
		copy(rs, src)
	}
}

// Subtract returns the merged set of the addresses in s that are not in del.
// Both are expected merged; unmerged inputs are merged on a copy first.
// A hole inside a range splits it in two. A family that loses nothing is
// returned as it is, sharing s's array: a million-entry blocklist minus a
// whitelist it does not touch costs no copy.
func (s Set) Subtract(del Set) Set {
	s, del = s.merged(), del.merged()
	return Set{V4: subtract4(s.V4, del.V4), V6: subtract6(s.V6, del.V6)}
}

func subtract4(a, d []Range4) []Range4 {
	if len(a) == 0 {
		return nil
	}
	if !overlap(a, d, func(x, y Range4) bool { return x.Hi < y.Lo }) {
		return a
	}
	out := make([]Range4, 0, len(a))
	j := 0
	for _, r := range a {
		for j < len(d) && d[j].Hi < r.Lo {
			j++
		}
		lo := uint64(r.Lo) // uint64: lo may step past 255.255.255.255
		for k := j; k < len(d) && d[k].Lo <= r.Hi; k++ {
			if uint64(d[k].Lo) > lo {
				out = append(out, Range4{uint32(lo), d[k].Lo - 1})
			}
			lo = uint64(d[k].Hi) + 1
			if lo > uint64(r.Hi) {
				break
			}
		}
		if lo <= uint64(r.Hi) {
			out = append(out, Range4{uint32(lo), r.Hi})
		}
	}
	return out
}

func subtract6(a, d []Range6) []Range6 {
	if len(a) == 0 {
		return nil
	}
	if !overlap(a, d, func(x, y Range6) bool { return x.Hi.Less(y.Lo) }) {
		return a
	}
	out := make([]Range6, 0, len(a))
	j := 0
	for _, r := range a {
		for j < len(d) && d[j].Hi.Less(r.Lo) {
			j++
		}
		lo, done := r.Lo, false
		for k := j; k < len(d) && !r.Hi.Less(d[k].Lo); k++ {
			if lo.Less(d[k].Lo) {
				out = append(out, Range6{lo, d[k].Lo.Sub1()})
			}
			if !d[k].Hi.Less(r.Hi) { // covers the rest of r (and avoids wrapping at the top)
				done = true
				break
			}
			lo = d[k].Hi.Add1()
		}
		if !done {
			out = append(out, Range6{lo, r.Hi})
		}
	}
	return out
}

// overlap reports whether a range of the merged slice a meets one of the
// merged slice d; before(x, y) says that x ends before y starts.
func overlap[R any](a, d []R, before func(x, y R) bool) bool {
	i, j := 0, 0
	for i < len(a) && j < len(d) {
		switch {
		case before(a[i], d[j]):
			i++
		case before(d[j], a[i]):
			j++
		default:
			return true
		}
	}
	return false
}

// Intersect returns the merged set of the addresses in both a and b.
func Intersect(a, b Set) Set { return a.Subtract(a.Subtract(b)) }

// Union returns the merged union of sets (merged or not); the inputs are not
// modified. When a family comes from a single merged input, the result
// shares that input's array instead of copying it (the common case of one
// feed).
func Union(sets ...Set) Set {
	var n4, n6 int
	var only4, only6 []int // the inputs holding each family, up to two
	for i, s := range sets {
		n4 += len(s.V4)
		n6 += len(s.V6)
		if len(s.V4) > 0 && len(only4) < 2 {
			only4 = append(only4, i)
		}
		if len(s.V6) > 0 && len(only6) < 2 {
			only6 = append(only6, i)
		}
	}
	var u Set
	if len(only4) == 1 && (Set{V4: sets[only4[0]].V4}).IsMerged() {
		u.V4, n4 = sets[only4[0]].V4, 0
	}
	if len(only6) == 1 && (Set{V6: sets[only6[0]].V6}).IsMerged() {
		u.V6, n6 = sets[only6[0]].V6, 0
	}
	if n4 > 0 {
		u.V4 = make([]Range4, 0, n4)
		for _, s := range sets {
			u.V4 = append(u.V4, s.V4...)
		}
		u.V4 = merge4(u.V4)
	}
	if n6 > 0 {
		u.V6 = make([]Range6, 0, n6)
		for _, s := range sets {
			u.V6 = append(u.V6, s.V6...)
		}
		u.V6 = merge6(u.V6)
	}
	return u
}

// Diff compares two merged sets element by element, as an nftables interval
// set sees them: added holds the ranges of next that are not in prev with
// exactly the same bounds, removed the ranges of prev not in next. Applying
// "delete removed, add added" to a set holding prev yields next. Both results
// are merged; unmerged inputs are merged on a copy first.
func Diff(prev, next Set) (added, removed Set) {
	prev, next = prev.merged(), next.merged()
	added.V4, removed.V4 = diffSorted(next.V4, prev.V4, func(a, b Range4) int { return cmp4(a.Lo, b.Lo) })
	added.V6, removed.V6 = diffSorted(next.V6, prev.V6, func(a, b Range6) int { return a.Lo.Cmp(b.Lo) })
	return added, removed
}

func cmp4(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// diffSorted returns the elements only in a and only in b, for slices sorted
// by cmp; equal keys with different values count as one removal plus one
// addition.
func diffSorted[R comparable](a, b []R, cmp func(x, y R) int) (onlyA, onlyB []R) {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch c := cmp(a[i], b[j]); {
		case c < 0:
			onlyA = append(onlyA, a[i])
			i++
		case c > 0:
			onlyB = append(onlyB, b[j])
			j++
		default:
			if a[i] != b[j] {
				onlyA = append(onlyA, a[i])
				onlyB = append(onlyB, b[j])
			}
			i++
			j++
		}
	}
	onlyA = append(onlyA, a[i:]...)
	onlyB = append(onlyB, b[j:]...)
	return onlyA, onlyB
}

// Contains reports whether a is in the merged set s. IPv4-mapped addresses
// are looked up as IPv4.
func (s Set) Contains(a netip.Addr) bool {
	_, ok := s.Lookup(a)
	return ok
}

// Lookup returns the range of the merged set s that contains a, to say why an
// address is blocked or allowed.
func (s Set) Lookup(a netip.Addr) (Range, bool) {
	a = a.WithZone("").Unmap()
	switch {
	case a.Is4():
		v := U32(a)
		i := sort.Search(len(s.V4), func(i int) bool { return s.V4[i].Hi >= v })
		if i < len(s.V4) && s.V4[i].Lo <= v {
			return s.V4[i].Range(), true
		}
	case a.Is6():
		v := U128From(a)
		i := sort.Search(len(s.V6), func(i int) bool { return !s.V6[i].Hi.Less(v) })
		if i < len(s.V6) && !v.Less(s.V6[i].Lo) {
			return s.V6[i].Range(), true
		}
	}
	return Range{}, false
}

// Len returns the number of ranges per family.
func (s Set) Len() (v4, v6 int) { return len(s.V4), len(s.V6) }

// IsEmpty reports whether s holds no range.
func (s Set) IsEmpty() bool { return len(s.V4) == 0 && len(s.V6) == 0 }

// Addresses returns how many addresses the merged set s covers: exactly for
// IPv4, and as a float64 for IPv6, whose count can reach 2^128.
func (s Set) Addresses() (v4 uint64, v6 float64) {
	for _, r := range s.V4 {
		v4 += uint64(r.Hi-r.Lo) + 1
	}
	const two64 = 1 << 64
	for _, r := range s.V6 {
		d := r.Hi.sub(r.Lo)
		v6 += float64(d.Hi)*two64 + float64(d.Lo) + 1
	}
	return v4, v6
}

// Clone returns a deep copy of s.
func (s Set) Clone() Set {
	return Set{V4: slices.Clone(s.V4), V6: slices.Clone(s.V6)}
}

// Equal reports whether s and t hold the same ranges in the same order; for
// merged sets that is equality as sets of addresses.
func (s Set) Equal(t Set) bool {
	return slices.Equal(s.V4, t.V4) && slices.Equal(s.V6, t.V6)
}

// Family returns the part of s of family f (sharing s's backing array).
func (s Set) Family(f Family) Set {
	switch f {
	case IPv4:
		return Set{V4: s.V4}
	case IPv6:
		return Set{V6: s.V6}
	}
	return Set{}
}

// Split returns the IPv4 and IPv6 parts of s (sharing s's backing arrays).
func (s Set) Split() (v4, v6 Set) { return Set{V4: s.V4}, Set{V6: s.V6} }

// FromPrefixes returns the merged set of the given prefixes (host bits
// masked, IPv4-mapped ones as IPv4, invalid ones ignored).
func FromPrefixes(ps ...netip.Prefix) Set {
	var s Set
	for _, p := range ps {
		s.AddPrefix(p)
	}
	s.Merge()
	return s
}

// FromAddrs returns the merged set of the given addresses.
func FromAddrs(as ...netip.Addr) Set {
	var s Set
	for _, a := range as {
		s.AddAddr(a)
	}
	s.Merge()
	return s
}

// Ranges yields every range of s as a Range, IPv4 first.
func (s Set) Ranges() iter.Seq[Range] {
	return func(yield func(Range) bool) {
		for _, r := range s.V4 {
			if !yield(r.Range()) {
				return
			}
		}
		for _, r := range s.V6 {
			if !yield(r.Range()) {
				return
			}
		}
	}
}

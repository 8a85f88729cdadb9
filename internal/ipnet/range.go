package ipnet

import (
	"fmt"
	"iter"
	"math/bits"
	"net/netip"
	"strings"
)

// Range is an inclusive address range in netip form, for callers that print
// or compare a single range (Lookup, ParseRange). Both ends are of the same
// family and Lo ≤ Hi.
type Range struct{ Lo, Hi netip.Addr }

// Range returns r as a Range.
func (r Range4) Range() Range { return Range{AddrFrom4(r.Lo), AddrFrom4(r.Hi)} }

// Range returns r as a Range.
func (r Range6) Range() Range { return Range{AddrFrom6(r.Lo), AddrFrom6(r.Hi)} }

// Prefix returns r as a single prefix when it is exactly one.
func (r Range) Prefix() (netip.Prefix, bool) {
	if !r.Lo.IsValid() {
		return netip.Prefix{}, false
	}
	if r.Lo.Is4() {
		return Range4{U32(r.Lo), U32(r.Hi)}.Prefix()
	}
	return Range6{U128From(r.Lo), U128From(r.Hi)}.Prefix()
}

// String prints r as a CIDR when it is exactly one prefix and as "lo-hi"
// otherwise; Parse reads both forms back.
func (r Range) String() string {
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	if !r.Lo.IsValid() {
		return "invalid range"
	}
	return r.Lo.String() + "-" + r.Hi.String()
}

// Prefix returns r as a single prefix when it is exactly one.
func (r Range4) Prefix() (netip.Prefix, bool) {
	size := uint64(r.Hi) - uint64(r.Lo) + 1
	if r.Hi < r.Lo || size&(size-1) != 0 || uint64(r.Lo)&(size-1) != 0 {
		return netip.Prefix{}, false
	}
	k := 0
	for size > 1 {
		size >>= 1
		k++
	}
	return netip.PrefixFrom(AddrFrom4(r.Lo), 32-k), true
}

// Prefix returns r as a single prefix when it is exactly one.
func (r Range6) Prefix() (netip.Prefix, bool) {
	if r.Hi.Less(r.Lo) {
		return netip.Prefix{}, false
	}
	d := r.Hi.sub(r.Lo) // size-1, which must be all ones in the low k bits
	k := d.bitLen()
	if d != hostMask6(128-k) || r.Lo.trailingZeros() < k {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(AddrFrom6(r.Lo), 128-k), true
}

// String prints r as a CIDR when it is exactly one prefix, "lo-hi" otherwise.
func (r Range4) String() string {
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return AddrFrom4(r.Lo).String() + "-" + AddrFrom4(r.Hi).String()
}

// String prints r as a CIDR when it is exactly one prefix, "lo-hi" otherwise.
func (r Range6) String() string {
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return AddrFrom6(r.Lo).String() + "-" + AddrFrom6(r.Hi).String()
}

// appendText appends r in String's form without allocating.
func (r Range4) appendText(b []byte) []byte {
	if p, ok := r.Prefix(); ok {
		return p.AppendTo(b)
	}
	b = AddrFrom4(r.Lo).AppendTo(b)
	b = append(b, '-')
	return AddrFrom4(r.Hi).AppendTo(b)
}

func (r Range6) appendText(b []byte) []byte {
	if p, ok := r.Prefix(); ok {
		return p.AppendTo(b)
	}
	b = AddrFrom6(r.Lo).AppendTo(b)
	b = append(b, '-')
	return AddrFrom6(r.Hi).AppendTo(b)
}

// Prefixes appends the minimal CIDR cover of r to dst: the fewest prefixes
// whose union is exactly r (at most 62 for IPv4, 254 for IPv6).
func (r Range4) Prefixes(dst []netip.Prefix) []netip.Prefix {
	if r.Hi < r.Lo {
		return dst
	}
	// uint64 so that stepping past 255.255.255.255 ends the loop instead of wrapping.
	lo, hi := uint64(r.Lo), uint64(r.Hi)
	for lo <= hi {
		k := 32
		if lo != 0 {
			k = bits.TrailingZeros32(uint32(lo))
		}
		for k > 0 && lo+(1<<k)-1 > hi {
			k--
		}
		dst = append(dst, netip.PrefixFrom(AddrFrom4(uint32(lo)), 32-k))
		lo += 1 << k
	}
	return dst
}

// Prefixes appends the minimal CIDR cover of r to dst.
func (r Range6) Prefixes(dst []netip.Prefix) []netip.Prefix {
	if r.Hi.Less(r.Lo) {
		return dst
	}
	lo := r.Lo
	for {
		d := r.Hi.sub(lo) // addresses left, minus one
		if d == MaxU128 {
			return append(dst, netip.PrefixFrom(AddrFrom6(lo), 0))
		}
		// The block at lo is limited by lo's alignment and by what is left.
		k := min(lo.trailingZeros(), d.Add1().bitLen()-1)
		dst = append(dst, netip.PrefixFrom(AddrFrom6(lo), 128-k))
		last := lo.add(hostMask6(128 - k))
		if last == r.Hi {
			return dst
		}
		lo = last.Add1()
	}
}

// AppendPrefixes appends the minimal CIDR cover of every range of s to dst,
// IPv4 first, in order.
func (s Set) AppendPrefixes(dst []netip.Prefix) []netip.Prefix {
	for _, r := range s.V4 {
		dst = r.Prefixes(dst)
	}
	for _, r := range s.V6 {
		dst = r.Prefixes(dst)
	}
	return dst
}

// AllPrefixes yields the minimal CIDR cover of every range of s, IPv4 first,
// without building the whole list.
func (s Set) AllPrefixes() iter.Seq[netip.Prefix] {
	return func(yield func(netip.Prefix) bool) {
		var buf []netip.Prefix
		for _, r := range s.V4 {
			buf = r.Prefixes(buf[:0])
			for _, p := range buf {
				if !yield(p) {
					return
				}
			}
		}
		for _, r := range s.V6 {
			buf = r.Prefixes(buf[:0])
			for _, p := range buf {
				if !yield(p) {
					return
				}
			}
		}
	}
}

// ParseRange parses one address, CIDR ("10.0.0.0/8", host bits masked) or
// range ("lo-hi") as written in a config file or on a command line, with
// ParsePrefix's rules for each address. The error names what is wrong.
func ParseRange(s string) (Range, error) {
	var t Set
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err := ParseAddr(lo)
		if err != nil {
			return Range{}, fmt.Errorf("parse range %q: %w", s, err)
		}
		b, err := ParseAddr(hi)
		if err != nil {
			return Range{}, fmt.Errorf("parse range %q: %w", s, err)
		}
		if err := t.AddRange(a, b); err != nil {
			return Range{}, fmt.Errorf("parse range %q: %w", s, err)
		}
		return t.first(), nil
	}
	p, err := ParsePrefix(s, Mode{HostBits: MaskHostBits})
	if err != nil {
		return Range{}, fmt.Errorf("parse range: %w", err)
	}
	t.AddPrefix(p)
	return t.first(), nil
}

func (s Set) first() Range {
	if len(s.V4) > 0 {
		return s.V4[0].Range()
	}
	return s.V6[0].Range()
}

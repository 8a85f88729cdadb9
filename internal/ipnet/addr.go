package ipnet

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// MaxU128 is the largest U128, the integer of ffff:ffff:…:ffff.
var MaxU128 = U128{Hi: ^uint64(0), Lo: ^uint64(0)}

// Cmp returns -1, 0 or +1 as u is less than, equal to or greater than v.
func (u U128) Cmp(v U128) int {
	switch {
	case u.Hi < v.Hi:
		return -1
	case u.Hi > v.Hi:
		return 1
	case u.Lo < v.Lo:
		return -1
	case u.Lo > v.Lo:
		return 1
	}
	return 0
}

// Less reports whether u < v.
func (u U128) Less(v U128) bool { return u.Hi < v.Hi || (u.Hi == v.Hi && u.Lo < v.Lo) }

// Add1 returns u+1, wrapping from MaxU128 to zero.
func (u U128) Add1() U128 {
	lo, c := bits.Add64(u.Lo, 1, 0)
	return U128{Hi: u.Hi + c, Lo: lo}
}

// Sub1 returns u-1, wrapping from zero to MaxU128.
func (u U128) Sub1() U128 {
	lo, b := bits.Sub64(u.Lo, 1, 0)
	return U128{Hi: u.Hi - b, Lo: lo}
}

func (u U128) sub(v U128) U128 {
	lo, b := bits.Sub64(u.Lo, v.Lo, 0)
	return U128{Hi: u.Hi - v.Hi - b, Lo: lo}
}

func (u U128) add(v U128) U128 {
	lo, c := bits.Add64(u.Lo, v.Lo, 0)
	return U128{Hi: u.Hi + v.Hi + c, Lo: lo}
}

// trailingZeros returns the number of trailing zero bits (128 for zero).
func (u U128) trailingZeros() int {
	if u.Lo != 0 {
		return bits.TrailingZeros64(u.Lo)
	}
	return 64 + bits.TrailingZeros64(u.Hi) // 128 when u is zero
}

// bitLen returns the number of bits needed to represent u (0 for zero).
func (u U128) bitLen() int {
	if u.Hi != 0 {
		return 64 + bits.Len64(u.Hi)
	}
	return bits.Len64(u.Lo)
}

// hostMask6 returns the host-bit mask of an IPv6 /bitsLen prefix.
func hostMask6(bitsLen int) U128 {
	switch {
	case bitsLen <= 0:
		return MaxU128
	case bitsLen >= 128:
		return U128{}
	case bitsLen >= 64:
		return U128{Lo: ^uint64(0) >> (bitsLen - 64)}
	}
	return U128{Hi: ^uint64(0) >> bitsLen, Lo: ^uint64(0)}
}

// hostMask4 returns the host-bit mask of an IPv4 /bitsLen prefix.
func hostMask4(bitsLen int) uint32 {
	if bitsLen <= 0 {
		return ^uint32(0)
	}
	return ^uint32(0) >> bitsLen // Go defines x >> 32 == 0 for uint32
}

// AddrFrom4 returns the IPv4 address whose big-endian integer is v.
func AddrFrom4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// AddrFrom6 returns the IPv6 address whose big-endian integer is v. The
// result is never unmapped: ::ffff:1.2.3.4 stays an IPv6 address.
func AddrFrom6(v U128) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], v.Hi)
	binary.BigEndian.PutUint64(b[8:], v.Lo)
	return netip.AddrFrom16(b)
}

// U32 returns the integer of an IPv4 (or IPv4-mapped IPv6) address, and 0
// for anything else; callers check a.Unmap().Is4() when that matters.
func U32(a netip.Addr) uint32 {
	a = a.Unmap()
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// U128From returns the integer of a as a 16-byte address; an IPv4 address is
// taken in its IPv4-mapped form. The zero Addr gives zero.
func U128From(a netip.Addr) U128 {
	if !a.IsValid() {
		return U128{}
	}
	b := a.As16()
	return U128{Hi: binary.BigEndian.Uint64(b[:8]), Lo: binary.BigEndian.Uint64(b[8:])}
}

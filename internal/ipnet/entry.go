package ipnet

import (
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
)

// HostBits says what a parse does with a CIDR whose address has bits set
// beyond its length, such as 10.1.2.3/8.
type HostBits uint8

const (
	// MaskHostBits clears them: 10.1.2.3/8 is 10.0.0.0/8. Feeds write such
	// lines, and on a whitelist masking can only widen what is never blocked.
	MaskHostBits HostBits = iota
	// RefuseHostBits makes them an error that names the masked form. Files
	// sikkerguard writes itself are canonical, so host bits mean damage.
	RefuseHostBits
)

// Mode is how one address or prefix is read. Every reader of outside text —
// the config file, the environment, D-Bus, feed lines, JSON lists, cache
// files — goes through ParsePrefix or Parse with an explicit Mode, so the
// same text means the same thing wherever it arrives.
type Mode struct {
	HostBits HostBits
	// MinBits4 and MinBits6 refuse entries wider than a /MinBits4 (IPv4) or
	// /MinBits6 (IPv6) block; 0 accepts any width. A range counts by the
	// number of addresses it covers, and an IPv4-mapped IPv6 prefix
	// (::ffff:0:0/96 and inside) is judged as the IPv4 prefix it maps, so
	// neither 0.0.0.0-255.255.255.255 nor ::ffff:0:0/96 passes for a
	// narrow entry.
	MinBits4, MinBits6 int
}

// WhitelistMode reads whitelist entries, in the config file, the
// environment and over D-Bus alike: host bits are masked, which can only
// widen what is never blocked, and no width is refused here (the daemon
// limits how wide an entry a D-Bus caller may add).
var WhitelistMode = Mode{HostBits: MaskHostBits}

// ErrTooWide is wrapped by ParsePrefix for an entry wider than the Mode's
// minimum prefix length.
var ErrTooWide = errors.New("wider than the minimum prefix length")

// EntryError is why one entry was refused. Error quotes the input; Why is
// the reason alone, for callers that quote the input themselves.
type EntryError struct {
	Text string
	Why  string
	Err  error // ErrTooWide, or nil
}

func (e *EntryError) Error() string { return fmt.Sprintf("%q %s", e.Text, e.Why) }
func (e *EntryError) Unwrap() error { return e.Err }

// ParsePrefix reads one IPv4 or IPv6 address (a /32 or /128) or CIDR, with
// a prefix length or (IPv4) a dotted netmask. IPv4-mapped IPv6 is unmapped
// (::ffff:192.0.2.0/120 is 192.0.2.0/24); zones are refused because a rule
// cannot match them. The error is an *EntryError.
func ParsePrefix(s string, m Mode) (netip.Prefix, error) {
	bad := func(why string) (netip.Prefix, error) {
		return netip.Prefix{}, &EntryError{Text: s, Why: why}
	}
	// ASCII blanks only, as on a feed line: U+00A0 and friends are not
	// part of an address.
	t := strings.Trim(s, " \t\r\n\v\f")
	switch {
	case t == "":
		return bad("is empty; want an IP address or CIDR such as 192.0.2.0/24")
	case strings.Contains(t, "%"):
		return bad("has an interface zone; zones cannot be filtered")
	}
	ab, bitsb, isCIDR := strings.Cut(t, "/")
	a, ok := parseAddr([]byte(ab))
	if !ok {
		return bad("is not an IP address or CIDR")
	}
	n := a.bitLen()
	if isCIDR {
		if n, ok = parseBits([]byte(bitsb), a); !ok {
			return bad(fmt.Sprintf("is not an IP address or CIDR: bad prefix length %q", bitsb))
		}
	}
	a, n = a.cidr(n)
	p := a.prefix(n)
	if masked := p.Masked(); masked != p {
		if m.HostBits == RefuseHostBits {
			return bad(fmt.Sprintf("has host bits set; did you mean %s?", masked))
		}
		p = masked
	}
	if min := m.minBits(a.is6); p.Bits() < min {
		return netip.Prefix{}, &EntryError{Text: s, Why: fmt.Sprintf("is %s, %v /%d", p, ErrTooWide, min), Err: ErrTooWide}
	}
	return p, nil
}

// ParseAddr reads one IP address with ParsePrefix's rules; a CIDR is
// refused.
func ParseAddr(s string) (netip.Addr, error) {
	if strings.Contains(s, "/") {
		return netip.Addr{}, &EntryError{Text: s, Why: "is a CIDR; want a single IP address"}
	}
	p, err := ParsePrefix(s, Mode{})
	if err != nil {
		return netip.Addr{}, err
	}
	return p.Addr(), nil
}

func (m Mode) minBits(is6 bool) int {
	if is6 {
		return m.MinBits6
	}
	return m.MinBits4
}

// wide4 reports whether an IPv4 range of hi-lo+1 addresses is wider than a
// /min block.
func (m Mode) wide4(lo, hi uint32) bool {
	return m.MinBits4 > 0 && bits.Len32(hi-lo) > 32-m.MinBits4
}

// wide6 is wide4 for IPv6.
func (m Mode) wide6(lo, hi U128) bool {
	return m.MinBits6 > 0 && hi.sub(lo).bitLen() > 128-m.MinBits6
}

func (a addr) bitLen() int {
	if a.is6 {
		return 128
	}
	if a.mapped {
		return 128 // as written; cidr unmaps it
	}
	return 32
}

// cidr returns a prefix's address and length as they are stored: a mapped
// prefix of /96 or longer is the IPv4 prefix it maps; a wider one covers
// more than the mapped space and stays IPv6.
func (a addr) cidr(n int) (addr, int) {
	if !a.mapped {
		return a, n
	}
	if n < 96 {
		return a.asV6(), n
	}
	return addr{v4: a.v4}, n - 96
}

func (a addr) prefix(n int) netip.Prefix {
	if a.is6 {
		return netip.PrefixFrom(AddrFrom6(a.v6), n)
	}
	return netip.PrefixFrom(AddrFrom4(a.v4), n)
}

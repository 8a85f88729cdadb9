package ipnet

import (
	"net/netip"
	"sync"
)

// nonGlobalTable is the one list of address space that is never a legitimate
// global source or destination, so that a feed listing it is either wrong or
// would cut the host off from its own network. It follows the IANA IPv4 and
// IPv6 Special-Purpose Address Registries (RFC 6890 and updates): a block is
// listed when its "Globally Reachable" column is False or N/A. Entries with
// global set are the registry's globally reachable exceptions carved out of
// an enclosing non-global block; they are subtracted after the union.
//
// Decisions beyond the registries:
//   - 255.255.255.255 (limited broadcast) is covered by 240.0.0.0/4.
//   - 224.0.0.0/4 multicast is never a unicast source, so it is listed.
//   - For IPv6, only 2000::/3 is allocated for global unicast (RFC 4291
//     §2.4, IANA IPv6 Address Space registry), so everything outside it is
//     listed as whole blocks: ::/3, 4000::/2, 8000::/1. That includes
//     64:ff9b::/96 (RFC 6052 NAT64): blocklists name the IPv4 address, and a
//     translated source reaches the host from the translator's own address.
//     The registry entries inside ::/3 and ff00::/8 are kept for the record.
var nonGlobalTable = []struct {
	prefix netip.Prefix
	global bool   // a globally reachable exception inside a listed block
	ref    string // where the block is defined
}{
	// IPv4.
	{prefix: pfx("0.0.0.0/8"), ref: "RFC 791 §3.2: this network"},
	{prefix: pfx("10.0.0.0/8"), ref: "RFC 1918: private"},
	{prefix: pfx("100.64.0.0/10"), ref: "RFC 6598: shared address space (CGNAT)"},
	{prefix: pfx("127.0.0.0/8"), ref: "RFC 1122 §3.2.1.3: loopback"},
	{prefix: pfx("169.254.0.0/16"), ref: "RFC 3927: link local"},
	{prefix: pfx("172.16.0.0/12"), ref: "RFC 1918: private"},
	{prefix: pfx("192.0.0.0/24"), ref: "RFC 6890 §2.1: IETF protocol assignments"},
	{prefix: pfx("192.0.0.9/32"), global: true, ref: "RFC 7723: PCP anycast"},
	{prefix: pfx("192.0.0.10/32"), global: true, ref: "RFC 8155: TURN anycast"},
	{prefix: pfx("192.0.2.0/24"), ref: "RFC 5737: documentation (TEST-NET-1)"},
	{prefix: pfx("192.88.99.0/24"), ref: "RFC 7526: deprecated 6to4 relay anycast"},
	{prefix: pfx("192.168.0.0/16"), ref: "RFC 1918: private"},
	{prefix: pfx("198.18.0.0/15"), ref: "RFC 2544: benchmarking"},
	{prefix: pfx("198.51.100.0/24"), ref: "RFC 5737: documentation (TEST-NET-2)"},
	{prefix: pfx("203.0.113.0/24"), ref: "RFC 5737: documentation (TEST-NET-3)"},
	{prefix: pfx("224.0.0.0/4"), ref: "RFC 5771: multicast"},
	{prefix: pfx("240.0.0.0/4"), ref: "RFC 1112 §4: reserved, incl. 255.255.255.255 (RFC 919 limited broadcast)"},

	// IPv6.
	{prefix: pfx("::/128"), ref: "RFC 4291 §2.5.2: unspecified"},
	{prefix: pfx("::1/128"), ref: "RFC 4291 §2.5.3: loopback"},
	{prefix: pfx("::ffff:0:0/96"), ref: "RFC 4291 §2.5.5.2: IPv4-mapped (Parse unmaps these to IPv4)"},
	{prefix: pfx("64:ff9b:1::/48"), ref: "RFC 8215: local-use IPv4/IPv6 translation"},
	{prefix: pfx("100::/64"), ref: "RFC 6666: discard-only"},
	{prefix: pfx("::/3"), ref: "RFC 4291 §2.4: outside 2000::/3 global unicast (incl. 64:ff9b::/96, RFC 6052)"},
	{prefix: pfx("2001::/23"), ref: "RFC 2928: IETF protocol assignments, incl. 2001::/32 TEREDO (RFC 4380)"},
	{prefix: pfx("2001:1::1/128"), global: true, ref: "RFC 7723: PCP anycast"},
	{prefix: pfx("2001:1::2/128"), global: true, ref: "RFC 8155: TURN anycast"},
	{prefix: pfx("2001:3::/32"), global: true, ref: "RFC 7450: AMT"},
	{prefix: pfx("2001:4:112::/48"), global: true, ref: "RFC 7535: AS112-v6"},
	{prefix: pfx("2001:20::/28"), global: true, ref: "RFC 7343: ORCHIDv2"},
	{prefix: pfx("2001:30::/28"), global: true, ref: "RFC 9374: DRIP DETs"},
	{prefix: pfx("2001:db8::/32"), ref: "RFC 3849: documentation"},
	{prefix: pfx("2002::/16"), ref: "RFC 3056: 6to4 (embeds an IPv4 address; RFC 7526 deprecates the relays)"},
	{prefix: pfx("3fff::/20"), ref: "RFC 9637: documentation"},
	{prefix: pfx("4000::/2"), ref: "RFC 4291 §2.4: outside 2000::/3 global unicast"},
	{prefix: pfx("8000::/1"), ref: "RFC 4291 §2.4: outside 2000::/3 global unicast"},
	{prefix: pfx("fc00::/7"), ref: "RFC 4193: unique local"},
	{prefix: pfx("fe80::/10"), ref: "RFC 4291 §2.5.6: link-local unicast"},
	{prefix: pfx("fec0::/10"), ref: "RFC 3879: deprecated site-local"},
	{prefix: pfx("ff00::/8"), ref: "RFC 4291 §2.7: multicast"},
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

var nonGlobal = sync.OnceValue(func() Set {
	var in, out Set
	for _, e := range nonGlobalTable {
		t := &in
		if e.global {
			t = &out
		}
		if e.prefix.Addr().Is4() {
			t.AddPrefix(e.prefix)
			continue
		}
		// Not AddPrefix: it would unmap ::ffff:0:0/96 into 0.0.0.0/0.
		t.V6 = append(t.V6, prefix6(e.prefix))
	}
	in.Merge()
	out.Merge()
	return in.Subtract(out)
})

// NonGlobal returns the merged set of addresses that are never globally
// routable (see nonGlobalTable) and so are stripped from every feed. The
// result is a fresh copy the caller may modify.
func NonGlobal() Set { return nonGlobal().Clone() }

// IsGlobal reports whether a is outside NonGlobal.
func IsGlobal(a netip.Addr) bool { return a.IsValid() && !nonGlobal().Contains(a) }

// StripNonGlobal returns the merged set of the addresses of s outside
// NonGlobal, and how many ranges of the merged s lost addresses to it (whole
// or in part), for a log line.
func StripNonGlobal(s Set) (kept Set, removedRanges int) {
	s = s.merged()
	ng := nonGlobal()
	kept = s.Subtract(ng)
	for _, r := range s.V4 {
		if intersects4(r, ng.V4) {
			removedRanges++
		}
	}
	for _, r := range s.V6 {
		if intersects6(r, ng.V6) {
			removedRanges++
		}
	}
	return kept, removedRanges
}

// intersects4 reports whether r overlaps any range of the merged slice m.
func intersects4(r Range4, m []Range4) bool {
	lo, hi := 0, len(m)
	for lo < hi { // first range with Hi >= r.Lo
		mid := int(uint(lo+hi) >> 1)
		if m[mid].Hi < r.Lo {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo < len(m) && m[lo].Lo <= r.Hi
}

func intersects6(r Range6, m []Range6) bool {
	lo, hi := 0, len(m)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if m[mid].Hi.Less(r.Lo) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo < len(m) && !r.Hi.Less(m[lo].Lo)
}

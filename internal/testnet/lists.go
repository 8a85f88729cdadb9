package testnet

import (
	"math/rand/v2"
	"net/netip"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// Set returns the prefixes as a merged set; a bad prefix panics, as test
// input should never hold one.
func Set(prefixes ...string) ipnet.Set {
	var s ipnet.Set
	for _, p := range prefixes {
		s.AddPrefix(netip.MustParsePrefix(p))
	}
	s.Merge()
	return s
}

// RandomList returns about n4 IPv4 entries from 10.0.0.0/8 (single
// addresses, one in ten a /24) and n6 IPv6 entries from 2001:db8:ff00::/40
// (addresses, one in ten a /64), plus extra, merged. The same seed gives
// the same list; no lab address is in the random part.
func RandomList(seed uint64, n4, n6 int, extra ...string) ipnet.Set {
	r := rand.New(rand.NewPCG(seed, 1))
	s := Set(extra...)
	for range n4 {
		a := 0x0a000000 | r.Uint32N(1<<24)
		if r.IntN(10) == 0 {
			s.V4 = append(s.V4, ipnet.Range4{Lo: a &^ 0xff, Hi: a | 0xff})
		} else {
			s.V4 = append(s.V4, ipnet.Range4{Lo: a, Hi: a})
		}
	}
	for range n6 {
		hi := 0x20010db8ff000000 | r.Uint64N(1<<24)
		if r.IntN(10) == 0 {
			s.V6 = append(s.V6, ipnet.Range6{Lo: ipnet.U128{Hi: hi}, Hi: ipnet.U128{Hi: hi, Lo: ^uint64(0)}})
		} else {
			a := ipnet.U128{Hi: hi, Lo: r.Uint64()}
			s.V6 = append(s.V6, ipnet.Range6{Lo: a, Hi: a})
		}
	}
	s.Merge()
	return s
}

package ipnet

// TEMPORARY: signatures agreed between packages; the ipnet implementation
// replaces this file. Do not keep any of these panics.

import (
	"io"
	"net/netip"
)

// ParseOptions tunes Parse.
type ParseOptions struct {
	MaxSamples int // malformed lines kept in ParseStats.Samples (default 5)
}

// Parse reads a blocklist in any of the real-world formats (one entry a line:
// IP, CIDR, "IP<TAB>count", start-end ranges, CSV with a header, inline # and ;
// comments, CRLF) and returns the entries as an unmerged Set. Only a read
// error is returned as error; bad lines are counted in ParseStats.
func Parse(r io.Reader, opt ParseOptions) (Set, ParseStats, error) { panic("unimplemented") }

// AddAddr, AddPrefix and AddRange append to s (leaving it unmerged).
func (s *Set) AddAddr(a netip.Addr)             { panic("unimplemented") }
func (s *Set) AddPrefix(p netip.Prefix)         { panic("unimplemented") }
func (s *Set) AddRange(lo, hi netip.Addr) error { panic("unimplemented") }

// Merge sorts s and coalesces overlapping and adjacent ranges, in place.
func (s *Set) Merge() { panic("unimplemented") }

// Subtract returns the merged set of addresses in s (merged) but not in del (merged).
func (s Set) Subtract(del Set) Set { panic("unimplemented") }

// Union returns the merged union of merged sets.
func Union(sets ...Set) Set { panic("unimplemented") }

// Diff returns the ranges (as whole elements) present in next but not in prev
// (added) and in prev but not in next (removed); both inputs merged.
func Diff(prev, next Set) (added, removed Set) { panic("unimplemented") }

// Contains reports whether a is in the merged set s.
func (s Set) Contains(a netip.Addr) bool { panic("unimplemented") }

// Len returns the number of ranges per family.
func (s Set) Len() (v4, v6 int) { panic("unimplemented") }

// NonGlobal returns the merged set of addresses that are never globally
// routable and so are stripped from every feed.
func NonGlobal() Set { panic("unimplemented") }

// Range4/Range6 conversions.
func AddrFrom4(v uint32) netip.Addr { panic("unimplemented") }
func AddrFrom6(v U128) netip.Addr   { panic("unimplemented") }
func U32(a netip.Addr) uint32       { panic("unimplemented") }
func U128From(a netip.Addr) U128    { panic("unimplemented") }

// Prefixes appends the minimal CIDR cover of r to dst.
func (r Range4) Prefixes(dst []netip.Prefix) []netip.Prefix { panic("unimplemented") }
func (r Range6) Prefixes(dst []netip.Prefix) []netip.Prefix { panic("unimplemented") }

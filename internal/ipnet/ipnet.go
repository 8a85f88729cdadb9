// Package ipnet is the address arithmetic of sikkerguard: it parses blocklist
// feeds into compact interval sets and merges, subtracts, strips and diffs
// them. It is pure: values in, values out, no I/O beyond an io.Reader.
//
// Addresses are held as integers (uint32 for IPv4, U128 for IPv6) in inclusive
// ranges, so a million-entry list is two flat slices with no per-entry heap
// objects, and interval operations are linear merges over sorted slices.
package ipnet


// U128 is an unsigned 128-bit integer, used for IPv6 addresses.
type U128 struct{ Hi, Lo uint64 }

// Range4 is an inclusive range of IPv4 addresses.
type Range4 struct{ Lo, Hi uint32 }

// Range6 is an inclusive range of IPv6 addresses.
type Range6 struct{ Lo, Hi U128 }

// Set holds address ranges of both families. A Set is "merged" when each
// slice is sorted by Lo and its ranges neither overlap nor touch; every
// function that returns a Set documents whether it is merged. The zero Set is
// an empty merged set.
type Set struct {
	V4 []Range4
	V6 []Range6
}

// Family selects the IPv4 or IPv6 half of a Set.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// ParseStats counts what a parse saw; Samples keeps the first few malformed
// lines (truncated) so that a log line can show what was wrong.
type ParseStats struct {
	Lines          int // physical lines read
	Entries        int // addresses, prefixes and ranges accepted
	Skipped        int // blank lines, comments, CSV headers
	Malformed      int // lines that held something that is not an address
	HostBitsMasked int // CIDRs with host bits set (e.g. 10.0.0.1/8), masked and kept
	Samples        []Malformed
}

// Malformed is one rejected line, for logs.
type Malformed struct {
	Line int
	Text string
}

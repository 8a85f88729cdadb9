// Package ipnet is the address arithmetic of sikkerguard: it parses blocklist
// feeds into compact interval sets and merges, subtracts, strips and diffs
// them. It is pure: values in, values out, no I/O beyond an io.Reader.
//
// Addresses are held as integers (uint32 for IPv4, U128 for IPv6) in inclusive
// ranges, so a million-entry list is two flat slices with no per-entry heap
// objects, and interval operations are linear merges over sorted slices.
//
// # Input formats
//
// Parse takes one entry a line and accepts every shape real feeds use:
//
//	192.0.2.1                      a bare address (IPv4 or IPv6)
//	192.0.2.0/24                   a CIDR; host bits are masked (10.1.2.3/8 is 10.0.0.0/8)
//	192.0.2.0/255.255.255.0        a CIDR with a dotted netmask (IPv4 only)
//	192.0.2.7<TAB>42               an address followed by other columns (counts, scores)
//	192.0.2.7,85,NL                CSV; the first field is the address, a field may be "quoted"
//	192.0.2.0-192.0.2.255          a range, also "lo - hi" with spaces
//	192.0.2.0<TAB>192.0.2.255<TAB>24  start and end columns: a second column that is an address
//	192.0.2.0/24 ; SBL123          inline comments start at # or ;
//	# comment                      comment lines and blank lines are skipped
//
// Lines may end in LF or CRLF, carry leading or trailing blanks, and the last
// line needs no newline; a UTF-8 byte order mark is ignored. If the first
// line that is not blank or a comment does not start with an address it is a
// header ("ip,score,country") and is skipped. Every other line that does not
// start with an address, holds an address with leading zeros ("010.0.0.1",
// which some tools read as octal), a range that ends before it starts or mixes
// families, or is longer than MaxLineLen bytes, is counted as malformed.
// IPv4-mapped IPv6 addresses (::ffff:192.0.2.1) are taken as IPv4, unless
// they end a range whose other end is plain IPv6, and zones (fe80::1%eth0)
// are dropped. Duplicates and nested entries are kept
// until Merge.
//
// # One reader for every entry
//
// ParsePrefix reads a single address or CIDR as written in the config file,
// SIKKER_WHITELIST, a D-Bus call or a JSON list, with the same address
// rules as Parse. Both take a Mode: whether host bits are masked or refused,
// and the minimum prefix length per family. An entry wider than the minimum
// — 0.0.0.0/0, ::/0, ::ffff:0:0/96, 0.0.0.0-255.255.255.255 — is a
// malformed line for Parse and an error for ParsePrefix; a range counts by
// the number of addresses it covers, a mapped IPv6 entry as IPv4. Parse also
// stops with ErrTooManyEntries at ParseOptions.MaxEntries, so its memory is
// bounded by the limit and not by the input.
//
// WriteTo writes the canonical form, one range a line, as a CIDR when the
// range is exactly one prefix and as "lo-hi" otherwise; Parse reads it back
// unchanged.
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

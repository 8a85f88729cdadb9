package ipnet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// MaxLineLen is the longest line Parse accepts; a longer one is counted as
// malformed and skipped, however long it is.
const MaxLineLen = 4096

// sampleLen is how much of a malformed line ParseStats.Samples keeps.
const sampleLen = 80

// ParseOptions tunes Parse.
type ParseOptions struct {
	MaxSamples int // malformed lines kept in ParseStats.Samples (0 means 5, <0 none)
	// Mode says how host bits are treated and how wide an entry may be; an
	// entry wider than Mode's minimum prefix length is a malformed line.
	Mode Mode
	// MaxEntries stops the parse with ErrTooManyEntries when one more entry
	// than this arrives (0: no limit). It bounds memory by the limit rather
	// than by the body: 16 MiB of 4-byte IPv6 lines would otherwise become
	// four million 32-byte ranges before any later check could refuse them.
	MaxEntries int
}

// ErrTooManyEntries is returned by Parse when a list holds more entries than
// ParseOptions.MaxEntries; the list must then be refused as a whole.
var ErrTooManyEntries = errors.New("list holds more entries than safety.max_entries allows")

// Parse reads a blocklist in any of the real-world formats (see the package
// documentation) and returns its entries as an unmerged Set. Bad lines are
// counted in ParseStats and the first few kept as samples. A read error, or
// ErrTooManyEntries, is returned together with what was parsed before it.
func Parse(r io.Reader, opt ParseOptions) (Set, ParseStats, error) {
	p := parser{maxSamples: opt.MaxSamples, mode: opt.Mode}
	if p.maxSamples == 0 {
		p.maxSamples = 5
	}
	if l, ok := r.(interface{ Len() int }); ok {
		// An in-memory feed (bytes.Reader, strings.Reader) tells its size:
		// size the IPv4 slice for lines of ~16 bytes instead of growing it
		// through a dozen copies.
		n := min(l.Len()/16, 1<<24)
		if opt.MaxEntries > 0 {
			n = min(n, opt.MaxEntries)
		}
		p.set.V4 = make([]Range4, 0, n)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Far beyond MaxLineLen: report its start and drop the rest of it.
			p.st.Lines++
			p.content = true
			p.malformed(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
		} else if len(line) > 0 {
			p.st.Lines++
			p.line(line)
		}
		if opt.MaxEntries > 0 && p.st.Entries > opt.MaxEntries {
			// The last entry is one too many: drop it, so that the caller
			// holds at most MaxEntries, and stop reading.
			p.st.Entries--
			if n := len(p.set.V6); n > 0 && p.lastIs6 {
				p.set.V6 = p.set.V6[:n-1]
			} else {
				p.set.V4 = p.set.V4[:len(p.set.V4)-1]
			}
			return p.result(), p.st, fmt.Errorf("%w (%d) at line %d", ErrTooManyEntries, opt.MaxEntries, p.st.Lines)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return p.result(), p.st, fmt.Errorf("read blocklist line %d: %w", p.st.Lines+1, err)
		}
	}
	return p.result(), p.st, nil
}

type parser struct {
	set        Set
	st         ParseStats
	mode       Mode
	maxSamples int
	content    bool // a line other than blank or comment has been seen
	lastIs6    bool // the last entry went to set.V6
	// full4 holds the filled blocks of a long IPv4 list; set.V4 is the
	// block being filled (see add).
	full4 [][]Range4
}

// block4 is the size of the blocks a long IPv4 list of unknown length is
// read into. Growing one slice instead would copy it a dozen times, and the
// copies of a million-entry list add up to five times its size, half of it
// live at once while the last copy is made.
const block4 = 1 << 16

// result returns the parsed set, with the IPv4 blocks joined into one array
// of exactly their length.
func (p *parser) result() Set {
	if len(p.full4) > 0 {
		n := len(p.set.V4)
		for _, b := range p.full4 {
			n += len(b)
		}
		v4 := make([]Range4, 0, n)
		for _, b := range p.full4 {
			v4 = append(v4, b...)
		}
		p.set.V4, p.full4 = append(v4, p.set.V4...), nil
	}
	return p.set
}

func (p *parser) malformed(line []byte) {
	p.st.Malformed++
	if len(p.st.Samples) >= p.maxSamples {
		return
	}
	line = trimEOL(line)
	// Valid UTF-8 first (binary junk becomes U+FFFD), then cut on a rune
	// boundary, so the sample is safe to log and at most sampleLen bytes.
	s := strings.ToValidUTF8(string(line[:min(len(line), 4*sampleLen)]), "\uFFFD")
	if len(s) > sampleLen || len(line) > 4*sampleLen {
		cut := min(len(s), sampleLen)
		for cut > 0 && cut < len(s) && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	p.st.Samples = append(p.st.Samples, Malformed{Line: p.st.Lines, Text: s})
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }

// isSep ends a field: whitespace or a CSV comma.
func isSep(c byte) bool { return isSpace(c) || c == ',' }

func (p *parser) line(raw []byte) {
	b := trimEOL(raw)
	if len(b) > MaxLineLen {
		p.content = true
		p.malformed(raw)
		return
	}
	if p.st.Lines == 1 && len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		b = b[3:] // UTF-8 byte order mark from Windows editors
	}
	for i, c := range b {
		if c == '#' || c == ';' {
			b = b[:i]
			break
		}
	}
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		p.st.Skipped++
		return
	}
	first := !p.content
	p.content = true
	if !p.entry(b) {
		if first && !p.firstFieldIsAddr(b) {
			p.st.Skipped++ // a CSV or column header such as "ip,score,country"
			return
		}
		p.malformed(raw)
		return
	}
	p.st.Entries++
}

// firstFieldIsAddr tells a header line from a malformed first entry.
func (p *parser) firstFieldIsAddr(b []byte) bool {
	f, _ := field(b)
	if i := indexByte(f, '/'); i >= 0 {
		f = f[:i]
	} else if i := indexByte(f, '-'); i >= 0 {
		f = f[:i]
	}
	_, ok := parseAddr(f)
	return ok
}

// field splits b at its first separator and returns the field (without
// surrounding double quotes) and the rest after any run of separators.
func field(b []byte) (f, rest []byte) {
	i := 0
	for i < len(b) && !isSep(b[i]) {
		i++
	}
	f, rest = b[:i], b[i:]
	for len(rest) > 0 && isSep(rest[0]) {
		rest = rest[1:]
	}
	if len(f) >= 2 && f[0] == '"' && f[len(f)-1] == '"' {
		f = f[1 : len(f)-1]
	}
	return f, rest
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// entry parses the content of one line (comment and blanks removed) and adds
// it to the set; false means the line is not an entry.
func (p *parser) entry(b []byte) bool {
	f, rest := field(b)
	if i := indexByte(f, '/'); i >= 0 {
		return p.prefix(f[:i], f[i+1:])
	}
	if i := indexByte(f, '-'); i >= 0 { // "lo-hi"
		if i == len(f)-1 && len(rest) > 0 { // "lo- hi"
			end, _ := field(rest)
			return p.rng(f[:i], end)
		}
		return p.rng(f[:i], f[i+1:])
	}
	if len(rest) > 0 && rest[0] == '-' { // "lo - hi" or "lo -hi"
		rest = rest[1:]
		for len(rest) > 0 && isSep(rest[0]) {
			rest = rest[1:]
		}
		end, _ := field(rest)
		return p.rng(f, end)
	}
	a, ok := parseAddr(f)
	if !ok {
		return false
	}
	if len(rest) > 0 { // "lo<TAB>hi<TAB>bits" columns; any other second column is ignored
		second, _ := field(rest)
		if hi, ok := parseAddr(second); ok {
			return p.addRange(a, hi)
		}
	}
	p.add(a, a)
	return true
}

// add appends the range lo..hi of one family.
func (p *parser) add(lo, hi addr) {
	p.lastIs6 = lo.is6
	if lo.is6 {
		p.set.V6 = append(p.set.V6, Range6{lo.v6, hi.v6})
		return
	}
	if n := len(p.set.V4); n == cap(p.set.V4) && n >= block4 {
		p.full4 = append(p.full4, p.set.V4)
		p.set.V4 = make([]Range4, 0, block4)
	}
	p.set.V4 = append(p.set.V4, Range4{lo.v4, hi.v4})
}

func (p *parser) rng(lo, hi []byte) bool {
	a, ok := parseAddr(lo)
	if !ok {
		return false
	}
	b, ok := parseAddr(hi)
	if !ok {
		return false
	}
	return p.addRange(a, b)
}

// asV6 returns a mapped address in its IPv6 form.
func (a addr) asV6() addr {
	if a.mapped {
		return addr{is6: true, v6: U128{Lo: 0xffff<<32 | uint64(a.v4)}}
	}
	return a
}

func (p *parser) addRange(a, b addr) bool {
	if a.is6 != b.is6 && (a.mapped || b.mapped) {
		// An IPv6 range with one end in ::ffff:0:0/96 (as WriteTo prints a
		// merged range reaching into it) stays IPv6.
		a, b = a.asV6(), b.asV6()
	}
	if a.is6 != b.is6 {
		return false
	}
	if a.is6 {
		if b.v6.Less(a.v6) || p.mode.wide6(a.v6, b.v6) {
			return false
		}
	} else if b.v4 < a.v4 || p.mode.wide4(a.v4, b.v4) {
		return false
	}
	p.add(a, b)
	return true
}

func (p *parser) prefix(ab, bitsb []byte) bool {
	a, ok := parseAddr(ab)
	if !ok {
		return false
	}
	n, ok := parseBits(bitsb, a)
	if !ok {
		return false
	}
	a, n = a.cidr(n) // ::ffff:1.2.3.0/120 is 1.2.3.0/24
	if n < p.mode.minBits(a.is6) {
		return false
	}
	lo, hi := a, a
	if a.is6 {
		m := hostMask6(n)
		lo.v6 = U128{a.v6.Hi &^ m.Hi, a.v6.Lo &^ m.Lo}
		hi.v6 = U128{lo.v6.Hi | m.Hi, lo.v6.Lo | m.Lo}
		if lo.v6 != a.v6 {
			if p.mode.HostBits == RefuseHostBits {
				return false
			}
			p.st.HostBitsMasked++
		}
	} else {
		m := hostMask4(n)
		lo.v4, hi.v4 = a.v4&^m, a.v4|m
		if a.v4&m != 0 {
			if p.mode.HostBits == RefuseHostBits {
				return false
			}
			p.st.HostBitsMasked++
		}
	}
	p.add(lo, hi)
	return true
}

// parseBits parses a prefix length, or for IPv4 a dotted netmask such as
// 255.255.255.0 as some old lists write it.
func parseBits(b []byte, a addr) (int, bool) {
	max := 32
	if a.is6 || a.mapped {
		max = 128
	}
	if !a.is6 && !a.mapped && indexByte(b, '.') >= 0 {
		m, ok := parseIPv4(b)
		if !ok || ^m&(^m+1) != 0 { // the inverted mask must be 2^k-1
			return 0, false
		}
		n := 0
		for m&(1<<31) != 0 {
			m <<= 1
			n++
		}
		return n, true
	}
	if len(b) == 0 || len(b) > 3 || (len(b) > 1 && b[0] == '0') {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if n > max {
		return 0, false
	}
	return n, true
}

// addr is a parsed address: v4 when !is6; mapped marks an IPv4-mapped IPv6
// address, already unmapped into v4.
type addr struct {
	v6     U128
	v4     uint32
	is6    bool
	mapped bool
}

func parseAddr(b []byte) (addr, bool) {
	if v, ok := parseIPv4(b); ok {
		return addr{v4: v}, true
	}
	v, ok := parseIPv6(b)
	if !ok {
		return addr{}, false
	}
	if v.Hi == 0 && v.Lo>>32 == 0xffff { // ::ffff:a.b.c.d
		return addr{v4: uint32(v.Lo), mapped: true}, true
	}
	return addr{v6: v, is6: true}, true
}

// parseIPv6 parses an IPv6 address with the rules of netip.ParseAddr (one
// "::" standing for at least one zero group, at most four hex digits a group,
// an optional trailing dotted IPv4 part) without the string allocation that
// calling netip on a []byte costs. A zone ("%eth0") is accepted and dropped.
func parseIPv6(b []byte) (U128, bool) {
	if i := indexByte(b, '%'); i >= 0 {
		if i == len(b)-1 {
			return U128{}, false // an empty zone
		}
		b = b[:i]
	}
	var g [8]uint16
	n, gap := 0, -1 // groups parsed; index where "::" stands
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		gap, b = 0, b[2:]
	}
	for n < 8 && len(b) > 0 {
		v, j := uint32(0), 0
		for ; j < len(b) && j < 5; j++ {
			d := unhex(b[j])
			if d < 0 {
				break
			}
			v = v<<4 | uint32(d)
		}
		if j == 0 {
			return U128{}, false
		}
		if j < len(b) && b[j] == '.' {
			// The dotted part fills the last two groups, so it must come at
			// group 6 or after a "::" with room left.
			if n > 6 || (gap < 0 && n != 6) {
				return U128{}, false
			}
			v4, ok := parseIPv4(b)
			if !ok {
				return U128{}, false
			}
			g[n], g[n+1] = uint16(v4>>16), uint16(v4)
			n += 2
			b = nil
			break
		}
		if j > 4 {
			return U128{}, false
		}
		g[n] = uint16(v)
		n++
		b = b[j:]
		if len(b) == 0 {
			break
		}
		if b[0] != ':' || len(b) == 1 {
			return U128{}, false
		}
		b = b[1:]
		if b[0] == ':' {
			if gap >= 0 {
				return U128{}, false // a second "::"
			}
			gap, b = n, b[1:]
		}
	}
	if len(b) != 0 {
		return U128{}, false
	}
	switch {
	case n < 8 && gap < 0:
		return U128{}, false // too short
	case n == 8 && gap >= 0:
		return U128{}, false // "::" standing for nothing
	case n < 8:
		shift := 8 - n
		copy(g[gap+shift:], g[gap:n])
		clear(g[gap : gap+shift])
	}
	return U128{
		Hi: uint64(g[0])<<48 | uint64(g[1])<<32 | uint64(g[2])<<16 | uint64(g[3]),
		Lo: uint64(g[4])<<48 | uint64(g[5])<<32 | uint64(g[6])<<16 | uint64(g[7]),
	}, true
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// parseIPv4 parses strict dotted-decimal IPv4 as netip does: four fields,
// each 0-255 without leading zeros (which some tools read as octal).
func parseIPv4(b []byte) (uint32, bool) {
	var v uint32
	field, digits, dots := uint32(0), 0, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && field == 0 {
				return 0, false
			}
			field = field*10 + uint32(c-'0')
			digits++
			if field > 255 {
				return 0, false
			}
		case c == '.':
			if digits == 0 || dots == 3 {
				return 0, false
			}
			v = v<<8 | field
			field, digits = 0, 0
			dots++
		default:
			return 0, false
		}
	}
	if digits == 0 || dots != 3 {
		return 0, false
	}
	return v<<8 | field, true
}

// WriteTo writes s in the canonical text form, one range a line in String's
// form (a CIDR when the range is one prefix, "lo-hi" otherwise), IPv4 first.
// Parse reads it back to the same ranges in the same order, with one
// exception that Parse itself never produces: an IPv6 range lying wholly
// inside ::ffff:0:0/96 comes back as the IPv4 range it maps.
func (s Set) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var n int64
	buf := make([]byte, 0, 100)
	write := func(b []byte) error {
		m, err := bw.Write(b)
		n += int64(m)
		return err
	}
	for _, r := range s.V4 {
		if err := write(append(r.appendText(buf[:0]), '\n')); err != nil {
			return n, fmt.Errorf("write set: %w", err)
		}
	}
	for _, r := range s.V6 {
		if err := write(append(r.appendText(buf[:0]), '\n')); err != nil {
			return n, fmt.Errorf("write set: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("write set: %w", err)
	}
	return n, nil
}

// ParseCanonical4 parses one line of WriteTo's output for an IPv4 range,
// "a.b.c.d/n" or "lo-hi" without the newline, and reports whether line is
// exactly that range's canonical text: anything else (host bits, another
// spelling, IPv6) is refused. buf is scratch space for the comparison.
// It is the fast path for reading back a saved list.
func ParseCanonical4(line, buf []byte) (Range4, bool) {
	var r Range4
	if i := bytes.IndexByte(line, '/'); i >= 0 {
		lo, ok := parseIPv4(line[:i])
		n := line[i+1:]
		if !ok || len(n) == 0 || len(n) > 2 {
			return r, false
		}
		bits := 0
		for _, c := range n {
			if c < '0' || c > '9' {
				return r, false
			}
			bits = bits*10 + int(c-'0')
		}
		if bits > 32 {
			return r, false
		}
		m := hostMask4(bits)
		if lo&m != 0 {
			return r, false
		}
		r = Range4{lo, lo | m}
	} else if i := bytes.IndexByte(line, '-'); i >= 0 {
		lo, ok1 := parseIPv4(line[:i])
		hi, ok2 := parseIPv4(line[i+1:])
		if !ok1 || !ok2 || hi < lo {
			return r, false
		}
		r = Range4{lo, hi}
	} else {
		return r, false
	}
	// The range's own text must be the line: "1.2.3.0-1.2.3.255" is
	// 1.2.3.0/24, "01.2.3.4/32" is not canonical.
	return r, bytes.Equal(r.appendText(buf[:0]), line)
}

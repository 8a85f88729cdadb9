package ipnet

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// FuzzParseLimits parses feed text under the lockout and size limits: no
// entry wider than the minimum survives, and the parse never holds more
// than MaxEntries.
func FuzzParseLimits(f *testing.F) {
	for _, s := range []string{
		"0.0.0.0/0\n::/0\n::ffff:0:0/96\n0.0.0.0-255.255.255.255\n0.0.0.0/0.0.0.0\n",
		"10.0.0.0/8\n11.0.0.0-11.255.255.255\n2001::/19\n::ffff:12.0.0.0/104\n",
		"1.0.0.0\t2.0.0.0\t7\n::-ffff::\n::ffff:0.0.0.0-::ffff:255.255.255.255\n",
		"1::\n2::\n3::\n4::\n5::\n192.0.2.1\n", "10.1.2.3/8\n2001:db8::1/32\n",
	} {
		f.Add([]byte(s), uint8(8), uint8(19), uint8(3), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, min4, min6, maxEntries uint8, refuse bool) {
		mode := Mode{MinBits4: int(min4 % 33), MinBits6: int(min6 % 129)}
		if refuse {
			mode.HostBits = RefuseHostBits
		}
		s, st, err := Parse(bytes.NewReader(in), ParseOptions{Mode: mode, MaxEntries: int(maxEntries)})
		if err != nil && (maxEntries == 0 || st.Entries != int(maxEntries)) {
			t.Fatalf("error %v after %d entries (limit %d)", err, st.Entries, maxEntries)
		}
		if maxEntries > 0 && st.Entries > int(maxEntries) {
			t.Fatalf("%d entries over a limit of %d", st.Entries, maxEntries)
		}
		if st.Entries != len(s.V4)+len(s.V6) {
			t.Fatalf("%d entries but %d ranges", st.Entries, len(s.V4)+len(s.V6))
		}
		for _, r := range s.V4 {
			if mode.wide4(r.Lo, r.Hi) {
				t.Fatalf("%v is wider than /%d", r, mode.MinBits4)
			}
		}
		for _, r := range s.V6 {
			if mode.wide6(r.Lo, r.Hi) {
				t.Fatalf("%v is wider than /%d", r, mode.MinBits6)
			}
		}
		if refuse && st.HostBitsMasked != 0 {
			t.Fatalf("%d host bits masked in refuse mode", st.HostBitsMasked)
		}
	})
}

// FuzzParsePrefix checks the one entry parser of config, D-Bus and JSON
// feeds: a success is canonical and means what the line parser makes of
// the same text; netip accepts no address it refuses.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "192.0.2.1/24", "0.0.0.0/0", "::ffff:0:0/96", "::ffff:192.0.2.0/120",
		"2001:db8::/32", "::/0", "10.0.0.0/255.0.0.0", "1.2.3.4/33", "fe80::1%eth0", "", " 1.2.3.4 ", "1.2.3.4/08",
		"::ffff:0:0/80", "1.2.3.4/-1", "1.2.3.4/+8"} {
		f.Add(s, uint8(8), uint8(19), false)
	}
	f.Fuzz(func(t *testing.T, s string, min4, min6 uint8, refuse bool) {
		mode := Mode{MinBits4: int(min4 % 33), MinBits6: int(min6 % 129)}
		if refuse {
			mode.HostBits = RefuseHostBits
		}
		p, err := ParsePrefix(s, mode)
		if err != nil {
			if _, ok := err.(*EntryError); !ok {
				t.Fatalf("error %T %v is not an *EntryError", err, err)
			}
			return
		}
		if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" || (p.Addr().Is4In6() && p.Bits() >= 96) {
			t.Fatalf("ParsePrefix(%q) = %v: not canonical", s, p)
		}
		if p.Bits() < mode.minBits(p.Addr().Is6()) {
			t.Fatalf("ParsePrefix(%q) = %v: wider than the minimum", s, p)
		}
		addr, _, _ := strings.Cut(strings.Trim(s, " \t\r\n\v\f"), "/")
		if _, err := netip.ParseAddr(addr); err != nil {
			t.Fatalf("ParsePrefix(%q) accepted an address netip refuses: %v", s, err)
		}
		if strings.ContainsAny(s, ",;#\t\"") {
			return // separators and comments mean something else on a feed line
		}
		set, st, _ := Parse(strings.NewReader(s), ParseOptions{Mode: mode})
		if st.Entries != 1 || !set.Equal(FromPrefixes(p)) {
			t.Fatalf("ParsePrefix(%q) = %v but Parse gives %+v %v", s, p, st, set)
		}
	})
}

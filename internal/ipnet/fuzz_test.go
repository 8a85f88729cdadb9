package ipnet

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"192.0.2.1\n", "192.0.2.0/24 ; SBL1\r\n", "ip,score\n1.2.3.4,5\n", "1.2.3.0\t1.2.3.255\t24",
		"1.2.3.0 - 1.2.3.9\n2001:db8::-2001:db8::9\n", "::ffff:1.2.3.4/120\n", "fe80::1%eth0\n",
		"0.0.0.0/0\n::/0\n255.255.255.255\n", "10.1.2.3/255.0.0.0\n", "# x\n\n\"1.2.3.4\",x\n", "\uFEFF1.2.3.4",
		"1.2.3.4-\n-1.2.3.4\n1.2.3.4/\n/8\n", strings.Repeat("1", 5000) + "\n1.1.1.1",
	} {
		f.Add([]byte(s))
	}
	fixtures, _ := filepath.Glob("testdata/*.*")
	for _, name := range fixtures {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s, st, err := Parse(bytes.NewReader(in), ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries+st.Skipped+st.Malformed != st.Lines {
			t.Fatalf("stats do not add up: %+v", st)
		}
		if st.Entries != len(s.V4)+len(s.V6) {
			t.Fatalf("%d entries but %d ranges", st.Entries, len(s.V4)+len(s.V6))
		}
		if len(st.Samples) > 5 || len(st.Samples) > st.Malformed {
			t.Fatalf("%d samples of %d malformed", len(st.Samples), st.Malformed)
		}
		for _, m := range st.Samples {
			if len(m.Text) > sampleLen+len("…") || !utf8.ValidString(m.Text) || m.Line < 1 || m.Line > st.Lines {
				t.Fatalf("bad sample %+v", m)
			}
		}
		for _, r := range s.V4 {
			if r.Hi < r.Lo {
				t.Fatalf("reversed range %v", r)
			}
		}
		for _, r := range s.V6 {
			if r.Hi.Less(r.Lo) {
				t.Fatalf("reversed range %v", r)
			}
		}
		checkCanonicalRoundTrip(t, s)
		m := s.Clone()
		m.Merge()
		checkMerged(t, m)
		checkCanonicalRoundTrip(t, m)
	})
}

// checkCanonicalRoundTrip checks that Parse(WriteTo(s)) is s.
func checkCanonicalRoundTrip(t *testing.T, s Set) {
	t.Helper()
	var b bytes.Buffer
	if _, err := s.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	back, st, err := Parse(&b, ParseOptions{})
	if err != nil || st.Malformed != 0 || st.Skipped != 0 {
		t.Fatalf("re-parse: %v %+v", err, st)
	}
	if !sameSet(back, s) && !(back.IsEmpty() && s.IsEmpty()) {
		t.Fatalf("round trip changed %v into %v", s, back)
	}
}

// checkMerged checks the merged invariants and membership at every boundary.
func checkMerged(t *testing.T, m Set) {
	t.Helper()
	if !m.IsMerged() {
		t.Fatalf("not merged: %v", m)
	}
	for i, r := range m.V4 {
		if i > 0 && uint64(m.V4[i-1].Hi)+1 >= uint64(r.Lo) {
			t.Fatalf("ranges %v and %v touch", m.V4[i-1], r)
		}
		if !m.Contains(AddrFrom4(r.Lo)) || !m.Contains(AddrFrom4(r.Hi)) {
			t.Fatalf("%v does not contain its ends", r)
		}
		if r.Lo > 0 && m.Contains(AddrFrom4(r.Lo-1)) || r.Hi < ^uint32(0) && m.Contains(AddrFrom4(r.Hi+1)) {
			t.Fatalf("%v: neighbours are contained", r)
		}
	}
	for _, r := range m.V6 {
		if !m.Contains(AddrFrom6(r.Lo)) || !m.Contains(AddrFrom6(r.Hi)) {
			t.Fatalf("%v does not contain its ends", r)
		}
		if r.Lo != (U128{}) && containsRaw6(m, r.Lo.Sub1()) || r.Hi != MaxU128 && containsRaw6(m, r.Hi.Add1()) {
			t.Fatalf("%v: neighbours are contained", r)
		}
	}
}

// containsRaw6 looks an integer up in the IPv6 half without unmapping.
func containsRaw6(m Set, v U128) bool {
	for _, r := range m.V6 {
		if !v.Less(r.Lo) && !r.Hi.Less(v) {
			return true
		}
	}
	return false
}

// FuzzMerge reads the input as ranges (8 bytes an IPv4 range, then 32 bytes
// an IPv6 range, alternating with the first byte's parity) and checks Merge
// and the operations built on it.
func FuzzMerge(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 255, 255, 255, 255})
	f.Add([]byte{0, 10, 0, 0, 1, 10, 0, 0, 5, 10, 0, 0, 6, 10, 0, 0, 9, 255, 255, 255, 255, 255, 255, 255, 255})
	f.Add(bytes.Repeat([]byte{0xff}, 41))
	f.Add(append([]byte{1}, make([]byte, 64)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		v6 := in[0]&1 == 1
		in = in[1:]
		var s, other Set
		for i := 0; ; i++ {
			dst := &s
			if i%3 == 2 {
				dst = &other
			}
			if v6 {
				if len(in) < 32 {
					break
				}
				a := U128{binary.BigEndian.Uint64(in), binary.BigEndian.Uint64(in[8:])}
				b := U128{binary.BigEndian.Uint64(in[16:]), binary.BigEndian.Uint64(in[24:])}
				if b.Less(a) {
					a, b = b, a
				}
				dst.V6 = append(dst.V6, Range6{a, b})
				in = in[32:]
			} else {
				if len(in) < 8 {
					break
				}
				a, b := binary.BigEndian.Uint32(in), binary.BigEndian.Uint32(in[4:])
				dst.V4 = append(dst.V4, Range4{min(a, b), max(a, b)})
				in = in[8:]
			}
			v6 = !v6
		}
		m := s.Clone()
		m.Merge()
		checkMerged(t, m)
		again := m.Clone()
		again.Merge()
		if !again.Equal(m) {
			t.Fatalf("Merge not idempotent: %v then %v", m, again)
		}
		// Every input range lies inside one merged range.
		for _, r := range s.V4 {
			got, ok := m.Lookup(AddrFrom4(r.Lo))
			if !ok || U32(got.Hi) < r.Hi {
				t.Fatalf("%v not covered by %v", r, got)
			}
		}
		if !m.Subtract(s).IsEmpty() {
			t.Fatalf("s minus itself is not empty")
		}
		if !Union(m, s).Equal(m) {
			t.Fatalf("union with itself changed the set")
		}
		// s = (s − o) ∪ (s ∩ o), and the two parts are disjoint.
		d, x := m.Subtract(other), Intersect(m, other)
		if !Union(d, x).Equal(m) || !Intersect(d, x).IsEmpty() {
			t.Fatalf("split by %v does not reassemble %v", other, m)
		}
		// The prefix cover reassembles the set.
		var cover Set
		for _, p := range m.AppendPrefixes(nil) {
			cover.AddPrefix(p)
		}
		cover.Merge()
		if !sameSet(cover, m) && !(cover.IsEmpty() && m.IsEmpty()) {
			t.Fatalf("prefix cover %v of %v", cover, m)
		}
		// Diff of the merged sets gives a delta that turns one into the other.
		om := other.Clone()
		om.Merge()
		added, removed := Diff(m, om)
		if got := applyDelta(m, added, removed); !sameSet(got, om) && !(got.IsEmpty() && om.IsEmpty()) {
			t.Fatalf("delta from %v to %v gave %v", m, om, got)
		}
	})
}

// FuzzParseAddr checks the hand-written address parser against net/netip.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.1.1.1", "1.2.3", "::",
		"::1", "2001:db8::1", "::ffff:1.2.3.4", "1:2:3:4:5:6:7:8", "1::2:3:4:5:6:7", "::1.2.3.4", "fe80::1%eth0",
		"1:2:3:4:5:6:1.2.3.4", ":::", "1:::2", "12345::", "g::", "1:2:3:4:5:6:7:8:9", "::ffff:0:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseAddr([]byte(s))
		want, err := netip.ParseAddr(s)
		if ok != (err == nil) {
			t.Fatalf("parseAddr(%q) ok = %v, netip err = %v", s, ok, err)
		}
		if !ok {
			return
		}
		want = want.WithZone("")
		var a netip.Addr
		switch {
		case got.is6:
			a = AddrFrom6(got.v6)
		case got.mapped:
			a = netip.AddrFrom16(AddrFrom4(got.v4).As16())
		default:
			a = AddrFrom4(got.v4)
		}
		if a != want {
			t.Fatalf("parseAddr(%q) = %v, netip %v", s, a, want)
		}
	})
}

package ipnet

import (
	"bytes"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	mask := Mode{HostBits: MaskHostBits}
	refuse := Mode{HostBits: RefuseHostBits}
	narrow := Mode{MinBits4: 8, MinBits6: 19}
	tests := []struct {
		in      string
		mode    Mode
		want    string
		wantErr string
	}{
		{"192.0.2.1", mask, "192.0.2.1/32", ""},
		{" 2001:db8::1 ", mask, "2001:db8::1/128", ""},
		{"192.0.2.0/24", refuse, "192.0.2.0/24", ""},
		{"192.0.2.1/24", mask, "192.0.2.0/24", ""},
		{"192.0.2.1/24", refuse, "", `"192.0.2.1/24" has host bits set; did you mean 192.0.2.0/24?`},
		{"2001:db8::1/32", refuse, "", "did you mean 2001:db8::/32?"},
		{"192.0.2.0/255.255.255.0", mask, "192.0.2.0/24", ""},
		{"::ffff:192.0.2.1", mask, "192.0.2.1/32", ""},
		{"::ffff:192.0.2.0/120", mask, "192.0.2.0/24", ""},
		{"::ffff:0:0/80", mask, "::/80", ""},
		{"", mask, "", "is empty"},
		{"10.0.0.300", mask, "", `"10.0.0.300" is not an IP address or CIDR`},
		{"010.0.0.1", mask, "", "is not an IP address"},
		{"192.0.2.0/33", mask, "", "bad prefix length"},
		{"192.0.2.0/08", mask, "", "bad prefix length"},
		{"fe80::1%eth0", mask, "", "has an interface zone"},
		{"fe80::/10%eth0", mask, "", "has an interface zone"},
		{"0.0.0.0/0", narrow, "", `"0.0.0.0/0" is 0.0.0.0/0, wider than the minimum prefix length /8`},
		{"0.0.0.0/0.0.0.0", narrow, "", "wider than the minimum prefix length /8"},
		{"::/0", narrow, "", "wider than the minimum prefix length /19"},
		{"::ffff:0:0/96", narrow, "", "is 0.0.0.0/0, wider than the minimum prefix length /8"},
		{"::ffff:10.0.0.0/104", narrow, "10.0.0.0/8", ""},
		{"2001::/18", narrow, "", "/19"},
		{"2001::/19", narrow, "2001::/19", ""},
		{"0.0.0.0/0", mask, "0.0.0.0/0", ""},
	}
	for _, tt := range tests {
		p, err := ParsePrefix(tt.in, tt.mode)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParsePrefix(%q) = %v, %v; want error containing %q", tt.in, p, err, tt.wantErr)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
		}
	}
	if _, err := ParsePrefix("0.0.0.0/0", narrow); !errors.Is(err, ErrTooWide) {
		t.Errorf("a /0 under a /8 minimum: %v, want ErrTooWide", err)
	}
	for in, want := range map[string]string{"192.0.2.1": "192.0.2.1", "::ffff:192.0.2.1": "192.0.2.1", " 2001:db8::1": "2001:db8::1"} {
		if a, err := ParseAddr(in); err != nil || a.String() != want {
			t.Errorf("ParseAddr(%q) = %v, %v", in, a, err)
		}
	}
	for _, in := range []string{"192.0.2.0/24", "192.0.2.1/32", "", "fe80::1%eth0", "x"} {
		if a, err := ParseAddr(in); err == nil {
			t.Errorf("ParseAddr(%q) = %v, want an error", in, a)
		}
	}
}

// Every line of the issue that blocked the whole internet is a malformed line
// with a sample once a minimum prefix length applies, and narrow neighbours
// of each still pass.
func TestParseLockoutLines(t *testing.T) {
	lockout := []string{
		"0.0.0.0/0", "::/0", "::ffff:0:0/96", "0.0.0.0-255.255.255.255", "0.0.0.0/0.0.0.0",
		"0.0.0.0 - 127.255.255.255", "1.0.0.0\t2.0.0.0\t7", "::-ffff::", "::ffff:0.0.0.0-::ffff:255.255.255.255",
		"10.0.0.0/7", "2000::/3",
	}
	in := strings.Join(lockout, "\n") + "\n192.0.2.1\n"
	opt := ParseOptions{Mode: Mode{MinBits4: 8, MinBits6: 19}, MaxSamples: 100}
	s, st, err := Parse(strings.NewReader(in), opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := canon(t, s); len(got) != 1 || got[0] != "192.0.2.1/32" {
		t.Errorf("kept %v, want only 192.0.2.1/32", got)
	}
	if st.Malformed != len(lockout) || len(st.Samples) != len(lockout) {
		t.Fatalf("malformed %d, samples %d; want %d each", st.Malformed, len(st.Samples), len(lockout))
	}
	for i, m := range st.Samples {
		if m.Text != lockout[i] {
			t.Errorf("sample %d = %q, want %q", i, m.Text, lockout[i])
		}
	}
	// Exactly at the minimum is accepted.
	ok := "10.0.0.0/8\n11.0.0.0-11.255.255.255\n2001::/19\n::ffff:12.0.0.0/104\n"
	s, st, err = Parse(strings.NewReader(ok), opt)
	if err != nil || st.Malformed != 0 || st.Entries != 4 {
		t.Fatalf("at the minimum: %+v, %v", st, err)
	}
	if got := strings.Join(canon(t, s), " "); got != "10.0.0.0-12.255.255.255 2001::/19" {
		t.Errorf("got %s", got)
	}
}

func TestParseRefuseHostBits(t *testing.T) {
	_, st, err := Parse(strings.NewReader("10.1.2.3/8\n2001:db8::1/32\n192.0.2.0/24\n"), ParseOptions{Mode: Mode{HostBits: RefuseHostBits}})
	if err != nil || st.Entries != 1 || st.Malformed != 2 || st.HostBitsMasked != 0 {
		t.Errorf("%+v, %v", st, err)
	}
}

// shortIPv6 returns n distinct IPv6 lines of at most 10 bytes that do not
// merge with each other: the cheapest way to turn bytes into ranges.
func shortIPv6(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		b.WriteString(strconv.FormatUint(uint64(i>>16+1), 16))
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(uint64(i&0xffff), 16))
		b.WriteString("::\n")
	}
	return b.Bytes()
}

func TestParseStopsAtMaxEntries(t *testing.T) {
	in := append(shortIPv6(1000), "192.0.2.1\n"...)
	s, st, err := Parse(bytes.NewReader(in), ParseOptions{MaxEntries: 100})
	if !errors.Is(err, ErrTooManyEntries) {
		t.Fatalf("err = %v, want ErrTooManyEntries", err)
	}
	if st.Entries != 100 || len(s.V6) != 100 || len(s.V4) != 0 || st.Lines != 101 {
		t.Errorf("entries %d, v6 %d, v4 %d, lines %d; want 100 entries after 101 lines", st.Entries, len(s.V6), len(s.V4), st.Lines)
	}
	if !strings.Contains(err.Error(), "(100) at line 101") {
		t.Errorf("error %q does not say where", err)
	}
	// At the limit exactly the list is whole.
	if _, st, err := Parse(bytes.NewReader(shortIPv6(100)), ParseOptions{MaxEntries: 100}); err != nil || st.Entries != 100 {
		t.Errorf("at the limit: %+v, %v", st, err)
	}
}

// The memory a hostile list costs is bounded by MaxEntries, not by its body:
// 16 MiB of short IPv6 lines used to become millions of 32-byte ranges.
func TestParseMemoryBoundedByMaxEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a 16 MiB list")
	}
	in := shortIPv6(1 << 21) // 2 M lines, ~17 MiB
	const limit = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := Parse(bytes.NewReader(in), ParseOptions{MaxEntries: limit})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooManyEntries) {
		t.Fatalf("err = %v", err)
	}
	// 100 k ranges of 32 bytes with append's growth stay under 32 MiB;
	// parsing all 2 M lines allocates over 150 MiB.
	t.Logf("allocated %.1f MiB", float64(after.TotalAlloc-before.TotalAlloc)/(1<<20))
	if got := after.TotalAlloc - before.TotalAlloc; got > 32<<20 {
		t.Errorf("parse allocated %d MiB for a %d-entry limit", got>>20, limit)
	}
}

func TestParsePrefixAgreesWithParse(t *testing.T) {
	mode := Mode{MinBits4: 8, MinBits6: 19}
	for _, in := range []string{"192.0.2.1", "192.0.2.1/24", "0.0.0.0/0", "::ffff:0:0/96", "::ffff:192.0.2.0/120",
		"2001:db8::/32", "::/0", "10.0.0.0/255.0.0.0", "1.2.3.4/33", "x"} {
		p, perr := ParsePrefix(in, mode)
		s, st, _ := Parse(strings.NewReader(in), ParseOptions{Mode: mode})
		if (perr == nil) != (st.Entries == 1) {
			t.Errorf("%q: ParsePrefix err %v, Parse entries %d", in, perr, st.Entries)
			continue
		}
		if perr == nil && !s.Equal(FromPrefixes(p)) {
			t.Errorf("%q: ParsePrefix %v, Parse %v", in, p, canon(t, s))
		}
	}
}

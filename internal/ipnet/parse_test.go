package ipnet

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// canon merges s and returns its canonical text, one range a line.
func canon(t testing.TB, s Set) []string {
	t.Helper()
	s = s.Clone()
	s.Merge()
	var b bytes.Buffer
	if _, err := s.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return strings.Fields(b.String())
}

func TestParseLines(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      []string // merged, canonical
		entries   int
		skipped   int
		malformed int
		masked    int
	}{
		{"bare v4", "192.0.2.1\n", []string{"192.0.2.1/32"}, 1, 0, 0, 0},
		{"bare v6", "2001:db8::1\n", []string{"2001:db8::1/128"}, 1, 0, 0, 0},
		{"cidr", "192.0.2.0/24\n", []string{"192.0.2.0/24"}, 1, 0, 0, 0},
		{"host bits masked", "10.1.2.3/8\n2001:db8::1/32\n", []string{"10.0.0.0/8", "2001:db8::/32"}, 2, 0, 0, 2},
		{"netmask", "192.0.2.0/255.255.255.0\n", []string{"192.0.2.0/24"}, 1, 0, 0, 0},
		{"bad netmask", "x.y\n192.0.2.0/255.0.255.0\n", nil, 0, 1, 1, 0},
		{"tab count", "192.0.2.7\t42\n", []string{"192.0.2.7/32"}, 1, 0, 0, 0},
		{"inline semicolon", "192.0.2.0/24 ; SBL123\n", []string{"192.0.2.0/24"}, 1, 0, 0, 0},
		{"inline hash", "192.0.2.9#x\n", []string{"192.0.2.9/32"}, 1, 0, 0, 0},
		{"comment lines", "# a\n; b\n\n   \n\t\n", nil, 0, 5, 0, 0},
		{"trailing blanks", "192.0.2.1 \t \n", []string{"192.0.2.1/32"}, 1, 0, 0, 0},
		{"crlf", "192.0.2.1\r\n192.0.2.2\r\n", []string{"192.0.2.1-192.0.2.2"}, 2, 0, 0, 0},
		{"no final newline", "192.0.2.1\n192.0.2.3", []string{"192.0.2.1/32", "192.0.2.3/32"}, 2, 0, 0, 0},
		{"csv header", "ip,score,country\n192.0.2.1,90,NL\n", []string{"192.0.2.1/32"}, 1, 1, 0, 0},
		{"csv header after comments", "# feed\nip\n192.0.2.1\n", []string{"192.0.2.1/32"}, 1, 2, 0, 0},
		{"second header line is malformed", "ip,score\nip,score\n192.0.2.1\n", []string{"192.0.2.1/32"}, 1, 1, 1, 0},
		{"quoted csv", "\"192.0.2.1\",\"90\"\n", []string{"192.0.2.1/32"}, 1, 0, 0, 0},
		{"csv empty field", "192.0.2.1,,NL\n", []string{"192.0.2.1/32"}, 1, 0, 0, 0},
		{"range dash", "192.0.2.0-192.0.2.255\n", []string{"192.0.2.0/24"}, 1, 0, 0, 0},
		{"range spaced dash", "192.0.2.0 - 192.0.2.5\n", []string{"192.0.2.0-192.0.2.5"}, 1, 0, 0, 0},
		{"range half spaced", "192.0.2.0 -192.0.2.5\n192.0.2.10- 192.0.2.11\n", []string{"192.0.2.0-192.0.2.5", "192.0.2.10/31"}, 2, 0, 0, 0},
		{"range columns", "1.2.3.0\t1.2.3.255\t24\n", []string{"1.2.3.0/24"}, 1, 0, 0, 0},
		{"range v6", "2001:db8::-2001:db8::ff\n", []string{"2001:db8::/120"}, 1, 0, 0, 0},
		{"range reversed", "192.0.2.0\n192.0.2.9-192.0.2.1\n", []string{"192.0.2.0/32"}, 1, 0, 1, 0},
		{"range mixed families", "192.0.2.0\n192.0.2.1-2001:db8::1\n192.0.2.1\t2001:db8::1\n", []string{"192.0.2.0/32"}, 1, 0, 2, 0},
		{"range missing end", "192.0.2.0\n192.0.2.1-\n192.0.2.1 -\n", []string{"192.0.2.0/32"}, 1, 0, 2, 0},
		{"duplicates and nesting", "10.0.0.0/8\n10.1.0.0/16\n10.1.2.3\n10.1.2.3\n", []string{"10.0.0.0/8"}, 4, 0, 0, 0},
		{"mapped v4", "::ffff:192.0.2.1\n::ffff:192.0.2.0/120\n", []string{"192.0.2.0/24"}, 2, 0, 0, 0},
		{"mapped wider than v4 stays v6", "::ffff:0:0/95\n", []string{"::fffe:0:0/95"}, 1, 0, 0, 1},
		{"v6 range ending in mapped space", "::fffd:0:0-::ffff:255.255.255.255\n::ffff:1.2.3.4-::1:0:0:0\n", []string{"::fffd:0:0-::1:0:0:0"}, 2, 0, 0, 0},
		{"upper-case hex", "2001:DB8::AbCd\n", []string{"2001:db8::abcd/128"}, 1, 0, 0, 0},
		{"bad prefix as first line is not a header", "1.2.3.4/x\n1.2.3.5\n", []string{"1.2.3.5/32"}, 1, 0, 1, 0},
		{"bad range as first line is not a header", "1.2.3.4-x\n1.2.3.5\n", []string{"1.2.3.5/32"}, 1, 0, 1, 0},
		{"zone dropped", "fe80::1%eth0\n", []string{"fe80::1/128"}, 1, 0, 0, 0},
		{"leading zeros", "192.0.2.1\n010.0.0.1\n", []string{"192.0.2.1/32"}, 1, 0, 1, 0},
		{"bits too long", "192.0.2.1\n192.0.2.0/33\n2001:db8::/129\n1.2.3.4/\n1.2.3.4/08\n", []string{"192.0.2.1/32"}, 1, 0, 4, 0},
		{"garbage", "192.0.2.1\nhello world\n1.2.3\n1.2.3.4.5\n256.1.1.1\n:::\n", []string{"192.0.2.1/32"}, 1, 0, 5, 0},
		{"whole spaces", "0.0.0.0/0\n::/0\n", []string{"0.0.0.0/0", "::/0"}, 2, 0, 0, 0},
		{"top of space", "255.255.255.255\n255.255.255.254/32\nffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\n", []string{"255.255.255.254/31", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"}, 3, 0, 0, 0},
		{"bom", "\uFEFF192.0.2.1\n", []string{"192.0.2.1/32"}, 1, 0, 0, 0},
		{"header not first", "192.0.2.1\nip,score\n", []string{"192.0.2.1/32"}, 1, 0, 1, 0},
		{"empty", "", nil, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, st, err := Parse(strings.NewReader(tt.in), ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := canon(t, s); !slices.Equal(got, tt.want) {
				t.Errorf("set = %q, want %q", got, tt.want)
			}
			if st.Entries != tt.entries || st.Skipped != tt.skipped || st.Malformed != tt.malformed || st.HostBitsMasked != tt.masked {
				t.Errorf("stats = %+v, want entries %d skipped %d malformed %d masked %d",
					st, tt.entries, tt.skipped, tt.malformed, tt.masked)
			}
			if lines := strings.Count(tt.in, "\n") + btoi(tt.in != "" && !strings.HasSuffix(tt.in, "\n")); st.Lines != lines {
				t.Errorf("Lines = %d, want %d", st.Lines, lines)
			}
			if n := st.Entries + st.Skipped + st.Malformed; n != st.Lines {
				t.Errorf("entries+skipped+malformed = %d, lines = %d", n, st.Lines)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file      string
		want      []string
		entries   int
		malformed int
	}{
		{"spamhaus-drop.txt", []string{"1.10.16.0/20", "1.19.0.0/16", "1.32.128.0/18", "2.56.192.0/22", "2.59.200.0/22", "5.134.128.0/19", "192.0.2.0/24"}, 7, 0},
		{"firehol-level1.netset", []string{"0.0.0.0/8", "1.10.16.0/20", "1.19.0.0/16", "2.56.192.0/22", "5.188.10.179/32", "10.0.0.0/8"}, 6, 0},
		{"blocklist-de.txt", []string{"1.2.3.4/32", "5.6.7.8/32", "9.10.11.12/32", "13.14.15.16/32", "2001:db8::1/128"}, 6, 0},
		{"sikker.csv", []string{"198.51.100.7/32", "203.0.113.9/32", "2001:db8:1::5/128"}, 3, 1},
		{"columns.tsv", []string{"198.51.100.1-198.51.100.2", "203.0.113.200/32"}, 3, 0},
		{"ranges.txt", []string{"1.2.3.0/24", "5.6.7.0-5.6.7.9", "9.9.9.9-9.9.9.20", "2001:db8::/120"}, 4, 0},
		{"crlf-nofinal.txt", []string{"198.51.100.0/30", "203.0.113.7/32"}, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			s, st, err := Parse(f, ParseOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := canon(t, s); !slices.Equal(got, tt.want) {
				t.Errorf("set = %q, want %q", got, tt.want)
			}
			if st.Entries != tt.entries || st.Malformed != tt.malformed {
				t.Errorf("stats = %+v, want entries %d malformed %d", st, tt.entries, tt.malformed)
			}
		})
	}
}

func TestParseSamples(t *testing.T) {
	long := strings.Repeat("x", 200)
	in := "192.0.2.1\nbad1\n" + long + "\nbad3\nbad4\nbad5\nbad6\nbad7\n"
	_, st, err := Parse(strings.NewReader(in), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Malformed != 7 || len(st.Samples) != 5 {
		t.Fatalf("malformed %d samples %d, want 7 and 5", st.Malformed, len(st.Samples))
	}
	if st.Samples[0] != (Malformed{Line: 2, Text: "bad1"}) {
		t.Errorf("first sample = %+v", st.Samples[0])
	}
	if got := st.Samples[1]; got.Line != 3 || got.Text != strings.Repeat("x", 80)+"…" {
		t.Errorf("long sample = %+v", got)
	}
	_, st, _ = Parse(strings.NewReader(in), ParseOptions{MaxSamples: 2})
	if len(st.Samples) != 2 {
		t.Errorf("MaxSamples 2 kept %d", len(st.Samples))
	}
	_, st, _ = Parse(strings.NewReader(in), ParseOptions{MaxSamples: -1})
	if len(st.Samples) != 0 {
		t.Errorf("MaxSamples -1 kept %d", len(st.Samples))
	}
	// A sample cut in the middle of a multi-byte rune stays valid UTF-8.
	_, st, _ = Parse(strings.NewReader("192.0.2.1\n"+strings.Repeat("é", 100)+"\n"), ParseOptions{})
	if len(st.Samples) != 1 || !strings.HasPrefix(st.Samples[0].Text, "éé") || !utf8Valid(st.Samples[0].Text) {
		t.Errorf("utf-8 sample = %+v", st.Samples)
	}
}

func TestParseLongLines(t *testing.T) {
	for _, n := range []int{MaxLineLen + 1, 70 << 10, 1 << 20} {
		in := "192.0.2.1\n192.0.2.2" + strings.Repeat(" ", n) + "\n" + strings.Repeat("7", n) + "\n192.0.2.3"
		s, st, err := Parse(strings.NewReader(in), ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Lines != 4 || st.Entries != 2 || st.Malformed != 2 {
			t.Errorf("len %d: stats %+v, want 4 lines, 2 entries, 2 malformed", n, st)
		}
		if got := canon(t, s); !slices.Equal(got, []string{"192.0.2.1/32", "192.0.2.3/32"}) {
			t.Errorf("len %d: set %q", n, got)
		}
	}
	// Exactly MaxLineLen is still a line.
	in := "192.0.2.1" + strings.Repeat(" ", MaxLineLen-len("192.0.2.1")) + "\r\n"
	if _, st, _ := Parse(strings.NewReader(in), ParseOptions{}); st.Entries != 1 {
		t.Errorf("line of MaxLineLen: %+v", st)
	}
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("connection reset")
	s, st, err := Parse(&failingReader{data: "192.0.2.1\n192.0.2.2\n", err: boom}, ParseOptions{})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if !strings.Contains(err.Error(), "read blocklist") {
		t.Errorf("err %q does not say what failed", err)
	}
	if st.Entries != 2 || len(s.V4) != 2 {
		t.Errorf("partial result: %+v", st)
	}
}

type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestWriteToRoundTrip(t *testing.T) {
	var s Set
	s.V4 = []Range4{{0, 0}, {5, 9}, {256, 511}, {0xffffffff, 0xffffffff}, {1, 0xfffffffe}, {0, 0xffffffff}}
	s.V6 = []Range6{{U128{}, MaxU128}, {U128{1, 0}, U128{1, 5}}, {MaxU128, MaxU128}, {U128{0, 0xffff00000000}, U128{0, 0xffff00000000}}}
	var b bytes.Buffer
	n, err := s.WriteTo(&b)
	if err != nil || n != int64(b.Len()) {
		t.Fatalf("WriteTo = %d, %v (buffer %d)", n, err, b.Len())
	}
	want := `0.0.0.0/32
0.0.0.5-0.0.0.9
0.0.1.0/24
255.255.255.255/32
0.0.0.1-255.255.255.254
0.0.0.0/0
::/0
0:0:0:1::-::1:0:0:0:5
ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128
::ffff:0.0.0.0/128
`
	if b.String() != want {
		t.Errorf("WriteTo:\n%s\nwant:\n%s", b.String(), want)
	}
	got, st, err := Parse(&b, ParseOptions{})
	if err != nil || st.Malformed != 0 {
		t.Fatalf("Parse: %v %+v", err, st)
	}
	// The mapped IPv6 address comes back as IPv4, as documented.
	wantBack := s.Clone()
	wantBack.V6 = wantBack.V6[:3]
	wantBack.V4 = append(wantBack.V4, Range4{0, 0})
	if !got.Equal(wantBack) {
		t.Errorf("round trip:\n got %v\nwant %v", got, wantBack)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestWriteToError(t *testing.T) {
	boom := errors.New("disk full")
	s := Set{V4: []Range4{{1, 1}}}
	if _, err := s.WriteTo(errWriter{boom}); !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }

func TestParseCanonical4(t *testing.T) {
	for _, c := range []struct {
		line string
		want Range4
		ok   bool
	}{
		{"1.2.3.4/32", Range4{0x01020304, 0x01020304}, true},
		{"10.0.0.0/8", Range4{0x0a000000, 0x0affffff}, true},
		{"0.0.0.0/0", Range4{0, 0xffffffff}, true},
		{"1.2.3.4-1.2.3.6", Range4{0x01020304, 0x01020306}, true},
		{"1.2.3.4", Range4{}, false},                 // a single is written as /32
		{"1.2.3.0-1.2.3.255", Range4{}, false},       // one prefix: written as /24
		{"1.2.3.4/24", Range4{}, false},              // host bits
		{"01.2.3.4/32", Range4{}, false},             // leading zero
		{"1.2.3.4/032", Range4{}, false},             // leading zero in the length
		{"1.2.3.4/33", Range4{}, false},              // length out of range
		{"1.2.3.6-1.2.3.4", Range4{}, false},         // backwards
		{"1.2.3.4/32 ", Range4{}, false},             // trailing space
		{"256.2.3.4/32", Range4{}, false},            // octet out of range
		{"2001:db8::/32", Range4{}, false},           // IPv6: the general path
		{"1.2.3.4/", Range4{}, false},                // no length
		{"1.2.3.4-1.2.3.4-1.2.3.5", Range4{}, false}, // two dashes
		{"", Range4{}, false},
	} {
		got, ok := ParseCanonical4([]byte(c.line), nil)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("ParseCanonical4(%q) = %v, %v; want %v, %v", c.line, got, ok, c.want, c.ok)
		}
	}
}

package feed

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParseJSONList(t *testing.T) {
	tests := []struct {
		file                      string
		wantErr                   error
		entries, malformed, lines int
		metaCount                 int
	}{
		{file: "blacklist-ok.json", entries: 4, lines: 4, metaCount: 4},
		{file: "blacklist-bare-array.json", entries: 3, lines: 3, metaCount: -1},
		{file: "blacklist-bad-rows.json", entries: 2, malformed: 3, lines: 5, metaCount: -1},
		{file: "blacklist-unclosed.json", wantErr: ErrTruncated},
		{file: "blacklist-unclosed-array.json", wantErr: ErrTruncated},
		{file: "blacklist-no-data.json", wantErr: ErrGarbage},
		{file: "blacklist-syntax.json", wantErr: ErrGarbage},
		{file: "blacklist-trailing.json", wantErr: ErrGarbage},
		{file: "blacklist-empty.json", wantErr: ErrEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			res, err := parseJSONList(f, true, Limits{}, nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			st := res.stats
			if st.Entries != tt.entries || st.Malformed != tt.malformed || st.Lines != tt.lines || res.metaCount != tt.metaCount {
				t.Errorf("stats = %+v meta %d, want %d entries %d malformed %d rows meta %d",
					st, res.metaCount, tt.entries, tt.malformed, tt.lines, tt.metaCount)
			}
			if len(res.entries) != tt.entries {
				t.Errorf("kept %d entries", len(res.entries))
			}
			if tt.malformed > 0 && (len(st.Samples) == 0 || st.Samples[0].Line != 2) {
				t.Errorf("samples = %+v, want the first malformed row (2)", st.Samples)
			}
		})
	}
}

// The readings SIKKERAPI.md leaves open: numbers as strings, asn with and
// without "AS" or as a number, protocols as text, seconds or RFC 3339 times.
func TestParseJSONListFieldVariants(t *testing.T) {
	f, err := os.Open("testdata/blacklist-ok.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parseJSONList(f, true, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Prefix: netip.MustParsePrefix("203.0.113.42/32"), Confidence: 87, LastSeen: time.UnixMilli(1760000000000).UTC(),
			Sessions: 14, Protocols: []string{"ssh", "telnet"}, CountryCode: "CN", ASN: 4134, ASNOrg: "Chinanet"},
		{Prefix: netip.MustParsePrefix("2001:db8::7/128"), Confidence: 75, LastSeen: time.UnixMilli(1759990000000).UTC(),
			Sessions: 3, Protocols: []string{"http", "ftp"}, CountryCode: "DE", ASN: 24940, ASNOrg: "Hetzner Online"},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Confidence: 60, LastSeen: time.Unix(1759900000, 0).UTC(),
			Sessions: 1, Protocols: []string{}, CountryCode: "US", ASN: 16509, ASNOrg: "Amazon"},
		{Prefix: netip.MustParsePrefix("192.0.2.9/32"), Confidence: 55, LastSeen: time.Date(2025, 10, 1, 0, 0, 0, 0, time.UTC)},
	}
	for i, w := range want {
		g := res.entries[i]
		if g.Prefix != w.Prefix || g.Confidence != w.Confidence || !g.LastSeen.Equal(w.LastSeen) || g.Sessions != w.Sessions ||
			!slices.Equal(g.Protocols, w.Protocols) || g.CountryCode != w.CountryCode || g.ASN != w.ASN || g.ASNOrg != w.ASNOrg {
			t.Errorf("entry %d = %+v\nwant       %+v", i, g, w)
		}
	}
}

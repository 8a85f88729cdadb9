package feed

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

func addFixtures(f *testing.F, glob string) {
	names, _ := filepath.Glob(filepath.Join("testdata", glob))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzJSONList feeds arbitrary bytes to the SikkerAPI JSON list parser: it
// never panics, its counts add up, it keeps at most MaxEntries and nothing
// wider than the minimum prefix lengths, and its samples are printable.
func FuzzJSONList(f *testing.F) {
	addFixtures(f, "*.json")
	for _, s := range []string{
		`{"data":[{"ip":"::ffff:0:0/96"},{"ip":"0.0.0.0/0"},{"ip":"192.0.2.1"}]}`,
		`[{"ip":"2001:db8::/32","confidenceLevel":"87","asn":"AS4134","protocols":"ssh,telnet"}]`,
		`{"meta":{"count":1},"data":[{"ip":1},{"ip":"1.2.3.4\u001b[31m"}],"x":[1,2]}`,
		`{"data":[{"ip":"192.0.2.1"},{"ip":"192.0.2.2"},{"ip":"192.0.2.3"},{"ip":"192.0.2.4"}]}`,
		`{"data":[`, `{"data":{}}`, `[] []`, "\ufeff[]",
		`[{"ip":"192.0.2.1","lastSeen":"2026-01-02T03:04:05Z","countryCode":5,"asnOrg":null},{"ip":null,"lastSeen":-1}]`,
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MinPrefix4: 8, MinPrefix6: 19, MaxEntries: 3}
	f.Fuzz(func(t *testing.T, in []byte) {
		res, err := parseJSONList(bytes.NewReader(in), true, lim, nil)
		if err != nil {
			if !errors.Is(err, ErrGarbage) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrEmpty) &&
				!errors.Is(err, ErrTooManyEntries) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		st := res.stats
		if st.Entries+st.Malformed != st.Lines || st.Entries > lim.MaxEntries || len(res.entries) != st.Entries {
			t.Fatalf("stats %+v with %d entries kept", st, len(res.entries))
		}
		if n := len(res.set.V4) + len(res.set.V6); n != st.Entries {
			t.Fatalf("%d entries but %d ranges", st.Entries, n)
		}
		// Read for the list alone, with the lastSeen summary, the same
		// rows are in and out.
		slim, err := parseJSONList(bytes.NewReader(in), false, lim, NewSeenSummary(time.Now(), []time.Duration{time.Minute, time.Hour}))
		if err != nil || slim.stats.Entries != st.Entries || slim.stats.Malformed != st.Malformed || !slim.set.Equal(res.set) {
			t.Fatalf("without details: %+v (%v), with: %+v", slim.stats, err, st)
		}
		if sn := slim.seen; sn.Dated()+sn.Missing+sn.Invalid+sn.Future != uint64(st.Entries) {
			t.Fatalf("summary %+v of %d entries", sn, st.Entries)
		}
		mode := lim.mode()
		for _, e := range res.entries {
			if e.Prefix.Bits() < map[bool]int{false: mode.MinBits4, true: mode.MinBits6}[e.Prefix.Addr().Is6()] {
				t.Fatalf("entry %v is wider than the limits", e.Prefix)
			}
		}
		for _, m := range st.Samples {
			if !utf8.ValidString(m.Text) || strings.ContainsFunc(m.Text, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("sample %q is not printable", m.Text)
			}
		}
	})
}

// FuzzReadCache feeds arbitrary bytes to the cache reader: it never panics,
// and what it accepts is written back byte for byte by writeCache.
func FuzzReadCache(f *testing.F) {
	good := &Snapshot{Name: "drop", FetchedAt: time.Date(2025, 10, 9, 8, 0, 0, 0, time.UTC), Origin: "https://x.example/l?token=REDACTED",
		ETag: `"abc"`, Set: ipnet.FromPrefixes(netip.MustParsePrefix("2001:db8::/112"))}
	if err := good.Set.AddRange(netip.MustParseAddr("192.0.2.0"), netip.MustParseAddr("192.0.2.9")); err != nil {
		f.Fatal(err)
	}
	good.Set.Merge()
	var b bytes.Buffer
	if err := writeCache(&b, good); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	f.Add([]byte(cacheMagic + "\n# feed: drop\n# entries: 1\n10.1.2.3/8\n# end\n"))
	f.Add([]byte(cacheMagic + "\n# feed: drop\n# entries: 1\n::ffff:1.2.3.0/120\n# end\n"))
	f.Add([]byte(cacheMagic + "\n# feed: drop\n# entries: 2\n1.2.3.4-1.2.3.1\n# end\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		snap, err := readCache(bytes.NewReader(in), "drop")
		if err != nil {
			if !errors.Is(err, ErrCorruptCache) {
				t.Fatalf("error %v does not wrap ErrCorruptCache", err)
			}
			return
		}
		if !snap.Set.IsMerged() {
			t.Fatal("cache set not merged")
		}
		var out bytes.Buffer
		if err := writeCache(&out, snap); err != nil {
			t.Fatal(err)
		}
		back, err := readCache(&out, "drop")
		if err != nil || !back.Set.Equal(snap.Set) || back.ETag != snap.ETag || back.Origin != snap.Origin {
			t.Fatalf("rewritten cache reads back as %+v, %v", back, err)
		}
	})
}

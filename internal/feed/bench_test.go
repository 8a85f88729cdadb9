package feed

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http/httptest"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/mock"
)

// A Large Business tier pull: 350,000 rows.
const benchRows = 350000

func BenchmarkSikkerFetch(b *testing.B) {
	for _, format := range []string{FormatPlaintext, FormatJSON} {
		b.Run(format, func(b *testing.B) {
			srv, err := mock.New(mock.Options{Key: testKey, TierLimit: benchRows, BlacklistQuota: -1,
				Entries: mock.Generate(mock.GenerateOptions{N: benchRows, Seed: 1, V6Share: 0.1})})
			if err != nil {
				b.Fatal(err)
			}
			if err := srv.Start(""); err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			// As the daemon pulls: JSON summarises lastSeen, keeps no entry.
			c, err := NewSikker(SikkerOptions{BaseURL: srv.URL(), Key: testKey, Format: format, ScoreMin: 1, SeenBounds: testBounds})
			if err != nil {
				b.Fatal(err)
			}
			q := ""
			if format == FormatPlaintext {
				q = "&plaintext=true"
			}
			wire := len(benchBody(b, q))
			b.ReportAllocs()
			for b.Loop() {
				snap, err := c.Fetch(context.Background())
				if err != nil || snap.Stats.Entries != benchRows || (format == FormatJSON) != (snap.Seen != nil) {
					b.Fatalf("fetch: %v", err)
				}
			}
			b.ReportMetric(float64(wire), "wire-B/pull")
		})
	}
}

func BenchmarkCacheRoundTrip(b *testing.B) {
	es := mock.Generate(mock.GenerateOptions{N: benchRows, Seed: 1, V6Share: 0.1})
	snap := &Snapshot{Name: "bench"}
	for _, e := range es {
		snap.Set.AddPrefix(e.Prefix)
	}
	snap.Set.Merge()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := writeCache(&buf, snap); err != nil {
			b.Fatal(err)
		}
		if _, err := readCache(&buf, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// benchBody renders a blacklist answer without a network in between.
func benchBody(b *testing.B, query string) []byte {
	srv, err := mock.New(mock.Options{Key: testKey, TierLimit: benchRows, BlacklistQuota: -1,
		Entries: mock.Generate(mock.GenerateOptions{N: benchRows, Seed: 1, V6Share: 0.1})})
	if err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", BlacklistPath+"?scoreMinimum=1"+query, nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	srv.ServeHTTP(rec, req)
	return rec.Body.Bytes()
}

// BenchmarkParse compares the parse of one pull in each format, as the
// daemon reads it (JSON with its lastSeen summarised), without a network.
func BenchmarkParse(b *testing.B) {
	for _, format := range []string{FormatPlaintext, FormatJSON} {
		b.Run(format, func(b *testing.B) {
			c, err := NewSikker(SikkerOptions{Key: testKey, Format: format, SeenBounds: testBounds})
			if err != nil {
				b.Fatal(err)
			}
			q := ""
			if format == FormatPlaintext {
				q = "&plaintext=true"
			}
			body := benchBody(b, q)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				snap := &Snapshot{}
				if format == FormatJSON {
					err = c.parseJSON(bytes.NewReader(body), snap)
				} else {
					err = c.parsePlain(bytes.NewReader(body), snap)
				}
				if err != nil || snap.Stats.Entries != benchRows {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLoadCache1M reads back a saved list of a million random IPv4
// addresses, as a start from the cache does.
func BenchmarkLoadCache1M(b *testing.B) {
	snap := &Snapshot{Name: "bench"}
	r := rand.New(rand.NewPCG(1, 1))
	for range 1_000_000 {
		a := r.Uint32()
		snap.Set.V4 = append(snap.Set.V4, ipnet.Range4{Lo: a, Hi: a})
	}
	snap.Set.Merge()
	var file bytes.Buffer
	if err := writeCache(&file, snap); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := readCache(bytes.NewReader(file.Bytes()), "bench")
		if err != nil || len(got.Set.V4) != len(snap.Set.V4) {
			b.Fatal(err)
		}
	}
}

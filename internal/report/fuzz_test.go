package report

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
)

// FuzzSpool loads arbitrary spool files: a reporter always starts, with
// rows that have an address and a retry time at most a day away.
func FuzzSpool(f *testing.F) {
	f.Add([]byte(`{"version":1,"pending":[{"ip":"185.16.39.79","service":"ssh","count":5,"ports":["22/tcp"]}],"accum":[],"recent":[{"ip":"8.8.8.8","service":"telnet","at":"2025-10-09T07:00:00Z"}],"retryAt":"2035-10-09T08:00:00Z"}`))
	f.Add([]byte(`{"version":1,"pending":[null]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"retryAt":"9999-12-31T23:59:59Z"} trailing`))
	c := newClock()
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, SpoolFile), in, 0o600); err != nil {
			t.Fatal(err)
		}
		r, err := New(Config{URL: "https://api.example", Key: testKey, StateDir: dir, Now: c.Now}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if at := r.Stats().RetryAt; at.After(c.Now().Add(sikkerapi.MaxRetryAfter)) {
			t.Fatalf("retry at %v", at)
		}
		for _, e := range r.pending {
			if e == nil || !e.IP.IsValid() {
				t.Fatalf("pending row %+v", e)
			}
		}
	})
}

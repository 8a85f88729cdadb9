package feed

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/logging"
)

func testSet(t *testing.T, text string) ipnet.Set {
	t.Helper()
	s, st, err := ipnet.Parse(strings.NewReader(text), ipnet.ParseOptions{})
	if err != nil || st.Malformed != 0 {
		t.Fatalf("parse %q: %v %+v", text, err, st)
	}
	s.Merge()
	return s
}

func TestCacheRoundTrip(t *testing.T) {
	dir := t.TempDir()
	snap := &Snapshot{
		Name:         "sikkerapi",
		Set:          testSet(t, "203.0.113.0/24\n203.0.113.5\n198.51.100.3-198.51.100.77\n2001:db8::/48\n2001:db8:1::1\n0.0.0.0/0\n::/0\n"),
		FetchedAt:    time.Date(2025, 10, 9, 8, 0, 0, 123, time.UTC),
		Origin:       "https://api.sikkerapi.com/v1/key/blacklist?plaintext=true",
		ETag:         `W/"abc"`,
		LastModified: "Wed, 08 Oct 2025 10:00:00 GMT",
	}
	if err := SaveCached(dir, snap); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCached(dir, "sikkerapi")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Set.Equal(snap.Set) || !got.FetchedAt.Equal(snap.FetchedAt) || got.Origin != snap.Origin ||
		got.ETag != snap.ETag || got.LastModified != snap.LastModified || !got.FromCache {
		t.Errorf("loaded %+v\nwant   %+v", got, snap)
	}
	fi, err := os.Stat(CachePath(dir, "sikkerapi"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("cache file mode: %v %v", fi.Mode(), err)
	}

	// Header values cannot inject list lines.
	inj := &Snapshot{Name: "inj", Set: testSet(t, "203.0.113.0/24\n"), ETag: "x\n10.0.0.0/8", Origin: "o\r\n# end"}
	if err := SaveCached(dir, inj); err != nil {
		t.Fatal(err)
	}
	got, err = LoadCached(dir, "inj")
	if err != nil || !got.Set.Equal(inj.Set) || got.ETag != "x 10.0.0.0/8" {
		t.Errorf("header injection: %+v, %v", got, err)
	}
	if _, err := LoadCached(dir, "other"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no cache: err = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadCachedCorrupt(t *testing.T) {
	const good = cacheMagic + "\n# feed: f\n# fetched-at: 2025-10-09T08:00:00Z\n# entries: 2\n203.0.113.0/24\n2001:db8::/32\n# end\n"
	tests := []struct{ name, content, want string }{
		{"empty", "", "empty file"},
		{"foreign file", "203.0.113.1\n", "not a sikkerguard feed cache"},
		{"cut short", strings.TrimSuffix(good, "# end\n"), "no end line"},
		{"cut mid-line", good[:len(good)-20], "no end line"},
		{"count mismatch", strings.Replace(good, "entries: 2", "entries: 3", 1), "announces 3 entries, file holds 2"},
		{"bad prefix", strings.Replace(good, "203.0.113.0/24", "203.0.113.0/33", 1), `invalid prefix "203.0.113.0/33"`},
		{"host bits", strings.Replace(good, "203.0.113.0/24", "203.0.113.1/24", 1), "invalid prefix"},
		{"bad range", strings.Replace(good, "203.0.113.0/24", "203.0.113.9-203.0.113.1", 1), "invalid range"},
		{"wrong feed", strings.Replace(good, "feed: f", "feed: g", 1), `cache of feed "g"`},
		{"bad time", strings.Replace(good, "2025-10-09T08:00:00Z", "yesterday", 1), "fetched-at"},
		{"after end", good + "192.0.2.1\n", "data after the end line"},
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "feeds"), 0o750)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(CachePath(dir, "f"), []byte(tt.content), 0o640)
			_, err := LoadCached(dir, "f")
			if !errors.Is(err, ErrCorruptCache) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrCorruptCache with %q", err, tt.want)
			}
		})
	}
	os.WriteFile(CachePath(dir, "f"), []byte(good), 0o640)
	if s, err := LoadCached(dir, "f"); err != nil || s.Stats.Entries != 2 {
		t.Errorf("the good file itself: %+v %v", s, err)
	}
}

// stubSource returns its results in turn.
type stubSource struct {
	name  string
	snaps []*Snapshot
	errs  []error
	n     int
}

func (s *stubSource) Name() string { return s.name }

func (s *stubSource) Fetch(context.Context) (*Snapshot, error) {
	i := s.n
	s.n++
	return s.snaps[i], s.errs[i]
}

func TestCachedWrapper(t *testing.T) {
	dir := t.TempDir()
	good := &Snapshot{Name: "f", Set: testSet(t, "203.0.113.0/24\n"), FetchedAt: time.Unix(1760000000, 0).UTC()}
	boom := errors.New("boom")
	var logBuf bytes.Buffer
	log := slog.New(logging.Check(slog.NewTextHandler(&logBuf, nil), t.Errorf))

	// No cache yet: the failure comes through alone.
	bad := &Snapshot{Name: "f", Set: testSet(t, "203.0.113.0/24\n198.51.100.0/24\n192.0.2.0/24\n"), FetchedAt: good.FetchedAt.Add(time.Hour)}
	c := Cached(&stubSource{name: "f", snaps: []*Snapshot{nil, good, bad, nil}, errs: []error{boom, nil, nil, boom}}, dir, log)
	if s, err := c.Fetch(context.Background()); s != nil || !errors.Is(err, boom) {
		t.Fatalf("first failure = %v, %v", s, err)
	}
	s, err := c.Fetch(context.Background())
	if err != nil || s.FromCache {
		t.Fatalf("good fetch = %+v, %v", s, err)
	}
	// A fetched list is a candidate only: nothing is saved until Commit.
	if _, err := os.Stat(CachePath(dir, "f")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("cache written before Commit: %v", err)
	}
	if err := c.Commit(s); err != nil {
		t.Fatal(err)
	}
	// A candidate the caller refused (never committed) is not the last
	// good list: a failure afterwards serves the committed one.
	if s, err := c.Fetch(context.Background()); err != nil || !s.Set.Equal(bad.Set) {
		t.Fatalf("second fetch = %+v, %v", s, err)
	}
	s, err = c.Fetch(context.Background())
	if !errors.Is(err, boom) || s == nil || !s.FromCache || s.Stale != err || !s.Set.Equal(good.Set) {
		t.Fatalf("failure after good = %+v, %v", s, err)
	}

	// A new process finds the list on disk before any fetch succeeds.
	c2 := Cached(&stubSource{name: "f", snaps: []*Snapshot{nil}, errs: []error{boom}}, dir, log)
	if last := c2.Last(); last == nil || !last.Set.Equal(good.Set) || !last.FetchedAt.Equal(good.FetchedAt) {
		t.Fatalf("Last() after restart = %+v", last)
	}
	if s, err := c2.Fetch(context.Background()); !errors.Is(err, boom) || s == nil || !s.Set.Equal(good.Set) {
		t.Fatalf("failure after restart = %+v, %v", s, err)
	}

	// A corrupt file is ignored with a warning.
	os.WriteFile(CachePath(dir, "f"), []byte("garbage"), 0o640)
	c3 := Cached(&stubSource{name: "f", snaps: []*Snapshot{nil}, errs: []error{boom}}, dir, log)
	if s, err := c3.Fetch(context.Background()); s != nil || !errors.Is(err, boom) {
		t.Errorf("failure with corrupt cache = %+v, %v", s, err)
	}
	if !strings.Contains(logBuf.String(), "level=WARN msg=\"ignoring feed cache\"") ||
		!strings.Contains(logBuf.String(), "not a sikkerguard feed cache") {
		t.Errorf("no warning logged: %s", logBuf.String())
	}
}

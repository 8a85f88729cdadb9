package feed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/statefile"
)

// The cache file is canonical text: a header of "# key: value" comments, one
// range per line in ipnet's canonical form (CIDR or "lo-hi"), and an end line carrying the count, so that a file cut
// short by a disk fault is detected rather than taken as a smaller list.
const (
	cacheMagic = "# sikkerguard feed cache v1"
	cacheEnd   = "# end"
	cacheDir   = "feeds"
	cacheExt   = ".list"
	cachePerm  = 0o640
	// maxPrealloc bounds the ranges reserved from the entries header.
	maxPrealloc = 8 << 20
)

// ErrCorruptCache is wrapped by LoadCached when a cache file exists but
// cannot be trusted.
var ErrCorruptCache = errors.New("corrupt feed cache")

// CachePath is where the last good list of feed name is kept under dir.
func CachePath(dir, name string) string {
	return filepath.Join(dir, cacheDir, name+cacheExt)
}

// SaveCached writes s as its feed's last good list, atomically.
func SaveCached(dir string, s *Snapshot) error {
	if err := ValidName(s.Name); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, cacheDir), 0o750); err != nil {
		return fmt.Errorf("save feed %s: %w", s.Name, err)
	}
	return statefile.WriteAtomic(CachePath(dir, s.Name), func(w io.Writer) error {
		return writeCache(w, s)
	}, cachePerm)
}

func writeCache(w io.Writer, s *Snapshot) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	v4, v6 := s.Set.Len()
	fmt.Fprintln(bw, cacheMagic)
	header := []struct{ k, v string }{
		{"feed", s.Name},
		{"fetched-at", s.FetchedAt.UTC().Format(time.RFC3339Nano)},
		{"origin", s.Origin},
		{"etag", s.ETag},
		{"last-modified", s.LastModified},
		{"entries", strconv.Itoa(v4 + v6)},
	}
	for _, h := range header {
		// Header values come from HTTP headers and URLs; a line break
		// would let them forge list lines.
		fmt.Fprintf(bw, "# %s: %s\n", h.k, strings.NewReplacer("\r", " ", "\n", " ").Replace(h.v))
	}
	if _, err := s.Set.WriteTo(bw); err != nil {
		return err
	}
	fmt.Fprintln(bw, cacheEnd)
	return bw.Flush()
}

// LoadCached reads the last good list of feed name from dir. It returns an
// error satisfying errors.Is(err, fs.ErrNotExist) when there is none and
// one wrapping ErrCorruptCache when the file cannot be trusted. The
// snapshot has FromCache set.
func LoadCached(dir, name string) (*Snapshot, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	var snap *Snapshot
	err := statefile.Read(CachePath(dir, name), func(r io.Reader) error {
		var err error
		snap, err = readCache(r, name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load cached feed %s: %w", name, err)
	}
	return snap, nil
}

func readCache(r io.Reader, name string) (*Snapshot, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	corrupt := func(line int, format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrCorruptCache, line, fmt.Sprintf(format, args...))
	}
	snap := &Snapshot{Name: name, FromCache: true}
	line, want, ended := 0, -1, false
	buf := make([]byte, 0, 64)
	for sc.Scan() {
		line++
		raw := sc.Bytes()
		if ended {
			return nil, corrupt(line, "data after the end line")
		}
		// Most lines are IPv4 in canonical form: read them without a
		// string or a netip round trip (a million lines in a fraction of
		// the time); anything else takes the general path below.
		if line > 1 && len(raw) > 0 && raw[0] != '#' {
			if r, ok := ipnet.ParseCanonical4(raw, buf); ok {
				snap.Set.V4 = append(snap.Set.V4, r)
				snap.Stats.Entries++
				continue
			}
		}
		text := string(raw)
		switch {
		case line == 1:
			if text != cacheMagic {
				return nil, corrupt(line, "not a sikkerguard feed cache")
			}
		case text == cacheEnd:
			ended = true
		case strings.HasPrefix(text, "# "):
			k, v, ok := strings.Cut(text[2:], ": ")
			if !ok {
				k, v = strings.TrimSuffix(text[2:], ":"), ""
			}
			if err := snap.setHeader(k, v, name, &want); err != nil {
				return nil, corrupt(line, "%v", err)
			}
			if k == "entries" && snap.Set.V4 == nil && want > 0 {
				// One allocation for the list instead of a doubling
				// series (a 1.5x peak); a lying header costs at most
				// this cap.
				snap.Set.V4 = make([]ipnet.Range4, 0, min(want, maxPrealloc))
			}
		default:
			if err := addCanonical(&snap.Set, text); err != nil {
				return nil, corrupt(line, "%v", err)
			}
			snap.Stats.Entries++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptCache, err)
	}
	switch {
	case line == 0:
		return nil, fmt.Errorf("%w: empty file", ErrCorruptCache)
	case !ended:
		return nil, fmt.Errorf("%w: no end line (file cut short)", ErrCorruptCache)
	case want != snap.Stats.Entries:
		return nil, fmt.Errorf("%w: header announces %d entries, file holds %d", ErrCorruptCache, want, snap.Stats.Entries)
	}
	snap.Stats.Lines = line
	snap.Stats.Skipped = line - snap.Stats.Entries
	snap.Set.Merge()
	return snap, nil
}

// addCanonical adds one line of ipnet's canonical text ("cidr" or
// "lo-hi"), accepting nothing looser: the file is our own output, so host
// bits or another spelling mean it was damaged or written by someone else.
func addCanonical(set *ipnet.Set, text string) error {
	if lo, hi, ok := strings.Cut(text, "-"); ok {
		a, err1 := ipnet.ParseAddr(lo)
		b, err2 := ipnet.ParseAddr(hi)
		if err1 != nil || err2 != nil || lo != strings.TrimSpace(lo) || hi != strings.TrimSpace(hi) {
			return fmt.Errorf("invalid range %q", clip(text, 60))
		}
		if err := set.AddRange(a, b); err != nil {
			return fmt.Errorf("invalid range %q: %w", clip(text, 60), err)
		}
		return nil
	}
	p, err := ipnet.ParsePrefix(text, ipnet.Mode{HostBits: ipnet.RefuseHostBits})
	if err != nil || p.String() != text || !strings.Contains(text, "/") {
		return fmt.Errorf("invalid prefix %q", clip(text, 60))
	}
	set.AddPrefix(p)
	return nil
}

func (s *Snapshot) setHeader(k, v, name string, want *int) error {
	switch k {
	case "feed":
		if v != name {
			return fmt.Errorf("cache of feed %q, not %q", v, name)
		}
	case "fetched-at":
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return fmt.Errorf("fetched-at: %w", err)
		}
		s.FetchedAt = t
	case "origin":
		s.Origin = v
	case "etag":
		s.ETag = v
	case "last-modified":
		s.LastModified = v
	case "entries":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("entries %q is not a count", v)
		}
		*want = n
	}
	// Unknown keys are comments from a newer version: ignore them.
	return nil
}

// Primer is implemented by sources that can use a saved list, e.g. to make
// their first request conditional (URLFeed).
type Primer interface {
	Prime(*Snapshot)
}

// CachedSource keeps the last good list of a Source on disk. See Cached.
type CachedSource struct {
	src Source
	dir string
	log *slog.Logger

	mu     sync.Mutex
	loaded bool      // the cache file has been consulted
	last   *Snapshot // last good list, in memory
}

// Cached wraps src. A fetched list is only a candidate: it becomes the last
// good list, saved under dir/feeds/<name>.list, when the caller accepts it
// with Commit. A failed fetch returns the last good list (FromCache set,
// Stale holding the failure) together with the error. A corrupt cache file
// is logged as a warning and ignored. log may be nil.
func Cached(src Source, dir string, log *slog.Logger) *CachedSource {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &CachedSource{src: src, dir: dir, log: log.With("feed", src.Name())}
}

// Name implements Source.
func (c *CachedSource) Name() string { return c.src.Name() }

// Last returns the last good list known, loading the cache file if it has
// not been read yet; nil when there is none.
func (c *CachedSource) Last() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadLocked()
	if c.last == nil {
		return nil
	}
	s := *c.last
	return &s
}

func (c *CachedSource) loadLocked() {
	if c.loaded {
		return
	}
	c.loaded = true
	snap, err := LoadCached(c.dir, c.src.Name())
	switch {
	case err == nil:
		c.last = snap
		if p, ok := c.src.(Primer); ok {
			p.Prime(snap)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		c.log.Warn("ignoring feed cache", "path", CachePath(c.dir, c.src.Name()), "err", err)
	}
}

// Fetch implements Source. A fresh list is returned as a candidate and
// saved nowhere; see Commit.
func (c *CachedSource) Fetch(ctx context.Context) (*Snapshot, error) {
	c.mu.Lock()
	c.loadLocked()
	c.mu.Unlock()

	snap, err := c.src.Fetch(ctx)
	if err == nil {
		return snap, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return nil, err
	}
	s := *c.last
	s.FromCache = true
	if errors.Is(err, ErrNotModified) {
		s.Stale = nil
		return &s, nil
	}
	s.Stale = err
	return &s, err
}

// Commit makes snap the feed's last good list, in memory and on disk
// (atomically). Only a list that the caller's checks accepted and that is
// in force belongs here: it is what the next start enforces before its
// first pull. A list equal to the saved one is not written again.
func (c *CachedSource) Commit(snap *Snapshot) error {
	if snap == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadLocked()
	if c.last != nil && snap.FromCache && c.last.Set.Equal(snap.Set) {
		return nil
	}
	s := *snap
	c.last = &s
	if err := SaveCached(c.dir, snap); err != nil {
		return err
	}
	return nil
}

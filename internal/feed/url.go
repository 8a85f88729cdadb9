package feed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// DefaultURLTimeout bounds one download of a URL feed, body included.
const DefaultURLTimeout = 60 * time.Second

// URLOptions configures a plain HTTP(S) blocklist feed.
type URLOptions struct {
	Name         string
	URL          string
	HTTPClient   *http.Client // default: a client without its own timeout
	MaxBodyBytes int64        // default DefaultMaxBodyBytes
	Timeout      time.Duration
	UserAgent    string
	Garbage      GarbagePolicy
	Logger       *slog.Logger
	Now          func() time.Time
}

// URLFeed downloads a list with conditional requests. It is safe for
// concurrent use.
type URLFeed struct {
	opt    URLOptions
	origin string // URL with credentials redacted
	log    *slog.Logger

	mu   sync.Mutex
	last *Snapshot // last good list, with its validators
}

// NewURL validates opt and returns the feed.
func NewURL(opt URLOptions) (*URLFeed, error) {
	if err := ValidName(opt.Name); err != nil {
		return nil, err
	}
	u, err := url.Parse(opt.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("feed %s: url %q: want http(s)://host/path", opt.Name, redactURL(opt.URL))
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{}
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultURLTimeout
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &URLFeed{opt: opt, origin: redactURL(opt.URL), log: opt.Logger.With("feed", opt.Name)}, nil
}

// Name implements Source.
func (f *URLFeed) Name() string { return f.opt.Name }

// Prime hands the feed a list saved earlier (with its ETag and
// Last-Modified) so that the first request after a restart can already be
// conditional. Cached calls it with the cache file's content.
func (f *URLFeed) Prime(s *Snapshot) {
	if s == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		c := *s
		f.last = &c
	}
}

// Fetch implements Source. A 304 returns the last good list with FromCache
// set, or ErrNotModified when the feed holds none.
func (f *URLFeed) Fetch(ctx context.Context) (*Snapshot, error) {
	snap, err := f.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", f.opt.Name, err)
	}
	return snap, nil
}

func (f *URLFeed) fetch(ctx context.Context) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.opt.URL, nil)
	if err != nil {
		return nil, err
	}
	if f.opt.UserAgent != "" {
		req.Header.Set("User-Agent", f.opt.UserAgent)
	}
	f.mu.Lock()
	last := f.last
	f.mu.Unlock()
	if last != nil {
		if last.ETag != "" {
			req.Header.Set("If-None-Match", last.ETag)
		}
		if last.LastModified != "" {
			req.Header.Set("If-Modified-Since", last.LastModified)
		}
	}
	resp, err := f.opt.HTTPClient.Do(req)
	if err != nil {
		return nil, f.timeout(ctx, err)
	}
	defer resp.Body.Close()
	now := f.opt.Now()

	switch code := resp.StatusCode; {
	case code == http.StatusNotModified:
		if last == nil {
			return nil, ErrNotModified
		}
		s := *last
		s.FromCache, s.Stale, s.FetchedAt = true, nil, now
		f.log.Debug("feed not modified", "etag", s.ETag)
		return &s, nil
	case code < 200 || code > 299:
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
		se := &StatusError{Status: code, Message: errorMessage(raw)}
		if code >= 500 || code == http.StatusTooManyRequests {
			return nil, retryable(se)
		}
		return nil, se
	}

	body, err := newLimitedBody(resp, f.opt.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	set, st, err := ipnet.Parse(bufio.NewReaderSize(body, 64<<10), ipnet.ParseOptions{})
	if err != nil {
		return nil, f.timeout(ctx, err)
	}
	if err := f.opt.Garbage.check(st, false); err != nil {
		return nil, err
	}
	set.Merge()
	snap := &Snapshot{
		Name: f.opt.Name, Set: set, Stats: st, FetchedAt: now, Origin: f.origin,
		ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"),
	}
	f.mu.Lock()
	f.last = snap
	f.mu.Unlock()
	c := *snap
	return &c, nil
}

func (f *URLFeed) timeout(ctx context.Context, err error) error {
	if errors.Is(err, ErrTooLarge) {
		return err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return retryable(fmt.Errorf("timed out after %s: %w", f.opt.Timeout, err))
	}
	if ctx.Err() != nil || errors.Is(err, ErrTruncated) {
		return err
	}
	return retryable(err)
}

// secretParams are query parameters whose values are treated as
// credentials when a URL is logged or saved.
var secretParams = []string{"key", "token", "secret", "password", "auth", "sig"}

// redactURL removes user info and hides credential-like query values, so
// that the result can be logged and saved in a cache header.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable url)"
	}
	u.User = nil
	if u.RawQuery != "" {
		q := u.Query()
		for name := range q {
			ln := strings.ToLower(name)
			for _, s := range secretParams {
				if strings.Contains(ln, s) {
					q[name] = []string{"REDACTED"}
					break
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

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
	"sync"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
)

// DefaultURLTimeout bounds one download of a URL feed, body included.
const DefaultURLTimeout = 60 * time.Second

// URLOptions configures a plain HTTP(S) blocklist feed.
type URLOptions struct {
	Name string
	URL  string
	// HTTPClient is copied, with redirects that never leave https
	// (sikkerapi.NoDowngradeRedirects). Default: a client without its own
	// timeout.
	HTTPClient   *http.Client
	MaxBodyBytes int64 // default DefaultMaxBodyBytes
	Limits       Limits
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
	redact *sikkerapi.URLRedactor
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
		return nil, fmt.Errorf("feed %s: url %q: want http(s)://host/path", opt.Name, sikkerapi.RedactURL(opt.URL))
	}
	opt.HTTPClient = sikkerapi.WithRedirects(opt.HTTPClient, sikkerapi.NoDowngradeRedirects)
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
	return &URLFeed{opt: opt, origin: sikkerapi.RedactURL(opt.URL), redact: sikkerapi.NewURLRedactor(opt.URL),
		log: opt.Logger.With("feed", opt.Name)}, nil
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
// set, or ErrNotModified when the feed holds none. The error never holds
// the URL's credentials: net/http puts the URL as requested in its errors
// and a server may echo it, so the URL is redacted inside the error itself
// (?token=REDACTED) before it can reach a log, D-Bus or /status.
func (f *URLFeed) Fetch(ctx context.Context) (*Snapshot, error) {
	snap, err := f.fetch(ctx)
	if err != nil {
		return nil, f.redact.Error(fmt.Errorf("fetch %s: %w", f.opt.Name, err))
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
		se := &StatusError{Status: code, Message: sikkerapi.ErrorMessage(raw)}
		if code >= 500 || code == http.StatusTooManyRequests {
			return nil, retryable(se)
		}
		return nil, se
	}

	body, err := newLimitedBody(resp, f.opt.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	set, st, err := ipnet.Parse(bufio.NewReaderSize(body, 64<<10), f.opt.Limits.parseOptions())
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
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTooManyEntries) || errors.Is(err, sikkerapi.ErrRedirectRefused) {
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

package feed

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// etagServer serves body with an ETag and Last-Modified and answers
// conditional requests with 304; it records the validators it received.
type etagServer struct {
	mu       sync.Mutex
	body     string
	etag     string
	status   int // non-zero: answer this instead
	requests []http.Header
}

func (s *etagServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r.Header.Clone())
	if s.status != 0 {
		http.Error(w, "down for maintenance", s.status)
		return
	}
	w.Header().Set("ETag", s.etag)
	w.Header().Set("Last-Modified", "Wed, 08 Oct 2025 10:00:00 GMT")
	if r.Header.Get("If-None-Match") == s.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	fmt.Fprint(w, s.body)
}

func (s *etagServer) last() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[len(s.requests)-1]
}

const dropList = "; Spamhaus DROP-like list\n203.0.113.0/24 ; SBL1\n198.51.100.0/25 ; SBL2\n"

func TestURLFeedConditionalRequests(t *testing.T) {
	es := &etagServer{body: dropList, etag: `"v1"`}
	base := serve(t, &http.Server{Handler: es})
	dir := t.TempDir()
	newFeed := func() *CachedSource {
		f, err := NewURL(URLOptions{Name: "drop", URL: base + "/drop.txt?apikey=s3cr3t", UserAgent: testUA})
		if err != nil {
			t.Fatal(err)
		}
		return Cached(f, dir, nil)
	}
	feed := newFeed()
	first, err := feed.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if first.FromCache || first.ETag != `"v1"` || first.Stats.Entries != 2 {
		t.Fatalf("first fetch = %+v", first)
	}
	if err := feed.Commit(first); err != nil { // the caller accepted it
		t.Fatal(err)
	}
	if strings.Contains(first.Origin, "s3cr3t") {
		t.Errorf("origin %q holds the credential", first.Origin)
	}
	if h := es.last(); h.Get("If-None-Match") != "" || h.Get("User-Agent") != testUA {
		t.Errorf("first request headers = %v", h)
	}

	second, err := feed.Fetch(context.Background())
	if err != nil {
		t.Fatalf("304: %v", err)
	}
	if !second.FromCache || second.Stale != nil || !second.Set.Equal(first.Set) {
		t.Errorf("304 snapshot = %+v, want the cached list with FromCache and no Stale", second)
	}
	if h := es.last(); h.Get("If-None-Match") != `"v1"` || h.Get("If-Modified-Since") == "" {
		t.Errorf("second request not conditional: %v", h)
	}

	// After a restart the validators come from the cache file.
	restarted := newFeed()
	third, err := restarted.Fetch(context.Background())
	if err != nil || !third.FromCache || !third.Set.Equal(first.Set) {
		t.Fatalf("304 after restart = %+v, %v", third, err)
	}
	if h := es.last(); h.Get("If-None-Match") != `"v1"` {
		t.Errorf("request after restart not conditional: %v", h)
	}

	// A changed list replaces the cache.
	es.mu.Lock()
	es.body, es.etag = "192.0.2.1\n", `"v2"`
	es.mu.Unlock()
	fourth, err := restarted.Fetch(context.Background())
	if err != nil || fourth.FromCache || !fourth.Set.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Fatalf("changed list = %+v, %v", fourth, err)
	}
	if err := restarted.Commit(fourth); err != nil {
		t.Fatal(err)
	}
	saved, err := LoadCached(dir, "drop")
	if err != nil || saved.ETag != `"v2"` || !saved.Set.Equal(fourth.Set) {
		t.Errorf("cache after change = %+v, %v", saved, err)
	}

	// A failing server leaves the list in place.
	es.mu.Lock()
	es.status = http.StatusServiceUnavailable
	es.mu.Unlock()
	fifth, err := restarted.Fetch(context.Background())
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 503 || !Retryable(err) || !strings.Contains(err.Error(), "down for maintenance") {
		t.Errorf("err = %v, want retryable 503 with the body text", err)
	}
	if fifth == nil || !fifth.FromCache || !errors.Is(fifth.Stale, err) || !fifth.Set.Equal(fourth.Set) {
		t.Errorf("snapshot on failure = %+v", fifth)
	}
}

func TestURLFeedNotModifiedWithoutList(t *testing.T) {
	srv := serve(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotModified)
	})})
	f, err := NewURL(URLOptions{Name: "x", URL: srv})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(context.Background()); !errors.Is(err, ErrNotModified) {
		t.Errorf("err = %v, want ErrNotModified", err)
	}
}

func TestURLFeedErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		opt     func(*URLOptions)
		want    error
		text    string
	}{
		{name: "empty", handler: func(w http.ResponseWriter, r *http.Request) {}, want: ErrEmpty},
		{name: "only comments", handler: func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "# nothing today\n") }, want: ErrEmpty},
		{name: "garbage", handler: func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, strings.Repeat("203.0.113.1\nnot an address\n", 20))
		}, want: ErrGarbage, text: "20 of 40 lines malformed"},
		{name: "too large by header", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "2000")
			fmt.Fprint(w, strings.Repeat("203.0.113.1\n", 2000/12+1)[:2000])
		}, opt: func(o *URLOptions) { o.MaxBodyBytes = 1000 }, want: ErrTooLarge, text: "Content-Length 2000"},
		{name: "slow", handler: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, opt: func(o *URLOptions) { o.Timeout = 200 * time.Millisecond }, text: "timed out after 200ms"},
		{name: "not found", handler: func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, text: "http 404 Not Found: 404 page not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := serve(t, &http.Server{Handler: tt.handler})
			opt := URLOptions{Name: "x", URL: base}
			if tt.opt != nil {
				tt.opt(&opt)
			}
			f, err := NewURL(opt)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Fetch(context.Background())
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %v, want %v containing %q", err, tt.want, tt.text)
			}
		})
	}
}

func TestNewURLValidates(t *testing.T) {
	for _, tt := range []struct {
		opt  URLOptions
		want string
	}{
		{URLOptions{Name: "", URL: "https://x/"}, "invalid feed name"},
		{URLOptions{Name: "a", URL: "file:///etc/passwd"}, "want http(s)"},
		{URLOptions{Name: "a", URL: "https://user:pw@:bad"}, "want http(s)"},
	} {
		_, err := NewURL(tt.opt)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "pw") {
			t.Errorf("NewURL(%+v) = %v, want %q", tt.opt, err, tt.want)
		}
	}
}

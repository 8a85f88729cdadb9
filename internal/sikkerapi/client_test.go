package sikkerapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testKey = "sk_free_0123456789abcdef"

// authSink records the Authorization headers it was sent.
type authSink struct {
	mu   sync.Mutex
	seen []string
	srv  *httptest.Server
}

func newSink(t *testing.T) *authSink {
	s := &authSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Header.Get("Authorization"))
		s.mu.Unlock()
		w.Write([]byte("192.0.2.1\n"))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *authSink) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

func redirector(t *testing.T, tls bool, to func() string) *httptest.Server {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, to()+r.URL.RequestURI(), http.StatusFound)
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

// An https API that redirects to plain http on the same host and another
// port must not get the key sent there: net/http's own policy keeps the
// Authorization header on such a redirect.
func TestRedirectNeverSendsKeyElsewhere(t *testing.T) {
	sink := newSink(t) // http://127.0.0.1:<other port>
	for _, tt := range []struct {
		name string
		tls  bool
	}{{"https to http", true}, {"http to another port", false}} {
		t.Run(tt.name, func(t *testing.T) {
			api := redirector(t, tt.tls, func() string { return sink.srv.URL })
			c, err := New(Options{BaseURL: api.URL, Key: testKey, HTTPClient: api.Client()})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(context.Background(), Request{Path: "/v1/key/blacklist"})
			for _, h := range sink.requests() {
				if strings.Contains(h, testKey) {
					t.Fatalf("the key reached the redirect target: %q", h)
				}
			}
			if err == nil {
				resp.Body.Close()
				t.Fatal("redirect to another origin followed")
			}
			if !errors.Is(err, ErrRedirectRefused) || Retryable(err) {
				t.Errorf("err = %v, want a non-retryable ErrRedirectRefused", err)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error holds the key: %v", err)
			}
		})
	}
}

func TestRedirectSameOriginFollowed(t *testing.T) {
	var got string
	mux := http.NewServeMux()
	mux.HandleFunc("/old/v1/key/blacklist", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/v1/key/blacklist", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/v1/key/blacklist", func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL + "/old", Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(context.Background(), Request{Path: "/v1/key/blacklist"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != "Bearer "+testKey {
		t.Errorf("same-origin redirect target got Authorization %q", got)
	}
}

func TestNoDowngradeRedirects(t *testing.T) {
	sink := newSink(t)
	tlsSrv := redirector(t, true, func() string { return sink.srv.URL })
	hc := WithRedirects(tlsSrv.Client(), NoDowngradeRedirects)
	resp, err := hc.Get(tlsSrv.URL + "/list?token=s3cr3tvalue")
	if err == nil {
		resp.Body.Close()
		t.Fatal("https feed followed a redirect to http")
	}
	if !errors.Is(err, ErrRedirectRefused) || len(sink.requests()) != 0 {
		t.Errorf("err %v, %d requests reached the http target", err, len(sink.requests()))
	}
	// http to http on any host is allowed: nothing is protected there.
	plain := redirector(t, false, func() string { return sink.srv.URL })
	resp, err = WithRedirects(nil, NoDowngradeRedirects).Get(plain.URL + "/list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestCheckScrubsAndClassifies(t *testing.T) {
	now := time.Date(2025, 10, 9, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		status    int
		header    map[string]string
		body      string
		is        error
		retryable bool
		want      string
	}{
		{500, nil, `{"error":"backend failed for key ` + testKey + `"}`, nil, true, "http 500 Internal Server Error: backend failed for key [redacted]"},
		{502, nil, "<html>Bearer " + testKey + "\x1b[31m</html>", nil, true, "http 502 Bad Gateway: <html>Bearer [redacted] [31m</html>"},
		{401, nil, `{"error":"invalid key ` + testKey + `"}`, ErrKeyRejected, false, "(server said: invalid key [redacted])"},
		{403, nil, `{"error":{"message":"expired"}}`, ErrKeyDisabled, false, "(server said: expired)"},
		{404, nil, `{"message":"no such path"}`, nil, false, "http 404 Not Found: no such path"},
		{429, map[string]string{"Retry-After": "315360000"}, `{"error":"quota"}`, nil, false, "retry after 2025-10-10T09:00:00Z (25h0m0s)"},
		{429, map[string]string{"Retry-After": "9300000000"}, ``, nil, false, "(25h0m0s)"},
	}
	for _, tt := range tests {
		c, err := New(Options{BaseURL: "https://api.example", Key: testKey, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		for k, v := range tt.header {
			rec.Header().Set(k, v)
		}
		rec.WriteHeader(tt.status)
		rec.WriteString(tt.body)
		err = c.Check(rec.Result(), "/v1/key/blacklist", nil)
		if err == nil {
			t.Fatalf("%d: no error", tt.status)
		}
		if strings.Contains(err.Error(), testKey) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%d: error %q, want it to contain %q and no key", tt.status, err, tt.want)
		}
		if tt.is != nil && !errors.Is(err, tt.is) {
			t.Errorf("%d: %v is not %v", tt.status, err, tt.is)
		}
		if Retryable(err) != tt.retryable {
			t.Errorf("%d: Retryable = %v", tt.status, !tt.retryable)
		}
		var qe *QuotaError
		if tt.status == 429 && (!errors.As(err, &qe) || qe.RetryAfter != MaxRetryAfter || qe.Endpoint != "/v1/key/blacklist") {
			t.Errorf("429: %#v", qe)
		}
	}
}

func TestDoSendsKeyAndAgentOnly(t *testing.T) {
	var hdr http.Header
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr, query = r.Header.Clone(), r.URL.RawQuery
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, Key: testKey, UserAgent: "sikkerguard/test"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(context.Background(), Request{Method: http.MethodPost, Path: "/v1/key/bulk-report",
		Body: []byte(`{}`), ContentType: "application/json"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hdr.Get("Authorization") != "Bearer "+testKey || hdr.Get("User-Agent") != "sikkerguard/test" ||
		hdr.Get("Content-Type") != "application/json" || strings.Contains(query, testKey) {
		t.Errorf("headers %v, query %q", hdr, query)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{
		{BaseURL: "ftp://x", Key: testKey},
		{BaseURL: "https://u:" + testKey + "@x", Key: testKey},
		{BaseURL: "https://x?key=" + testKey, Key: testKey},
		{BaseURL: "https://x", Key: " "},
		{BaseURL: "https://x", Key: "a b"},
	} {
		if _, err := New(o); err == nil || strings.Contains(err.Error(), testKey) {
			t.Errorf("New(%q) = %v", o.BaseURL, err)
		}
	}
}

func TestSendsKeyInClear(t *testing.T) {
	for in, want := range map[string]bool{
		"https://api.sikkerapi.com": false,
		"http://api.sikkerapi.com":  true,
		"http://192.0.2.10:8080":    true,
		"HTTP://[2001:db8::1]/":     true,
		"http://127.0.0.1:9000":     false,
		"http://127.8.9.1":          false,
		"http://[::1]:80":           false,
		"http://localhost:1234":     false,
		"http://api.localhost":      false,
		"http://localhost.evil.com": true,
		"":                          false,
	} {
		if got := SendsKeyInClear(in); got != want {
			t.Errorf("SendsKeyInClear(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestURLRedactor(t *testing.T) {
	raw := "https://feeduser:pa55word@lists.example/drop.txt?token=s3cr3t%2Bv&format=txt"
	r := NewURLRedactor(raw)
	err := r.Error(errors.New(`Get "` + raw + `": dial tcp: refused; server said token=s3cr3t+v`))
	for _, leak := range []string{"s3cr3t", "pa55word", "feeduser"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("%q leaks %q", err, leak)
		}
	}
	if !strings.Contains(err.Error(), "token=REDACTED") || !strings.Contains(err.Error(), "format=txt") {
		t.Errorf("redacted error %q lost its shape", err)
	}
	plain := errors.New("nothing to hide")
	if r.Error(plain) != plain {
		t.Error("an error without secrets was rewrapped")
	}
}

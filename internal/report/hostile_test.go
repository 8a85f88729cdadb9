package report

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/mock"
	"github.com/sikkerapi/sikkerguard/internal/nflog"
	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
)

// A 5xx answer that echoes the key must not put it in the error the daemon
// logs, nor in the reporter's own log.
func TestReportErrorsScrubTheKey(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusBadRequest, http.StatusUnauthorized} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":"request %s failed"}`, r.Header.Get("Authorization"))
		}))
		c := newClock()
		r, logs := newReporterAt(t, srv.URL, c, "", nil)
		r.Add(drop("185.16.39.79", 22, nflog.TransportTCP, "ssh", 5))
		err := r.Flush(context.Background())
		srv.Close()
		if err != nil && strings.Contains(err.Error(), testKey) {
			t.Errorf("%d: error leaks the key: %v", status, err)
		}
		if strings.Contains(logs.String(), testKey) {
			t.Errorf("%d: log leaks the key: %s", status, logs)
		}
		if status != http.StatusBadRequest && (err == nil || !strings.Contains(err.Error(), "[redacted]")) {
			t.Errorf("%d: err = %v, want the server's message with the key redacted", status, err)
		}
	}
}

// A 429 asking for ten years, or for more seconds than a Duration holds,
// holds reports back for about a day, also after a restart from the spool.
func TestReportRetryAfterClamped(t *testing.T) {
	for _, ra := range []string{"315360000", "9223372037", "99999999999999999999"} {
		srv := startMock(t, mock.Options{})
		if err := srv.SetFault(mock.Fault{Mode: mock.Fault429, Count: 1, RetryAfter: ra}); err != nil {
			t.Fatal(err)
		}
		c := newClock()
		r, _ := newReporter(t, srv, c, t.TempDir(), nil)
		r.Add(drop("185.16.39.79", 22, nflog.TransportTCP, "ssh", 5))
		if err := r.Flush(context.Background()); !errors.Is(err, ErrRetryLater) {
			t.Fatalf("Retry-After %s: %v", ra, err)
		}
		at := r.Stats().RetryAt
		if wait := at.Sub(c.Now()); wait <= 0 || wait > sikkerapi.MaxRetryAfter {
			t.Errorf("Retry-After %s: waits %v, want at most %v", ra, wait, sikkerapi.MaxRetryAfter)
		}
	}
}

func TestSpoolRetryAtClampedOnLoad(t *testing.T) {
	srv := startMock(t, mock.Options{})
	c := newClock()
	dir := t.TempDir()
	far := c.Now().AddDate(10, 0, 0).UTC().Format(time.RFC3339)
	spool := `{"version":1,"pending":[{"ip":"185.16.39.79","service":"ssh","count":5}],"accum":[],"recent":[],"retryAt":"` + far + `"}`
	if err := os.WriteFile(filepath.Join(dir, SpoolFile), []byte(spool), 0o600); err != nil {
		t.Fatal(err)
	}
	r, _ := newReporter(t, srv, c, dir, nil)
	if got := r.Stats().RetryAt; got.After(c.Now().Add(sikkerapi.MaxRetryAfter)) {
		t.Fatalf("RetryAt %v loaded from the spool as it was", got)
	}
	c.Advance(sikkerapi.MaxRetryAfter + time.Second)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(srv.Reports()) != 1 {
		t.Errorf("%d reports a day later, want the spooled one", len(srv.Reports()))
	}
}

// The bulk report goes through the same client as the pull: a redirect to
// plain http on another port never carries the key.
func TestReportRefusesRedirectToOtherOrigin(t *testing.T) {
	var leaked []string
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = append(leaked, r.Header.Get("Authorization"))
		fmt.Fprint(w, `{"total":1,"accepted":1}`)
	}))
	defer plain.Close()
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer api.Close()
	r, _ := newReporterAt(t, api.URL, newClock(), "", func(c *Config) { c.Client = api.Client() })
	r.Add(drop("185.16.39.79", 22, nflog.TransportTCP, "ssh", 5))
	err := r.Flush(context.Background())
	if !errors.Is(err, sikkerapi.ErrRedirectRefused) || r.Stats().Pending != 1 {
		t.Errorf("err = %v, pending %d; want the redirect refused and the row kept", err, r.Stats().Pending)
	}
	for _, a := range leaked {
		if strings.Contains(a, testKey) {
			t.Fatalf("the key followed the redirect: %q", a)
		}
	}
}

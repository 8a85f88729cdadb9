package feed

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
)

func TestURLFeedSendsTheTokenOnlyInTheHeader(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		if strings.Contains(r.URL.String(), "s3cret-token-value") {
			t.Errorf("token in the URL: %s", r.URL)
		}
		fmt.Fprintln(w, "192.0.2.9")
	}))
	defer srv.Close()
	f, err := NewURL(URLOptions{Name: "hub", URL: srv.URL + "/v1/blocklist", Token: "s3cret-token-value"})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := f.Fetch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "Bearer s3cret-token-value" || !snap.Set.Contains(netip.MustParseAddr("192.0.2.9")) {
		t.Fatalf("Authorization %q, set %v", got, snap.Set)
	}
	if _, err := NewURL(URLOptions{Name: "hub", URL: srv.URL, Token: "two words"}); err == nil {
		t.Fatal("a token with a space was accepted")
	}
}

func TestURLFeedWithATokenFollowsNoRedirectElsewhere(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect was followed, Authorization %q", r.Header.Get("Authorization"))
	}))
	defer other.Close()
	hub := httptest.NewServer(http.RedirectHandler(other.URL+"/list", http.StatusFound))
	defer hub.Close()
	f, err := NewURL(URLOptions{Name: "hub", URL: hub.URL + "/v1/blocklist", Token: "s3cret-token-value"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Fetch(t.Context())
	if !errors.Is(err, sikkerapi.ErrRedirectRefused) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v, want a refused redirect without the token", err)
	}
}

package hub

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/nflog"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

const (
	tokA = "aaaaaaaaaaaaaaaaaaaaaaaa"
	tokB = "bbbbbbbbbbbbbbbbbbbbbbbb"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func mustTokens(t *testing.T, text string) *Tokens {
	t.Helper()
	tk, err := ParseTokens(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestParseTokens(t *testing.T) {
	tk := mustTokens(t, "# fleet\nweb1 "+tokA+"\n\nweb2 "+tokB+"\n")
	if got, ok := tk.Lookup(tokB); !ok || got != "web2" {
		t.Fatalf("Lookup(tokB) = %q, %v", got, ok)
	}
	if _, ok := tk.Lookup(tokA + "x"); ok {
		t.Fatal("a longer token matched")
	}
	if _, ok := tk.Lookup(""); ok {
		t.Fatal("the empty token matched")
	}
	for _, c := range []struct{ in, want string }{
		{"web1\n", "line 1: want NAME TOKEN"},
		{"web1 short\n", "line 1 (web1): token must be 16 to 256"},
		{"web1 " + tokA + "\nweb1 " + tokB + "\n", "line 2: host web1 is already on line 1"},
		{"web1 " + tokA + "\nweb2 " + tokA + "\n", "line 2 (web2): the token of line 1 again"},
		{"we/b " + tokA + "\n", `line 1: host name "we/b"`},
	} {
		_, err := ParseTokens(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v, want %q", c.in, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), tokA) || strings.Contains(err.Error(), tokB)) {
			t.Errorf("%q: the error shows a token: %v", c.in, err)
		}
	}
}

type sink struct{ got []nflog.Count }

func (s *sink) add(_ string, c []nflog.Count) bool { s.got = append(s.got, c...); return true }

func newTestServer(t *testing.T) (*Server, *sink, http.Handler) {
	t.Helper()
	sk := &sink{}
	s, err := New(Options{Listen: "127.0.0.1:0", Tokens: mustTokens(t, "web1 "+tokA+"\nweb2 "+tokB+"\n"),
		Services: map[uint16]string{22: "ssh"}, Sink: sk.add, Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	feeds := map[string]ipnetSet{"a": testnet.Set("192.0.2.0/24"), "b": testnet.Set("198.51.100.7/32", "2001:db8::/48")}
	s.Publish(Publish(testnet.Set("192.0.2.0/24", "198.51.100.7/32", "2001:db8::/48"), feeds, t0, nil))
	return s, sk, s.Handler()
}

func do(h http.Handler, method, target, token string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestBlocklistNeedsAValidToken(t *testing.T) {
	_, _, h := newTestServer(t)
	for _, tok := range []string{"", "cccccccccccccccccccccccc", tokA[:20]} {
		for _, p := range []string{"/v1/blocklist", "/v1/blocklist/a"} {
			w := do(h, "GET", p, tok, nil, "")
			if w.Code != http.StatusUnauthorized || w.Body.Len() > 100 || strings.Contains(w.Body.String(), "192.0.2") {
				t.Errorf("GET %s with %q: %d %q", p, tok, w.Code, w.Body.String())
			}
		}
		if w := do(h, "POST", "/v1/reports", tok, map[string]string{"Content-Type": "application/json"}, `{"events":[]}`); w.Code != http.StatusUnauthorized {
			t.Errorf("POST with %q: %d", tok, w.Code)
		}
	}
}

func TestBlocklistServesValidatorsAnd304(t *testing.T) {
	s, _, h := newTestServer(t)
	w := do(h, "GET", "/v1/blocklist", tokA, nil, "")
	if w.Code != 200 {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	if want := "192.0.2.0/24\n198.51.100.7/32\n2001:db8::/48\n"; w.Body.String() != want {
		t.Fatalf("body %q, want %q", w.Body.String(), want)
	}
	etag := w.Header().Get("ETag")
	if !strings.HasPrefix(etag, `"`) || w.Header().Get("Last-Modified") != t0.Format(http.TimeFormat) ||
		w.Header().Get("Cache-Control") != CacheControl {
		t.Fatalf("headers: %v", w.Header())
	}
	w = do(h, "GET", "/v1/blocklist", tokB, map[string]string{"If-None-Match": etag}, "")
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Fatalf("conditional GET: %d", w.Code)
	}
	w = do(h, "GET", "/v1/blocklist", tokB, map[string]string{"If-None-Match": `"other"`}, "")
	if w.Code != 200 {
		t.Fatalf("GET with another ETag: %d", w.Code)
	}
	st := s.Status()
	if len(st.Hosts) != 2 || st.Hosts[0].LastPull != t0 || st.Hosts[1].Generation != t0 || st.NotMod != 1 || st.Entries != 3 {
		t.Fatalf("status %+v", st)
	}
	if st.Active(t0.Add(time.Hour), 2*time.Hour) != 2 || st.Active(t0.Add(3*time.Hour), 2*time.Hour) != 0 {
		t.Fatal("Active")
	}
}

func TestBlocklistGzipAndFeedsAndJSON(t *testing.T) {
	_, _, h := newTestServer(t)
	w := do(h, "GET", "/v1/blocklist/b", tokA, map[string]string{"Accept-Encoding": "br, gzip;q=0.5"}, "")
	if w.Code != 200 || w.Header().Get("Content-Encoding") != "gzip" || !strings.HasSuffix(w.Header().Get("ETag"), `-gz"`) {
		t.Fatalf("gzip GET: %d %v", w.Code, w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(zr)
	if string(text) != "198.51.100.7/32\n2001:db8::/48\n" {
		t.Fatalf("feed b: %q", text)
	}
	if w := do(h, "GET", "/v1/blocklist", tokA, map[string]string{"Accept-Encoding": "gzip;q=0"}, ""); w.Header().Get("Content-Encoding") != "" {
		t.Fatal("gzip;q=0 got gzip")
	}
	if w := do(h, "GET", "/v1/blocklist/nope", tokA, nil, ""); w.Code != 404 {
		t.Fatalf("unknown feed: %d", w.Code)
	}
	w = do(h, "GET", "/v1/blocklist?format=json", tokA, nil, "")
	var got jsonList
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Generated.Equal(t0) || len(got.Entries) != 3 || got.Entries[0].Feeds[0] != "a" || got.Entries[2].Feeds[0] != "b" {
		t.Fatalf("json: %+v", got)
	}
}

func TestPublishKeepsGenerationOfTheSameContent(t *testing.T) {
	a := Publish(testnet.Set("192.0.2.0/24"), nil, t0, nil)
	b := Publish(testnet.Set("192.0.2.0/24"), nil, t0.Add(time.Hour), a)
	c := Publish(testnet.Set("192.0.2.0/25"), nil, t0.Add(time.Hour), b)
	if b.All != a.All || c.All.ETag() == a.All.ETag() || !c.All.Generated.Equal(t0.Add(time.Hour)) {
		t.Fatal("generation or ETag wrong")
	}
}

func TestReportsReachTheSink(t *testing.T) {
	s, sk, h := newTestServer(t)
	body := `{"events":[{"source":"192.0.2.66","port":22,"protocol":"tcp","count":3,"first_seen":"2026-12-01T11:00:00Z","last_seen":"2026-12-01T11:59:00Z"}]}`
	w := do(h, "POST", "/v1/reports", tokA, map[string]string{"Content-Type": "application/json"}, body)
	if w.Code != 200 || len(sk.got) != 1 || sk.got[0].Service != "ssh" || sk.got[0].Transport != nflog.TransportTCP {
		t.Fatalf("POST: %d %s %+v", w.Code, w.Body, sk.got)
	}
	if s.Status().Received != 1 || s.Status().Hosts[0].Reports != 1 {
		t.Fatal("not counted")
	}
	for _, c := range []struct{ body, want string }{
		{`{"events":[{"source":"192.0.2.66","port":0,"protocol":"tcp","count":3,"first_seen":"2026-12-01T11:00:00Z","last_seen":"2026-12-01T11:59:00Z"}]}`, "events[0]: port 0"},
		{`{"events":[{"source":"127.0.0.1","port":22,"protocol":"tcp","count":3,"first_seen":"2026-12-01T11:00:00Z","last_seen":"2026-12-01T11:59:00Z"}]}`, "not a unicast"},
		{`{"events":[{"source":"192.0.2.66","port":22,"protocol":"tcp","count":3,"first_seen":"2026-12-01T11:00:00Z","last_seen":"2026-12-02T11:59:00Z"}]}`, "in the future"},
		{`{"events":[],"extra":1}`, "unknown field"},
		{`{"events":[]} {}`, "data after"},
	} {
		w := do(h, "POST", "/v1/reports", tokA, map[string]string{"Content-Type": "application/json"}, c.body)
		if w.Code != 400 || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%s: %d %q, want %q", c.body, w.Code, w.Body, c.want)
		}
	}
	big := `{"events":[` + strings.Repeat(" ", MaxReportBytes) + `]}`
	if w := do(h, "POST", "/v1/reports", tokA, map[string]string{"Content-Type": "application/json"}, big); w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d", w.Code)
	}
	if len(sk.got) != 1 {
		t.Fatal("a refused body reached the sink")
	}
}

func TestSenderPostsToTheHub(t *testing.T) {
	_, sk, h := newTestServer(t)
	ts := httptest.NewServer(h)
	defer ts.Close()
	snd, err := NewSender(SenderConfig{URL: ts.URL + "/v1/reports", Token: tokB, Now: func() time.Time { return t0 }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := mustAddr("203.0.113.9")
	snd.Add(nflog.Count{Src: a, Port: 22, Transport: nflog.TransportTCP, Count: 2},
		nflog.Count{Src: a, Port: 22, Transport: nflog.TransportTCP, Count: 5},
		nflog.Count{Src: mustAddr("10.0.0.1"), Port: 22, Transport: nflog.TransportTCP, Count: 1})
	if err := snd.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(sk.got) != 1 || sk.got[0].Count != 7 || snd.Stats().Pending != 0 || snd.Stats().Filtered != 1 {
		t.Fatalf("got %+v, stats %+v", sk.got, snd.Stats())
	}
	bad, _ := NewSender(SenderConfig{URL: ts.URL + "/v1/reports", Token: "revokedrevokedrevoked"}, nil)
	bad.Add(nflog.Count{Src: a, Port: 22, Transport: nflog.TransportTCP, Count: 1})
	if err := bad.Flush(t.Context()); err == nil || bad.Stats().Pending != 1 {
		t.Fatalf("revoked token: err %v, stats %+v", err, bad.Stats())
	}
	if _, err := NewSender(SenderConfig{URL: ts.URL + "/v1/reports?token=x", Token: tokB}, nil); err == nil {
		t.Fatal("a token in the URL was accepted")
	}
}

func FuzzParseReports(f *testing.F) {
	f.Add([]byte(`{"events":[{"source":"192.0.2.66","port":22,"protocol":"tcp","count":3,"first_seen":"2026-12-01T11:00:00Z","last_seen":"2026-12-01T11:59:00Z"}]}`))
	f.Add([]byte(`{"events":[{"source":"2001:db8::1","port":0,"protocol":"icmpv6","count":1,"first_seen":"2026-12-01T11:00:00Z","last_seen":"2026-12-01T11:00:00Z"}]}`))
	f.Add([]byte(`{"events":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		events, err := ParseReports(data, t0)
		if err != nil {
			return
		}
		if len(events) > MaxReportEvents {
			t.Fatal("too many events")
		}
		for _, e := range events {
			if !e.Source.IsValid() || e.Source.Is4In6() || e.Count == 0 || e.LastSeen.Before(e.FirstSeen) || e.LastSeen.After(t0.Add(MaxEventSkew)) {
				t.Fatalf("bad event accepted: %+v", e)
			}
			if _, ok := protocols[e.Protocol]; !ok {
				t.Fatalf("protocol %q accepted", e.Protocol)
			}
		}
		// What was accepted round-trips.
		again, err := json.Marshal(ReportBody{Events: events})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseReports(again, t0); err != nil && !bytes.Contains(again, []byte("null")) {
			t.Fatalf("re-encoded body refused: %v", err)
		}
	})
}

type ipnetSet = ipnet.Set

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestSenderSpoolKeepsEventsAcrossARestart(t *testing.T) {
	_, sk, h := newTestServer(t)
	var down atomic.Bool
	down.Store(true)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer ts.Close()
	dir := t.TempDir()
	cfg := SenderConfig{URL: ts.URL + "/v1/reports", Token: tokA, StateDir: dir, Now: func() time.Time { return t0 }}
	snd, err := NewSender(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	snd.Add(nflog.Count{Src: mustAddr("203.0.113.9"), Port: 22, Transport: nflog.TransportTCP, Count: 4})
	if err := snd.Flush(t.Context()); err == nil {
		t.Fatal("flush to a hub that is down succeeded")
	}
	down.Store(false)
	again, err := NewSender(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Stats().Pending != 1 {
		t.Fatalf("restarted sender has %d pending, want 1", again.Stats().Pending)
	}
	if err := again.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(sk.got) != 1 || sk.got[0].Count != 4 {
		t.Fatalf("hub got %+v", sk.got)
	}
	if third, _ := NewSender(cfg, nil); third.Stats().Pending != 0 {
		t.Fatal("a sent event stayed in the spool")
	}
}

func TestLoadTokensChecksTheFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/hub-tokens"
	if err := os.WriteFile(path, []byte("web1 "+tokA+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokens(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable tokens file: err = %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(path, dir+"/link"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTokens(dir + "/link"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("symlinked tokens file: err = %v", err)
	}
	tk, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := tk.Lookup(tokA); !ok || n != "web1" {
		t.Fatal("token not loaded")
	}
}

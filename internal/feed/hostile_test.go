package feed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
)

var testLimits = Limits{MinPrefix4: 8, MinPrefix6: 19}

// serveBody answers every request with status and body.
func serveBody(t *testing.T, status int, body string) string {
	t.Helper()
	return serve(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	})})
}

// A token in a URL feed's query or user info never reaches the error text
// that the daemon logs and shows on D-Bus Status, /healthz and /status.
func TestURLFeedErrorsRedactTokens(t *testing.T) {
	const token, pw = "tok3nValue99", "hunter2pw"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	echo := serveBody(t, http.StatusBadGateway, "upstream failed for /drop.txt?token="+token)
	html := serveBody(t, http.StatusOK, "<html>token="+token+"</html>\n<p>\n<p>\n")
	for name, base := range map[string]string{"refused": closed, "5xx echo": echo, "garbage echo": html} {
		u := strings.Replace(base, "http://", "http://feeder:"+pw+"@", 1) + "/drop.txt?format=txt&token=" + token
		f, err := NewURL(URLOptions{Name: "hub", URL: u})
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Fetch(context.Background())
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if msg := err.Error(); strings.Contains(msg, token) || strings.Contains(msg, pw) {
			t.Errorf("%s: error leaks a credential: %s", name, msg)
		}
		if name == "refused" && !strings.Contains(err.Error(), "token=REDACTED") {
			t.Errorf("%s: error %q does not show the redacted URL", name, err)
		}
	}
}

func TestURLFeedRefusesDowngradeRedirect(t *testing.T) {
	var hits int
	plain := serve(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		fmt.Fprint(w, "192.0.2.1\n")
	})})
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain+r.URL.RequestURI(), http.StatusFound)
	}))
	defer tlsSrv.Close()
	f, err := NewURL(URLOptions{Name: "drop", URL: tlsSrv.URL + "/drop.txt?token=abcdef", HTTPClient: tlsSrv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Fetch(context.Background())
	if !errors.Is(err, sikkerapi.ErrRedirectRefused) || Retryable(err) || hits != 0 {
		t.Errorf("err %v (retryable %v), %d requests over http", err, Retryable(err), hits)
	}
}

// The Bearer key never follows an https → http redirect of the blacklist.
func TestSikkerRefusesRedirectToOtherOrigin(t *testing.T) {
	var auth []string
	plain := serve(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		fmt.Fprint(w, "192.0.2.1\n")
	})})
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain+r.URL.RequestURI(), http.StatusFound)
	}))
	defer tlsSrv.Close()
	c, err := NewSikker(SikkerOptions{BaseURL: tlsSrv.URL, Key: testKey, HTTPClient: tlsSrv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Fetch(context.Background())
	if !errors.Is(err, sikkerapi.ErrRedirectRefused) || strings.Contains(err.Error(), testKey) {
		t.Errorf("err = %v", err)
	}
	for _, a := range auth {
		if strings.Contains(a, testKey) {
			t.Fatalf("the key was sent over http after a redirect: %q", a)
		}
	}
}

// Every lockout line of a feed is a malformed line with a sample, in plain
// text and in JSON, while the narrow entries beside it are kept.
func TestFeedsRefuseLockoutEntries(t *testing.T) {
	var text strings.Builder
	for i := range 40 {
		fmt.Fprintf(&text, "198.51.100.%d\n", i)
	}
	text.WriteString("0.0.0.0/0\n::/0\n::ffff:0:0/96\n0.0.0.0-255.255.255.255\n0.0.0.0/0.0.0.0\n")
	json := `{"data":[{"ip":"::ffff:0:0/96"},{"ip":"::/0"}` + strings.Repeat(`,{"ip":"198.51.100.7"}`, 40) + `]}`
	for name, body := range map[string]string{"text": text.String(), "json": json} {
		srv := serveBody(t, http.StatusOK, body)
		c, err := NewSikker(SikkerOptions{BaseURL: srv, Key: testKey, Limits: testLimits})
		if err != nil {
			t.Fatal(err)
		}
		snap, err := c.Fetch(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if snap.Set.Contains(netip.MustParseAddr("8.8.8.8")) || snap.Set.Contains(netip.MustParseAddr("2001:4860::8888")) {
			t.Errorf("%s: the list blocks the internet", name)
		}
		want := map[string]int{"text": 5, "json": 2}[name]
		if snap.Stats.Malformed != want || len(snap.Stats.Samples) != want {
			t.Errorf("%s: malformed %d with %d samples, want %d", name, snap.Stats.Malformed, len(snap.Stats.Samples), want)
		}
		if name == "json" && !strings.Contains(snap.Stats.Samples[0].Text, "wider than the minimum prefix length /8") {
			t.Errorf("json sample %q", snap.Stats.Samples[0].Text)
		}
	}
}

func TestFeedsStopAtMaxEntries(t *testing.T) {
	lim := Limits{MaxEntries: 50}
	text := string(shortV6(51))
	json := `{"data":[` + strings.TrimSuffix(strings.Repeat(`{"ip":"2001:db8::1"},`, 51), ",") + `]}`
	for name, body := range map[string]string{"text": text, "json": json} {
		srv := serveBody(t, http.StatusOK, body)
		c, err := NewSikker(SikkerOptions{BaseURL: srv, Key: testKey, Limits: lim})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Fetch(context.Background()); !errors.Is(err, ErrTooManyEntries) || Retryable(err) {
			t.Errorf("sikker %s: err = %v, want a final ErrTooManyEntries", name, err)
		}
	}
	u, err := NewURL(URLOptions{Name: "big", URL: serveBody(t, http.StatusOK, text), Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Fetch(context.Background()); !errors.Is(err, ErrTooManyEntries) || Retryable(err) {
		t.Errorf("url feed: err = %v", err)
	}
}

func shortV6(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "%x:%x::\n", i>>16+1, i&0xffff)
	}
	return b.Bytes()
}

// A JSON list costs memory in proportion to its entries under MaxEntries,
// and a single huge value is refused instead of being buffered whole.
func TestJSONMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates large lists")
	}
	measure := func(body []byte, lim Limits) (uint64, error) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := parseJSONList(bytes.NewReader(body), true, lim, nil)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	var b bytes.Buffer
	b.WriteString(`{"data":[`)
	for i := range 1 << 19 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"ip":"%x:%x::"}`, i>>16+1, i&0xffff)
	}
	b.WriteString(`]}`)
	n, err := measure(b.Bytes(), Limits{MaxEntries: 10_000})
	if !errors.Is(err, ErrTooManyEntries) {
		t.Fatalf("err = %v", err)
	}
	// 10 k rows decode in a few MiB; all 512 k rows would take hundreds.
	if n > 16<<20 {
		t.Errorf("a 10k-entry limit allocated %d MiB", n>>20)
	}
	huge := []byte(`{"data":[{"ip":"` + strings.Repeat("1", 32<<20) + `"}]}`)
	n, err = measure(huge, Limits{})
	if !errors.Is(err, ErrGarbage) {
		t.Fatalf("a 32 MiB value: err = %v", err)
	}
	if n > 4<<20 {
		t.Errorf("a 32 MiB value allocated %d MiB before it was refused", n>>20)
	}
}

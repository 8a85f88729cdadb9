package feed

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/logging"
	"github.com/sikkerapi/sikkerguard/internal/mock"
)

const (
	testKey = "sk_free_t0pS3cretKeyValue42"
	testUA  = "sikkerguard/1.2.3 (+https://sikkerapi.com)"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func startMock(t *testing.T, opt mock.Options) *mock.Server {
	t.Helper()
	if opt.Key == "" {
		opt.Key = testKey
	}
	if opt.Entries == nil {
		opt.Entries = mock.Generate(mock.GenerateOptions{N: 400, Seed: 7, V6Share: 0.2, CIDRShare: 0.1})
	}
	if opt.TierLimit == 0 {
		opt.TierLimit = 350000
	}
	if opt.BlacklistQuota == 0 {
		opt.BlacklistQuota = -1
	}
	s, err := mock.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newClient returns a client of srv and the buffer its debug log goes to.
func newClient(t *testing.T, srv *mock.Server, mod func(*SikkerOptions)) (*Sikker, *bytes.Buffer) {
	t.Helper()
	var logBuf bytes.Buffer
	opt := SikkerOptions{
		BaseURL:   srv.URL(),
		Key:       testKey,
		UserAgent: testUA,
		Timeout:   5 * time.Second,
		Logger:    slog.New(logging.Check(slog.NewTextHandler(&syncWriter{w: &logBuf}, &slog.HandlerOptions{Level: slog.LevelDebug}), t.Errorf)),
	}
	if mod != nil {
		mod(&opt)
	}
	c, err := NewSikker(opt)
	if err != nil {
		t.Fatal(err)
	}
	return c, &logBuf
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func setOf(es []mock.Entry) ipnet.Set {
	var s ipnet.Set
	for _, e := range es {
		s.AddPrefix(e.Prefix)
	}
	s.Merge()
	return s
}

func filterEntries(es []mock.Entry, keep func(mock.Entry) bool, limit int) []mock.Entry {
	var out []mock.Entry
	for _, e := range es {
		if keep(e) && (limit == 0 || len(out) < limit) {
			out = append(out, e)
		}
	}
	return out
}

func TestSikkerFiltersAndFormats(t *testing.T) {
	srv := startMock(t, mock.Options{ASNStyle: mock.ASNMixed})
	all := srv.Entries()
	// Pick a country and ASN that occur, so the filters select something.
	cc, asn := all[0].CountryCode, all[1].ASN

	tests := []struct {
		name      string
		opt       func(*SikkerOptions)
		wantQuery url.Values
		keep      func(mock.Entry) bool
		limit     int
	}{
		{
			name:      "defaults",
			opt:       func(*SikkerOptions) {},
			wantQuery: url.Values{"plaintext": {"true"}},
			keep:      func(e mock.Entry) bool { return e.Score >= 50 },
		},
		{
			name:      "score and limit",
			opt:       func(o *SikkerOptions) { o.ScoreMin, o.Limit = 80, 25 },
			wantQuery: url.Values{"plaintext": {"true"}, "scoreMinimum": {"80"}, "limit": {"25"}},
			keep:      func(e mock.Entry) bool { return e.Score >= 80 },
			limit:     25,
		},
		{
			name:      "ipv6 only",
			opt:       func(o *SikkerOptions) { o.IPVersion, o.ScoreMin = "6", 1 },
			wantQuery: url.Values{"plaintext": {"true"}, "scoreMinimum": {"1"}, "ipVersion": {"6"}},
			keep:      func(e mock.Entry) bool { return e.Prefix.Addr().Is6() },
		},
		{
			name:      "mixed is not sent",
			opt:       func(o *SikkerOptions) { o.IPVersion = "mixed" },
			wantQuery: url.Values{"plaintext": {"true"}},
			keep:      func(e mock.Entry) bool { return e.Score >= 50 },
		},
		{
			name:      "protocols",
			opt:       func(o *SikkerOptions) { o.Protocols, o.ScoreMin = []string{"SSH", "telnet"}, 1 },
			wantQuery: url.Values{"plaintext": {"true"}, "scoreMinimum": {"1"}, "protocols": {"ssh,telnet"}},
			keep: func(e mock.Entry) bool {
				return slices.Contains(e.Protocols, "ssh") || slices.Contains(e.Protocols, "telnet")
			},
		},
		{
			name:      "only countries",
			opt:       func(o *SikkerOptions) { o.OnlyCountries, o.ScoreMin = []string{strings.ToLower(cc)}, 1 },
			wantQuery: url.Values{"plaintext": {"true"}, "scoreMinimum": {"1"}, "onlyCountries": {cc}},
			keep:      func(e mock.Entry) bool { return e.CountryCode == cc },
		},
		{
			name:      "except countries",
			opt:       func(o *SikkerOptions) { o.ExceptCountries, o.ScoreMin = []string{cc, "RU"}, 1 },
			wantQuery: url.Values{"plaintext": {"true"}, "scoreMinimum": {"1"}, "exceptCountries": {cc + ",RU"}},
			keep:      func(e mock.Entry) bool { return e.CountryCode != cc && e.CountryCode != "RU" },
		},
		{
			name: "asn filters, both spellings",
			opt: func(o *SikkerOptions) {
				o.OnlyASN, o.ExceptASN, o.ScoreMin = []string{itoa(asn)}, []string{"as4134"}, 1
			},
			wantQuery: url.Values{"plaintext": {"true"}, "scoreMinimum": {"1"},
				"onlyAsn": {"AS" + itoa(asn)}, "exceptAsn": {"AS4134"}},
			keep: func(e mock.Entry) bool { return e.ASN == asn && e.ASN != 4134 },
		},
		{
			name:      "min severity",
			opt:       func(o *SikkerOptions) { o.MinSeverity = "high" },
			wantQuery: url.Values{"plaintext": {"true"}, "minSeverity": {"high"}},
			keep:      func(e mock.Entry) bool { return e.Score >= 75 },
		},
		{
			name:      "json with ignore whitelist",
			opt:       func(o *SikkerOptions) { o.Format, o.IgnoreWhitelist, o.ScoreMin = FormatJSON, true, 30 },
			wantQuery: url.Values{"ignoreWhitelist": {"true"}, "scoreMinimum": {"30"}},
			keep:      func(e mock.Entry) bool { return e.Score >= 30 },
		},
		{
			name: "json with every filter",
			opt: func(o *SikkerOptions) {
				o.Format, o.ScoreMin, o.Limit, o.IPVersion = FormatJSON, 20, 100, "4"
				o.Protocols, o.ExceptCountries, o.ExceptASN, o.MinSeverity = []string{"ssh", "http", "ftp"}, []string{"US"}, []string{"AS16509"}, "low"
			},
			wantQuery: url.Values{"scoreMinimum": {"20"}, "limit": {"100"}, "ipVersion": {"4"},
				"protocols": {"ssh,http,ftp"}, "exceptCountries": {"US"}, "exceptAsn": {"AS16509"}, "minSeverity": {"low"}},
			keep: func(e mock.Entry) bool {
				return e.Score >= 20 && e.Prefix.Addr().Is4() && e.CountryCode != "US" && e.ASN != 16509 &&
					(slices.Contains(e.Protocols, "ssh") || slices.Contains(e.Protocols, "http") || slices.Contains(e.Protocols, "ftp"))
			},
			limit: 100,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.ClearRequests()
			c, _ := newClient(t, srv, tt.opt)
			snap, err := c.Fetch(context.Background())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			want := filterEntries(all, tt.keep, tt.limit)
			if len(want) == 0 {
				t.Fatal("test filter selects nothing; pick other values")
			}
			if !snap.Set.Equal(setOf(want)) {
				t.Errorf("set has %d entries, want %d", snap.Stats.Entries, len(want))
			}
			if snap.Stats.Entries != len(want) || snap.Stats.Malformed != 0 {
				t.Errorf("stats = %+v, want %d entries", snap.Stats, len(want))
			}
			reqs := srv.Requests()
			if len(reqs) != 1 {
				t.Fatalf("mock saw %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.Path != BlacklistPath || r.Auth != "bearer" || !r.KeyValid || r.UserAgent != testUA {
				t.Errorf("request = %+v, want bearer auth and UA %q on %s", r, testUA, BlacklistPath)
			}
			if r.Query.Encode() != tt.wantQuery.Encode() {
				t.Errorf("query = %s, want %s", r.Query.Encode(), tt.wantQuery.Encode())
			}
			if snap.Origin != c.BlacklistURL() || strings.Contains(snap.Origin, testKey) {
				t.Errorf("origin = %q", snap.Origin)
			}
		})
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func TestSikkerJSONEntries(t *testing.T) {
	srv := startMock(t, mock.Options{ASNStyle: mock.ASNMixed})
	c, _ := newClient(t, srv, func(o *SikkerOptions) { o.Format, o.KeepEntries, o.ScoreMin = FormatJSON, true, 1 })
	snap, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := srv.Entries()
	if len(snap.Entries) != len(want) {
		t.Fatalf("got %d entries, want %d", len(snap.Entries), len(want))
	}
	for i, e := range snap.Entries {
		w := want[i]
		if e.Prefix != w.Prefix || e.Confidence != w.Score || !e.LastSeen.Equal(w.LastSeen) ||
			e.Sessions != w.Sessions || e.ASN != w.ASN || e.ASNOrg != w.ASNOrg ||
			e.CountryCode != w.CountryCode || !slices.Equal(e.Protocols, w.Protocols) {
			t.Fatalf("entry %d = %+v, want %+v", i, e, w)
		}
	}
}

func TestSikkerKeyNeverLeaks(t *testing.T) {
	srv := startMock(t, mock.Options{})
	c, logBuf := newClient(t, srv, nil)
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, mode := range []mock.FaultMode{mock.Fault401, mock.Fault403, mock.Fault500, mock.FaultGarbage} {
		srv.SetFault(mock.Fault{Mode: mode, Count: 1})
		_, err := c.Fetch(context.Background())
		if err == nil {
			t.Fatalf("%s: no error", mode)
		}
		errs = append(errs, err.Error())
	}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A client whose server is gone fails with a transport error.
	dead, _ := newClient(t, srv, func(o *SikkerOptions) { o.BaseURL = "http://127.0.0.1:1" })
	_, err := dead.Fetch(context.Background())
	if err == nil || !Retryable(err) {
		t.Fatalf("connection refused: err = %v, want retryable", err)
	}
	errs = append(errs, err.Error())

	if !strings.Contains(logBuf.String(), "sikkerapi request") {
		t.Fatal("debug log captured nothing; the leak check would be vacuous")
	}
	for _, text := range append(errs, logBuf.String(), c.BlacklistURL()) {
		if strings.Contains(text, testKey) {
			t.Errorf("key leaked in %q", text)
		}
	}
	for _, r := range srv.Requests() {
		if r.Auth != "bearer" || r.Query.Has("key") {
			t.Errorf("request %s %s sent the key as %s", r.Method, r.Path, r.Auth)
		}
	}
}

func TestSikkerServerTextIsScrubbed(t *testing.T) {
	// A server that echoes the key must not get it into our errors.
	srv := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"bad key ` + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + `"}`))
	})}
	base := serve(t, &srv)
	c, err := NewSikker(SikkerOptions{BaseURL: base, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Fetch(context.Background())
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 400 {
		t.Fatalf("err = %v, want StatusError 400", err)
	}
	if strings.Contains(err.Error(), testKey) || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("error %q not scrubbed", err)
	}
}

// Whether the server always honours plaintext=true is not documented: the
// client reads what it gets.
func TestSikkerReadsEitherFormat(t *testing.T) {
	for _, tt := range []struct {
		name, fixture, format string
		entries               int
	}{
		{"json answer to a plaintext request", "testdata/blacklist-ok.json", FormatPlaintext, 4},
		{"plaintext with CRLF and no final newline to a json request", "testdata/plain-crlf.txt", FormatJSON, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, err := os.ReadFile(tt.fixture)
			if err != nil {
				t.Fatal(err)
			}
			base := serve(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write(body)
			})})
			c, err := NewSikker(SikkerOptions{BaseURL: base, Key: testKey, Format: tt.format})
			if err != nil {
				t.Fatal(err)
			}
			snap, err := c.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if snap.Stats.Entries != tt.entries || snap.Stats.Malformed != 0 {
				t.Errorf("stats = %+v, want %d entries", snap.Stats, tt.entries)
			}
		})
	}
}

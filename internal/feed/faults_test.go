package feed

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/mock"
)

// TestSikkerFaultsKeepLastGoodList injects each failure after one good pull
// and checks the error and that Cached still serves the good list.
func TestSikkerFaultsKeepLastGoodList(t *testing.T) {
	tests := []struct {
		fault     mock.Fault
		format    string
		want      error  // errors.Is target, if any
		contains  string // text the error must hold
		retryable bool
	}{
		{fault: mock.Fault{Mode: mock.Fault401}, want: ErrKeyRejected, contains: "api key rejected (401): check api.key_file"},
		{fault: mock.Fault{Mode: mock.Fault403}, want: ErrKeyDisabled, contains: "disabled or expired"},
		{fault: mock.Fault{Mode: mock.Fault500}, contains: "http 500 Internal Server Error: Internal server error", retryable: true},
		{fault: mock.Fault{Mode: mock.FaultSlow, Delay: 5 * time.Second}, contains: "timed out after 300ms", retryable: true},
		{fault: mock.Fault{Mode: mock.FaultTruncated}, want: ErrTruncated, retryable: true},
		{fault: mock.Fault{Mode: mock.FaultTruncated}, format: FormatJSON, want: ErrTruncated, retryable: true},
		{fault: mock.Fault{Mode: mock.FaultCut}, format: FormatJSON, want: ErrTruncated, contains: "json document not closed", retryable: true},
		{fault: mock.Fault{Mode: mock.FaultGarbage}, want: ErrGarbage, contains: "no valid entry"},
		{fault: mock.Fault{Mode: mock.FaultEmpty}, want: ErrEmpty},
		{fault: mock.Fault{Mode: mock.FaultEmpty}, format: FormatJSON, want: ErrEmpty},
		{fault: mock.Fault{Mode: mock.FaultOversized, Size: 4 << 20}, want: ErrTooLarge, contains: "response larger than 1048576 bytes"},
	}
	for _, tt := range tests {
		name := string(tt.fault.Mode) + "/" + tt.format
		t.Run(name, func(t *testing.T) {
			srv := startMock(t, mock.Options{})
			c, _ := newClient(t, srv, func(o *SikkerOptions) {
				o.MaxBodyBytes, o.Format = 1<<20, tt.format
				if tt.fault.Mode == mock.FaultSlow {
					o.Timeout = 300 * time.Millisecond
				}
			})
			cached := Cached(c, t.TempDir(), slog.New(slog.DiscardHandler))
			good, err := cached.Fetch(context.Background())
			if err != nil {
				t.Fatalf("first fetch: %v", err)
			}
			if err := cached.Commit(good); err != nil {
				t.Fatal(err)
			}

			srv.SetFault(tt.fault)
			start := time.Now()
			snap, err := cached.Fetch(context.Background())
			if err == nil {
				t.Fatal("fetch under fault: no error")
			}
			t.Logf("error: %v", err)
			if tt.fault.Mode == mock.FaultSlow && time.Since(start) > 3*time.Second {
				t.Errorf("timeout took %v", time.Since(start))
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("err = %q, want it to contain %q", err, tt.contains)
			}
			if Retryable(err) != tt.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", err, Retryable(err), tt.retryable)
			}
			if snap == nil || !snap.FromCache || snap.Stale == nil || !snap.Set.Equal(good.Set) {
				t.Fatalf("snapshot under fault = %+v, want the last good list from cache", snap)
			}
		})
	}
}

func TestSikkerQuotaBlocksFurtherRequests(t *testing.T) {
	for _, tt := range []struct {
		name       string
		retryAfter func(now time.Time) string
		wantWait   time.Duration
	}{
		{"seconds", func(time.Time) string { return "57000" }, 57000 * time.Second},
		{"http date", func(now time.Time) string { return now.Add(2 * time.Hour).UTC().Format(http.TimeFormat) }, 2 * time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2025, 10, 9, 8, 10, 0, 0, time.UTC)}
			srv := startMock(t, mock.Options{})
			c, _ := newClient(t, srv, func(o *SikkerOptions) { o.Now = clock.Now })
			srv.SetFault(mock.Fault{Mode: mock.Fault429, RetryAfter: tt.retryAfter(clock.Now())})

			_, err := c.Fetch(context.Background())
			var qe *QuotaError
			if !errors.As(err, &qe) {
				t.Fatalf("err = %v, want *QuotaError", err)
			}
			if qe.RetryAfter != tt.wantWait || !qe.RetryAt.Equal(clock.Now().Add(tt.wantWait)) || qe.Skipped {
				t.Errorf("quota error = %+v, want wait %v", qe, tt.wantWait)
			}
			if !strings.Contains(qe.Message, "quota exceeded") {
				t.Errorf("message %q lost the server's error", qe.Message)
			}
			if Retryable(err) {
				t.Error("a quota error must not be retryable")
			}
			if n := srv.RequestCount(BlacklistPath); n != 1 {
				t.Fatalf("requests = %d, want 1", n)
			}

			srv.ClearFault()
			clock.Advance(tt.wantWait - time.Second)
			_, err = c.Fetch(context.Background())
			if !errors.As(err, &qe) || !qe.Skipped || qe.RetryAfter != time.Second {
				t.Fatalf("fetch before Retry-After: err = %v, want skipped quota error 1s before retry", err)
			}
			if n := srv.RequestCount(BlacklistPath); n != 1 {
				t.Fatalf("requests = %d: the client called the API before Retry-After", n)
			}
			if !c.RetryAt().Equal(qe.RetryAt) {
				t.Errorf("RetryAt() = %v, want %v", c.RetryAt(), qe.RetryAt)
			}

			clock.Advance(time.Second)
			if _, err := c.Fetch(context.Background()); err != nil {
				t.Fatalf("fetch after Retry-After: %v", err)
			}
			if n := srv.RequestCount(BlacklistPath); n != 2 {
				t.Errorf("requests = %d, want 2", n)
			}
			if !c.RetryAt().IsZero() {
				t.Errorf("RetryAt() = %v after the block ended", c.RetryAt())
			}
		})
	}
}

// The mock's own daily quota yields a real 429 with Retry-After to midnight.
func TestSikkerDailyQuotaFromServer(t *testing.T) {
	srv := startMock(t, mock.Options{BlacklistQuota: 100, QuotaHeaders: mock.HeadersBlacklist})
	c, _ := newClient(t, srv, func(o *SikkerOptions) { o.ScoreMin = 1 })
	snap, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Stats.Entries != 100 {
		t.Errorf("served %d, want the quota of 100", snap.Stats.Entries)
	}
	if q := snap.Quota; q == nil || q.Family != "X-Blacklist" || q.Limit != 100 || q.Used != 100 || q.Remaining != 0 {
		t.Errorf("quota = %+v", snap.Quota)
	}
	_, err = c.Fetch(context.Background())
	var qe *QuotaError
	if !errors.As(err, &qe) || qe.RetryAfter <= 0 || qe.RetryAfter > 24*time.Hour {
		t.Fatalf("err = %v, want quota error until midnight", err)
	}
	if qe.Quota == nil || qe.Quota.Remaining != 0 {
		t.Errorf("quota on 429 = %+v", qe.Quota)
	}
}

func TestSikkerStatus(t *testing.T) {
	srv := startMock(t, mock.Options{TierLimit: 50000, BlacklistQuota: 50000})
	c, _ := newClient(t, srv, func(o *SikkerOptions) { o.ScoreMin = 1 })
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bl := st.Quotas["blacklist"]
	if st.TierID != "basic" || st.TierName != "Basic" || bl.Limit != 50000 || bl.Used != 400 || bl.Remaining != 49600 {
		t.Errorf("status = %+v", st)
	}
	srv.SetFault(mock.Fault{Mode: mock.Fault401, Count: 1})
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrKeyRejected) {
		t.Errorf("status with bad key: err = %v", err)
	}
}

func TestNewSikkerValidates(t *testing.T) {
	tests := []struct {
		opt  SikkerOptions
		want string
	}{
		{SikkerOptions{}, "no api key"},
		{SikkerOptions{Key: "a b"}, "whitespace"},
		{SikkerOptions{Key: "k", BaseURL: "ftp://x"}, "want http(s)"},
		{SikkerOptions{Key: "k", BaseURL: "https://u:p@x"}, "must not carry credentials"},
		{SikkerOptions{Key: "k", BaseURL: "https://x/?key=k"}, "must not carry"},
		{SikkerOptions{Key: "k", ScoreMin: 101}, "score minimum 101"},
		{SikkerOptions{Key: "k", Limit: -1}, "negative limit"},
		{SikkerOptions{Key: "k", IPVersion: "5"}, `ip version "5"`},
		{SikkerOptions{Key: "k", MinSeverity: "extreme"}, `min severity "extreme"`},
		{SikkerOptions{Key: "k", Format: "xml"}, `format "xml"`},
		{SikkerOptions{Key: "k", OnlyCountries: []string{"USA"}}, `onlyCountries: invalid country code "USA"`},
		{SikkerOptions{Key: "k", ExceptASN: []string{"ASX"}}, `exceptAsn: invalid asn "ASX"`},
		{SikkerOptions{Key: "k", Protocols: []string{""}}, `protocols: invalid protocol`},
		{SikkerOptions{Key: "k", Name: "../x"}, `invalid feed name`},
	}
	for _, tt := range tests {
		_, err := NewSikker(tt.opt)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewSikker(%+v) = %v, want error containing %q", tt.opt, err, tt.want)
		}
	}
	if _, err := NewSikker(SikkerOptions{Key: "k"}); err != nil {
		t.Errorf("minimal options: %v", err)
	}
}

// A pull that used up what was left of the quota and got fewer entries
// than the quota allows is the remainder, not the list: it is marked so
// that the decision refuses it. Every header family says so.
func TestSikkerMarksAListCutByTheQuota(t *testing.T) {
	for _, fam := range []string{mock.HeadersDaily, mock.HeadersBlacklist, mock.HeadersRateLimit} {
		t.Run(fam, func(t *testing.T) {
			srv := startMock(t, mock.Options{BlacklistQuota: 150, QuotaHeaders: fam,
				Entries: mock.Generate(mock.GenerateOptions{N: 100, Seed: 3})})
			c, _ := newClient(t, srv, func(o *SikkerOptions) { o.ScoreMin = 1 })
			full, err := c.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if full.Stats.Entries != 100 || full.QuotaCut {
				t.Fatalf("first pull: %d entries, cut %v; want 100, not cut", full.Stats.Entries, full.QuotaCut)
			}
			cut, err := c.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if cut.Stats.Entries != 50 || !cut.QuotaCut {
				t.Fatalf("second pull: %d entries, cut %v; want 50, cut", cut.Stats.Entries, cut.QuotaCut)
			}
		})
	}
}

func TestQuotaCut(t *testing.T) {
	for _, tc := range []struct {
		q     *Quota
		n     int
		limit int
		want  bool
	}{
		{nil, 10, 0, false},
		{&Quota{Limit: 5000, Used: 4605, Remaining: 395}, 1535, 0, false},
		{&Quota{Limit: 5000, Used: 5000, Remaining: 0}, 395, 0, true},
		{&Quota{Limit: 5000, Used: 5000, Remaining: 0}, 5000, 0, false}, // the tier's full share
		{&Quota{Limit: 5000, Used: 5000, Remaining: 0}, 1000, 1000, false},
		{&Quota{Limit: 5000, Used: 5000, Remaining: 0}, 900, 1000, true},
		{&Quota{Limit: -1, Used: -1, Remaining: 0}, 900, 0, true},
		{&Quota{Limit: 5000, Used: -1, Remaining: -1}, 10, 0, false},
	} {
		if got := quotaCut(tc.q, tc.n, tc.limit); got != tc.want {
			t.Errorf("quotaCut(%+v, %d, %d) = %v, want %v", tc.q, tc.n, tc.limit, got, tc.want)
		}
	}
}

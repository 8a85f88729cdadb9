package sikkerapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzCheck answers with an arbitrary status, Retry-After and body, with the
// key spliced into the body: the error never holds the key, its text is
// printable, and a 429 never waits longer than MaxRetryAfter.
func FuzzCheck(f *testing.F) {
	for _, s := range []struct {
		status     int
		retryAfter string
		body       string
	}{
		{500, "", `{"error":"boom KEY"}`},
		{429, "315360000", `{"error":"quota"}`},
		{429, "9300000000", ""},
		{429, "Fri, 01 Jan 2100 00:00:00 GMT", "x"},
		{401, "", `{"error":{"message":"KEY is invalid"}}`},
		{403, "", `{"message":"\u001b[2Jexpired KEY"}`},
		{404, "", "<html>\r\nKEY\x00\xff</html>"},
		{418, "-1", `{"error":["a"],"message":{"b":1}}`},
	} {
		f.Add(s.status, s.retryAfter, s.body)
	}
	now := time.Date(2025, 10, 9, 8, 0, 0, 0, time.UTC)
	c, err := New(Options{Key: testKey, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, status int, retryAfter, body string) {
		if status < 100 || status > 999 {
			status = 500
		}
		rec := httptest.NewRecorder()
		rec.Header().Set("Retry-After", strings.ToValidUTF8(strings.NewReplacer("\r", "", "\n", "").Replace(retryAfter), ""))
		rec.WriteHeader(status)
		rec.WriteString(strings.ReplaceAll(body, "KEY", testKey))
		err := c.Check(rec.Result(), "/v1/key/bulk-report", nil)
		if status >= 200 && status < 300 {
			if err != nil {
				t.Fatalf("%d: %v", status, err)
			}
			return
		}
		if err == nil {
			t.Fatalf("%d: no error", status)
		}
		msg := err.Error()
		if strings.Contains(msg, testKey) {
			t.Fatalf("error leaks the key: %q", msg)
		}
		if !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("error is not printable: %q", msg)
		}
		if qe, ok := err.(*QuotaError); ok && qe.RetryAt.After(now.Add(MaxRetryAfter)) {
			t.Fatalf("Retry-After %q: retry at %v", retryAfter, qe.RetryAt)
		}
	})
}

// FuzzErrorMessage checks the extract of an error body: one printable line
// of at most 200 runes and an ellipsis.
func FuzzErrorMessage(f *testing.F) {
	for _, s := range []string{`{"error":"x"}`, `{"error":{"message":"y"}}`, `{"message":"z"}`, "<html>\n</html>",
		strings.Repeat("é", 300), "\x1b[31mred\u2028", `{"error":null,"message":7}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m := ErrorMessage(body)
		if utf8.RuneCountInString(m) > 201 || !utf8.ValidString(m) ||
			strings.ContainsFunc(m, func(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0x2028 || r == 0x2029 }) {
			t.Fatalf("ErrorMessage(%q) = %q", body, m)
		}
	})
}

// FuzzQuotaHeaders reads arbitrary quota and Retry-After headers: never a
// panic, never a wait beyond MaxRetryAfter, never a negative count.
func FuzzQuotaHeaders(f *testing.F) {
	f.Add("5000", "1200", "3800", "1760054400", "57000")
	f.Add("", "", "-1", "1760054400000", "Thu, 09 Oct 2025 12:00:00 GMT")
	f.Add("9223372036854775807", "x", "", "99999999999", "99999999999999999999")
	now := time.Date(2025, 10, 9, 8, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, limit, used, remaining, reset, retryAfter string) {
		h := http.Header{}
		h["X-Report-Limit"] = []string{limit}
		h["X-Report-Used"] = []string{used}
		h["X-Report-Remaining"] = []string{remaining}
		h["X-Ratelimit-Reset"] = []string{reset}
		if q := ParseQuota(h, now); q != nil && (q.Limit < -1 || q.Used < -1 || q.Remaining < -1) {
			t.Fatalf("quota %+v", q)
		}
		at := ParseRetryAfter(retryAfter, now)
		if at.After(now.Add(MaxRetryAfter)) { // a past date means: retry now
			t.Fatalf("ParseRetryAfter(%q) = %v", retryAfter, at)
		}
	})
}

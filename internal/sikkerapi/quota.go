package sikkerapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Quota is what a response's quota headers said. SikkerAPI's sources
// disagree on the header names, so every known family is read:
// X-Blacklist-*, X-Report-*, X-Daily-* and X-RateLimit-* (first present
// wins). Numbers the headers did not carry are -1.
type Quota struct {
	Family    string // header prefix the numbers came from, e.g. "X-Daily"
	Limit     int64
	Used      int64
	Remaining int64
	Reset     time.Time // zero when not announced
}

var quotaFamilies = []string{"X-Blacklist", "X-Report", "X-Daily", "X-RateLimit"}

// ParseQuota returns nil when no known quota header is present.
func ParseQuota(h http.Header, now time.Time) *Quota {
	for _, fam := range quotaFamilies {
		q := Quota{
			Family:    fam,
			Limit:     headerInt(h, fam+"-Limit"),
			Used:      headerInt(h, fam+"-Used"),
			Remaining: headerInt(h, fam+"-Remaining"),
			Reset:     parseReset(h.Get(fam+"-Reset"), now),
		}
		if q.Limit < 0 && q.Used < 0 && q.Remaining < 0 && q.Reset.IsZero() {
			continue
		}
		if q.Used < 0 && q.Limit >= 0 && q.Remaining >= 0 {
			q.Used = max(q.Limit-q.Remaining, 0)
		}
		if q.Remaining < 0 && q.Limit >= 0 && q.Used >= 0 {
			q.Remaining = max(q.Limit-q.Used, 0)
		}
		return &q
	}
	return nil
}

func headerInt(h http.Header, name string) int64 {
	v, err := strconv.ParseInt(strings.TrimSpace(h.Get(name)), 10, 64)
	if err != nil || v < 0 {
		return -1
	}
	return v
}

// parseReset reads a reset time that may be epoch seconds, epoch
// milliseconds, seconds from now or a date; which one SikkerAPI sends is not
// documented.
func parseReset(v string, now time.Time) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		switch {
		case n > 1e12:
			return time.UnixMilli(n).UTC()
		case n > 1e9:
			return time.Unix(n, 0).UTC()
		default:
			return now.Add(time.Duration(n) * time.Second) // n ≤ 1e9: no overflow
		}
	}
	if t, err := http.ParseTime(v); err == nil {
		return t
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t
	}
	return time.Time{}
}

// MaxRetryAfter caps how long a Retry-After may hold requests back. A quota
// resets at midnight UTC, so no honest answer asks for more than a day; a
// longer one (ten years, or 9.22e9 s, which overflows a time.Duration)
// would stop pulls or reports until a restart.
const MaxRetryAfter = 25 * time.Hour

// ParseRetryAfter reads Retry-After as seconds or as an HTTP date, clamped
// to MaxRetryAfter from now. Without a usable value the quota is assumed to
// last until its documented reset at midnight UTC.
func ParseRetryAfter(v string, now time.Time) time.Time {
	if at, ok := RetryAfter(v, now); ok {
		return at
	}
	return nextMidnightUTC(now)
}

// RetryAfter reads Retry-After as seconds or as an HTTP date, clamped to
// MaxRetryAfter from now; ok is false when v holds neither.
func RetryAfter(v string, now time.Time) (at time.Time, ok bool) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return ClampRetryAt(now.Add(seconds(n)), now), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return ClampRetryAt(t, now), true
	}
	return time.Time{}, false
}

// ClampRetryAt returns at, but no later than MaxRetryAfter after now; use it
// for a retry time read back from disk as well.
func ClampRetryAt(at, now time.Time) time.Time {
	if limit := now.Add(MaxRetryAfter); at.After(limit) {
		return limit
	}
	return at
}

// seconds converts n seconds to a Duration without overflowing: anything
// beyond MaxRetryAfter is MaxRetryAfter's worth plus one second, which every
// caller clamps anyway.
func seconds(n int64) time.Duration {
	if n > int64(MaxRetryAfter/time.Second) {
		return MaxRetryAfter + time.Second
	}
	return time.Duration(n) * time.Second
}

func nextMidnightUTC(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// QuotaError is a 429 answer: the daily quota of an endpoint is exhausted.
type QuotaError struct {
	Endpoint   string        // e.g. "/v1/key/blacklist"
	RetryAfter time.Duration // as announced, relative to the answer
	RetryAt    time.Time     // when a new request may succeed
	Message    string        // the body's "error" field
	Quota      *Quota
	// Skipped is set when no request was made because an earlier 429
	// is still in force.
	Skipped bool
}

func (e *QuotaError) Error() string {
	s := fmt.Sprintf("quota exhausted for %s (429)", e.Endpoint)
	if e.Message != "" {
		s += ": " + e.Message
	}
	s += fmt.Sprintf("; retry after %s (%s)", e.RetryAt.UTC().Format(time.RFC3339), e.RetryAfter.Round(time.Second))
	if e.Skipped {
		s += "; request not sent"
	}
	return s
}

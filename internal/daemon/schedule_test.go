package daemon

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/feed"
)

func noJitter(d time.Duration) time.Duration { return d }

func TestScheduleBacksOffAndRecovers(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var s schedule
	if !s.due(t0) {
		t.Fatal("a new feed must be due at once")
	}
	boom := errors.New("boom")
	// 1, 2, 4 … minutes, capped at the interval.
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute} {
		if got := s.failed(t0, boom, time.Minute, 10*time.Minute); got != want {
			t.Fatalf("failure %d: delay %v, want %v", i+1, got, want)
		}
	}
	if s.due(t0.Add(9*time.Minute)) || !s.due(t0.Add(10*time.Minute)) {
		t.Fatal("due before the backoff ended, or not after")
	}
	s.succeeded(t0, 24*time.Hour, noJitter)
	if s.failures != 0 || s.next != t0.Add(24*time.Hour) {
		t.Fatalf("after success: %+v", s)
	}
	// The shift is bounded: a thousand failures do not overflow.
	for range 1000 {
		s.failed(t0, boom, time.Minute, 24*time.Hour)
	}
	if d := s.next.Sub(t0); d <= 0 || d > 24*time.Hour {
		t.Fatalf("delay after 1000 failures = %v", d)
	}
}

func TestScheduleHonoursRetryAfter(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var s schedule
	qe := &feed.QuotaError{RetryAt: t0.Add(3 * time.Hour)}
	if got := s.failed(t0, qe, time.Minute, 24*time.Hour); got != 3*time.Hour {
		t.Fatalf("delay = %v, want the 3 h of Retry-After", got)
	}
	// A reload may not pull before Retry-After …
	if until, held := s.force(t0.Add(time.Hour)); !held || !until.Equal(qe.RetryAt) {
		t.Fatalf("force before Retry-After = %v, %v", until, held)
	}
	if s.due(t0.Add(time.Hour)) {
		t.Fatal("forced despite Retry-After")
	}
	// … and after it, force works and clears the hold-off.
	if _, held := s.force(t0.Add(4 * time.Hour)); held || !s.due(t0.Add(4*time.Hour)) {
		t.Fatal("force after Retry-After refused")
	}
	if !s.holdOff.IsZero() {
		t.Fatal("hold-off kept after it ended")
	}
}

func TestNextWake(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a := &feedState{name: "a", sched: schedule{next: t0.Add(30 * time.Minute)}}
	b := &feedState{name: "b", sched: schedule{next: t0.Add(5 * time.Minute)}, inflight: true}
	c := &feedState{name: "c", sched: schedule{next: t0.Add(-time.Minute)}}
	if got := nextWake(t0, []*feedState{a, b}); got != 30*time.Minute {
		t.Errorf("nextWake = %v, want 30m (b is being pulled)", got)
	}
	if got := nextWake(t0, []*feedState{a, c}); got != 0 {
		t.Errorf("nextWake with an overdue feed = %v, want 0", got)
	}
	if got := nextWake(t0, nil); got != time.Hour {
		t.Errorf("nextWake of nothing = %v, want 1h", got)
	}
}

func TestJitterStaysWithinFivePercent(t *testing.T) {
	for range 200 {
		if d := jitter(24 * time.Hour); d < 24*time.Hour-5*time.Minute || d > 24*time.Hour+5*time.Minute {
			t.Fatalf("jitter(24h) = %v", d)
		}
	}
	if jitter(0) != 0 {
		t.Fatal("jitter(0) != 0")
	}
}

// A 401 or 403 backs off in hours, not minutes, up to half a day.
func TestScheduleBacksOffInHoursOnARejectedKey(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, err := range []error{fmt.Errorf("fetch: %w", feed.ErrKeyRejected), fmt.Errorf("fetch: %w", feed.ErrKeyDisabled)} {
		var s schedule
		for i, want := range []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 12 * time.Hour, 12 * time.Hour} {
			if got := s.failed(t0, err, time.Minute, 24*time.Hour); got != want {
				t.Fatalf("%v, failure %d: delay %v, want %v", err, i+1, got, want)
			}
		}
	}
}

// After a restart the cached list's fetch time decides the first pull.
func TestScheduleFromCache(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		fetched time.Time
		want    time.Time // zero: due now
	}{
		{t0.Add(-time.Hour), t0.Add(23 * time.Hour)},
		{t0.Add(-25 * time.Hour), time.Time{}},
		{t0.Add(-24 * time.Hour), time.Time{}},
		{t0.Add(time.Hour), time.Time{}}, // in the future: not trusted
		{time.Time{}, time.Time{}},
	} {
		var s schedule
		s.fromCache(t0, tc.fetched, 24*time.Hour)
		if !s.next.Equal(tc.want) {
			t.Errorf("fetched %v: next %v, want %v", tc.fetched, s.next, tc.want)
		}
	}
}

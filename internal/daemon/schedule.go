package daemon

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/feed"
)

// schedule is when one feed is pulled next. It is pure: every method takes
// the time from its caller, so tests drive it with a fake clock.
type schedule struct {
	next     time.Time // next pull; zero = due at once
	failures int       // consecutive failures, for backoff
	holdOff  time.Time // a 429's Retry-After, honoured even by reloads
}

// maxBackoffShift bounds the exponential backoff (RetryMin << 10).
const maxBackoffShift = 10

// A rejected or disabled key (401, 403) does not heal by itself: asking
// every minute only fills the journal and the vendor's logs. Such a feed
// backs off from an hour to half a day; a reload with a new key or
// `sikkerctl pull` tries again at once.
const (
	authRetryMin = time.Hour
	authRetryMax = 12 * time.Hour
)

// authFailure reports whether err is the API refusing the key.
func authFailure(err error) bool {
	return errors.Is(err, feed.ErrKeyRejected) || errors.Is(err, feed.ErrKeyDisabled)
}

// fromCache schedules the first pull after a start from the last good
// list fetched at fetched: only once the pull interval has passed since,
// so that restarts do not spend the day's quota on the same list. A fetch
// time in the future (a clock set back, a file edited) makes it due now.
func (s *schedule) fromCache(now, fetched time.Time, interval time.Duration) {
	if fetched.IsZero() || fetched.After(now) {
		return
	}
	if next := fetched.Add(interval); next.After(now) {
		s.next = next
	}
}

func (s *schedule) due(now time.Time) bool { return !now.Before(s.next) }

// succeeded schedules the next regular pull, spread by jitter.
func (s *schedule) succeeded(now time.Time, interval time.Duration, jitter func(time.Duration) time.Duration) {
	s.failures = 0
	s.next = now.Add(jitter(interval))
}

// failed backs off exponentially from retryMin up to the feed's interval,
// and never asks before a 429's Retry-After. It returns the delay.
func (s *schedule) failed(now time.Time, err error, retryMin, interval time.Duration) time.Duration {
	s.failures++
	delay := min(retryMin<<min(s.failures-1, maxBackoffShift), interval)
	if authFailure(err) {
		delay = min(authRetryMin<<min(s.failures-1, maxBackoffShift), authRetryMax)
	}
	var qe *feed.QuotaError
	if errors.As(err, &qe) && !qe.RetryAt.IsZero() {
		delay = max(delay, qe.RetryAt.Sub(now))
		s.holdOff = qe.RetryAt
	}
	s.next = now.Add(delay)
	return delay
}

// force makes the feed due now unless a 429 told it to wait: asking again
// before Retry-After only burns quota the API has refused. It returns the
// hold-off time when it refused.
func (s *schedule) force(now time.Time) (heldUntil time.Time, held bool) {
	if now.Before(s.holdOff) {
		return s.holdOff, true
	}
	s.holdOff = time.Time{}
	s.next = now
	return time.Time{}, false
}

// nextWake is how long the main loop may sleep before a feed is due: at
// most an hour, never negative. Feeds being pulled are skipped.
func nextWake(now time.Time, feeds []*feedState) time.Duration {
	best := time.Hour
	for _, f := range feeds {
		if !f.inflight {
			best = min(best, f.sched.next.Sub(now))
		}
	}
	return max(best, 0)
}

// jitter spreads pulls by up to 5 % (at most 10 minutes) so that many
// hosts started together do not hit the API in the same second.
func jitter(d time.Duration) time.Duration {
	spread := min(d/20, 10*time.Minute)
	if spread <= 0 {
		return d
	}
	return d - spread/2 + rand.N(spread)
}

// Package feed fetches blocklists — the SikkerAPI blacklist, plain URL feeds
// and local files — and turns each into a Snapshot: one merged ipnet.Set plus
// where it came from and how the parse went. It does the I/O; parsing is
// ipnet's and deciding what to block is the daemon's and safety's.
//
// Behaviours every caller can rely on:
//
//   - A response that is truncated (short of its Content-Length, cut by the
//     peer, JSON never closed), empty, larger than the configured byte limit,
//     or garbage (no valid entry at all, or more malformed lines than the
//     GarbagePolicy allows) is an error. A Source never returns a partial list
//     as if it were good, so a bad pull can never replace a good list.
//   - Limits apply while parsing: an entry wider than MinPrefix4/MinPrefix6
//     is a malformed line with a sample, and parsing stops at MaxEntries
//     with ErrTooManyEntries, so a hostile list is refused before it fills
//     memory. A JSON value over 64 KiB is garbage.
//   - The SikkerAPI key travels only in the Authorization header, through
//     internal/sikkerapi. It is never put in a URL, a log record or an
//     error message; text echoed by the server is scrubbed of it as well,
//     and a redirect to another scheme, host or port is refused.
//   - A URL feed's credentials (user info, ?token= and similar) are
//     redacted inside its errors, and an https feed is never followed to
//     http.
//   - A 429 from SikkerAPI yields a *QuotaError carrying the Retry-After time.
//     Until then the client refuses to call the blacklist endpoint again and
//     returns the same error without a request, because every further pull
//     would only cost quota the vendor has already refused.
//   - 5xx answers, timeouts and network failures are retryable (see
//     Retryable); 401, 403, 429 and other 4xx are not.
//   - A URL feed remembers ETag and Last-Modified and makes conditional
//     requests; a 304 returns the last good list with FromCache set and no
//     error.
//   - A file feed re-reads its file on every fetch. A missing file is an
//     error naming the path; an empty file is a valid, empty list, because a
//     custom blacklist is often empty on purpose.
//   - Cached wraps any Source: a fetched list is a candidate; once the
//     caller's checks accepted it and it is in force, Commit saves it
//     atomically under <dir>/feeds/<name>.list; when the source fails, the
//     last good list is returned with FromCache set together with the error,
//     so the caller can log, degrade its state and keep blocking. A corrupt
//     cache file is ignored with a warning.
package feed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
)

// Source is one blocklist feed.
type Source interface {
	// Name identifies the feed in logs, the cache directory and D-Bus.
	Name() string
	// Fetch retrieves the current list. See the package comment for the
	// meaning of a non-nil Snapshot returned together with an error.
	Fetch(ctx context.Context) (*Snapshot, error)
}

// Snapshot is one feed's list at one moment.
type Snapshot struct {
	Name      string
	Set       ipnet.Set // merged
	Stats     ipnet.ParseStats
	FetchedAt time.Time // when the list was fetched from its origin

	// FromCache is set when the list was not freshly downloaded: a 304
	// answer, or the last good list served because the source failed.
	FromCache bool
	// Stale is the failure that made a cached list stand in; nil for a
	// fresh list and for a 304.
	Stale error

	// Origin is where the list came from: a URL without credentials or a
	// file path. It is safe to log.
	Origin       string
	ETag         string
	LastModified string

	// Quota holds the quota headers of the response, if any.
	Quota *Quota
	// QuotaCut is set when the server answered with fewer entries than
	// asked because the day's quota ran out during this response (the
	// headers say nothing is left): the list is what the quota allowed, not
	// the blocklist, and must not replace a good one.
	QuotaCut bool
	// Entries holds the per-address details of a SikkerAPI JSON response
	// when SikkerOptions.KeepEntries is set.
	Entries []Entry
	// Seen summarises the lastSeen of a SikkerAPI JSON response's entries
	// when SikkerOptions.SeenBounds is set; nil otherwise.
	Seen *SeenSummary
}

// Count returns the number of ranges per family in the list.
func (s *Snapshot) Count() (v4, v6 int) { return s.Set.Len() }

// Entry is one row of a SikkerAPI JSON blacklist.
type Entry struct {
	Prefix      netip.Prefix
	Confidence  int
	LastSeen    time.Time
	Sessions    int
	Protocols   []string
	CountryCode string
	ASN         uint32 // 0 when absent
	ASNOrg      string
}

var (
	// ErrEmpty: the response or file held no entry at all.
	ErrEmpty = errors.New("empty list")
	// ErrTruncated: the body ended before its declared end.
	ErrTruncated = errors.New("truncated response")
	// ErrGarbage: the body does not look like a blocklist.
	ErrGarbage = errors.New("response is not a blocklist")
	// ErrTooLarge: the body or file exceeded the configured byte limit.
	ErrTooLarge = errors.New("size limit exceeded")
	// ErrTooManyEntries: the list holds more entries than Limits.MaxEntries;
	// parsing stopped there and the list is refused.
	ErrTooManyEntries = ipnet.ErrTooManyEntries
	// ErrKeyRejected is wrapped by errors for a 401 answer.
	ErrKeyRejected = sikkerapi.ErrKeyRejected
	// ErrKeyDisabled is wrapped by errors for a 403 answer.
	ErrKeyDisabled = sikkerapi.ErrKeyDisabled
	// ErrNotModified is returned by a URL feed that got a 304 but holds no
	// list to serve; Cached answers it from its cache file.
	ErrNotModified = errors.New("not modified")
)

// StatusError is a non-2xx HTTP answer not covered by a more specific error.
type StatusError = sikkerapi.StatusError

// QuotaError is a 429 answer: the daily quota of an endpoint is exhausted.
type QuotaError = sikkerapi.QuotaError

// Quota is what a response's quota headers said.
type Quota = sikkerapi.Quota

// Limits bound what one list may hold; they come from the config's safety
// section. A zero field imposes no limit.
type Limits struct {
	// MinPrefix4 and MinPrefix6 refuse entries wider than a /MinPrefix4
	// (IPv4) or /MinPrefix6 (IPv6) block as malformed lines, so that a feed
	// line such as 0.0.0.0/0 cannot cut the host off the internet.
	MinPrefix4, MinPrefix6 int
	// MaxEntries stops parsing at one entry more and refuses the list, so
	// that memory is bounded by the limit and not by the body.
	MaxEntries int
}

func (l Limits) parseOptions() ipnet.ParseOptions {
	return ipnet.ParseOptions{Mode: l.mode(), MaxEntries: l.MaxEntries}
}

// mode is how a feed reads an entry: host bits masked (lists write
// 10.1.2.3/8) and nothing wider than the minimum prefix lengths.
func (l Limits) mode() ipnet.Mode {
	return ipnet.Mode{HostBits: ipnet.MaskHostBits, MinBits4: l.MinPrefix4, MinBits6: l.MinPrefix6}
}

// Retryable reports whether err is transient (5xx, timeout, network
// failure, truncated transfer) so that an early retry may succeed. Quota,
// key and client errors are not retryable.
func Retryable(err error) bool { return sikkerapi.Retryable(err) }

func retryable(err error) error { return sikkerapi.MarkRetryable(err) }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidName checks that a feed name is usable as a cache file name and in
// logs: 1–64 characters of letters, digits, '.', '_' and '-', not starting
// with a punctuation character.
func ValidName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid feed name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

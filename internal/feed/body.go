package feed

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
)

// DefaultMaxBodyBytes bounds a downloaded list. The largest SikkerAPI tier
// (350,000 addresses) is some 60 MB as JSON (BenchmarkSikkerFetch), so this
// only stops a runaway or hostile server from filling memory.
const DefaultMaxBodyBytes = 256 << 20

// GarbagePolicy decides when malformed lines make a whole list suspect. A
// list is rejected when its malformed lines exceed both MaxMalformed and
// MaxMalformedRatio of its data lines (entries plus malformed lines; blank
// and comment lines do not count). Both conditions must hold so that a few
// odd lines in a short hand-written list, or a stray line in a huge one, do
// not throw the list away.
type GarbagePolicy struct {
	MaxMalformed      int     // default 10
	MaxMalformedRatio float64 // default 0.10
}

func (g GarbagePolicy) withDefaults() GarbagePolicy {
	if g.MaxMalformed <= 0 {
		g.MaxMalformed = 10
	}
	if g.MaxMalformedRatio <= 0 {
		g.MaxMalformedRatio = 0.10
	}
	return g
}

// check applies the policy to a parse. allowEmpty accepts a list without
// any data line (file feeds); a body with only malformed lines is garbage
// either way.
func (g GarbagePolicy) check(st ipnet.ParseStats, allowEmpty bool) error {
	g = g.withDefaults()
	data := st.Entries + st.Malformed
	switch {
	case data == 0 && allowEmpty:
		return nil
	case data == 0:
		return ErrEmpty
	case st.Entries == 0:
		return fmt.Errorf("%w: no valid entry in %d lines%s", ErrGarbage, st.Lines, sampleText(st))
	case st.Malformed > g.MaxMalformed && float64(st.Malformed) > g.MaxMalformedRatio*float64(data):
		return fmt.Errorf("%w: %d of %d lines malformed%s", ErrGarbage, st.Malformed, data, sampleText(st))
	}
	return nil
}

func sampleText(st ipnet.ParseStats) string {
	if len(st.Samples) == 0 {
		return ""
	}
	s := st.Samples[0]
	return fmt.Sprintf(" (line %d: %q)", s.Line, clip(s.Text, 60))
}

// limitedBody reads at most max bytes and fails with ErrTooLarge beyond
// that; it also turns a short read into ErrTruncated.
type limitedBody struct {
	r   io.Reader
	max int64
	n   int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.n > b.max {
		return 0, fmt.Errorf("response larger than %d bytes (%w)", b.max, ErrTooLarge)
	}
	// Allow one byte past the limit to tell "exactly max" from "more".
	if rem := b.max + 1 - b.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.max {
		return 0, fmt.Errorf("response larger than %d bytes (%w)", b.max, ErrTooLarge)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// net/http reports a body shorter than its Content-Length this way.
		err = retryable(fmt.Errorf("%w after %d bytes: %w", ErrTruncated, b.n, err))
	}
	return n, err
}

func newLimitedBody(resp *http.Response, max int64) (*limitedBody, error) {
	if resp.ContentLength > max {
		return nil, fmt.Errorf("response larger than %d bytes: Content-Length %d (%w)", max, resp.ContentLength, ErrTooLarge)
	}
	return &limitedBody{r: resp.Body, max: max}, nil
}

// clip shortens text from outside to n printable runes on one line.
func clip(s string, n int) string { return sikkerapi.Printable(s, n) }

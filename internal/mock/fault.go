package mock

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// FaultMode is a failure the mock can inject.
type FaultMode string

// Fault modes. Each replaces the normal answer of a matching request.
const (
	FaultNone FaultMode = ""
	// Fault401 and Fault403 answer as for an invalid or a disabled key.
	Fault401 FaultMode = "401"
	Fault403 FaultMode = "403"
	// Fault429 answers quota exhausted with Fault.RetryAfter.
	Fault429 FaultMode = "429"
	// Fault500 answers an internal server error.
	Fault500 FaultMode = "500"
	// FaultSlow waits Fault.Delay, then answers normally.
	FaultSlow FaultMode = "slow"
	// FaultTruncated declares the full Content-Length, sends half of the
	// normal body and drops the connection.
	FaultTruncated FaultMode = "truncated"
	// FaultCut sends the first half of the normal body with a matching
	// Content-Length: well-formed HTTP carrying an incomplete document.
	FaultCut FaultMode = "cut"
	// FaultGarbage answers 200 with an HTML error page.
	FaultGarbage FaultMode = "garbage"
	// FaultEmpty answers 200 with an empty body.
	FaultEmpty FaultMode = "empty"
	// FaultOversized streams Fault.Size bytes of valid-looking lines.
	FaultOversized FaultMode = "oversized"
)

// FaultModes lists every mode, for flag help and validation.
var FaultModes = []FaultMode{Fault401, Fault403, Fault429, Fault500, FaultSlow, FaultTruncated,
	FaultCut, FaultGarbage, FaultEmpty, FaultOversized}

// Fault is an injected failure.
type Fault struct {
	Mode FaultMode
	// Count limits the fault to the next Count matching requests; 0 keeps
	// it until cleared.
	Count int
	// Path limits the fault to one API path, e.g. "/v1/key/blacklist";
	// "" matches every API path.
	Path string
	// RetryAfter is the Retry-After value of Fault429, in seconds or as an
	// HTTP date; "" means the seconds until midnight UTC.
	RetryAfter string
	// Delay is the wait of FaultSlow; default 10 s.
	Delay time.Duration
	// Size is the body size of FaultOversized; default 300 MiB.
	Size int64
}

// ParseFaultMode checks a mode name.
func ParseFaultMode(s string) (FaultMode, error) {
	for _, m := range FaultModes {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, len(FaultModes))
	for i, m := range FaultModes {
		names[i] = string(m)
	}
	return "", fmt.Errorf("unknown fault mode %q: want one of %s", s, strings.Join(names, ", "))
}

// SetFault installs f, replacing any earlier fault. A zero Mode clears it.
func (s *Server) SetFault(f Fault) error {
	if f.Mode == FaultNone {
		s.ClearFault()
		return nil
	}
	if _, err := ParseFaultMode(string(f.Mode)); err != nil {
		return err
	}
	if f.Count < 0 {
		return fmt.Errorf("fault count %d is negative", f.Count)
	}
	if f.Delay <= 0 {
		f.Delay = 10 * time.Second
	}
	if f.Size <= 0 {
		f.Size = 300 << 20
	}
	s.mu.Lock()
	s.fault = &f
	s.mu.Unlock()
	return nil
}

// ClearFault removes the injected fault.
func (s *Server) ClearFault() {
	s.mu.Lock()
	s.fault = nil
	s.mu.Unlock()
}

// CurrentFault returns the installed fault, if any.
func (s *Server) CurrentFault() (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fault == nil {
		return Fault{}, false
	}
	return *s.fault, true
}

// takeFault returns the fault for a request to path and uses up one of its
// count.
func (s *Server) takeFault(path string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fault
	if f == nil || (f.Path != "" && f.Path != path) {
		return nil
	}
	if f.Count > 0 {
		f.Count--
		if f.Count == 0 {
			s.fault = nil
		}
	}
	c := *f
	return &c
}

// serveFault answers r with f; it reports false when the normal handling
// should continue (after a delay).
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, f *Fault) bool {
	switch f.Mode {
	case Fault401:
		writeError(w, http.StatusUnauthorized, "Invalid API key")
	case Fault403:
		writeError(w, http.StatusForbidden, "API key is disabled or expired")
	case Fault429:
		ra := f.RetryAfter
		if ra == "" {
			ra = strconv.Itoa(secondsToReset(s.opt.Now()))
		}
		w.Header().Set("Retry-After", ra)
		writeError(w, http.StatusTooManyRequests, "Daily quota exceeded. Resets at midnight UTC.")
	case Fault500:
		writeError(w, http.StatusInternalServerError, "Internal server error")
	case FaultSlow:
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
			return false
		case <-r.Context().Done():
		}
	case FaultGarbage:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, garbagePage)
	case FaultEmpty:
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	case FaultOversized:
		s.serveOversized(w, f.Size)
	case FaultTruncated, FaultCut:
		s.serveCut(w, r, f.Mode == FaultTruncated)
	}
	return true
}

// garbagePage is what a misconfigured proxy sends with a 200.
const garbagePage = `<!DOCTYPE html>
<html>
<head><title>Service Unavailable</title></head>
<body>
<h1>Service temporarily unavailable</h1>
<p>The server is temporarily unable to service your request.</p>
<p>Please try again later.</p>
<hr>
<address>proxy/1.0</address>
</body>
</html>
`

// serveCut renders the normal answer, then sends half of it: with the
// full Content-Length and a dropped connection (truncated), or as a
// complete short response (cut).
func (s *Server) serveCut(w http.ResponseWriter, r *http.Request, dropConn bool) {
	rec := &bufferWriter{header: http.Header{}, code: http.StatusOK}
	s.mux.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	half := body[:len(body)/2]
	if dropConn {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	} else {
		w.Header().Set("Content-Length", strconv.Itoa(len(half)))
	}
	w.WriteHeader(rec.code)
	w.Write(half)
	if dropConn {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		// Aborting the handler makes net/http close the connection
		// without completing the declared body.
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) serveOversized(w http.ResponseWriter, size int64) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 0, 64<<10)
	var sent int64
	// 45.0.0.0/8 is globally routable; the lines stay valid addresses.
	for i := uint32(0); sent < size; i++ {
		buf = fmt.Appendf(buf, "45.%d.%d.%d\n", byte(i>>16), byte(i>>8), byte(i))
		if len(buf) > 60<<10 || sent+int64(len(buf)) >= size {
			n, err := w.Write(buf)
			sent += int64(n)
			if err != nil {
				return
			}
			buf = buf[:0]
		}
	}
}

// bufferWriter captures a whole response so that a fault can mangle it.
type bufferWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferWriter) Header() http.Header         { return b.header }
func (b *bufferWriter) WriteHeader(code int)        { b.code = code }
func (b *bufferWriter) Write(p []byte) (int, error) { return b.body.Write(p) }

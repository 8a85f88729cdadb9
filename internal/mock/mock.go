// Package mock is a stand-in for SikkerAPI, used by the tests and by the
// demo. It serves the endpoints sikkerguard uses — /v1/key/blacklist
// (plaintext and JSON, with every documented filter), /v1/key/report,
// /v1/key/bulk-report and /v1/key/status — with bearer-key checks, daily
// quotas and quota headers, and it can inject the failures a real server
// shows (401, 403, 429, 500, slow, truncated and garbage answers...).
//
// Where SIKKERAPI.md marks a behaviour as inferred, the mock picks one
// reading and documents it on the option that selects it, so tests can
// exercise both. Its own choices:
//
//   - The blacklist quota counts served addresses per UTC day; a pull
//     when it is used up gets 429 with Retry-After until midnight UTC, and
//     a pull with some quota left is cut to what is left.
//   - minSeverity maps to a score floor: very_high ≥ 90, high ≥ 75,
//     medium ≥ 50, low ≥ 1.
//   - Error bodies are {"error": "..."}.
//
// Tests drive it in-process (SetFault, Requests, Reports) or, when it runs
// as the sikkerapi-mock binary, over the control API under /_mock/.
package mock

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Quota header families (SikkerAPI's sources disagree on the names).
const (
	HeadersDaily     = "daily"     // X-Daily-Limit / -Used / -Remaining
	HeadersBlacklist = "blacklist" // X-Blacklist-Limit / -Used / -Remaining
	HeadersRateLimit = "ratelimit" // X-RateLimit-Limit / -Remaining / -Reset
	HeadersNone      = "none"
)

// How the JSON blacklist writes the asn field.
const (
	ASNPlain    = "plain"    // "4134"
	ASNPrefixed = "prefixed" // "AS4134"
	ASNMixed    = "mixed"    // alternating, to exercise both readings
)

// Options configures a Server.
type Options struct {
	Key          string   // the valid API key; required
	DisabledKeys []string // keys answered with 403

	// TierLimit caps limit= and is the daily blacklist quota unless
	// BlacklistQuota is set. Default 5000 (the free tier).
	TierLimit      int
	BlacklistQuota int // addresses per day; 0 = TierLimit, <0 = unlimited
	ReportQuota    int // accepted reports per day; 0 = 1000, <0 = unlimited

	QuotaHeaders string // HeadersDaily (default), HeadersBlacklist, HeadersRateLimit, HeadersNone
	ASNStyle     string // ASNPlain (default), ASNPrefixed, ASNMixed
	// OneBasedRows numbers bulk-report error rows from 1 instead of 0;
	// which one SikkerAPI uses is not documented.
	OneBasedRows bool
	// LabAddresses accepts reports of the documentation ranges
	// (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32),
	// which namespace labs use as their internet; the API refuses them.
	LabAddresses bool

	Entries []Entry // the list to serve; see ParseList and Generate
	// FreshLastSeen serves every lastSeen moved on by the same span, so
	// that the newest is the time of the request, as a live API's list is
	// (ages are kept). Off, the entries' own times are served: Generate's
	// are fixed, over a year old by now.
	FreshLastSeen bool

	Logger *slog.Logger     // request log; default discard
	Now    func() time.Time // default time.Now
}

// Server is the mock API. Its zero value is not usable; call New.
type Server struct {
	opt Options
	log *slog.Logger
	mux *http.ServeMux

	mu       sync.Mutex
	entries  []Entry
	newest   time.Time // the newest lastSeen of entries
	fault    *Fault
	requests []Request
	reports  []Report
	day      string // UTC date the counters belong to
	usedList int
	usedRep  int

	srv *http.Server
	ln  net.Listener
}

// Request is what the mock saw of one API request. The key is never
// recorded: Auth says only how it was presented.
type Request struct {
	Time      time.Time  `json:"time"`
	Method    string     `json:"method"`
	Path      string     `json:"path"`
	Query     url.Values `json:"query"` // a key= parameter is recorded as "REDACTED"
	UserAgent string     `json:"userAgent"`
	Auth      string     `json:"auth"` // "bearer", "query" or "none"
	KeyValid  bool       `json:"keyValid"`
	Status    int        `json:"status"`
	Fault     FaultMode  `json:"fault,omitempty"`
}

// New validates opt and returns a Server; Start it or use it as an
// http.Handler.
func New(opt Options) (*Server, error) {
	if opt.Key == "" {
		return nil, errors.New("mock: no api key configured")
	}
	if opt.TierLimit == 0 {
		opt.TierLimit = 5000
	}
	if opt.TierLimit < 0 {
		return nil, fmt.Errorf("mock: negative tier limit %d", opt.TierLimit)
	}
	if opt.BlacklistQuota == 0 {
		opt.BlacklistQuota = opt.TierLimit
	}
	if opt.ReportQuota == 0 {
		opt.ReportQuota = 1000
	}
	switch opt.QuotaHeaders {
	case "":
		opt.QuotaHeaders = HeadersDaily
	case HeadersDaily, HeadersBlacklist, HeadersRateLimit, HeadersNone:
	default:
		return nil, fmt.Errorf("mock: quota headers %q: want daily, blacklist, ratelimit or none", opt.QuotaHeaders)
	}
	switch opt.ASNStyle {
	case "":
		opt.ASNStyle = ASNPlain
	case ASNPlain, ASNPrefixed, ASNMixed:
	default:
		return nil, fmt.Errorf("mock: asn style %q: want plain, prefixed or mixed", opt.ASNStyle)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &Server{opt: opt, log: opt.Logger, mux: http.NewServeMux()}
	s.SetEntries(opt.Entries)
	s.mux.HandleFunc("GET /v1/key/blacklist", s.handleBlacklist)
	s.mux.HandleFunc("GET /v1/key/status", s.handleStatus)
	s.mux.HandleFunc("POST /v1/key/report", s.handleReport)
	s.mux.HandleFunc("POST /v1/key/bulk-report", s.handleBulkReport)
	s.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not found")
	})
	s.routeControl()
	return s, nil
}

// Start listens on addr ("" = 127.0.0.1:0, a free loopback port) and
// serves in the background until Close.
func (s *Server) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mock: listen: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return nil
}

// Addr is the listening address after Start.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the base URL after Start, e.g. http://127.0.0.1:41234.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Close stops the server, aborting requests in flight.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// Shutdown stops the server gracefully.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Shutdown(ctx)
}

// SetEntries replaces the served list.
func (s *Server) SetEntries(es []Entry) {
	es = slices.Clone(es)
	SortEntries(es)
	var newest time.Time
	for _, e := range es {
		if e.LastSeen.After(newest) {
			newest = e.LastSeen
		}
	}
	s.mu.Lock()
	s.entries, s.newest = es, newest
	s.mu.Unlock()
}

// Entries returns a copy of the served list, in API order.
func (s *Server) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.entries)
}

// Requests returns the API requests seen so far (control requests are not
// recorded).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// RequestCount counts recorded API requests to path ("" = all).
func (s *Server) RequestCount(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if path == "" || r.Path == path {
			n++
		}
	}
	return n
}

// ClearRequests forgets the recorded requests.
func (s *Server) ClearRequests() {
	s.mu.Lock()
	s.requests = nil
	s.mu.Unlock()
}

// ResetQuota zeroes today's quota counters.
func (s *Server) ResetQuota() {
	s.mu.Lock()
	s.usedList, s.usedRep = 0, 0
	s.mu.Unlock()
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ServeHTTP implements http.Handler: API requests are recorded, checked for
// injected faults and for the key, then routed.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, controlPrefix) {
		s.mux.ServeHTTP(w, r)
		return
	}
	start := s.opt.Now()
	sw := &statusWriter{ResponseWriter: w}
	rec := Request{Time: start, Method: r.Method, Path: r.URL.Path, Query: redactQuery(r.URL.Query()),
		UserAgent: r.UserAgent()}
	key := ""
	if h := r.Header.Get("Authorization"); h != "" {
		if k, ok := strings.CutPrefix(h, "Bearer "); ok {
			key, rec.Auth = strings.TrimSpace(k), "bearer"
		}
	}
	if rec.Auth == "" {
		if k := r.URL.Query().Get("key"); k != "" {
			key, rec.Auth = k, "query" // the real API accepts it; sikkerguard must not use it
		} else {
			rec.Auth = "none"
		}
	}
	rec.KeyValid = subtle.ConstantTimeCompare([]byte(key), []byte(s.opt.Key)) == 1

	defer func() {
		rec.Status = sw.status
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
		s.log.Info("request", "method", r.Method, "path", r.URL.Path, "query", rec.Query.Encode(),
			"status", sw.status, "fault", string(rec.Fault), "auth", rec.Auth,
			"duration", s.opt.Now().Sub(start).Round(time.Millisecond))
	}()

	if f := s.takeFault(r.URL.Path); f != nil {
		rec.Fault = f.Mode
		if s.serveFault(sw, r, f) {
			return
		}
	}
	switch {
	case slices.Contains(s.opt.DisabledKeys, key) && key != "":
		writeError(sw, http.StatusForbidden, "API key is disabled or expired")
		return
	case !rec.KeyValid:
		writeError(sw, http.StatusUnauthorized, "Invalid API key")
		return
	}
	s.mux.ServeHTTP(sw, r)
}

func redactQuery(q url.Values) url.Values {
	if _, ok := q["key"]; ok {
		q["key"] = []string{"REDACTED"}
	}
	return q
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// rollDay resets the daily counters at midnight UTC. Call with s.mu held.
func (s *Server) rollDay(now time.Time) {
	if d := now.UTC().Format(time.DateOnly); d != s.day {
		s.day, s.usedList, s.usedRep = d, 0, 0
	}
}

func nextMidnightUTC(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

// secondsToReset is the Retry-After of a quota 429: until midnight UTC.
func secondsToReset(now time.Time) int {
	return int(nextMidnightUTC(now).Sub(now).Seconds() + 0.999)
}

// quotaHeaders writes the configured header family for one endpoint.
func (s *Server) quotaHeaders(w http.ResponseWriter, limit, used int, now time.Time, report bool) {
	if limit < 0 {
		return
	}
	h := w.Header()
	rem := max(limit-used, 0)
	switch s.opt.QuotaHeaders {
	case HeadersDaily:
		h.Set("X-Daily-Limit", fmt.Sprint(limit))
		h.Set("X-Daily-Used", fmt.Sprint(used))
		h.Set("X-Daily-Remaining", fmt.Sprint(rem))
	case HeadersBlacklist:
		if report {
			return
		}
		h.Set("X-Blacklist-Limit", fmt.Sprint(limit))
		h.Set("X-Blacklist-Used", fmt.Sprint(used))
		h.Set("X-Blacklist-Remaining", fmt.Sprint(rem))
	case HeadersRateLimit:
		if report {
			h.Set("X-Report-Limit", fmt.Sprint(limit))
			h.Set("X-Report-Remaining", fmt.Sprint(rem))
			return
		}
		h.Set("X-RateLimit-Limit", fmt.Sprint(limit))
		h.Set("X-RateLimit-Remaining", fmt.Sprint(rem))
		h.Set("X-RateLimit-Reset", fmt.Sprint(nextMidnightUTC(now).Unix()))
	}
}

// quotaExceeded answers 429 like the API: Retry-After until the reset.
func quotaExceeded(w http.ResponseWriter, now time.Time, what string) {
	w.Header().Set("Retry-After", fmt.Sprint(secondsToReset(now)))
	writeError(w, http.StatusTooManyRequests, "Daily "+what+" quota exceeded. Resets at midnight UTC.")
}

package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/health"
	"github.com/sikkerapi/sikkerguard/internal/nflog"
)

// Server limits.
const (
	MaxConns = 512
	// CacheControl lets shared caches store the list but makes them ask
	// the hub again (If-None-Match, with the client's token) before every
	// use, so a revoked token is refused even behind a cache.
	CacheControl = "public, no-cache"
)

// Sink takes the drop events of one authenticated host; it reports whether
// the hub forwards them (false: reporting is off on the hub).
type Sink func(host string, counts []nflog.Count) bool

// Options configure a Server.
type Options struct {
	Listen  string // host:port
	TLSCert string // both empty: plain HTTP
	TLSKey  string
	Tokens  *Tokens
	// Services names ports for forwarded reports (config PortServices).
	Services map[uint16]string
	Sink     Sink
	Log      *slog.Logger
	Now      func() time.Time
}

// HostStatus is what the hub knows of one host.
type HostStatus struct {
	Name       string
	Addr       string    // remote address of the last request
	LastPull   time.Time // zero: never pulled
	Generation time.Time // generation of the merged list it holds
	Reports    uint64    // events received from it
}

// Status is the hub's state for `sikkerctl hub status` and /metrics.
type Status struct {
	Listen     string
	Generation time.Time
	Entries    int
	Hosts      []HostStatus // every host of the tokens file, in its order
	Requests   uint64
	NotMod     uint64 // 304 answers
	Refused    uint64 // 401 answers
	Received   uint64 // events accepted from hosts
	Unforward  uint64 // events received while reporting is off
}

// Server is the hub's HTTP endpoint. It is safe for concurrent use.
type Server struct {
	o   Options
	log *slog.Logger
	srv *http.Server

	pub    atomic.Pointer[Published]
	tokens atomic.Pointer[Tokens]

	requests, notMod, refused, received, unforward atomic.Uint64

	mu    sync.Mutex
	hosts map[string]*HostStatus
	ln    net.Listener
}

// New prepares a server; Serve binds it.
func New(o Options) (*Server, error) {
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return nil, fmt.Errorf("hub: listen %q: %w", o.Listen, err)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("hub: tls_cert and tls_key go together")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, log: o.Log, hosts: map[string]*HostStatus{}}
	s.SetTokens(o.Tokens)
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A 1 M-entry list is ~7 MB gzip-compressed; slow links need time.
		WriteTimeout:   5 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// SetTokens replaces the tokens (reload); a host left out is refused from
// its next request on.
func (s *Server) SetTokens(t *Tokens) {
	if t == nil {
		t = &Tokens{}
	}
	s.tokens.Store(t)
}

// Publish replaces the served lists.
func (s *Server) Publish(p *Published) { s.pub.Store(p) }

// Published returns the lists served now (nil before the first).
func (s *Server) Published() *Published { return s.pub.Load() }

// Listen binds the address; Serve calls it when needed.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.o.Listen)
	if err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	ln = health.LimitListener(ln, MaxConns)
	if s.o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.o.TLSCert, s.o.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("hub: tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
			NextProtos: []string{"http/1.1"}})
	}
	s.ln = ln
	return nil
}

// Addr is the bound address, nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve answers until ctx ends, then shuts down within ShutdownTimeout.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	s.log.Info("Hub listening", "addr", ln.Addr().String(), "tls", s.o.TLSCert != "")
	if err := health.ServeUntil(ctx, s.srv, ln); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

// Handler returns the routes, every one behind the token check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/blocklist", s.blocklist)
	mux.HandleFunc("GET /v1/blocklist/{feed}", s.blocklist)
	mux.HandleFunc("POST /v1/reports", s.reports)
	return s.auth(mux)
}

type hostKey struct{}

func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		tok, ok := bearer(r.Header.Get("Authorization"))
		name, known := "", false
		if ok {
			name, known = s.tokens.Load().Lookup(tok)
		}
		if !known {
			s.refused.Add(1)
			s.log.Debug("hub request refused: no valid token", "remote", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="sikkerguard"`)
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "a valid bearer token is required", http.StatusUnauthorized)
			return
		}
		s.touch(name, r.RemoteAddr, func(h *HostStatus) {})
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), hostKey{}, name)))
	})
}

func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

func (s *Server) touch(name, addr string, f func(*HostStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[name]
	if h == nil {
		h = &HostStatus{Name: name}
		s.hosts[name] = h
	}
	h.Addr = addr
	f(h)
}

func (s *Server) blocklist(w http.ResponseWriter, r *http.Request) {
	pub := s.pub.Load()
	if pub == nil {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "the hub has no accepted list yet", http.StatusServiceUnavailable)
		return
	}
	l := pub.All
	if name := r.PathValue("feed"); name != "" {
		if l = pub.Feeds[name]; l == nil {
			http.Error(w, "no such feed", http.StatusNotFound)
			return
		}
	}
	host, _ := r.Context().Value(hostKey{}).(string)
	h := w.Header()
	h.Set("Cache-Control", CacheControl)
	h.Set("Last-Modified", l.Generated.Format(http.TimeFormat))
	h.Set("Vary", "Accept-Encoding")
	format := r.URL.Query().Get("format")
	var tag, ctype string
	gz := false
	switch format {
	case "", "text":
		gz = acceptsGzip(r.Header.Get("Accept-Encoding"))
		tag, ctype = l.ETag(), "text/plain; charset=utf-8"
		if gz {
			tag = l.gzETag()
		}
	case "json":
		tag, ctype = `"`+l.etag+`-json"`, "application/json"
	default:
		http.Error(w, "format must be text or json", http.StatusBadRequest)
		return
	}
	h.Set("ETag", tag)
	s.pulled(host, r.RemoteAddr, l)
	if noneMatch(r.Header.Get("If-None-Match"), l) {
		s.notMod.Add(1)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", ctype)
	body := l.text
	switch {
	case format == "json":
		body = pub.JSON(l)
	case gz:
		h.Set("Content-Encoding", "gzip")
		body = l.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

// pulled records a host's pull; its generation is that of the merged list
// it now holds (a feed's pull records the feed's).
func (s *Server) pulled(host, addr string, l *List) {
	now := s.o.Now()
	s.touch(host, addr, func(h *HostStatus) { h.LastPull, h.Generation = now, l.Generated })
}

// noneMatch is If-None-Match's weak comparison against every form of l.
func noneMatch(header string, l *List) bool {
	if header == "" {
		return false
	}
	forms := []string{l.etag, l.etag + "-gz", l.etag + "-json"}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		t = strings.TrimPrefix(t, "W/")
		if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' && slices.Contains(forms, t[1:len(t)-1]) {
			return true
		}
	}
	return false
}

// acceptsGzip reads Accept-Encoding for gzip with a q above 0.
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimSpace(params), "=")
		if ok && strings.TrimSpace(k) == "q" {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q > 0
		}
		return true
	}
	return false
}

func (s *Server) reports(w http.ResponseWriter, r *http.Request) {
	host, _ := r.Context().Value(hostKey{}).(string)
	w.Header().Set("Cache-Control", "no-store")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxReportBytes))
	if err != nil {
		http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxReportBytes), http.StatusRequestEntityTooLarge)
		return
	}
	events, err := ParseReports(data, s.o.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.o.Sink == nil || !s.o.Sink(host, Counts(events, s.o.Services)) {
		s.unforward.Add(uint64(len(events)))
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "this hub does not forward reports", http.StatusServiceUnavailable)
		return
	}
	s.received.Add(uint64(len(events)))
	s.touch(host, r.RemoteAddr, func(h *HostStatus) { h.Reports += uint64(len(events)) })
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, "{\"accepted\":%d}\n", len(events))
}

// Status returns the hub's state; hosts follow the tokens file's order,
// then any that were revoked since they last called.
func (s *Server) Status() Status {
	st := Status{Listen: s.o.Listen, Requests: s.requests.Load(), NotMod: s.notMod.Load(),
		Refused: s.refused.Load(), Received: s.received.Load(), Unforward: s.unforward.Load()}
	if a := s.Addr(); a != nil {
		st.Listen = a.String()
	}
	if p := s.pub.Load(); p != nil {
		st.Generation, st.Entries = p.All.Generated, p.All.Entries
	}
	names := s.tokens.Load().Names()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		h := HostStatus{Name: n}
		if got := s.hosts[n]; got != nil {
			h = *got
		}
		st.Hosts = append(st.Hosts, h)
	}
	return st
}

// Active counts the hosts that pulled within d before now.
func (st Status) Active(now time.Time, d time.Duration) int {
	n := 0
	for _, h := range st.Hosts {
		if !h.LastPull.IsZero() && now.Sub(h.LastPull) <= d {
			n++
		}
	}
	return n
}

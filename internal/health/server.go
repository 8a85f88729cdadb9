// Package health serves the optional localhost HTTP endpoint: /healthz for
// liveness probes, /status with the SikkerGuard container's JSON fields, and
// /metrics in the Prometheus text format. It reads everything from a Source
// and knows nothing of firewalls, feeds or the daemon's lifecycle.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ledger"
)

// The daemon's states, as CONTRACT.md names them.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateDegraded = "degraded"
	StateFailed   = "failed"
)

// states is the order of the one-hot sikkerguard_state series.
var states = []string{StateStarting, StateRunning, StateDegraded, StateFailed}

// ShutdownTimeout bounds how long Serve waits for requests in flight once
// its context ends; the endpoint must never hold up a daemon stop.
const ShutdownTimeout = 2 * time.Second

// MaxConns bounds the connections served at once. Local probes and a
// scraper need a few; more wait in the kernel's backlog until one closes, so
// a local program opening connections by the thousand costs the daemon no
// more than MaxConns goroutines and buffers.
const MaxConns = 16

// Source supplies the values the endpoints show. Snapshot is called once per
// request, from the server's goroutines, so it must be safe for concurrent use
// and cheap (a copy of values the daemon already keeps).
type Source interface {
	Snapshot() Snapshot
}

// Snapshot is one consistent view of the daemon. Zero times mean "never".
type Snapshot struct {
	State   string // starting, running, degraded or failed
	Reason  string // why the state is not running; shown by /healthz and /status
	Version string
	DryRun  bool
	Started time.Time

	BlockedIPv4 uint64 // IPv4 addresses in the blocklist
	BlockedIPv6 uint64 // IPv6 ranges in the blocklist
	LastPull    time.Time
	LastReport  time.Time
	Feeds       []Feed
	Quota       *Quota // the SikkerAPI blacklist quota; nil when never seen

	// Kernel drop counters; zero when the backend does not count.
	Drops4Packets, Drops4Bytes uint64
	Drops6Packets, Drops6Bytes uint64

	NFLOGEvents   uint64 // drop events read from the NFLOG group
	NFLOGOverruns uint64 // times the kernel dropped log messages (ENOBUFS)
	RulesRestored uint64 // restores after another program changed the kernel objects
	// ListenerWarnings: large loads sent while another program listened to
	// the firewall's kernel events (firewall.Counters).
	ListenerWarnings uint64
	NFLOGQueueDrops  uint64 // events dropped because the aggregator fell behind

	Reported       uint64 // reports accepted by SikkerAPI
	ReportPending  uint64 // reports spooled and not yet sent
	ReportRejected uint64 // reports SikkerAPI refused for good

	ServiceTotals map[string]uint64 // blocked connections per service name (ssh, telnet…)

	Hub *Hub // nil unless hub.listen is set

	// FeedLedger is the value ledger of the feeds (sikkerctl feeds).
	FeedLedger []ledger.Record
}

// Feed is one blocklist source in a Snapshot.
type Feed struct {
	Name     string
	Entries  uint64
	Dropped  uint64 // logged drops from sources the feed lists (a sample)
	LastPull time.Time
	Error    string // empty when the last pull succeeded
	State    string // "ok", "degraded" or "failed" (the API refuses the key)
}

// Quota is a daily API quota; a number the API did not announce is -1.
type Quota struct {
	Used, Limit, Remaining int64
	Reset                  time.Time
}

// Server is the health endpoint. It is used once: New, then Serve (optionally
// after Listen, to learn about a busy port before anything else starts).
type Server struct {
	addr string
	src  Source
	log  *slog.Logger
	now  func() time.Time
	srv  *http.Server
	port atomic.Uint32 // the port a request's Host must name: the bound one once listening

	mu sync.Mutex
	ln net.Listener
}

// New checks addr and prepares a server; it does not bind yet. The address
// must be an IP literal on loopback (127.0.0.0/8 or ::1) with a port: the
// endpoint has no authentication, so it refuses anything reachable from
// outside even if the configuration check was bypassed.
func New(addr string, src Source, log *slog.Logger) (*Server, error) {
	if err := checkAddr(addr); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("health: no status source")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{addr: addr, src: src, log: log, now: time.Now}
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.ParseUint(port, 10, 16) // checked by checkAddr
	s.port.Store(uint32(n))
	s.srv = &http.Server{
		Handler: s.Handler(),
		// Slow or idle clients must not pin goroutines: the endpoint serves
		// short answers to local probes only.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("health: listen address %q is not host:port (e.g. 127.0.0.1:9547)", addr)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("health: listen address %q: %q is not an IP address; use 127.0.0.1 or [::1]", addr, host)
	}
	if !ip.Unmap().IsLoopback() {
		return fmt.Errorf("health: listen address %q: %s is not a loopback address; the endpoint has no authentication, so it only listens on localhost", addr, ip)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("health: listen address %q: port %q is not a number in 0..65535", addr, port)
	}
	return nil
}

// Listen binds the address. Serve calls it when it has not been called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("health: listen: %w", err)
	}
	if ta, ok := ln.Addr().(*net.TCPAddr); ok {
		s.port.Store(uint32(ta.Port)) // the real one, with port 0
	}
	s.ln = newLimitListener(ln, MaxConns)
	return nil
}

// Addr is the bound address (useful with port 0), or nil before Listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve answers requests until ctx ends, then shuts down, giving requests in
// flight up to ShutdownTimeout. It returns nil after a clean shutdown, and an
// error when binding or serving fails or the shutdown had to cut requests off.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	s.log.Info("Health endpoint listening", "addr", ln.Addr().String())
	if err := ServeUntil(ctx, s.srv, ln); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	return nil
}

// ServeUntil serves srv on ln until ctx ends, then shuts down, giving
// requests in flight up to ShutdownTimeout. It returns nil after a clean
// shutdown, and an error when serving fails or the shutdown had to cut
// requests off. The fleet hub shares it.
func ServeUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
	}
	<-done // http.ErrServerClosed once Serve has returned
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Handler returns the endpoint's routes, for tests and for embedding.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.healthz)
	mux.HandleFunc("/status", s.status)
	mux.HandleFunc("/metrics", s.metrics)
	return s.loopbackHost(readOnly(mux))
}

// loopbackHost answers 421 to a request whose Host is not a loopback name
// with the listening port. Without it, a web page could rebind its own name
// to 127.0.0.1 and have the visitor's browser read the endpoint; a browser
// always sends the name it resolved, so that Host is never a loopback one.
// A request without Host (HTTP/1.0) cannot come from a browser and passes.
func (s *Server) loopbackHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHostOK(r.Host, uint16(s.port.Load())) {
			s.log.Debug("health request refused: Host is not loopback", "host", r.Host, "remote", r.RemoteAddr)
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "misdirected request: the health endpoint answers only to localhost, 127.0.0.1 or [::1]", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHostOK accepts localhost, a loopback IP literal (127.0.0.0/8, ::1)
// and nothing else, with the given port, which may be left out only when
// it is HTTP's default.
func loopbackHostOK(hostport string, port uint16) bool {
	if hostport == "" {
		return true
	}
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: "localhost", "127.0.0.1", "[::1]".
		host, p = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), "80"
		if strings.HasPrefix(hostport, "[") != strings.HasSuffix(hostport, "]") {
			return false
		}
	}
	if p != strconv.Itoa(int(port)) {
		return false
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

// limitListener holds Accept while max connections are open, as
// golang.org/x/net/netutil.LimitListener does.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// LimitListener wraps l so that at most max connections are open at once;
// the fleet hub shares it.
func LimitListener(l net.Listener, max int) net.Listener { return newLimitListener(l, max) }

func newLimitListener(l net.Listener, max int) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, max), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.sem })}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// readOnly answers 405 to everything but GET and HEAD and marks every
// answer as live data.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// healthz is 200 while the blocklist is enforced (running, or degraded: an
// old list still protects while a feed or an apply fails) and 503 otherwise,
// so a probe restarts nothing that is still doing its job.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	body, code := healthLine(s.src.Snapshot())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprint(w, body)
}

func healthLine(snap Snapshot) (string, int) {
	code := http.StatusServiceUnavailable
	if protecting(snap.State) {
		code = http.StatusOK
	}
	state := snap.State
	if state == "" {
		state = "unknown"
	}
	switch {
	case state == StateRunning:
		return "ok\n", code
	case snap.Reason == "":
		return state + "\n", code
	default:
		return state + ": " + oneLine(snap.Reason) + "\n", code
	}
}

func protecting(state string) bool {
	return state == StateRunning || state == StateDegraded
}

// oneLine keeps a multi-line reason from breaking the one-line answer.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}

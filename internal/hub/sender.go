package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/nflog"
	"github.com/sikkerapi/sikkerguard/internal/report"
	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
	"github.com/sikkerapi/sikkerguard/internal/statefile"
)

// SenderConfig configures a host's report stream to its hub.
type SenderConfig struct {
	URL       string // the hub's /v1/reports
	Token     string
	UserAgent string
	Interval  time.Duration // 0 = report.DefaultInterval
	// Filter returns false for addresses never to report (the host's
	// never-block list); non-global sources are dropped unless
	// AllowNonGlobal.
	Filter         func(netip.Addr) bool
	AllowNonGlobal bool
	MaxPending     int // events kept while the hub is away; 0 = report.DefaultMaxPending
	// StateDir keeps the events the hub has not taken yet in SpoolFile,
	// so a restart while the hub is away loses none; "" keeps them in
	// memory only.
	StateDir string
	Client   *http.Client
	Now      func() time.Time
}

type eventKey struct {
	src       netip.Addr
	port      uint16
	transport string
}

// Sender batches a host's drops into POST /v1/reports. The hub does the
// fleet-wide deduplication; the host only sums per source and port, and
// keeps what the hub did not take for the next cycle, up to MaxPending.
// It has the methods the daemon's monitor calls on a report.Reporter.
type Sender struct {
	cfg  SenderConfig
	api  *sikkerapi.Client
	path string
	log  *slog.Logger

	spool string // "" without a state directory

	flushMu sync.Mutex
	mu      sync.Mutex
	pending map[eventKey]*Event
	stats   report.Stats
}

// NewSender checks cfg. The token goes in the Authorization header only;
// redirects are followed only to the hub's own scheme, host and port.
func NewSender(cfg SenderConfig, log *slog.Logger) (*Sender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return nil, fmt.Errorf("report.hub %q: want http(s)://host[:port]/path without credentials or query", sikkerapi.RedactURL(cfg.URL))
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 60 * time.Second}
	}
	base := &url.URL{Scheme: u.Scheme, Host: u.Host}
	api, err := sikkerapi.New(sikkerapi.Options{BaseURL: base.String(), Key: cfg.Token, UserAgent: cfg.UserAgent,
		HTTPClient: cfg.Client, Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("report.hub: %w", err)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = report.DefaultInterval
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = report.DefaultMaxPending
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sender{cfg: cfg, api: api, path: u.EscapedPath(), log: log, pending: map[eventKey]*Event{}}
	if cfg.StateDir != "" {
		s.spool = filepath.Join(cfg.StateDir, SpoolFile)
		if err := s.load(); err != nil {
			log.Warn("hub report spool unreadable; its events are lost", "err", err)
		}
	}
	return s, nil
}

// SpoolFile holds a host's events that its hub has not taken yet.
const SpoolFile = "hub-report-spool.json"

// maxSpoolBytes bounds the spool read: DefaultMaxPending events of about
// 160 bytes each.
const maxSpoolBytes = 32 << 20

// load reads the spool, checked like a report body: it is state on disk,
// but a bad event must not stop every later report.
func (s *Sender) load() error {
	var data []byte
	err := statefile.Read(s.spool, func(r io.Reader) (err error) {
		data, err = io.ReadAll(io.LimitReader(r, maxSpoolBytes+1))
		if err == nil && len(data) > maxSpoolBytes {
			err = fmt.Errorf("larger than %d bytes", maxSpoolBytes)
		}
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	events, err := parseEvents(data, s.cfg.Now(), s.cfg.MaxPending)
	if err != nil {
		return fmt.Errorf("%s: %w", s.spool, err)
	}
	for _, e := range events {
		s.pending[eventKey{e.Source, e.Port, protocols[e.Protocol]}] = &e
	}
	s.stats.Pending = len(s.pending)
	return nil
}

// save writes what is pending (an empty spool when nothing is).
func (s *Sender) save() error {
	if s.spool == "" {
		return nil
	}
	s.mu.Lock()
	body := ReportBody{Events: make([]Event, 0, len(s.pending))}
	for _, e := range s.pending {
		body.Events = append(body.Events, *e)
	}
	s.mu.Unlock()
	err := statefile.WriteAtomic(s.spool, func(w io.Writer) error { return json.NewEncoder(w).Encode(body) }, 0o600)
	if err != nil {
		return fmt.Errorf("save hub report spool: %w", err)
	}
	return nil
}

// Add counts drops for the next cycle. It never blocks on the network.
func (s *Sender) Add(drops ...nflog.Count) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range drops {
		if !d.Src.IsValid() || (!s.cfg.AllowNonGlobal && !globalUnicast(d.Src)) ||
			(s.cfg.Filter != nil && !s.cfg.Filter(d.Src)) || d.Count == 0 {
			s.stats.Filtered++
			continue
		}
		port := d.Port
		if d.Transport != nflog.TransportTCP && d.Transport != nflog.TransportUDP {
			port = 0
		}
		k := eventKey{d.Src.Unmap(), port, d.Transport}
		if e := s.pending[k]; e != nil {
			e.Count += d.Count
			e.LastSeen = now
			continue
		}
		if len(s.pending) >= s.cfg.MaxPending {
			s.stats.Overflow++
			continue
		}
		s.pending[k] = &Event{Source: k.src, Port: port, Protocol: protocolOf(d.Transport), Count: d.Count,
			FirstSeen: now, LastSeen: now}
	}
	s.stats.Pending = len(s.pending)
}

func globalUnicast(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate()
}

// Run flushes every interval until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Flush(ctx); err != nil {
				s.log.Warn("drop events not sent to the hub; kept for the next cycle", "err", err)
			}
		}
	}
}

// Flush sends what is pending in requests of at most MaxReportEvents. What
// the hub did not take stays pending, and in the spool.
func (s *Sender) Flush(ctx context.Context) (err error) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	defer func() {
		if serr := s.save(); serr != nil {
			s.log.Warn("hub report spool not saved", "err", serr)
		}
	}()
	s.mu.Lock()
	batch := make([]Event, 0, len(s.pending))
	for _, e := range s.pending {
		batch = append(batch, *e)
	}
	s.mu.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), MaxReportEvents)
		if err := s.send(ctx, batch[:n]); err != nil {
			return err
		}
		s.mu.Lock()
		for _, e := range batch[:n] {
			k := eventKey{e.Source, e.Port, protocols[e.Protocol]}
			if cur := s.pending[k]; cur != nil {
				if cur.Count <= e.Count {
					delete(s.pending, k)
				} else {
					cur.Count -= e.Count // drops added while sending
				}
			}
		}
		s.stats.Sent += uint64(n)
		s.stats.LastReport = s.cfg.Now()
		s.stats.Pending = len(s.pending)
		s.mu.Unlock()
		batch = batch[n:]
	}
	return nil
}

func (s *Sender) send(ctx context.Context, events []Event) error {
	body, err := json.Marshal(ReportBody{Events: events})
	if err != nil {
		return fmt.Errorf("report to hub: %w", err)
	}
	resp, err := s.api.Do(ctx, sikkerapi.Request{Method: http.MethodPost, Path: s.path, Body: body,
		ContentType: "application/json", Accept: "application/json"})
	if err != nil {
		return fmt.Errorf("report to hub: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusBadRequest {
		// The hub will never take this batch: keeping it would block
		// every later one.
		s.mu.Lock()
		s.stats.Rejected += uint64(len(events))
		for _, e := range events {
			delete(s.pending, eventKey{e.Source, e.Port, protocols[e.Protocol]})
		}
		s.mu.Unlock()
		return errors.New("report to hub: the hub refused the batch as malformed; dropped")
	}
	if err := s.api.Check(resp, s.path, nil); err != nil {
		return fmt.Errorf("report to hub: %w", err)
	}
	return nil
}

// Stats counts what the sender did, in the reporter's terms.
func (s *Sender) Stats() report.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

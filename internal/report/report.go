// Package report sends the sources the firewall dropped to SikkerAPI's bulk
// report endpoint.
//
// Every interval the (source, service) pairs counted since the last cycle
// become report rows, unless the pair was reported in the last 24 hours
// (SikkerAPI does not deduplicate, and repeats inflate a score). Rows wait in
// a spool file in the state directory until the API has answered them, so an
// outage, a 429 or a restart loses none; a row leaves the spool once the API
// accepted or rejected it, so none is sent twice — except when the process
// dies between the API's answer and the spool write, a window of one file
// write. Rejected rows are logged and dropped, never retried.
package report

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/nflog"
	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
)

// Defaults and API limits.
const (
	DefaultInterval   = 30 * time.Minute
	DefaultDedup      = 24 * time.Hour
	DefaultCategory   = "port_scan"
	DefaultMaxPending = 100_000
	MaxRows           = 10_000 // rows per bulk request, the API's limit
	MaxProtocolLen    = 32
	MaxCommentLen     = 1000
	SpoolFile         = "report-spool.json"
	bulkPath          = "/v1/key/bulk-report"
	maxPortsInComment = 8
)

// Categories are SikkerAPI's report categories, by id from 1.
var Categories = []string{"brute_force", "port_scan", "ddos", "web_exploit", "sql_injection",
	"phishing", "spam", "bad_bot", "exploited_host", "malware", "dns_abuse", "open_proxy",
	"iot_targeted", "spoofing", "fraud", "other"}

// DefaultCategories maps services with a login to brute_force; every other
// service falls to Config.DefaultCategory. Each call returns a fresh map.
func DefaultCategories() map[string]string {
	m := map[string]string{}
	for _, s := range []string{"ssh", "telnet", "ftp", "smtp", "imap", "pop3", "mysql", "postgres",
		"postgresql", "mssql", "rdp", "redis", "mongodb", "vnc", "sip"} {
		m[s] = "brute_force"
	}
	return m
}

// Config configures a Reporter.
type Config struct {
	URL       string // API base, e.g. https://api.sikkerapi.com
	Key       string
	UserAgent string
	Interval  time.Duration // 0 = DefaultInterval
	Dedup     time.Duration // a pair reported within this is not reported again; 0 = DefaultDedup
	StateDir  string        // spool directory; "" keeps the spool in memory only

	Categories      map[string]string // service → category, over DefaultCategories
	DefaultCategory string            // "" = DefaultCategory

	// Filter returns false for addresses never to report (whitelist, our
	// own addresses). Non-global addresses are never reported unless
	// AllowNonGlobal is set (safety.strip_private: false).
	Filter         func(netip.Addr) bool
	AllowNonGlobal bool

	MaxRows    int // rows per request; 0 = MaxRows
	MaxPending int // pairs waiting for the next cycle; 0 = DefaultMaxPending
	// Client is copied, with redirects limited to the API's own scheme,
	// host and port; default: a client with a 60 s timeout.
	Client *http.Client
	Now    func() time.Time
}

// Stats counts what the reporter did since New.
type Stats struct {
	Pending    int       // rows in the spool
	Sent       uint64    // rows the API accepted
	Rejected   uint64    // rows the API rejected (logged, dropped)
	Duplicates uint64    // pairs skipped as reported within Dedup
	Filtered   uint64    // pairs never reported (filter, non-global)
	Overflow   uint64    // pairs dropped at MaxPending
	LastReport time.Time // last request the API answered with 200
	RetryAt    time.Time // no request before this (429)
}

// Row is one bulk-report row.
type Row struct {
	IP       netip.Addr `json:"ip"`
	Category string     `json:"category"`
	Protocol string     `json:"protocol,omitempty"`
	Comment  string     `json:"comment,omitempty"`
}

type pair struct {
	ip      netip.Addr
	service string
}

// entry is one (source, service) pair waiting to be reported: accumulated
// between cycles, then spooled until the API answers.
type entry struct {
	IP      netip.Addr `json:"ip"`
	Service string     `json:"service"`
	Count   uint64     `json:"count"`
	Ports   []string   `json:"ports,omitempty"` // "22/tcp", at most maxPortsInComment
	More    bool       `json:"more,omitempty"`  // more ports than listed
}

func (e *entry) key() pair { return pair{e.IP, e.Service} }

// merge adds o's packets and ports to e.
func (e *entry) merge(o *entry) {
	e.Count += o.Count
	for _, p := range o.Ports {
		e.addPort(p)
	}
	e.More = e.More || o.More
}

func (e *entry) addPort(p string) {
	if slices.Contains(e.Ports, p) {
		return
	}
	if len(e.Ports) < maxPortsInComment {
		e.Ports = append(e.Ports, p)
	} else {
		e.More = true
	}
}

// Reporter batches drops into bulk reports. Add never blocks on the network.
type Reporter struct {
	cfg        Config
	api        *sikkerapi.Client
	log        *slog.Logger
	categories map[string]string
	spool      string

	flushMu sync.Mutex // one cycle at a time

	mu      sync.Mutex
	acc     map[pair]*entry
	pending []*entry
	recent  map[pair]time.Time
	retryAt time.Time
	stats   Stats
}

// New validates cfg and loads the spool. A corrupt spool is logged and
// replaced; its rows are lost.
func New(cfg Config, log *slog.Logger) (*Reporter, error) {
	if cfg.URL == "" {
		return nil, errors.New("report: no API URL")
	}
	if cfg.Key == "" {
		return nil, errors.New("report: no API key")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Dedup <= 0 {
		cfg.Dedup = DefaultDedup
	}
	if cfg.DefaultCategory == "" {
		cfg.DefaultCategory = DefaultCategory
	}
	if cfg.MaxRows <= 0 || cfg.MaxRows > MaxRows {
		cfg.MaxRows = MaxRows
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 60 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "sikkerguard"
	}
	api, err := sikkerapi.New(sikkerapi.Options{BaseURL: cfg.URL, Key: cfg.Key, UserAgent: cfg.UserAgent,
		HTTPClient: cfg.Client, Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	cats := DefaultCategories()
	maps.Copy(cats, cfg.Categories)
	if !slices.Contains(Categories, cfg.DefaultCategory) {
		return nil, fmt.Errorf("report: unknown default category %q", cfg.DefaultCategory)
	}
	for svc, c := range cats {
		if !slices.Contains(Categories, c) {
			return nil, fmt.Errorf("report: service %q: unknown category %q", svc, c)
		}
	}
	r := &Reporter{cfg: cfg, api: api, log: log, categories: cats, acc: map[pair]*entry{}, recent: map[pair]time.Time{}}
	if cfg.StateDir != "" {
		r.spool = filepath.Join(cfg.StateDir, SpoolFile)
		if err := r.load(); err != nil {
			log.Warn("report spool ignored", "path", r.spool, "err", err)
			r.acc, r.pending, r.recent, r.retryAt = map[pair]*entry{}, nil, map[pair]time.Time{}, time.Time{}
		}
	}
	r.stats.Pending = len(r.pending)
	return r, nil
}

// allowed tells whether ip may be reported at all.
func (r *Reporter) allowed(ip netip.Addr) bool {
	if !ip.IsValid() || (!r.cfg.AllowNonGlobal && !ipnet.IsGlobal(ip)) {
		return false
	}
	return r.cfg.Filter == nil || r.cfg.Filter(ip)
}

// Add records drops (an aggregator window) for the next cycle.
func (r *Reporter) Add(drops ...nflog.Count) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range drops {
		ip := d.Src.Unmap()
		if !r.allowed(ip) {
			r.stats.Filtered++
			continue
		}
		k := pair{ip, d.Service}
		a := r.acc[k]
		if a == nil {
			if len(r.acc) >= r.cfg.MaxPending {
				r.stats.Overflow++
				continue
			}
			a = &entry{IP: ip, Service: d.Service}
			r.acc[k] = a
		}
		a.Count += d.Count
		if d.Transport == nflog.TransportTCP || d.Transport == nflog.TransportUDP {
			a.addPort(strconv.Itoa(int(d.Port)) + "/" + strings.ToLower(d.Transport))
		}
	}
}

// Category returns the report category of a service.
func (r *Reporter) Category(service string) string {
	if c, ok := r.categories[service]; ok {
		return c
	}
	return r.cfg.DefaultCategory
}

// row builds the report row of one pair.
func (r *Reporter) row(a *entry) Row {
	proto := a.Service
	switch proto {
	case nflog.ServiceUnknown, nflog.ServiceOther, nflog.ServiceICMP, nflog.ServiceICMPv6:
		// Not a service name SikkerAPI knows; the comment says what it was.
		proto = ""
	}
	if len(proto) > MaxProtocolLen {
		proto = proto[:MaxProtocolLen]
	}
	var what string
	switch {
	case len(a.Ports) == 1 && !a.More:
		what = "packets to port " + a.Ports[0]
	case len(a.Ports) > 0:
		what = "packets to ports " + strings.Join(a.Ports, ", ")
		if a.More {
			what += " and more"
		}
	default:
		what = a.Service + " packets"
	}
	return Row{IP: a.IP, Category: r.Category(a.Service), Protocol: proto,
		Comment: fmt.Sprintf("sikkerguard: %d %s dropped", a.Count, what)}
}

// Run reports every Interval until ctx ends, then saves the spool. A 429
// moves the next attempt to its Retry-After when that comes earlier.
func (r *Reporter) Run(ctx context.Context) {
	defer func() {
		if err := r.save(); err != nil {
			r.log.Warn("report spool not saved", "err", err)
		}
	}()
	for {
		wait := r.cfg.Interval
		r.mu.Lock()
		if d := r.retryAt.Sub(r.cfg.Now()); d > 0 && d < wait && len(r.pending) > 0 {
			wait = d
		}
		r.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := r.Flush(ctx); err != nil {
			r.log.Warn("report failed, rows kept for the next attempt", "err", err)
		}
	}
}

// ErrRetryLater is returned by Flush while a 429's Retry-After runs.
var ErrRetryLater = errors.New("report quota exhausted")

// Flush runs one cycle now: the pairs added since the last cycle join the
// spool, and the spool is sent in requests of at most MaxRows rows.
func (r *Reporter) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	now := r.cfg.Now()
	r.enqueueLocked(now)
	retryAt := r.retryAt
	r.mu.Unlock()
	if err := r.save(); err != nil {
		return err
	}
	if now.Before(retryAt) {
		return fmt.Errorf("%w: retry after %s", ErrRetryLater, retryAt.UTC().Format(time.RFC3339))
	}
	for {
		r.mu.Lock()
		n := min(len(r.pending), r.cfg.MaxRows)
		batch := make([]Row, n)
		for i, e := range r.pending[:n] {
			batch[i] = r.row(e)
		}
		r.mu.Unlock()
		if len(batch) == 0 {
			return nil
		}
		err := r.send(ctx, batch)
		if serr := r.save(); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			return err
		}
	}
}

// enqueueLocked turns the accumulated pairs into spooled rows.
func (r *Reporter) enqueueLocked(now time.Time) {
	for k, at := range r.recent {
		if now.Sub(at) >= r.cfg.Dedup {
			delete(r.recent, k)
		}
	}
	index := make(map[pair]*entry, len(r.pending))
	for _, e := range r.pending {
		index[e.key()] = e
	}
	keys := slices.SortedFunc(maps.Keys(r.acc), func(x, y pair) int {
		return cmp.Or(x.ip.Compare(y.ip), cmp.Compare(x.service, y.service))
	})
	for _, k := range keys {
		a := r.acc[k]
		switch at, ok := r.recent[k]; {
		case ok && now.Sub(at) < r.cfg.Dedup:
			r.stats.Duplicates++
			continue
		case !r.allowed(k.ip):
			// The whitelist may have grown since Add.
			r.stats.Filtered++
			continue
		}
		if e, ok := index[k]; ok {
			// Still waiting from an earlier cycle: one row, with the new
			// packets counted in.
			e.merge(a)
			continue
		}
		if len(r.pending) >= r.cfg.MaxPending {
			r.stats.Overflow++
			continue
		}
		index[k] = a
		r.pending = append(r.pending, a)
	}
	clear(r.acc)
	r.stats.Pending = len(r.pending)
}

// bulkResult is the API's answer to a bulk report.
type bulkResult struct {
	Total    int        `json:"total"`
	Accepted int        `json:"accepted"`
	Rejected int        `json:"rejected"`
	Errors   []rowError `json:"errors"`
}

// send posts batch (the head of the spool) and settles it.
func (r *Reporter) send(ctx context.Context, batch []Row) error {
	body, err := json.Marshal(struct {
		Reports []Row `json:"reports"`
	}{batch})
	if err != nil {
		return fmt.Errorf("encode bulk report: %w", err)
	}
	resp, err := r.api.Do(ctx, sikkerapi.Request{Method: http.MethodPost, Path: bulkPath, Body: body,
		ContentType: "application/json", Accept: "application/json"})
	if err != nil {
		return fmt.Errorf("bulk report: %w", err)
	}
	defer resp.Body.Close()
	now := r.cfg.Now()
	if err := r.api.Check(resp, bulkPath, sikkerapi.ParseQuota(resp.Header, now)); err != nil {
		return r.refused(err, resp, batch, now)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	var res bulkResult
	if err := json.Unmarshal(msg, &res); err != nil {
		// Answered 200: the rows reached the API, so sending them again
		// would double them.
		r.log.Warn("bulk report answer unreadable, rows taken as sent", "rows", len(batch), "err", err)
		r.settle(batch, nil, now, true)
		return nil
	}
	base := rowBase(batch, res.Errors)
	rejected := make(map[int]string, len(res.Errors))
	for _, e := range res.Errors {
		why := r.api.ScrubText(sikkerapi.Printable(e.Error, 200))
		i := matchRow(batch, e.Row-base, e.IP, rejected)
		if i < 0 {
			r.log.Warn("report row rejected", "row", e.Row, "ip", r.api.ScrubText(sikkerapi.Printable(e.IP, 60)), "err", why)
			continue
		}
		rejected[i] = why
		r.log.Warn("report row rejected", "ip", batch[i].IP, "protocol", batch[i].Protocol, "category", batch[i].Category, "err", why)
	}
	r.settle(batch, rejected, now, true)
	return nil
}

// rowError is one rejected row of a bulk answer.
type rowError = struct {
	Row   int    `json:"row"`
	IP    string `json:"ip"`
	Error string `json:"error"`
}

// rowBase guesses whether the answer counts rows from 0 or 1 (the API does
// not say): the base under which every error's row holds its address wins,
// 0 when both or neither fit.
func rowBase(batch []Row, errs []rowError) int {
	fits := func(base int) bool {
		for _, e := range errs {
			i := e.Row - base
			a, err := ipnet.ParseAddr(e.IP)
			if err != nil || i < 0 || i >= len(batch) || batch[i].IP != a {
				return false
			}
		}
		return true
	}
	if !fits(0) && fits(1) {
		return 1
	}
	return 0
}

// matchRow finds the batch row an error names: the row at index i when its
// address agrees, else the first row with that address not yet matched.
func matchRow(batch []Row, i int, ip string, taken map[int]string) int {
	addr, err := ipnet.ParseAddr(ip) // unmapped
	if err != nil {
		return -1
	}
	if _, dup := taken[i]; i >= 0 && i < len(batch) && !dup && batch[i].IP == addr {
		return i
	}
	for j, b := range batch {
		if _, dup := taken[j]; !dup && b.IP == addr {
			return j
		}
	}
	return -1
}

// settle removes batch from the head of the spool; answered rows count as
// reported for Dedup, rejected ones too so that they are not retried.
func (r *Reporter) settle(batch []Row, rejected map[int]string, now time.Time, answered bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.pending[:len(batch)] {
		r.recent[e.key()] = now
		if _, bad := rejected[i]; bad || !answered {
			r.stats.Rejected++
		} else {
			r.stats.Sent++
		}
	}
	r.pending = slices.Delete(r.pending, 0, len(batch))
	if answered {
		r.stats.LastReport = now
	}
	r.stats.Pending = len(r.pending)
}

// refused settles a non-2xx answer. err comes from sikkerapi.Client.Check,
// so its text is already scrubbed of the key.
func (r *Reporter) refused(err error, resp *http.Response, batch []Row, now time.Time) error {
	var (
		qe *sikkerapi.QuotaError
		se *sikkerapi.StatusError
	)
	switch {
	case errors.As(err, &qe):
		at := retryAfter(resp.Header.Get("Retry-After"), now, r.cfg.Interval)
		r.mu.Lock()
		r.retryAt = at
		r.stats.RetryAt = at
		r.mu.Unlock()
		return fmt.Errorf("%w: retry after %s", ErrRetryLater, at.UTC().Format(time.RFC3339))
	case errors.As(err, &se) && se.Status != http.StatusRequestTimeout && se.Status < 500:
		// The API refused the request as such; the same bytes would be
		// refused again.
		r.log.Error("bulk report refused, rows dropped", "status", se.Status, "rows", len(batch), "err", err)
		r.settle(batch, nil, now, false)
		return nil
	default:
		// 401, 403, 408, 5xx: the key may be fixed by a reload, the server
		// may come back.
		return fmt.Errorf("bulk report: %w", err)
	}
}

// retryAfter reads a Retry-After header, clamped to sikkerapi.MaxRetryAfter.
// Without a usable value the next attempt waits one interval.
func retryAfter(h string, now time.Time, fallback time.Duration) time.Time {
	if at, ok := sikkerapi.RetryAfter(h, now); ok {
		return at
	}
	return now.Add(fallback)
}

// Stats returns the counters.
func (r *Reporter) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

package feed

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
)

// Paths and defaults of the SikkerAPI.
const (
	DefaultBaseURL       = sikkerapi.DefaultBaseURL
	BlacklistPath        = "/v1/key/blacklist"
	StatusPath           = "/v1/key/status"
	DefaultSikkerTimeout = 60 * time.Second // the official CLI's; large lists are slow

	FormatPlaintext = "plaintext"
	FormatJSON      = "json"
)

// SikkerOptions configures the SikkerAPI blacklist client. Filters left at
// their zero value are not sent, so the server's defaults apply.
type SikkerOptions struct {
	Name    string // feed name, default "sikkerapi"
	BaseURL string // default DefaultBaseURL
	// Key is sent only as "Authorization: Bearer <key>".
	Key string

	ScoreMin        int      // 1..100; 0 = server default (50)
	Limit           int      // 0 = the tier's limit
	IPVersion       string   // "4", "6", "mixed" or "" (= mixed)
	Protocols       []string // e.g. ssh, http
	OnlyCountries   []string // ISO 3166 alpha-2
	ExceptCountries []string
	OnlyASN         []string // "AS12345" or "12345"
	ExceptASN       []string
	MinSeverity     string // very_high | high | medium | low | ""
	IgnoreWhitelist bool

	Format      string // FormatPlaintext (default) or FormatJSON
	KeepEntries bool   // keep per-address details of a JSON answer
	// SeenBounds, when set, make a JSON answer carry a SeenSummary of its
	// entries' lastSeen in buckets of these upper bounds, in a fixed size
	// instead of the per-address details of KeepEntries.
	SeenBounds   []time.Duration
	Timeout      time.Duration // whole request including body; default 60 s
	MaxBodyBytes int64         // default DefaultMaxBodyBytes
	Limits       Limits
	Garbage      GarbagePolicy
	UserAgent    string // "sikkerguard/<version> (+https://sikkerapi.com)"

	// HTTPClient is copied, with redirects limited to the API's own scheme,
	// host and port. Default: a client without its own timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger     // default: discard
	Now        func() time.Time // default time.Now
}

// Sikker is the SikkerAPI blacklist Source. It is safe for concurrent use.
type Sikker struct {
	opt   SikkerOptions
	api   *sikkerapi.Client
	query url.Values
	log   *slog.Logger

	mu      sync.Mutex
	blocked *QuotaError // last 429 of the blacklist endpoint, until RetryAt
}

var severities = map[string]bool{"": true, "very_high": true, "high": true, "medium": true, "low": true}

// NewSikker validates opt and returns a client. Errors name the option.
func NewSikker(opt SikkerOptions) (*Sikker, error) {
	if opt.Name == "" {
		opt.Name = "sikkerapi"
	}
	if err := ValidName(opt.Name); err != nil {
		return nil, err
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	api, err := sikkerapi.New(sikkerapi.Options{BaseURL: opt.BaseURL, Key: opt.Key, UserAgent: opt.UserAgent,
		HTTPClient: opt.HTTPClient, Now: opt.Now})
	if err != nil {
		return nil, fmt.Errorf("sikkerapi: %w", err)
	}
	if opt.ScoreMin < 0 || opt.ScoreMin > 100 {
		return nil, fmt.Errorf("sikkerapi: score minimum %d out of range 1..100", opt.ScoreMin)
	}
	if opt.Limit < 0 {
		return nil, fmt.Errorf("sikkerapi: negative limit %d", opt.Limit)
	}
	switch opt.IPVersion {
	case "", "4", "6", "mixed":
	default:
		return nil, fmt.Errorf("sikkerapi: ip version %q: want 4, 6 or mixed", opt.IPVersion)
	}
	if !severities[opt.MinSeverity] {
		return nil, fmt.Errorf("sikkerapi: min severity %q: want very_high, high, medium or low", opt.MinSeverity)
	}
	switch opt.Format {
	case "":
		opt.Format = FormatPlaintext
	case FormatPlaintext, FormatJSON:
	default:
		return nil, fmt.Errorf("sikkerapi: format %q: want plaintext or json", opt.Format)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultSikkerTimeout
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	q, err := blacklistQuery(opt)
	if err != nil {
		return nil, err
	}
	return &Sikker{opt: opt, api: api, query: q, log: opt.Logger.With("feed", opt.Name)}, nil
}

func blacklistQuery(opt SikkerOptions) (url.Values, error) {
	q := url.Values{}
	if opt.ScoreMin > 0 {
		q.Set("scoreMinimum", strconv.Itoa(opt.ScoreMin))
	}
	if opt.Limit > 0 {
		q.Set("limit", strconv.Itoa(opt.Limit))
	}
	if opt.Format == FormatPlaintext {
		q.Set("plaintext", "true")
	}
	if opt.IgnoreWhitelist {
		q.Set("ignoreWhitelist", "true")
	}
	// "mixed" is the server's default; leaving it out keeps the URL minimal.
	if opt.IPVersion == "4" || opt.IPVersion == "6" {
		q.Set("ipVersion", opt.IPVersion)
	}
	if opt.MinSeverity != "" {
		q.Set("minSeverity", opt.MinSeverity)
	}
	lists := []struct {
		param string
		vals  []string
		norm  func(string) (string, error)
	}{
		{"protocols", opt.Protocols, normProtocol},
		{"onlyCountries", opt.OnlyCountries, normCountry},
		{"exceptCountries", opt.ExceptCountries, normCountry},
		{"onlyAsn", opt.OnlyASN, normASN},
		{"exceptAsn", opt.ExceptASN, normASN},
	}
	for _, l := range lists {
		if len(l.vals) == 0 {
			continue
		}
		out := make([]string, 0, len(l.vals))
		for _, v := range l.vals {
			n, err := l.norm(v)
			if err != nil {
				return nil, fmt.Errorf("sikkerapi: %s: %w", l.param, err)
			}
			out = append(out, n)
		}
		q.Set(l.param, strings.Join(out, ","))
	}
	return q, nil
}

func normProtocol(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || len(s) > 32 || strings.ContainsAny(s, ", \t") {
		return "", fmt.Errorf("invalid protocol %q", s)
	}
	return s, nil
}

func normCountry(s string) (string, error) {
	c := strings.ToUpper(strings.TrimSpace(s))
	if len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
		return "", fmt.Errorf("invalid country code %q: want two letters (ISO 3166)", s)
	}
	return c, nil
}

// normASN accepts "AS123", "as123" and "123" and sends the documented
// "AS123" form.
func normASN(s string) (string, error) {
	n, ok := parseASN(s)
	if !ok || n == 0 {
		return "", fmt.Errorf("invalid asn %q: want AS12345 or 12345", s)
	}
	return "AS" + strconv.FormatUint(uint64(n), 10), nil
}

func parseASN(s string) (uint32, bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && strings.EqualFold(s[:2], "AS") {
		s = s[2:]
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// Name implements Source.
func (c *Sikker) Name() string { return c.opt.Name }

// BlacklistURL is the request URL. It never holds the key and is safe to log.
func (c *Sikker) BlacklistURL() string { return c.api.URL(BlacklistPath, c.query) }

// RetryAt returns when the blacklist endpoint may be called again after a
// 429, or the zero time when it is not blocked.
func (c *Sikker) RetryAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocked == nil || !c.opt.Now().Before(c.blocked.RetryAt) {
		return time.Time{}
	}
	return c.blocked.RetryAt
}

// Fetch downloads the blacklist. See the package comment for the errors.
func (c *Sikker) Fetch(ctx context.Context) (*Snapshot, error) {
	if err := c.quotaBlock(); err != nil {
		return nil, err
	}
	snap, err := c.fetch(ctx)
	if err != nil {
		return nil, c.api.Scrub(fmt.Errorf("fetch %s: %w", c.opt.Name, err))
	}
	return snap, nil
}

// quotaBlock returns the standing 429, if any, without a request.
func (c *Sikker) quotaBlock() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocked == nil {
		return nil
	}
	now := c.opt.Now()
	if !now.Before(c.blocked.RetryAt) {
		c.blocked = nil
		return nil
	}
	e := *c.blocked
	e.Skipped = true
	e.RetryAfter = e.RetryAt.Sub(now)
	return fmt.Errorf("fetch %s: %w", c.opt.Name, &e)
}

func (c *Sikker) fetch(ctx context.Context) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	resp, err := c.do(ctx, BlacklistPath, c.query)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	now := c.opt.Now()
	quota := sikkerapi.ParseQuota(resp.Header, now)
	c.logQuota(quota)
	if err := c.statusError(resp, BlacklistPath, quota); err != nil {
		return nil, err
	}

	body, err := newLimitedBody(resp, c.opt.MaxBodyBytes)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Name: c.opt.Name, FetchedAt: now, Origin: c.BlacklistURL(), Quota: quota}
	br := bufio.NewReaderSize(body, 64<<10)
	if looksJSON(br) {
		err = c.parseJSON(br, snap)
	} else {
		err = c.parsePlain(br, snap)
	}
	if err != nil {
		return nil, c.bodyError(ctx, err)
	}
	snap.QuotaCut = quotaCut(quota, snap.Stats.Entries, c.opt.Limit)
	v4, v6 := snap.Set.Len()
	c.log.Debug("blacklist fetched", "entries", snap.Stats.Entries, "malformed", snap.Stats.Malformed,
		"ranges_v4", v4, "ranges_v6", v6, "bytes", body.n)
	return snap, nil
}

// looksJSON sniffs the body instead of trusting the request: whether the
// server honours plaintext=true in every case is not documented.
func looksJSON(br *bufio.Reader) bool {
	for i := 1; i <= 512; i++ {
		p, _ := br.Peek(i)
		if len(p) < i {
			return false
		}
		switch b := p[i-1]; b {
		case ' ', '\t', '\r', '\n', 0xef, 0xbb, 0xbf: // whitespace, UTF-8 BOM
			continue
		default:
			return b == '{' || b == '['
		}
	}
	return false
}

func (c *Sikker) parsePlain(r io.Reader, snap *Snapshot) error {
	set, st, err := ipnet.Parse(r, c.opt.Limits.parseOptions())
	if err != nil {
		return err
	}
	if err := c.opt.Garbage.check(st, false); err != nil {
		return err
	}
	set.Merge()
	snap.Set, snap.Stats = set, st
	return nil
}

func (c *Sikker) parseJSON(r io.Reader, snap *Snapshot) error {
	res, err := parseJSONList(r, c.opt.KeepEntries, c.opt.Limits, NewSeenSummary(snap.FetchedAt, c.opt.SeenBounds))
	if err != nil {
		return err
	}
	if err := c.opt.Garbage.check(res.stats, false); err != nil {
		return err
	}
	if res.metaCount >= 0 && res.metaCount != res.stats.Lines {
		c.log.Debug("blacklist meta count differs from data rows", "meta_count", res.metaCount, "rows", res.stats.Lines)
	}
	res.set.Merge()
	snap.Set, snap.Stats, snap.Entries, snap.Seen = res.set, res.stats, res.entries, res.seen
	if sn := res.seen; sn != nil && sn.Missing+sn.Invalid+sn.Future > 0 {
		// The rows are in the list all the same; only their dates are left out.
		lvl := slog.LevelDebug
		if sn.Invalid+sn.Future > 0 {
			lvl = slog.LevelWarn
		}
		c.log.Log(context.Background(), lvl, "blacklist rows without a usable lastSeen", "missing", sn.Missing,
			"invalid", sn.Invalid, "future", sn.Future, "dated", sn.Dated())
	}
	return nil
}

// bodyError classifies a failure while reading the body.
func (c *Sikker) bodyError(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ErrTooLarge) {
		return c.ctxError(ctx, err)
	}
	return err
}

func (c *Sikker) ctxError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return retryable(fmt.Errorf("timed out after %s: %w", c.opt.Timeout, err))
	}
	return err
}

// do sends one authenticated GET.
func (c *Sikker) do(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	c.log.Debug("sikkerapi request", "url", c.api.URL(path, q))
	resp, err := c.api.Do(ctx, sikkerapi.Request{Path: path, Query: q, Accept: "text/plain, application/json"})
	if err != nil && ctx.Err() != nil {
		return nil, c.ctxError(ctx, err)
	}
	return resp, err
}

// statusError maps a non-2xx answer to an error (see sikkerapi.Client.Check).
// A 429 on the blacklist endpoint also blocks further requests until
// Retry-After.
func (c *Sikker) statusError(resp *http.Response, path string, quota *Quota) error {
	err := c.api.Check(resp, path, quota)
	var qe *QuotaError
	if errors.As(err, &qe) && path == BlacklistPath {
		c.mu.Lock()
		c.blocked = qe
		c.mu.Unlock()
		c.log.Warn("blacklist quota exhausted", "retry_at", qe.RetryAt.UTC().Format(time.RFC3339))
	}
	return err
}

// quotaCut reports whether a list of n entries was cut by the quota: the
// response used up what was left (Remaining 0) and holds fewer entries
// than the request could get (the limit asked for, or the day's quota).
// A list that happens to end exactly at the quota is flagged too; refusing
// it only keeps the list in force until the next pull.
func quotaCut(q *Quota, n, limit int) bool {
	if q == nil || q.Remaining != 0 {
		return false
	}
	asked := q.Limit
	if limit > 0 && (asked < 0 || int64(limit) < asked) {
		asked = int64(limit)
	}
	return asked < 0 || int64(n) < asked
}

func (c *Sikker) logQuota(q *Quota) {
	if q == nil {
		return
	}
	c.log.Debug("sikkerapi quota", "family", q.Family, "limit", q.Limit, "used", q.Used,
		"remaining", q.Remaining, "reset", q.Reset)
}

// KeyStatus is the answer of GET /v1/key/status.
type KeyStatus struct {
	TierID   string
	TierName string
	Quotas   map[string]QuotaUsage // lookups, reports, blacklist, taxii
	Alerts   json.RawMessage
}

// QuotaUsage is one endpoint's daily quota.
type QuotaUsage struct {
	Used      int64 `json:"used"`
	Limit     int64 `json:"limit"`
	Remaining int64 `json:"remaining"`
}

// Status queries the key's tier and quotas. It costs no blacklist quota and
// is not blocked by a blacklist 429.
func (c *Sikker) Status(ctx context.Context) (*KeyStatus, error) {
	st, err := c.status(ctx)
	if err != nil {
		return nil, c.api.Scrub(fmt.Errorf("sikkerapi status: %w", err))
	}
	return st, nil
}

func (c *Sikker) status(ctx context.Context) (*KeyStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	resp, err := c.do(ctx, StatusPath, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := c.statusError(resp, StatusPath, sikkerapi.ParseQuota(resp.Header, c.opt.Now())); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, c.bodyError(ctx, err)
	}
	var doc struct {
		Tier struct {
			ID   json.RawMessage `json:"id"`
			Name string          `json:"name"`
		} `json:"tier"`
		Quotas map[string]QuotaUsage `json:"quotas"`
		Alerts json.RawMessage       `json:"alerts"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%w: status is not valid json: %w", ErrGarbage, err)
	}
	// The tier id may be a number or a string.
	id := strings.Trim(string(bytes.TrimSpace(doc.Tier.ID)), `"`)
	if id == "null" {
		id = ""
	}
	return &KeyStatus{TierID: id, TierName: doc.Tier.Name, Quotas: doc.Quotas, Alerts: doc.Alerts}, nil
}

// Package sikkerapi is the one HTTP client of SikkerAPI's key-authenticated
// endpoints: the blacklist pull (internal/feed) and the bulk report
// (internal/report) both send through it, so what must hold on every call is
// written once:
//
//   - the key travels only as "Authorization: Bearer <key>", never in a URL;
//   - redirects are followed only to the same scheme, host and port, so the
//     key never reaches another server or crosses the network in clear text;
//   - every request names the product in its User-Agent;
//   - a non-2xx answer becomes a typed error (ErrKeyRejected,
//     ErrKeyDisabled, *QuotaError, *StatusError) whose message is a short,
//     printable extract of the server's body;
//   - Retry-After is clamped to MaxRetryAfter, and quota headers of every
//     known family are read as hints;
//   - every error the client returns is scrubbed of the key, whatever the
//     server echoed or a lower layer put in it.
//
// It also holds the parts URL feeds share with it: the no-downgrade
// redirect policy and URL redaction.
package sikkerapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultBaseURL is SikkerAPI's address.
const DefaultBaseURL = "https://api.sikkerapi.com"

// maxErrorBody is how much of an error answer is read for its message.
const maxErrorBody = 16 << 10

// Options configures a Client.
type Options struct {
	BaseURL   string // default DefaultBaseURL
	Key       string // sent only in the Authorization header
	UserAgent string
	// HTTPClient is copied; its redirect policy is replaced by
	// SameOriginRedirects. Default: a client without its own timeout.
	HTTPClient *http.Client
	Now        func() time.Time // default time.Now
}

// Client sends authenticated requests to SikkerAPI. It is safe for
// concurrent use.
type Client struct {
	base *url.URL
	key  string
	ua   string
	hc   *http.Client
	now  func() time.Time
}

// New validates opt. Errors never contain the key.
func New(opt Options) (*Client, error) {
	if opt.BaseURL == "" {
		opt.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(opt.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("base url %q: want http(s)://host[:port]", RedactURL(opt.BaseURL))
	}
	if base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("base url %q must not carry credentials, a query or a fragment (the key goes in the Authorization header)", RedactURL(opt.BaseURL))
	}
	base.Path = strings.TrimRight(base.Path, "/")
	if strings.TrimSpace(opt.Key) == "" {
		return nil, errors.New("no api key")
	}
	if strings.ContainsAny(opt.Key, " \t\r\n") {
		return nil, errors.New("api key contains whitespace")
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Client{base: base, key: opt.Key, ua: opt.UserAgent,
		hc: WithRedirects(opt.HTTPClient, SameOriginRedirects), now: opt.Now}, nil
}

// URL is the address of path with query q. It never holds the key and is
// safe to log.
func (c *Client) URL(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	return u.String()
}

// Request is one call.
type Request struct {
	Method      string // default GET
	Path        string // e.g. /v1/key/blacklist
	Query       url.Values
	Body        []byte
	ContentType string // of Body
	Accept      string
}

// Do sends r with the key and User-Agent. Network failures are retryable;
// a refused redirect is not. The caller closes the body; Check turns a
// non-2xx answer into an error.
func (c *Client) Do(ctx context.Context, r Request) (*http.Response, error) {
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, c.URL(r.Path, r.Query), body)
	if err != nil {
		return nil, c.Scrub(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if c.ua != "" {
		req.Header.Set("User-Agent", c.ua)
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	if r.Accept != "" {
		req.Header.Set("Accept", r.Accept)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, ErrRedirectRefused) || ctx.Err() != nil {
			return nil, c.Scrub(err)
		}
		return nil, c.Scrub(MarkRetryable(err))
	}
	return resp, nil
}

// Check maps a non-2xx answer to an error, reading a bounded prefix of the
// body for the server's message: 401 and 403 wrap ErrKeyRejected and
// ErrKeyDisabled, 429 is a *QuotaError with Retry-After clamped, 5xx a
// retryable *StatusError, any other a *StatusError. quota may be nil.
func (c *Client) Check(resp *http.Response, path string, quota *Quota) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := c.ScrubText(ErrorMessage(raw))
	now := c.now()
	switch code := resp.StatusCode; {
	case code == http.StatusUnauthorized:
		return withMessage(ErrKeyRejected, msg)
	case code == http.StatusForbidden:
		return withMessage(ErrKeyDisabled, msg)
	case code == http.StatusTooManyRequests:
		at := ParseRetryAfter(resp.Header.Get("Retry-After"), now)
		return &QuotaError{Endpoint: path, RetryAt: at, RetryAfter: at.Sub(now), Message: msg, Quota: quota}
	case code >= 500:
		return MarkRetryable(&StatusError{Status: code, Message: msg})
	default:
		return &StatusError{Status: code, Message: msg}
	}
}

// Now is the client's clock.
func (c *Client) Now() time.Time { return c.now() }

func withMessage(base error, msg string) error {
	if msg == "" {
		return base
	}
	return fmt.Errorf("%w (server said: %s)", base, msg)
}

// Scrub guarantees the key never leaves in an error text, whatever a lower
// layer or the server put there.
func (c *Client) Scrub(err error) error { return replaceAll(err, "[redacted]", c.key) }

// ScrubText removes the key from s.
func (c *Client) ScrubText(s string) string { return strings.ReplaceAll(s, c.key, "[redacted]") }

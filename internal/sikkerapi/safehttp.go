package sikkerapi

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// maxRedirects bounds a chain of redirects; net/http's default is 10.
const maxRedirects = 5

// SameOriginRedirects is the redirect policy of authenticated requests. It
// follows a redirect only to the same scheme, host and port as the first
// request: net/http keeps the Authorization header on a redirect to the
// same host on another port or scheme, so an https → http redirect would
// otherwise send the key in clear text.
func SameOriginRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirectRefused, maxRedirects)
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(hostPort(req.URL), hostPort(first)) {
		return fmt.Errorf("%w: %s is not %s://%s, where the key may go", ErrRedirectRefused,
			RedactURL(req.URL.String()), first.Scheme, first.Host)
	}
	return nil
}

// NoDowngradeRedirects is the redirect policy of plain URL feeds: any host
// may serve the list, but a chain that started on https stays on https, so
// the validators and any token in the URL are not sent in clear text.
func NoDowngradeRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirectRefused, maxRedirects)
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: https feed redirected to %s", ErrRedirectRefused, RedactURL(req.URL.String()))
	}
	return nil
}

// WithRedirects returns a copy of c (nil: a new client without its own
// timeout) that follows redirects by policy. The caller's client is left
// as it is.
func WithRedirects(c *http.Client, policy func(*http.Request, []*http.Request) error) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	}
	out.CheckRedirect = policy
	return &out
}

func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// SendsKeyInClear reports whether an api.url sends the key over the network
// without TLS: plain http to anything but a loopback address or localhost.
// The daemon warns about it at start.
func SendsKeyInClear(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || !strings.EqualFold(u.Scheme, "http") {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err != nil || !a.Unmap().IsLoopback()
}

// secretParams are query parameters whose values are treated as
// credentials when a URL is logged, saved or put in an error.
var secretParams = []string{"key", "token", "secret", "password", "passwd", "auth", "sig", "credential", "session"}

func isSecretParam(name string) bool {
	ln := strings.ToLower(name)
	for _, s := range secretParams {
		if strings.Contains(ln, s) {
			return true
		}
	}
	return false
}

// RedactURL removes user info and hides credential-like query values
// (?token=REDACTED), so that the result can be logged, saved in a cache
// header and shown on D-Bus and the health endpoint.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable url)"
	}
	u.User = nil
	if u.RawQuery != "" {
		q := u.Query()
		for name := range q {
			if isSecretParam(name) {
				q[name] = []string{"REDACTED"}
			}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// URLRedactor removes one URL's credentials from error texts: its user
// info, its credential-like query values, and the whole URL of any
// *url.Error, which net/http fills with the URL as requested.
type URLRedactor struct{ secrets []string }

// NewURLRedactor collects the secrets of raw.
func NewURLRedactor(raw string) *URLRedactor {
	r := &URLRedactor{}
	u, err := url.Parse(raw)
	if err != nil {
		return r
	}
	if u.User != nil {
		r.add(u.User.Username())
		if pw, ok := u.User.Password(); ok {
			r.add(pw)
		}
		r.add(u.User.String())
	}
	for name, vals := range u.Query() {
		if isSecretParam(name) {
			for _, v := range vals {
				r.add(v)
				r.add(url.QueryEscape(v))
			}
		}
	}
	return r
}

// add keeps values long enough that replacing them cannot garble ordinary
// words of a message.
func (r *URLRedactor) add(s string) {
	if len(s) >= 3 {
		r.secrets = append(r.secrets, s)
	}
}

// Error returns err with every URL in a *url.Error redacted and the
// secrets replaced by REDACTED; err itself when nothing was found.
func (r *URLRedactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := msg
	var ue *url.Error
	for e := err; errors.As(e, &ue); e = ue.Err {
		out = strings.ReplaceAll(out, ue.URL, RedactURL(ue.URL))
	}
	for _, s := range r.secrets {
		out = strings.ReplaceAll(out, s, "REDACTED")
	}
	if out == msg {
		return err
	}
	return &scrubbedError{msg: out, err: err}
}

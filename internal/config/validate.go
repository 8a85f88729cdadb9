package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
)

// Protocols lists the honeypot protocol names SikkerAPI accepts in its
// protocols filter.
var Protocols = []string{
	"ssh", "http", "ftp", "smtp", "mysql", "postgresql", "postgres", "mongodb", "redis",
	"docker", "telnet", "elasticsearch", "mssql", "imap", "smb", "rtsp", "sip", "rdp",
}

// Severities lists the accepted values of api.min_severity besides "".
var Severities = []string{"very_high", "high", "medium", "low"}

// Bounds that are not spelled out in the user contract. URL feeds are polled
// at most hourly because public lists ask for that and ban faster pollers; a
// local file is cheap to re-read, so it may be checked every minute. A week
// is the longest a list can go unrefreshed and still be worth blocking on.
const (
	MinURLFeedInterval  = time.Hour
	MinFileFeedInterval = time.Minute
	MaxFeedInterval     = 7 * 24 * time.Hour
	MaxFeedNameLen      = 32
	MaxEntriesLimit     = 100_000_000
)

var (
	reFeedName    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	reServiceName = regexp.MustCompile(`^[a-z0-9_-]+$`)
)

// Validate normalises c in place (case of countries, ASNs, hooks, enum values)
// and checks every rule, returning a *ValidationError that lists every
// problem with its field path, or nil.
func (c *Config) Validate() error {
	return c.validate().err()
}

func (c *Config) validate() problems {
	var p problems
	c.validateAPI(&p)
	c.validateFeeds(&p)
	c.validateFirewall(&p)
	for i, w := range c.Whitelist {
		if !w.IsValid() {
			p.add(fmt.Sprintf("whitelist[%d]", i), "not a valid IP address or CIDR")
		}
	}
	c.validateSafety(&p)
	c.validateReport(&p)
	c.validateHealth(&p)
	c.validateHub(&p)
	if !filepath.IsAbs(c.StateDir) {
		p.add("state_dir", "%q is not an absolute path", c.StateDir)
	}
	return p
}

func (c *Config) validateAPI(p *problems) {
	a := &c.API
	checkURL(p, "api.url", a.URL)
	if !filepath.IsAbs(a.KeyFile) {
		p.add("api.key_file", "%q is not an absolute path", a.KeyFile)
	}
	inRange(p, "api.score_min", a.ScoreMin, 1, 100, "")
	if a.Limit < 0 {
		p.add("api.limit", "%d is negative; use 0 for the tier's limit", a.Limit)
	}
	durationInRange(p, "api.pull_interval", a.PullInterval, time.Hour, 24*time.Hour)

	a.IPVersion = strings.ToLower(strings.TrimSpace(a.IPVersion))
	if oneOf(p, "api.ip_version", a.IPVersion, IPVersion4, IPVersion6, IPVersionMixed) &&
		a.IPVersion == IPVersion6 && !c.Firewall.IPv6 {
		p.add("api.ip_version", "6 pulls only IPv6 addresses, but firewall.ipv6 is false so none would be blocked")
	}

	a.Protocols = normaliseList(a.Protocols, strings.ToLower)
	for i, proto := range a.Protocols {
		oneOf(p, fmt.Sprintf("api.protocols[%d]", i), proto, Protocols...)
	}

	a.OnlyCountries = normaliseList(a.OnlyCountries, strings.ToUpper)
	a.ExceptCountries = normaliseList(a.ExceptCountries, strings.ToUpper)
	checkCountries(p, "api.only_countries", a.OnlyCountries)
	checkCountries(p, "api.except_countries", a.ExceptCountries)
	checkOverlap(p, "api.except_countries", a.ExceptCountries, "api.only_countries", a.OnlyCountries)

	a.OnlyASN = normaliseList(a.OnlyASN, normaliseASN)
	a.ExceptASN = normaliseList(a.ExceptASN, normaliseASN)
	checkASNs(p, "api.only_asn", a.OnlyASN)
	checkASNs(p, "api.except_asn", a.ExceptASN)
	checkOverlap(p, "api.except_asn", a.ExceptASN, "api.only_asn", a.OnlyASN)

	a.MinSeverity = strings.ToLower(strings.TrimSpace(a.MinSeverity))
	if a.MinSeverity != "" {
		oneOf(p, "api.min_severity", a.MinSeverity, Severities...)
	}
	c.validateRole(p, "api", &a.Mode, nil)
	a.Format = strings.ToLower(strings.TrimSpace(a.Format))
	oneOf(p, "api.format", a.Format, FormatPlaintext, FormatJSON)
}

func (c *Config) validateFeeds(p *problems) {
	seen := map[string]int{}
	for i := range c.Feeds {
		f := &c.Feeds[i]
		path := fmt.Sprintf("feeds[%d]", i)
		c.validateRole(p, path, &f.Mode, f)
		switch {
		case f.Name == "":
			p.add(path+".name", "a name is required")
		case len(f.Name) > MaxFeedNameLen:
			p.add(path+".name", "%q is longer than %d characters", f.Name, MaxFeedNameLen)
		case !reFeedName.MatchString(f.Name):
			p.add(path+".name", "%q must match [a-z0-9][a-z0-9_-]*", f.Name)
		case f.Name == ReservedFeedName:
			p.add(path+".name", "%q is reserved for the built-in SikkerAPI source", f.Name)
		case f.Name == ManualFeedName:
			p.add(path+".name", "%q is reserved for the entries of sikkerctl block", f.Name)
		default:
			if j, dup := seen[f.Name]; dup {
				p.add(path+".name", "%q is already used by feeds[%d]", f.Name, j)
			} else {
				seen[f.Name] = i
			}
		}
		switch {
		case (f.URL == "") == (f.File == ""):
			p.add(path, "exactly one of url or file is required")
		case f.URL != "":
			checkURL(p, path+".url", f.URL)
			low := MinURLFeedInterval
			if f.TokenFile != "" {
				low = MinTokenFeedInterval
				if !filepath.IsAbs(f.TokenFile) {
					p.add(path+".token_file", "%q is not an absolute path", f.TokenFile)
				}
			}
			durationInRange(p, path+".interval", f.Interval, low, MaxFeedInterval)
		case f.TokenFile != "":
			p.add(path+".token_file", "only a url feed sends a token")
		default:
			if !filepath.IsAbs(f.File) {
				p.add(path+".file", "%q is not an absolute path", f.File)
			}
			durationInRange(p, path+".interval", f.Interval, MinFileFeedInterval, MaxFeedInterval)
		}
	}
}

func (c *Config) validateFirewall(p *problems) {
	fw := &c.Firewall
	fw.Backend = strings.ToLower(strings.TrimSpace(fw.Backend))
	backendOK := oneOf(p, "firewall.backend", fw.Backend, BackendNFTables, BackendIPTables)

	inRange(p, "firewall.log_group", fw.LogGroup, 0, 65535, "")
	if fw.LogRate.N < 1 || fw.LogRate.UnitName() == "" {
		p.add("firewall.log_rate", "%q is not a rate such as 50/second (N >= 1 per second, minute or hour)", fw.LogRate.String())
	}
	if backendOK {
		c.validateBackend(p)
	}
}

// validateBackend hands hooks and action to the chosen backend's checks
// and takes back their canonical spelling. A field already reported above
// (the log rate) is not reported twice.
func (c *Config) validateBackend(p *problems) {
	fw := &c.Firewall
	s, err := firewall.Validate(fw.Backend, fw.Settings())
	if errors.Is(err, firewall.ErrUnknownBackend) {
		p.add("firewall.backend", "the %s backend is not built into this program", fw.Backend)
		return
	}
	fw.Hooks, fw.Action = s.Hooks, s.Action
	ses := firewall.SettingErrors(err)
	if err != nil && len(ses) == 0 {
		p.add("firewall", "%v", err)
	}
	for _, se := range ses {
		field := "firewall." + se.Field
		if !slices.ContainsFunc(*p, func(fe FieldError) bool { return fe.Field == field }) {
			p.add(field, "%s", se.Msg)
		}
	}
}

func (c *Config) validateSafety(p *problems) {
	s := c.Safety
	if math.IsNaN(s.MaxGrowth) || math.IsInf(s.MaxGrowth, 0) || s.MaxGrowth <= 1.0 {
		p.add("safety.max_growth", "%v must be a finite number greater than 1.0 (a new list may be at most max_growth times the size of the previous one)", s.MaxGrowth)
	}
	inRange(p, "safety.max_entries", s.MaxEntries, 1, MaxEntriesLimit, "")
	inRange(p, "safety.min_prefix4", s.MinPrefix4, 0, 32, "prefix length; 0 accepts any width")
	inRange(p, "safety.min_prefix6", s.MinPrefix6, 0, 128, "prefix length; 0 accepts any width")
	// NaN fails every comparison, so these reject it as well.
	if !(s.MaxBlockShare > 0 && s.MaxBlockShare <= 1) {
		p.add("safety.max_block_share", "%v must be greater than 0 and at most 1 (the share of global unicast IPv4 one list may block)", s.MaxBlockShare)
	}
	if !(s.MaxShrink >= 0 && s.MaxShrink < 1) {
		p.add("safety.max_shrink", "%v must be at least 0 and less than 1 (a new list smaller than this share of the previous one is refused; 0 disables)", s.MaxShrink)
	}
	durationInRange(p, "safety.integrity_interval", s.IntegrityInterval, 5*time.Second, time.Hour)
}

func (c *Config) validateReport(p *problems) {
	r := c.Report
	durationInRange(p, "report.interval", r.Interval, time.Minute, 24*time.Hour)
	if r.Hub != "" {
		n := len(*p)
		checkURL(p, "report.hub", r.Hub)
		if _, ok := c.HubTokenFile(); !ok && len(*p) == n {
			p.add("report.hub", "no feed with a token_file has this URL's scheme, host and port; the host sends that feed's token with its reports")
		}
	}
	owner := map[uint16]string{}
	for _, svc := range sortedKeys(r.PortMap) {
		field := "report.port_map." + svc
		if !reServiceName.MatchString(svc) {
			p.add(field, "service name %q must match [a-z0-9_-]+", svc)
		}
		for i, port := range r.PortMap[svc] {
			if !inRange(p, fmt.Sprintf("%s[%d]", field, i), int(port), 1, 65535, "") {
				continue
			}
			// The reverse map from port to service must be unambiguous.
			if other, dup := owner[port]; dup && other != svc {
				p.add(fmt.Sprintf("%s[%d]", field, i), "port %d is also mapped to %s", port, other)
			}
			owner[port] = svc
		}
	}
}

func (c *Config) validateHealth(p *problems) {
	l := c.Health.Listen
	if l == "" {
		return
	}
	const why = "the health endpoint has no authentication and shows status and metrics, so it only listens on localhost"
	host, port, err := net.SplitHostPort(l)
	if err != nil {
		p.add("health.listen", "%q is not host:port (e.g. 127.0.0.1:9547)", l)
		return
	}
	if addr, err := netip.ParseAddr(host); err != nil {
		// A name could resolve to anything; only a literal is sure to be local.
		p.add("health.listen", "%q is not an IP address; use 127.0.0.1 or [::1]", host)
	} else if !addr.Unmap().IsLoopback() {
		p.add("health.listen", "%q is not a loopback address such as 127.0.0.1 or [::1]; %s", host, why)
	}
	if n, err := strconv.Atoi(port); err != nil {
		p.add("health.listen", "port %q is not a number", port)
	} else {
		inRange(p, "health.listen", n, 1, 65535, "port")
	}
}

// HubTokenFile is the token file for report.hub: that of the first feed
// with a token_file whose URL has report.hub's scheme, host and port.
func (c *Config) HubTokenFile() (string, bool) {
	want, err := url.Parse(c.Report.Hub)
	if err != nil || c.Report.Hub == "" {
		return "", false
	}
	for _, f := range c.Feeds {
		u, err := url.Parse(f.URL)
		if err == nil && f.TokenFile != "" && f.URL != "" && u.Scheme == want.Scheme && u.Host == want.Host {
			return f.TokenFile, true
		}
	}
	return "", false
}

func (c *Config) validateHub(p *problems) {
	h := c.Hub
	if h.Listen != "" {
		host, port, err := net.SplitHostPort(h.Listen)
		if err != nil {
			p.add("hub.listen", "%q is not host:port (e.g. :9548 or 192.0.2.1:9548)", h.Listen)
		} else {
			if _, err := netip.ParseAddr(host); host != "" && err != nil {
				p.add("hub.listen", "%q is not an IP address; leave it empty for every address", host)
			}
			if n, err := strconv.Atoi(port); err != nil {
				p.add("hub.listen", "port %q is not a number", port)
			} else {
				inRange(p, "hub.listen", n, 1, 65535, "port")
			}
		}
	}
	if (h.TLSCert == "") != (h.TLSKey == "") {
		p.add("hub", "tls_cert and tls_key go together: set both for HTTPS or neither for plain HTTP behind a proxy")
	}
	for _, f := range []struct{ field, path string }{{"hub.tls_cert", h.TLSCert}, {"hub.tls_key", h.TLSKey}} {
		if f.path != "" && !filepath.IsAbs(f.path) {
			p.add(f.field, "%q is not an absolute path", f.path)
		}
	}
	if !filepath.IsAbs(h.TokensFile) {
		p.add("hub.tokens_file", "%q is not an absolute path", h.TokensFile)
	}
}

func checkURL(p *problems, field, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		p.add(field, "not an http:// or https:// URL: %v", errors.Unwrap(err))
	case u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		// The message goes to the journal: a token in the query stays out.
		shown := *u
		shown.User = nil
		if shown.RawQuery != "" {
			shown.RawQuery = "REDACTED"
		}
		shown.Fragment, shown.RawFragment = "", ""
		p.add(field, "%q is not an http:// or https:// URL", shown.String())
	case u.User != nil:
		// A URL ends up in logs and status output, credentials must not.
		p.add(field, "the URL must not contain credentials")
	}
}

// oneOf reports `"v" is not one of a, b, c` and returns whether v is allowed.
func oneOf(p *problems, field, v string, allowed ...string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	p.add(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return false
}

// normaliseList trims and re-cases each entry and drops repeats, keeping order.
func normaliseList(in []string, norm func(string) string) []string {
	if len(in) == 0 {
		return in
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		s = norm(strings.TrimSpace(s))
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func checkCountries(p *problems, field string, codes []string) {
	for i, cc := range codes {
		if len(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' {
			p.add(fmt.Sprintf("%s[%d]", field, i), "%q is not a two-letter ISO country code", cc)
		}
	}
}

// parseASN accepts "13335", "as13335" or "AS13335" and returns "AS13335".
func parseASN(s string) (string, bool) {
	digits := s
	if len(s) >= 2 && strings.EqualFold(s[:2], "AS") {
		digits = s[2:]
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || n == 0 {
		return s, false
	}
	return "AS" + strconv.FormatUint(n, 10), true
}

// normaliseASN canonicalises what parseASN accepts and leaves anything else
// for checkASNs to report.
func normaliseASN(s string) string {
	canon, _ := parseASN(s)
	return canon
}

func checkASNs(p *problems, field string, asns []string) {
	for i, a := range asns {
		if _, ok := parseASN(a); !ok {
			p.add(fmt.Sprintf("%s[%d]", field, i), "%q is not an AS number (e.g. AS13335 or 13335)", a)
		}
	}
}

func checkOverlap(p *problems, field string, list []string, otherField string, other []string) {
	for i, v := range list {
		if slices.Contains(other, v) {
			p.add(fmt.Sprintf("%s[%d]", field, i), "%q is also in %s", v, otherField)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

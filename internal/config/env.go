package config

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The SikkerGuard container's environment variables, which override the file.
const (
	EnvAPIKey          = "SIKKER_API_KEY"
	EnvScoreMin        = "SIKKER_SCORE_MIN"
	EnvPullInterval    = "SIKKER_PULL_INTERVAL"
	EnvReportEnabled   = "SIKKER_REPORT_ENABLED"
	EnvReportInterval  = "SIKKER_REPORT_INTERVAL"
	EnvWhitelist       = "SIKKER_WHITELIST"
	EnvPortMap         = "SIKKER_PORT_MAP"
	EnvDryRun          = "SIKKER_DRY_RUN"
	EnvHealthPort      = "SIKKER_HEALTH_PORT"
	EnvCustomBlacklist = "SIKKER_CUSTOM_BLACKLIST"
)

// ApplyEnv applies the SIKKER_* overrides to c. A variable that is unset or
// empty changes nothing, so `-e SIKKER_WHITELIST=` in a compose file is
// harmless. A bad value is not applied; the returned *ValidationError names
// each such variable. SIKKER_WHITELIST only ever adds to the whitelist: the
// environment can widen safety, never narrow it.
func (c *Config) ApplyEnv(env LookupFunc) error {
	return problems(applyEnv(c, env)).err()
}

func applyEnv(c *Config, env LookupFunc) problems {
	var p problems
	if env == nil {
		return p
	}
	get := func(name string) (string, bool) {
		v, ok := env(name)
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}

	if v, ok := get(EnvScoreMin); ok {
		if n, good := envInt(&p, EnvScoreMin, v, 1, 100, ""); good {
			c.API.ScoreMin = n
		}
	}
	if v, ok := get(EnvPullInterval); ok {
		if n, good := envInt(&p, EnvPullInterval, v, 60, 1440, "minutes"); good {
			c.API.PullInterval = time.Duration(n) * time.Minute
		}
	}
	if v, ok := get(EnvReportEnabled); ok {
		if b, good := envBool(&p, EnvReportEnabled, v); good {
			c.Report.Enabled = b
		}
	}
	if v, ok := get(EnvReportInterval); ok {
		if n, good := envInt(&p, EnvReportInterval, v, 1, 1440, "minutes"); good {
			c.Report.Interval = time.Duration(n) * time.Minute
		}
	}
	if v, ok := get(EnvWhitelist); ok {
		added, bad := Whitelist(nil), false
		for i, item := range strings.Split(v, ",") {
			if strings.TrimSpace(item) == "" {
				continue // tolerate "a,b," and "a, ,b"
			}
			pfx, err := ParsePrefix(item)
			if err != nil {
				p.add(EnvWhitelist, "entry %d: %v", i+1, err)
				bad = true
				continue
			}
			added = append(added, pfx)
		}
		if !bad {
			c.Whitelist = append(c.Whitelist, added...)
		}
	}
	if v, ok := get(EnvPortMap); ok {
		if m, good := parseEnvPortMap(&p, v); good {
			if c.Report.PortMap == nil {
				c.Report.PortMap = map[string][]uint16{}
			}
			for svc, ports := range m {
				c.Report.PortMap[svc] = ports
			}
		}
	}
	if v, ok := get(EnvDryRun); ok {
		if b, good := envBool(&p, EnvDryRun, v); good {
			c.DryRun = b
		}
	}
	if v, ok := get(EnvHealthPort); ok {
		if n, good := envInt(&p, EnvHealthPort, v, 1, 65535, ""); good {
			// The container published the port; here it stays on loopback.
			c.Health.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(n))
		}
	}
	if v, ok := get(EnvCustomBlacklist); ok {
		if !filepath.IsAbs(v) {
			p.add(EnvCustomBlacklist, "%q is not an absolute path", v)
		} else {
			setCustomFeed(c, filepath.Clean(v))
		}
	}
	return p
}

// setCustomFeed points the feed named "custom" at path, adding it if the file
// has none; the environment overrides the file.
func setCustomFeed(c *Config, path string) {
	for i := range c.Feeds {
		if c.Feeds[i].Name == CustomFeedName {
			c.Feeds[i].URL, c.Feeds[i].File = "", path
			return
		}
	}
	c.Feeds = append(c.Feeds, Feed{Name: CustomFeedName, File: path, Interval: DefaultFeedInterval})
}

func envInt(p *problems, name, v string, lo, hi int, unit string) (int, bool) {
	n, err := strconv.Atoi(v)
	if err != nil {
		p.add(name, "%q is not a whole number", v)
		return 0, false
	}
	return n, inRange(p, name, n, lo, hi, unit)
}

func envBool(p *problems, name, v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "true", "1", "yes":
		return true, true
	case "false", "0", "no":
		return false, true
	}
	p.add(name, "%q is not a boolean (use true/false, 1/0 or yes/no)", v)
	return false, false
}

// parseEnvPortMap parses "name=port,port;name=port".
func parseEnvPortMap(p *problems, v string) (map[string][]uint16, bool) {
	m := map[string][]uint16{}
	ok := true
	for _, entry := range strings.Split(v, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, list, found := strings.Cut(entry, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !found {
			p.add(EnvPortMap, "entry %q has no \"=\" (format name=port,port;name=port)", entry)
			ok = false
			continue
		}
		if !reServiceName.MatchString(name) {
			p.add(EnvPortMap, "service name %q must match [a-z0-9_-]+", name)
			ok = false
			continue
		}
		var ports []uint16
		entryOK := true
		for _, s := range strings.Split(list, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 65535 {
				p.add(EnvPortMap, "%s: port %q is not a number in range 1..65535", name, s)
				ok, entryOK = false, false
				continue
			}
			ports = append(ports, uint16(n))
		}
		if len(ports) == 0 && entryOK {
			p.add(EnvPortMap, "%s: no ports given", name)
			ok = false
		}
		m[name] = ports
	}
	return m, ok
}

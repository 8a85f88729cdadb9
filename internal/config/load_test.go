package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
)

var cmpOpts = []cmp.Option{
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

// TestLoadInvalid holds one fixture per rule; each must produce exactly the
// one expected problem, with file, line and field path.
func TestLoadInvalid(t *testing.T) {
	tests := []struct{ file, want string }{
		{"invalid-score-min-low", `:2: api.score_min: 0 is out of range 1..100`},
		{"invalid-score-min-high", `:2: api.score_min: 101 is out of range 1..100`},
		{"invalid-limit", `:2: api.limit: -1 is negative; use 0 for the tier's limit`},
		{"invalid-pull-interval", `:2: api.pull_interval: 30m is out of range 1h..24h`},
		{"invalid-pull-interval-long", `:2: api.pull_interval: 48h is out of range 1h..24h`},
		{"invalid-duration-syntax", `:2: api.pull_interval: "90x" is not a duration such as 90m or 24h`},
		{"invalid-ip-version", `:2: api.ip_version: "5" is not one of 4, 6, mixed`},
		{"invalid-ip-version-without-ipv6", `:2: api.ip_version: 6 pulls only IPv6 addresses, but firewall.ipv6 is false so none would be blocked`},
		{"invalid-protocol", `:2: api.protocols[1]: "gopher" is not one of ssh, http, ftp, smtp, mysql, postgresql, postgres, mongodb, redis, docker, telnet, elasticsearch, mssql, imap, smb, rtsp, sip, rdp`},
		{"invalid-country", `:4: api.only_countries[1]: "USA" is not a two-letter ISO country code`},
		{"invalid-asn", `:2: api.except_asn[1]: "ASX" is not an AS number (e.g. AS13335 or 13335)`},
		{"invalid-country-overlap", `:3: api.except_countries[0]: "CN" is also in api.only_countries`},
		{"invalid-asn-overlap", `:3: api.except_asn[0]: "AS13335" is also in api.only_asn`},
		{"invalid-min-severity", `:2: api.min_severity: "critical" is not one of very_high, high, medium, low`},
		{"invalid-api-url", `:2: api.url: "ftp://api.sikkerapi.com" is not an http:// or https:// URL`},
		{"invalid-api-url-credentials", `:2: api.url: the URL must not contain credentials`},
		{"invalid-key-file", `:2: api.key_file: "api.key" is not an absolute path`},
		{"invalid-feed-no-source", `:2: feeds[0]: exactly one of url or file is required`},
		{"invalid-feed-two-sources", `:2: feeds[0]: exactly one of url or file is required`},
		{"invalid-feed-name", `:2: feeds[0].name: "Bad_Name" must match [a-z0-9][a-z0-9_-]*`},
		{"invalid-feed-name-missing", `:2: feeds[0].name: a name is required`},
		{"invalid-feed-name-reserved", `:2: feeds[0].name: "sikkerapi" is reserved for the built-in SikkerAPI source`},
		{"invalid-feed-name-manual", `:2: feeds[0].name: "manual" is reserved for the entries of sikkerctl block`},
		{"invalid-feed-name-duplicate", `:4: feeds[1].name: "custom" is already used by feeds[0]`},
		{"invalid-feed-name-long", `:2: feeds[0].name: "a-very-long-feed-name-that-goes-on-and-on" is longer than 32 characters`},
		{"invalid-feed-mode", `:4: feeds[0].mode: "watch" is not one of enforce, monitor`},
		{"invalid-feed-mode-iptables", `:6: feeds[0].mode: monitor needs firewall.backend: nftables`},
		{"invalid-api-mode", `:2: api.mode: "log" is not one of enforce, monitor`},
		{"invalid-api-format", `:3: api.format: "xml" is not one of plaintext, json`},
		{"invalid-feed-direction", `:4: feeds[0].direction: "out" is not one of inbound, outbound, both`},
		{"invalid-feed-direction-iptables", `:6: feeds[0].direction: outbound needs firewall.backend: nftables`},
		{"invalid-feed-port", `:4: feeds[0].ports[1]: "70000" is not a port (1..65535) or a range such as 6000-6010`},
		{"invalid-feed-port-range", `:4: feeds[0].ports[0]: "6010-6000": the range ends before it starts`},
		{"invalid-feed-protocol", `:4: feeds[0].protocols[1]: "gre" is not one of dccp, icmp, icmpv6, sctp, tcp, udp, udplite`},
		{"invalid-feed-ports-icmp", `:4: feeds[0].ports: none of the protocols has ports; add tcp, udp, sctp, dccp or udplite, or drop the ports`},
		{"invalid-feed-scope-monitor", `:5: feeds[0].ports: ports and protocols scope an enforcing feed; a monitor feed watches all traffic from its entries`},
		{"invalid-feed-scope-iptables", `:6: feeds[0].ports: a scope (ports, protocols) needs firewall.backend: nftables`},
		{"invalid-feed-scope-outbound", `:4: feeds[0].direction: ports and protocols scope inbound traffic only; both is not inbound`},
		{"invalid-feed-url", `:3: feeds[0].url: "ftp://lists.example/drop.txt" is not an http:// or https:// URL`},
		{"invalid-feed-file-relative", `:3: feeds[0].file: "blacklist.txt" is not an absolute path`},
		{"invalid-feed-interval", `:4: feeds[0].interval: 10m is out of range 1h..168h`},
		{"invalid-feed-interval-long", `:4: feeds[0].interval: 200h is out of range 1m..168h`},
		{"invalid-backend", `:2: firewall.backend: "pf" is not one of nftables, iptables`},
		{"invalid-hook-nftables", `:2: firewall.hooks[0]: "output" is not one of prerouting, input, forward (nftables backend)`},
		{"invalid-hook-iptables", `:3: firewall.hooks[1]: "prerouting" is not one of INPUT, FORWARD, DOCKER-USER (iptables backend)`},
		{"invalid-hooks-empty", `:2: firewall.hooks: at least one hook is required`},
		{"invalid-hooks-duplicate", `:2: firewall.hooks[1]: "input" is listed twice`},
		{"invalid-action", `:2: firewall.action: "accept" is not one of drop, reject`},
		{"invalid-reject-prerouting", `:3: firewall.action: reject cannot be used with the prerouting hook: the kernel allows the reject statement only in the input, forward and output hooks (use hooks [input, forward], or action drop)`},
		{"invalid-log-group", `:2: firewall.log_group: 70000 is out of range 0..65535`},
		{"invalid-log-rate-zero", `:2: firewall.log_rate: "0/second": the count must be a whole number from 1 to 4294967295`},
		{"invalid-log-rate-unit", `:2: firewall.log_rate: "5/day": the unit must be second, minute or hour`},
		{"invalid-whitelist", `:3: whitelist[1]: "10.0.0.300" is not an IP address or CIDR`},
		{"invalid-whitelist-zone", `:1: whitelist[0]: "fe80::1%eth0" has an interface zone; zones cannot be filtered`},
		{"invalid-max-growth", `:2: safety.max_growth: 1 must be a finite number greater than 1.0 (a new list may be at most max_growth times the size of the previous one)`},
		{"invalid-max-entries", `:2: safety.max_entries: 0 is out of range 1..100000000`},
		{"invalid-min-prefix4", `:2: safety.min_prefix4: 33 is out of range 0..32 (prefix length; 0 accepts any width)`},
		{"invalid-min-prefix6", `:2: safety.min_prefix6: -1 is out of range 0..128 (prefix length; 0 accepts any width)`},
		{"invalid-max-block-share", `:2: safety.max_block_share: 0 must be greater than 0 and at most 1 (the share of global unicast IPv4 one list may block)`},
		{"invalid-max-shrink", `:2: safety.max_shrink: 1 must be at least 0 and less than 1 (a new list smaller than this share of the previous one is refused; 0 disables)`},
		{"invalid-report-interval", `:2: report.interval: 30s is out of range 1m..24h`},
		{"invalid-integrity-interval", `:2: safety.integrity_interval: 1s is out of range 5s..1h`},
		{"invalid-port-map-name", `:3: report.port_map.Web Admin: service name "Web Admin" must match [a-z0-9_-]+`},
		{"invalid-port-map-port", `:3: report.port_map.ssh[1]: 0 is out of range 1..65535`},
		{"invalid-port-map-port-overflow", `:3: report.port_map.ssh[1]: "70000" is not a port number 1..65535`},
		{"invalid-port-map-duplicate", `:4: report.port_map.panel[0]: port 8081 is also mapped to admin`},
		{"invalid-health-public", `:2: health.listen: "0.0.0.0" is not a loopback address such as 127.0.0.1 or [::1]; the health endpoint has no authentication and shows status and metrics, so it only listens on localhost`},
		{"invalid-hub-listen", `:2: hub.listen: "hub.example" is not an IP address; leave it empty for every address`},
		{"invalid-hub-tls-half", `:1: hub: tls_cert and tls_key go together: set both for HTTPS or neither for plain HTTP behind a proxy`},
		{"invalid-hub-tokens-file", `:2: hub.tokens_file: "hub-tokens" is not an absolute path`},
		{"invalid-feed-token-file-relative", `:4: feeds[0].token_file: "hub.token" is not an absolute path`},
		{"invalid-feed-token-file-on-file", `:4: feeds[0].token_file: only a url feed sends a token`},
		{"invalid-report-hub-url", `:2: report.hub: "ftp://hub.example/v1/reports" is not an http:// or https:// URL`},
		{"invalid-report-hub-no-token", `:4: report.hub: no feed with a token_file has this URL's scheme, host and port; the host sends that feed's token with its reports`},
		{"invalid-health-hostname", `:2: health.listen: "localhost" is not an IP address; use 127.0.0.1 or [::1]`},
		{"invalid-health-format", `:2: health.listen: "9547" is not host:port (e.g. 127.0.0.1:9547)`},
		{"invalid-health-port", `:2: health.listen: 0 is out of range 1..65535 (port)`},
		{"invalid-state-dir", `:1: state_dir: "var/lib/sikkerguard" is not an absolute path`},
		{"invalid-unknown-key", `:3: firewal: unknown key (valid keys here: api, feeds, firewall, whitelist, safety, report, health, hub, state_dir, cleanup_on_stop, dry_run)`},
		{"invalid-unknown-nested-key", `:2: api.scor_min: unknown key (valid keys here: url, key_file, score_min, limit, pull_interval, ip_version, protocols, only_countries, except_countries, only_asn, except_asn, min_severity, mode, format)`},
		{"invalid-unknown-feed-key", `:4: feeds[0].every: unknown key (valid keys here: name, url, file, interval, token_file, mode, direction, ports, protocols)`},
		{"invalid-two-documents", `:4: a second YAML document starts here; the config must be a single document (remove the extra ---)`},
		{"invalid-tabs", `:2: "\tscore_min: 60": tab character in indentation; YAML indents with spaces only`},
		{"invalid-utf8", `:3: not valid UTF-8; the config must be UTF-8 text`},
		{"invalid-type", `:3: api.score_min: "fifty" is not a whole number`},
		{"invalid-duplicate-key", `:3: api.score_min: key is set twice (first at line 2)`},
		{"invalid-syntax", `:2: "  score_min: [60": did not find expected ',' or ']'`},
		// yaml.v3 names line 2 (counted from 0, the enclosing block's start:
		// the comment on line 2); the mistake is on line 9.
		{"invalid-indentation", `:9: " limit: 10": did not find expected key; check the indentation of this line and the one above`},
		{"invalid-indentation-deeper", `:4: "    interval: 1h": mapping values are not allowed in this context; check the indentation of this line and the one above`},
		{"invalid-not-mapping", `:1: a list is not a mapping of keys`},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file+".yaml")
			covered[path] = true
			cfg, err := Load(path, false, nil)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Load(%s) error = %v (%T), want *ValidationError", path, err, err)
			}
			if len(ve.Errors) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(ve.Errors), err)
			}
			if got, want := err.Error(), path+tt.want; got != want {
				t.Errorf("error\n got: %s\nwant: %s", got, want)
			}
			if !reflect.DeepEqual(cfg, Config{}) {
				t.Errorf("Load returned a non-zero Config with an error")
			}
		})
	}
	// A fixture without a table entry would silently test nothing.
	files, _ := filepath.Glob("testdata/invalid-*.yaml")
	for _, f := range files {
		if !covered[f] {
			t.Errorf("%s has no expected error in the table", f)
		}
	}
}

func TestLoadValid(t *testing.T) {
	full := Default()
	full.API = API{
		URL:             "http://127.0.0.1:8080",
		KeyFile:         "/run/sikkerguard/api.key",
		ScoreMin:        80,
		Limit:           10000,
		PullInterval:    12 * time.Hour,
		IPVersion:       IPVersion4,
		Protocols:       []string{"ssh", "telnet"},
		OnlyCountries:   []string{"CN", "RU"},
		ExceptCountries: []string{"DE"},
		ExceptASN:       []string{"AS13335", "AS15169"},
		MinSeverity:     "high",
		Mode:            ModeEnforce,
		Format:          FormatJSON,
	}
	full.Feeds = []Feed{
		{Name: "spamhaus-drop", URL: "https://lists.example/drop.txt", Interval: 12 * time.Hour},
		{Name: "custom", File: "/etc/sikkerguard/blacklist.txt", Interval: DefaultFeedInterval},
	}
	full.Firewall = Firewall{Backend: BackendNFTables, Hooks: []firewall.Hook{"input", "forward"}, Action: ActionReject,
		IPv6: false, LogGroup: 0, LogRate: LogRate{N: 10, Unit: time.Minute}}
	full.Whitelist = Whitelist{
		netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("2001:db8::1/128"),
		netip.MustParsePrefix("203.0.113.9/32"),
	}
	full.Safety = Safety{MaxGrowth: 1.5, MaxEntries: 100000, MinPrefix4: 16, MinPrefix6: 32, MaxBlockShare: 0.02, MaxShrink: 0, IntegrityInterval: time.Minute}
	full.Report = Report{Enabled: false, Interval: time.Hour,
		PortMap: map[string][]uint16{"ssh": {2222}, "minecraft": {25565, 25566}, "ftp": {}}}
	full.Health.Listen = "[::1]:9547"
	full.StateDir = "/srv/sikkerguard"
	full.CleanupOnStop = false
	full.DryRun = true

	iptables := Default()
	iptables.Firewall.Backend = BackendIPTables
	iptables.Firewall.Hooks = []firewall.Hook{"INPUT", "FORWARD"}

	iptablesHooks := Default()
	iptablesHooks.Firewall.Backend = BackendIPTables
	iptablesHooks.Firewall.Hooks = []firewall.Hook{"DOCKER-USER", "INPUT"}
	iptablesHooks.Firewall.Action = ActionReject

	v6 := Default()
	v6.API.IPVersion = IPVersion6

	markers := Default()
	markers.API.ScoreMin = 51

	tests := []struct {
		file string
		want Config
	}{
		{"valid-full", full},
		{"valid-empty", Default()},
		{"valid-comments", Default()},
		{"valid-null-section", Default()},
		{"valid-document-markers", markers},
		{"valid-ip-version-int", v6},
		{"valid-iptables", iptables},
		{"valid-iptables-hooks", iptablesHooks},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Load(filepath.Join("testdata", tt.file+".yaml"), false, nil)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if d := cmp.Diff(tt.want, got, cmpOpts...); d != "" {
				t.Errorf("config mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "sikkerguard.yaml")

	got, err := Load(missing, true, MapEnv(map[string]string{EnvScoreMin: "70"}))
	if err != nil {
		t.Fatalf("missing default file: %v", err)
	}
	want := Default()
	want.API.ScoreMin = 70
	if d := cmp.Diff(want, got, cmpOpts...); d != "" {
		t.Errorf("missing default file should give defaults plus env (-want +got):\n%s", d)
	}

	_, err = Load(missing, false, nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing explicit file: error = %v, want fs.ErrNotExist", err)
	}
	if err != nil && !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestLoadUnreadableDefaultIsStillAnError(t *testing.T) {
	// Only a missing default file means "use defaults"; a directory in its
	// place is a mistake to report.
	dir := t.TempDir()
	if _, err := Load(dir, true, nil); err == nil {
		t.Fatal("Load of a directory succeeded")
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	data := []byte(`api:
  score_min: 0
  scor_min: 1
  pull_interval: 5m
firewall:
  hooks: [output]
  log_group: -1
state_dir: relative
`)
	_, err := Parse(data, "x.yaml", MapEnv(map[string]string{EnvPullInterval: "5", EnvScoreMin: "0"}))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v, want *ValidationError", err)
	}
	want := []string{
		"x.yaml:2: api.score_min: 0 is out of range 1..100",
		"x.yaml:3: api.scor_min: unknown key",
		"x.yaml:4: api.pull_interval: 5m is out of range 1h..24h",
		"x.yaml:6: firewall.hooks[0]: \"output\" is not one of prerouting, input, forward",
		"x.yaml:7: firewall.log_group: -1 is out of range 0..65535",
		"x.yaml:8: state_dir: \"relative\" is not an absolute path",
		"SIKKER_SCORE_MIN: 0 is out of range 1..100",
		"SIKKER_PULL_INTERVAL: 5 is out of range 60..1440 (minutes)",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%v", len(lines), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d\n got: %s\nwant: %s…", i, lines[i], want[i])
		}
	}
	if len(ve.Errors) != len(want) || ve.Errors[6].Field != EnvScoreMin || ve.Errors[6].File != "" {
		t.Errorf("structured errors wrong: %#v", ve.Errors)
	}
}

// TestExampleConfig keeps configs/sikkerguard.yaml honest: it must load on a
// fresh machine, spell out every key, and show exactly the defaults.
func TestExampleConfig(t *testing.T) {
	const path = "../../configs/sikkerguard.yaml"
	got, err := Load(path, false, nil)
	if err != nil {
		t.Fatalf("example config does not load: %v", err)
	}
	if d := cmp.Diff(Default(), got, cmpOpts...); d != "" {
		t.Errorf("example config differs from Default() (-default +example):\n%s", d)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	idx := newIndex()
	idx.walk(&doc, "")
	for _, key := range allKeys(reflect.TypeOf(Config{}), "") {
		if strings.HasPrefix(key, "feeds.") {
			continue // feeds are documented in comments: an active one would fetch
		}
		if _, ok := idx.byPath[key]; !ok {
			t.Errorf("example config lacks key %s", key)
		}
	}
	for _, name := range []string{EnvAPIKey, EnvScoreMin, EnvPullInterval, EnvReportEnabled, EnvReportInterval,
		EnvWhitelist, EnvPortMap, EnvDryRun, EnvHealthPort, EnvCustomBlacklist} {
		if !strings.Contains(string(data), name) {
			t.Errorf("example config does not mention %s", name)
		}
	}
}

// allKeys lists the dotted YAML paths of every struct field under t.
func allKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		k := yamlKey(t.Field(i))
		if k == "" {
			continue
		}
		path := prefix + k
		keys = append(keys, path)
		ft := t.Field(i).Type
		for ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeOf(LogRate{}) && ft != reflect.TypeOf(netip.Prefix{}) {
			keys = append(keys, allKeys(ft, path+".")...)
		}
	}
	return keys
}

func TestDefaultRoundTrip(t *testing.T) {
	in := Default()
	in.Whitelist = Whitelist{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::1/128")}
	in.Firewall.LogRate = LogRate{N: 3, Unit: time.Hour}
	in.Feeds = []Feed{{Name: "custom", File: "/etc/sikkerguard/blacklist.txt", Interval: 2 * time.Hour}}
	in.Report.PortMap = map[string][]uint16{"minecraft": {25565}}
	data, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Parse(data, "marshalled", nil)
	if err != nil {
		t.Fatalf("marshalled config does not load: %v\n%s", err, data)
	}
	if d := cmp.Diff(in, out, cmpOpts...); d != "" {
		t.Errorf("round trip changed the config (-in +out):\n%s\n%s", d, data)
	}
}

func TestValidateNormalises(t *testing.T) {
	c := Default()
	c.API.OnlyCountries = []string{" cn", "Ru", "CN"}
	c.API.OnlyASN = []string{"as0013335", "15169", "AS15169"}
	c.API.Protocols = []string{"SSH"}
	c.API.IPVersion = "Mixed"
	c.API.MinSeverity = "VERY_HIGH"
	c.Firewall.Backend = "IPTABLES"
	c.Firewall.Hooks = []firewall.Hook{"docker-user", "Input"}
	c.Firewall.Action = "DROP"
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"countries", c.API.OnlyCountries, []string{"CN", "RU"}},
		{"asns", c.API.OnlyASN, []string{"AS13335", "AS15169"}},
		{"protocols", c.API.Protocols, []string{"ssh"}},
		{"ip_version", c.API.IPVersion, IPVersionMixed},
		{"min_severity", c.API.MinSeverity, "very_high"},
		{"backend", c.Firewall.Backend, BackendIPTables},
		{"hooks", c.Firewall.Hooks, []firewall.Hook{"DOCKER-USER", "INPUT"}},
		{"action", c.Firewall.Action, ActionDrop},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestValidateProgrammaticConfig(t *testing.T) {
	c := Default()
	c.API.ScoreMin = 0
	c.Whitelist = Whitelist{{}}
	c.Firewall.LogRate = LogRate{}
	c.Safety.MaxGrowth = 0
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v, want *ValidationError", err)
	}
	var fields []string
	for _, fe := range ve.Errors {
		fields = append(fields, fe.Field)
	}
	want := []string{"api.score_min", "firewall.log_rate", "whitelist[0]", "safety.max_growth"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("fields = %v, want %v\n%v", fields, want, err)
	}
	if err := new(Config).Validate(); err == nil {
		t.Error("the zero Config validated")
	}
	d := Default()
	if err := d.Validate(); err != nil {
		t.Errorf("Default() does not validate: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "fuzz.yaml", nil)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty *ValidationError", err, err)
			}
			return
		}
		// Whatever loads must stay valid: Validate is idempotent.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loaded config fails Validate: %v", err)
		}
	})
}

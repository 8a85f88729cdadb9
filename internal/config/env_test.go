package config

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// envFile is the file the environment cases override.
const envFile = `api:
  score_min: 60
whitelist: [192.0.2.1]
report:
  port_map:
    ssh: [2200]
    admin: [8081]
feeds:
  - {name: custom, url: "https://lists.example/custom.txt"}
`

func TestEnvOverrides(t *testing.T) {
	base, err := Parse([]byte(envFile), "env.yaml", nil)
	if err != nil {
		t.Fatalf("base file: %v", err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want func(c *Config) // edits base into the expected config
	}{
		{"unset changes nothing", nil, func(c *Config) {}},
		{"empty value changes nothing", map[string]string{EnvScoreMin: "", EnvWhitelist: " ", EnvDryRun: ""}, func(c *Config) {}},
		{"score min", map[string]string{EnvScoreMin: "75"}, func(c *Config) { c.API.ScoreMin = 75 }},
		{"score min bounds", map[string]string{EnvScoreMin: "1"}, func(c *Config) { c.API.ScoreMin = 1 }},
		{"score min upper bound", map[string]string{EnvScoreMin: " 100 "}, func(c *Config) { c.API.ScoreMin = 100 }},
		{"pull interval", map[string]string{EnvPullInterval: "90"}, func(c *Config) { c.API.PullInterval = 90 * time.Minute }},
		{"pull interval max", map[string]string{EnvPullInterval: "1440"}, func(c *Config) { c.API.PullInterval = 24 * time.Hour }},
		{"pull interval min", map[string]string{EnvPullInterval: "60"}, func(c *Config) { c.API.PullInterval = time.Hour }},
		{"report disabled", map[string]string{EnvReportEnabled: "false"}, func(c *Config) { c.Report.Enabled = false }},
		{"report disabled 0", map[string]string{EnvReportEnabled: "0"}, func(c *Config) { c.Report.Enabled = false }},
		{"report disabled no", map[string]string{EnvReportEnabled: "NO"}, func(c *Config) { c.Report.Enabled = false }},
		{"report enabled yes", map[string]string{EnvReportEnabled: "yes"}, func(c *Config) {}},
		{"report interval", map[string]string{EnvReportInterval: "5"}, func(c *Config) { c.Report.Interval = 5 * time.Minute }},
		{"whitelist adds", map[string]string{EnvWhitelist: "198.51.100.7, 203.0.113.0/24,2001:db8::/32,"}, func(c *Config) {
			c.Whitelist = append(c.Whitelist,
				netip.MustParsePrefix("198.51.100.7/32"),
				netip.MustParsePrefix("203.0.113.0/24"),
				netip.MustParsePrefix("2001:db8::/32"))
		}},
		{"port map merges", map[string]string{EnvPortMap: "ssh=2222,2223; minecraft=25565"}, func(c *Config) {
			c.Report.PortMap = map[string][]uint16{"ssh": {2222, 2223}, "admin": {8081}, "minecraft": {25565}}
		}},
		{"dry run", map[string]string{EnvDryRun: "1"}, func(c *Config) { c.DryRun = true }},
		{"dry run true", map[string]string{EnvDryRun: "TRUE"}, func(c *Config) { c.DryRun = true }},
		{"health port", map[string]string{EnvHealthPort: "9547"}, func(c *Config) { c.Health.Listen = "127.0.0.1:9547" }},
		{"custom blacklist replaces the file's custom feed", map[string]string{EnvCustomBlacklist: "/srv/lists//mine.txt"}, func(c *Config) {
			c.Feeds[0] = Feed{Name: CustomFeedName, File: "/srv/lists/mine.txt", Interval: DefaultFeedInterval}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(envFile), "env.yaml", MapEnv(tt.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want, _ := Parse([]byte(envFile), "env.yaml", nil)
			tt.want(&want)
			if d := cmp.Diff(want, got, cmpOpts...); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	if base.API.ScoreMin != 60 {
		t.Fatalf("base file not applied: score_min %d", base.API.ScoreMin)
	}
}

func TestEnvCustomBlacklistAddsFeed(t *testing.T) {
	got, err := Parse(nil, "none", MapEnv(map[string]string{EnvCustomBlacklist: "/etc/sikkerguard/blacklist.txt"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []Feed{{Name: "custom", File: "/etc/sikkerguard/blacklist.txt", Interval: DefaultFeedInterval}}
	if d := cmp.Diff(want, got.Feeds); d != "" {
		t.Errorf("feeds (-want +got):\n%s", d)
	}
}

func TestEnvInvalid(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{EnvScoreMin: "0"}, `SIKKER_SCORE_MIN: 0 is out of range 1..100`},
		{map[string]string{EnvScoreMin: "101"}, `SIKKER_SCORE_MIN: 101 is out of range 1..100`},
		{map[string]string{EnvScoreMin: "fifty"}, `SIKKER_SCORE_MIN: "fifty" is not a whole number`},
		{map[string]string{EnvPullInterval: "5"}, `SIKKER_PULL_INTERVAL: 5 is out of range 60..1440 (minutes)`},
		{map[string]string{EnvPullInterval: "1441"}, `SIKKER_PULL_INTERVAL: 1441 is out of range 60..1440 (minutes)`},
		{map[string]string{EnvPullInterval: "24h"}, `SIKKER_PULL_INTERVAL: "24h" is not a whole number`},
		{map[string]string{EnvReportEnabled: "maybe"}, `SIKKER_REPORT_ENABLED: "maybe" is not a boolean (use true/false, 1/0 or yes/no)`},
		{map[string]string{EnvReportInterval: "0"}, `SIKKER_REPORT_INTERVAL: 0 is out of range 1..1440 (minutes)`},
		{map[string]string{EnvReportInterval: "1441"}, `SIKKER_REPORT_INTERVAL: 1441 is out of range 1..1440 (minutes)`},
		{map[string]string{EnvWhitelist: "192.0.2.1,nope"}, `SIKKER_WHITELIST: entry 2: "nope" is not an IP address or CIDR`},
		{map[string]string{EnvPortMap: "ssh"}, `SIKKER_PORT_MAP: entry "ssh" has no "=" (format name=port,port;name=port)`},
		{map[string]string{EnvPortMap: "ssh=22;web admin=80"}, `SIKKER_PORT_MAP: service name "web admin" must match [a-z0-9_-]+`},
		{map[string]string{EnvPortMap: "ssh=0"}, `SIKKER_PORT_MAP: ssh: port "0" is not a number in range 1..65535`},
		{map[string]string{EnvPortMap: "ssh=65536"}, `SIKKER_PORT_MAP: ssh: port "65536" is not a number in range 1..65535`},
		{map[string]string{EnvPortMap: "ssh=x"}, `SIKKER_PORT_MAP: ssh: port "x" is not a number in range 1..65535`},
		{map[string]string{EnvPortMap: "ssh="}, `SIKKER_PORT_MAP: ssh: no ports given`},
		{map[string]string{EnvDryRun: "2"}, `SIKKER_DRY_RUN: "2" is not a boolean (use true/false, 1/0 or yes/no)`},
		{map[string]string{EnvHealthPort: "0"}, `SIKKER_HEALTH_PORT: 0 is out of range 1..65535`},
		{map[string]string{EnvHealthPort: "65536"}, `SIKKER_HEALTH_PORT: 65536 is out of range 1..65535`},
		{map[string]string{EnvHealthPort: "http"}, `SIKKER_HEALTH_PORT: "http" is not a whole number`},
		{map[string]string{EnvCustomBlacklist: "blacklist.txt"}, `SIKKER_CUSTOM_BLACKLIST: "blacklist.txt" is not an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			c := Default()
			before := Default()
			err := c.ApplyEnv(MapEnv(tt.env))
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Errors) != 1 {
				t.Fatalf("ApplyEnv = %v, want one problem", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
			// A bad value is reported, never half-applied.
			if d := cmp.Diff(before, c, cmpOpts...); d != "" {
				t.Errorf("config changed by a bad variable:\n%s", d)
			}

			if _, err := Parse(nil, "none", MapEnv(tt.env)); err == nil || err.Error() != tt.want {
				t.Errorf("Parse error = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestEnvWhitelistNeverShrinks(t *testing.T) {
	c := Default()
	c.Whitelist = Whitelist{netip.MustParsePrefix("192.0.2.0/24")}
	if err := c.ApplyEnv(MapEnv(map[string]string{EnvWhitelist: "198.51.100.1"})); err != nil {
		t.Fatal(err)
	}
	if len(c.Whitelist) != 2 || c.Whitelist[0] != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("whitelist = %v, want the file's entry kept and the env entry added", c.Whitelist)
	}
}

package config

import (
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
)

func TestParseLogRate(t *testing.T) {
	tests := []struct {
		in      string
		want    LogRate
		wantErr string
	}{
		{in: "50/second", want: LogRate{50, time.Second}},
		{in: " 1 / minute ", want: LogRate{1, time.Minute}},
		{in: "4294967295/hour", want: LogRate{4294967295, time.Hour}},
		{in: "50", wantErr: `"50" is not a rate; write N/second, N/minute or N/hour`},
		{in: "0/second", wantErr: `"0/second": the count must be a whole number from 1 to 4294967295`},
		{in: "-1/second", wantErr: `"-1/second": the count must be a whole number from 1 to 4294967295`},
		{in: "4294967296/second", wantErr: `"4294967296/second": the count must be a whole number from 1 to 4294967295`},
		{in: "5/s", wantErr: `"5/s": the unit must be second, minute or hour`},
		{in: "5/Second", wantErr: `"5/Second": the unit must be second, minute or hour`},
	}
	for _, tt := range tests {
		got, err := ParseLogRate(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseLogRate(%q) error = %v, want %s", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseLogRate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		if back, err := ParseLogRate(got.String()); err != nil || back != got {
			t.Errorf("String %q does not parse back: %v %v", got.String(), back, err)
		}
	}
	if s := (LogRate{N: 3, Unit: time.Millisecond}).String(); s != "3/1ms" {
		t.Errorf("odd unit String = %q", s)
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "192.0.2.7", want: "192.0.2.7/32"},
		{in: " 2001:db8::1 ", want: "2001:db8::1/128"},
		{in: "198.51.100.77/24", want: "198.51.100.0/24"},
		{in: "2001:db8::1/32", want: "2001:db8::/32"},
		{in: "::ffff:192.0.2.1", want: "192.0.2.1/32"},
		{in: "0.0.0.0/0", want: "0.0.0.0/0"},
		{in: "::/0", want: "::/0"},
		{in: "", wantErr: `"" is empty; want an IP address or CIDR such as 192.0.2.0/24`},
		{in: "192.0.2.256", wantErr: `"192.0.2.256" is not an IP address or CIDR`},
		{in: "192.0.2.0/33", wantErr: `"192.0.2.0/33" is not an IP address or CIDR: bad prefix length "33"`},
		{in: "example.com", wantErr: `"example.com" is not an IP address or CIDR`},
		{in: "fe80::1%eth0", wantErr: `"fe80::1%eth0" has an interface zone; zones cannot be filtered`},
		{in: "::ffff:192.0.2.0/120", want: "192.0.2.0/24"}, // as over D-Bus
	}
	for _, tt := range tests {
		got, err := ParsePrefix(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParsePrefix(%q) error = %v, want %s", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != netip.MustParsePrefix(tt.want) {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestPortMap(t *testing.T) {
	def := Default()
	if !reflect.DeepEqual(def.EffectivePortMap(), DefaultPortMap()) {
		t.Error("without overrides the effective map is not the default one")
	}
	// The container's documented map, spot-checked both ways.
	for port, svc := range map[uint16]string{22: "ssh", 22222: "ssh", 2323: "telnet", 465: "smtp", 139: "smb",
		33060: "mysql", 5433: "postgres", 14330: "mssql", 27018: "mongodb", 9201: "elasticsearch", 8554: "rtsp", 5060: "sip"} {
		if got := def.ServiceForPort(port); got != svc {
			t.Errorf("default ServiceForPort(%d) = %q, want %q", port, got, svc)
		}
	}
	if got := def.ServiceForPort(9999); got != "" {
		t.Errorf("ServiceForPort(9999) = %q, want none", got)
	}

	c := Default()
	c.Report.PortMap = map[string][]uint16{"ssh": {2200}, "minecraft": {25565, 8080}, "ftp": {}}
	eff := c.EffectivePortMap()
	if !reflect.DeepEqual(eff["ssh"], []uint16{2200}) {
		t.Errorf("ssh = %v, want the override to replace the defaults", eff["ssh"])
	}
	if _, ok := eff["ftp"]; ok {
		t.Error("an empty list should remove the service")
	}
	rev := c.PortServices()
	for port, want := range map[uint16]string{2200: "ssh", 22: "", 21: "", 25565: "minecraft", 8080: "minecraft", 80: "http"} {
		if rev[port] != want {
			t.Errorf("PortServices[%d] = %q, want %q", port, rev[port], want)
		}
	}
	// EffectivePortMap must not alias the config's slices.
	eff["ssh"][0] = 1
	if c.Report.PortMap["ssh"][0] != 2200 {
		t.Error("EffectivePortMap shares memory with the config")
	}
}

func TestDefaultsMatchContract(t *testing.T) {
	d := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"api.url", d.API.URL, "https://api.sikkerapi.com"},
		{"api.key_file", d.API.KeyFile, "/etc/sikkerguard/api.key"},
		{"api.score_min", d.API.ScoreMin, 50},
		{"api.limit", d.API.Limit, 0},
		{"api.pull_interval", d.API.PullInterval, 24 * time.Hour},
		{"api.ip_version", d.API.IPVersion, "mixed"},
		{"api.min_severity", d.API.MinSeverity, ""},
		{"api.format", d.API.Format, "plaintext"},
		{"firewall.backend", d.Firewall.Backend, "nftables"},
		{"firewall.hooks", d.Firewall.Hooks, []firewall.Hook{"prerouting"}},
		{"firewall.action", d.Firewall.Action, firewall.ActionDrop},
		{"firewall.ipv6", d.Firewall.IPv6, true},
		{"firewall.log_group", d.Firewall.LogGroup, 7},
		{"firewall.log_rate", d.Firewall.LogRate.String(), "50/second"},
		{"whitelist", len(d.Whitelist), 0},
		{"safety.auto_whitelist", d.Safety.AutoWhitelist, true},
		{"safety.strip_private", d.Safety.StripPrivate, true},
		{"safety.max_growth", d.Safety.MaxGrowth, 2.0},
		{"safety.max_entries", d.Safety.MaxEntries, 5000000},
		{"safety.verify_connectivity", d.Safety.VerifyConnectivity, true},
		{"safety.min_prefix4", d.Safety.MinPrefix4, 8},
		{"safety.min_prefix6", d.Safety.MinPrefix6, 19},
		{"safety.max_block_share", d.Safety.MaxBlockShare, 0.10},
		{"safety.max_shrink", d.Safety.MaxShrink, 0.5},
		{"safety.integrity_interval", d.Safety.IntegrityInterval, time.Minute},
		{"report.enabled", d.Report.Enabled, true},
		{"report.interval", d.Report.Interval, 30 * time.Minute},
		{"report.port_map", len(d.Report.PortMap), 0},
		{"health.listen", d.Health.Listen, ""},
		{"state_dir", d.StateDir, "/var/lib/sikkerguard"},
		{"cleanup_on_stop", d.CleanupOnStop, true},
		{"dry_run", d.DryRun, false},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("default %s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	// Default must hand out fresh maps and slices each time.
	d.Report.PortMap["x"] = []uint16{1}
	d.Firewall.Hooks[0] = "input"
	if e := Default(); len(e.Report.PortMap) != 0 || e.Firewall.Hooks[0] != "prerouting" {
		t.Error("Default() shares state between calls")
	}
}

func TestSafetyShareLimits(t *testing.T) {
	for _, tt := range []struct {
		share, shrink float64
		bad           []string
	}{
		{0.10, 0.5, nil},
		{1, 0, nil},
		{math.NaN(), math.NaN(), []string{"safety.max_block_share", "safety.max_shrink"}},
		{1.01, -0.1, []string{"safety.max_block_share", "safety.max_shrink"}},
		{math.Inf(1), 0.99, []string{"safety.max_block_share"}},
	} {
		c := Default()
		c.Safety.MaxBlockShare, c.Safety.MaxShrink = tt.share, tt.shrink
		err := c.Validate()
		for _, f := range tt.bad {
			if err == nil || !strings.Contains(err.Error(), f+":") {
				t.Errorf("share %v shrink %v: err %v, want %s", tt.share, tt.shrink, err, f)
			}
		}
		if tt.bad == nil && err != nil {
			t.Errorf("share %v shrink %v: %v", tt.share, tt.shrink, err)
		}
	}
}

// A URL that is refused is quoted in the error without its query, which may
// hold a token, nor its user info.
func TestRefusedURLHidesSecrets(t *testing.T) {
	for _, raw := range []string{"ftp://lists.example/drop.txt?token=s3cretTok", "ftp://u:s3cretTok@lists.example/", "http://x/\x7f?token=s3cretTok"} {
		c := Default()
		c.Feeds = []Feed{{Name: "drop", URL: raw, Interval: 12 * time.Hour}}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "feeds[0].url") || strings.Contains(err.Error(), "s3cretTok") {
			t.Errorf("%q: %v", raw, err)
		}
	}
}

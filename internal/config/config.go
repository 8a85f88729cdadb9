// Package config reads sikkerguard's YAML configuration: strict decoding (an
// unknown key is an error), the built-in defaults, the SikkerGuard container's
// SIKKER_* environment overrides, validation that reports every problem with
// its field path, and loading of the SikkerAPI key.
//
// The package is pure apart from Load and LoadAPIKey, which read files; the
// environment is always passed in, never read from the process. The hook
// names and the action are checked by the backend that firewall.backend
// names, through the internal/firewall registry: a program that validates a
// configuration links the backends it offers.
package config

import (
	"net/netip"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
)

// DefaultPath is where the daemon looks for its config when -c is not given.
const DefaultPath = "/etc/sikkerguard/sikkerguard.yaml"

// Firewall backends.
const (
	BackendNFTables = "nftables"
	BackendIPTables = "iptables"
)

// Firewall actions.
const (
	ActionDrop   = firewall.ActionDrop
	ActionReject = firewall.ActionReject
)

// Values of api.ip_version, as SikkerAPI's ipVersion parameter spells them.
const (
	IPVersion4     = "4"
	IPVersion6     = "6"
	IPVersionMixed = "mixed"
)

// DefaultFeedInterval is the refresh interval of a feed that names none.
const DefaultFeedInterval = 24 * time.Hour

// ReservedFeedName is the name of the built-in SikkerAPI source; extra feeds
// cannot use it because per-feed state and `sikkerctl check` key on the name.
const ReservedFeedName = "sikkerapi"

// ManualFeedName names the entries blocked by hand (`sikkerctl block`);
// they enter the decision as one more feed, so no configured feed may use
// the name.
const ManualFeedName = "manual"

// CustomFeedName is the feed that SIKKER_CUSTOM_BLACKLIST creates or replaces.
const CustomFeedName = "custom"

// Config is the whole configuration file. The zero value is not useful: start
// from Default() or Load().
type Config struct {
	API           API       `yaml:"api"`
	Feeds         []Feed    `yaml:"feeds"`
	Firewall      Firewall  `yaml:"firewall"`
	Whitelist     Whitelist `yaml:"whitelist"`
	Safety        Safety    `yaml:"safety"`
	Report        Report    `yaml:"report"`
	Health        Health    `yaml:"health"`
	Hub           Hub       `yaml:"hub"`
	StateDir      string    `yaml:"state_dir"`
	CleanupOnStop bool      `yaml:"cleanup_on_stop"`
	DryRun        bool      `yaml:"dry_run"`
}

// API configures the SikkerAPI blacklist pull. The filter fields map one to one
// onto the query parameters of GET /v1/key/blacklist.
type API struct {
	URL             string        `yaml:"url"`
	KeyFile         string        `yaml:"key_file"`
	ScoreMin        int           `yaml:"score_min"`
	Limit           int           `yaml:"limit"` // 0 = the tier's limit
	PullInterval    time.Duration `yaml:"pull_interval"`
	IPVersion       string        `yaml:"ip_version"` // IPVersion4, IPVersion6 or IPVersionMixed
	Protocols       []string      `yaml:"protocols"`
	OnlyCountries   []string      `yaml:"only_countries"`   // upper-case ISO codes after Validate
	ExceptCountries []string      `yaml:"except_countries"` // upper-case ISO codes after Validate
	OnlyASN         []string      `yaml:"only_asn"`         // "AS123" form after Validate
	ExceptASN       []string      `yaml:"except_asn"`       // "AS123" form after Validate
	MinSeverity     string        `yaml:"min_severity"`
	// Mode is ModeEnforce or ModeMonitor, as for a feed; "" is
	// ModeEnforce.
	Mode string `yaml:"mode"`
	// Format is FormatPlaintext or FormatJSON: how the blacklist is
	// pulled. JSON carries each entry's lastSeen, for the ledger's
	// lastSeen → in-kernel histogram, at the price of more bytes.
	Format string `yaml:"format"`
}

// Values of api.format.
const (
	FormatPlaintext = "plaintext"
	FormatJSON      = "json"
)

// Feed is an extra blocklist source: exactly one of URL or File is set.
type Feed struct {
	Name     string        `yaml:"name"`
	URL      string        `yaml:"url,omitempty"`
	File     string        `yaml:"file,omitempty"`
	Interval time.Duration `yaml:"interval,omitempty"` // DefaultFeedInterval after Load
	// TokenFile holds a bearer token sent in the Authorization header of a
	// URL feed (a fleet hub's token); "" sends none.
	TokenFile string `yaml:"token_file,omitempty"`
	// Mode is ModeEnforce (drop) or ModeMonitor (count and log only);
	// "" is ModeEnforce (see Roles).
	Mode string `yaml:"mode,omitempty"`
	// Direction is DirInbound, DirOutbound or DirBoth; "" is DirInbound.
	Direction string `yaml:"direction,omitempty"`
	// Ports and Protocols scope the feed to some traffic (FeedScope);
	// empty means all of it.
	Ports     []string `yaml:"ports,omitempty"`
	Protocols []string `yaml:"protocols,omitempty"`
}

// Feed modes and directions.
const (
	ModeEnforce = "enforce"
	ModeMonitor = "monitor"
	DirInbound  = "inbound"
	DirOutbound = "outbound"
	DirBoth     = "both"
)

// Firewall selects the kernel backend and how blocked packets are treated.
type Firewall struct {
	Backend  string          `yaml:"backend"`
	Hooks    []firewall.Hook `yaml:"hooks"` // in the backend's spelling after Validate
	Action   firewall.Action `yaml:"action"`
	IPv6     bool            `yaml:"ipv6"`
	LogGroup int             `yaml:"log_group"` // NFLOG group 0..65535; 0 disables drop monitoring
	LogRate  LogRate         `yaml:"log_rate"`
}

// Settings returns what the backend takes from the section. The hooks are
// copied: the backend may keep them.
func (f Firewall) Settings() firewall.Settings {
	return firewall.Settings{
		Hooks:    append([]firewall.Hook(nil), f.Hooks...),
		Action:   f.Action,
		IPv6:     f.IPv6,
		LogGroup: uint16(f.LogGroup),
		LogRate:  f.LogRate.N,
		LogPer:   f.LogRate.Unit,
	}
}

// Whitelist holds addresses and ranges that are never blocked. In YAML each
// entry is an IP or a CIDR; a bare address becomes a /32 or /128 and host
// bits are cleared.
type Whitelist []netip.Prefix

// Safety holds the guards against locking the host out.
type Safety struct {
	AutoWhitelist      bool    `yaml:"auto_whitelist"`
	StripPrivate       bool    `yaml:"strip_private"`
	MaxGrowth          float64 `yaml:"max_growth"`
	MaxEntries         int     `yaml:"max_entries"`
	VerifyConnectivity bool    `yaml:"verify_connectivity"`
	// MaxShrink refuses a new list smaller than this share of the previous
	// one (a 200 answer cut short); 0 disables the check.
	MaxShrink float64 `yaml:"max_shrink"`
	// MaxBlockShare is the largest share of global unicast IPv4 space that
	// one merged list may block; a list above it is refused.
	MaxBlockShare float64 `yaml:"max_block_share"`
	// MinPrefix4 and MinPrefix6 are the widest entry a feed may list: a
	// shorter prefix (or a range covering more addresses) is a malformed
	// line, so that 0.0.0.0/0 or ::/0 in a feed cannot cut the host off.
	// 0 accepts any width.
	MinPrefix4 int `yaml:"min_prefix4"`
	MinPrefix6 int `yaml:"min_prefix6"`
	// IntegrityInterval is the period of the fallback check of the kernel
	// objects; changes are normally seen and undone at once through
	// nftables events.
	IntegrityInterval time.Duration `yaml:"integrity_interval"`
}

// Report configures reporting of dropped traffic to SikkerAPI.
type Report struct {
	Enabled  bool          `yaml:"enabled"`
	Interval time.Duration `yaml:"interval"`
	// PortMap holds the user's service → ports overrides; EffectivePortMap
	// merges them over DefaultPortMap.
	PortMap map[string][]uint16 `yaml:"port_map"`
	// Hub sends drop events to a fleet hub's /v1/reports instead of
	// SikkerAPI; "" reports to SikkerAPI with the host's own key.
	Hub string `yaml:"hub"`
}

// Health configures the optional localhost HTTP endpoint.
type Health struct {
	Listen string `yaml:"listen"` // "" = off, else a loopback host:port
}

// Hub configures fleet mode: serving the accepted blocklist to other hosts
// and taking their drop events.
type Hub struct {
	Listen     string `yaml:"listen"`      // "" = off, else host:port
	TLSCert    string `yaml:"tls_cert"`    // "" with TLSKey "" = plain HTTP (behind a proxy)
	TLSKey     string `yaml:"tls_key"`     //
	TokensFile string `yaml:"tokens_file"` // NAME TOKEN a line, root-only
}

// DefaultHubTokensFile is where the hub reads its hosts' tokens.
const DefaultHubTokensFile = "/etc/sikkerguard/hub-tokens"

// MinTokenFeedInterval is the shortest interval of a URL feed with a
// token: that is one's own hub, whose unchanged list costs one 304.
const MinTokenFeedInterval = time.Minute

// Default returns the built-in configuration, exactly the defaults listed in
// the user contract. It is the only place defaults are written down.
func Default() Config {
	return Config{
		API: API{
			URL:          "https://api.sikkerapi.com",
			KeyFile:      "/etc/sikkerguard/api.key",
			ScoreMin:     50,
			Limit:        0,
			PullInterval: 24 * time.Hour,
			IPVersion:    IPVersionMixed,
			Mode:         ModeEnforce,
			Format:       FormatPlaintext,
		},
		Firewall: Firewall{
			Backend:  BackendNFTables,
			Hooks:    DefaultHooks(BackendNFTables),
			Action:   ActionDrop,
			IPv6:     true,
			LogGroup: 7,
			LogRate:  LogRate{N: 50, Unit: time.Second},
		},
		Safety: Safety{
			AutoWhitelist:      true,
			StripPrivate:       true,
			MaxGrowth:          2.0,
			MaxShrink:          0.5,
			MaxBlockShare:      0.10,
			MaxEntries:         5_000_000,
			VerifyConnectivity: true,
			// The widest blocks real lists carry are a few /8s; a /19 is
			// the smallest allocation an RIR gives an IPv6 LIR.
			MinPrefix4:        8,
			MinPrefix6:        19,
			IntegrityInterval: time.Minute,
		},
		Report: Report{
			Enabled:  true,
			Interval: 30 * time.Minute,
			PortMap:  map[string][]uint16{},
		},
		Hub:           Hub{TokensFile: DefaultHubTokensFile},
		StateDir:      "/var/lib/sikkerguard",
		CleanupOnStop: true,
	}
}

// DefaultHooks returns the hooks used when firewall.hooks is not set. The
// nftables prerouting hook sees both local and forwarded traffic; iptables
// has no filter chain there, so INPUT and FORWARD together cover the same.
func DefaultHooks(backend string) []firewall.Hook {
	if backend == BackendIPTables {
		return []firewall.Hook{"INPUT", "FORWARD"}
	}
	return []firewall.Hook{"prerouting"}
}

package ipset

import (
	"fmt"
	"time"
)

// Built-in chains accepted in Config.Hooks.
const (
	HookInput      = "INPUT"
	HookForward    = "FORWARD"
	HookDockerUser = "DOCKER-USER" // Docker's chain for user rules, jumped to from FORWARD
)

// Actions accepted in Config.Action.
const (
	ActionDrop   = "drop"
	ActionReject = "reject"
)

// Names of the kernel objects. CONTRACT.md fixes the hash:ip sets and the
// chain; ipset names are limited to 31 characters, chains to 28.
const (
	SetHosts4  = "sikkerguard4"       // hash:ip, single IPv4 addresses
	SetHosts6  = "sikkerguard6"       // hash:ip, single IPv6 addresses
	SetNets4   = "sikkerguard4-net"   // hash:net, IPv4 ranges as CIDRs
	SetNets6   = "sikkerguard6-net"   // hash:net, IPv6 ranges as CIDRs
	SetAllow4  = "sikkerguard4-allow" // hash:net, whitelist
	SetAllow6  = "sikkerguard6-allow" // hash:net, whitelist
	Chain      = "SIKKERGUARD"        // set lookups, jumped to from each hook
	ChainBlock = "SIKKERGUARD-BLOCK"  // log (rate-limited) and drop or reject
	TempSuffix = "-tmp"               // temporary sets filled before a swap
	Comment    = "sikkerguard"        // comment on the jump rules
	LogPrefix  = "sikkerguard: "      // NFLOG prefix of dropped packets
)

// Config is what the backend needs from the daemon's configuration.
type Config struct {
	Hooks    []string      // INPUT | FORWARD | DOCKER-USER; empty means [INPUT]
	Action   string        // drop | reject; empty means drop
	IPv6     bool          // build the IPv6 half (sets, ip6tables rules)
	LogGroup uint16        // NFLOG group for dropped packets; 0 disables logging
	LogRate  uint32        // packets logged per LogPer; 0 means 50
	LogPer   time.Duration // time.Second, time.Minute, time.Hour or 24h; 0 means second
}

func (c Config) withDefaults() Config {
	if len(c.Hooks) == 0 {
		c.Hooks = []string{HookInput}
	}
	if c.Action == "" {
		c.Action = ActionDrop
	}
	if c.LogRate == 0 {
		c.LogRate = 50
	}
	if c.LogPer == 0 {
		c.LogPer = time.Second
	}
	return c
}

// Validate reports the first setting the backend cannot build.
func (c Config) Validate() error {
	c = c.withDefaults()
	seen := map[string]bool{}
	for _, h := range c.Hooks {
		switch h {
		case HookInput, HookForward, HookDockerUser:
		default:
			return fmt.Errorf("hooks: unknown chain %q (want INPUT, FORWARD or DOCKER-USER)", h)
		}
		if seen[h] {
			return fmt.Errorf("hooks: %q listed twice", h)
		}
		seen[h] = true
	}
	switch c.Action {
	case ActionDrop, ActionReject:
	default:
		return fmt.Errorf("action: unknown action %q (want drop or reject)", c.Action)
	}
	if _, err := limitUnit(c.LogPer); err != nil {
		return err
	}
	return nil
}

// limitUnit returns the iptables limit unit for d.
func limitUnit(d time.Duration) (string, error) {
	switch d {
	case time.Second:
		return "second", nil
	case time.Minute:
		return "minute", nil
	case time.Hour:
		return "hour", nil
	case 24 * time.Hour:
		return "day", nil
	}
	return "", fmt.Errorf("log rate: unit %v not one of second, minute, hour, day", d)
}

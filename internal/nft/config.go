package nft

import (
	"fmt"
	"slices"
	"time"
)

// Hook names accepted in Config.Hooks.
const (
	HookPrerouting = "prerouting"
	HookInput      = "input"
	HookForward    = "forward"
)

// Actions accepted in Config.Action.
const (
	ActionDrop   = "drop"
	ActionReject = "reject"
)

// Config is what the backend needs from the daemon's configuration.
type Config struct {
	Hooks    []string      // prerouting | input | forward; empty means [prerouting]
	Action   string        // drop | reject; empty means drop
	IPv6     bool          // build the IPv6 half (sets, rules)
	LogGroup uint16        // NFLOG group for dropped packets; 0 disables logging
	LogRate  uint32        // packets logged per LogPer (kernel limit); 0 means 50
	LogPer   time.Duration // time.Second, time.Minute, time.Hour or 24h; 0 means second
}

func (c Config) withDefaults() Config {
	if len(c.Hooks) == 0 {
		c.Hooks = []string{HookPrerouting}
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
		case HookPrerouting, HookInput, HookForward:
		default:
			return fmt.Errorf("hooks: unknown hook %q (want prerouting, input or forward)", h)
		}
		if seen[h] {
			return fmt.Errorf("hooks: %q listed twice", h)
		}
		seen[h] = true
	}
	switch c.Action {
	case ActionDrop:
	case ActionReject:
		// The kernel refuses reject in prerouting; silently dropping there
		// instead would hide a misconfiguration.
		if slices.Contains(c.Hooks, HookPrerouting) {
			return fmt.Errorf("action: reject works only in hooks input and forward, not prerouting")
		}
	default:
		return fmt.Errorf("action: unknown action %q (want drop or reject)", c.Action)
	}
	switch c.LogPer {
	case time.Second, time.Minute, time.Hour, 24 * time.Hour:
	default:
		return fmt.Errorf("log rate: unit %v not one of second, minute, hour, day", c.LogPer)
	}
	return nil
}

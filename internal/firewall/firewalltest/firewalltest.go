// Package firewalltest builds backend settings for tests and the benchmark,
// which set only what they vary.
package firewalltest

import (
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
)

// Settings returns s with what it leaves zero set as the config file's
// defaults would be: hooks [hook], action drop, 50 logged packets per second.
func Settings(s firewall.Settings, hook firewall.Hook) firewall.Settings {
	if len(s.Hooks) == 0 {
		s.Hooks = []firewall.Hook{hook}
	}
	if s.Action == "" {
		s.Action = firewall.ActionDrop
	}
	if s.LogRate == 0 {
		s.LogRate = 50
	}
	if s.LogPer == 0 {
		s.LogPer = time.Second
	}
	return s
}

package nft

import (
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
)

// Loaded describes what the backend believes the kernel holds.
type Loaded struct {
	Built          bool
	Block4, Block6 int // merged ranges (single addresses count as one)
	Allow4, Allow6 int
}

// Loaded returns counts from the backend's own copy; it does not ask the kernel.
// Singles kept in a hash set after they moved into a range (moved.go) are
// covered by that range and not counted; they only outlive the call that
// moved them when their removal failed.
func (b *Backend) Loaded() Loaded {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Loaded{Built: b.built, Block4: len(b.block.V4), Block6: len(b.block.V6), Allow4: len(b.allow.V4), Allow6: len(b.allow.V6)}
}

// testConfig is firewall.Settings with the defaults of the config file for
// what a test leaves zero: hooks [prerouting], action drop, 50 per second.
type testConfig firewall.Settings

func (c testConfig) settings() firewall.Settings {
	s := firewall.Settings(c)
	if len(s.Hooks) == 0 {
		s.Hooks = []firewall.Hook{HookPrerouting}
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

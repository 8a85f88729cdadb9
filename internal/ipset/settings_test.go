package ipset

import (
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/firewall/firewalltest"
)

// testConfig is firewall.Settings with defaults for what a test leaves
// zero (hooks [INPUT]; see firewalltest.Settings).
type testConfig firewall.Settings

func (c testConfig) settings() firewall.Settings {
	return firewalltest.Settings(firewall.Settings(c), HookInput)
}

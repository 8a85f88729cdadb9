package ipset

import (
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/firewall/firewalltest"
)

// testConfig is firewall.Settings with defaults for what a test leaves
// zero (hooks [INPUT]; see firewalltest.Settings).
type testConfig firewall.Settings

func (c testConfig) settings() firewall.Settings {
	return firewalltest.Settings(firewall.Settings(c), HookInput)
}

// Inside a pid namespace the kernel names a committing helper by a pid the
// backend never saw; its name and timing still make it ours.
func TestRanRecentlyInsideAPIDNamespace(t *testing.T) {
	b := &Backend{}
	b.noteHelper(4242)
	if !b.ranRecently(4242, "ip6tables-resto") {
		t.Fatal("a helper's own pid is not ours")
	}
	saved := inChildPIDNamespace
	t.Cleanup(func() { inChildPIDNamespace = saved })

	inChildPIDNamespace = func() bool { return false }
	if b.ranRecently(99999, "ip6tables-resto") {
		t.Error("in the initial namespace an unknown pid was taken as ours")
	}
	inChildPIDNamespace = func() bool { return true }
	if !b.ranRecently(99999, "ip6tables-resto") {
		t.Error("inside a pid namespace, our running tool's transaction was taken as foreign")
	}
	if b.ranRecently(99999, "nft") {
		t.Error("another program's transaction was taken as ours")
	}
	b.helperDone()
	b.lastHelperEnd = b.lastHelperEnd.Add(-helperGrace - time.Second)
	if b.ranRecently(99999, "iptables") {
		t.Error("a transaction long after our last tool ended was taken as ours")
	}
}

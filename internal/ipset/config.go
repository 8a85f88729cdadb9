package ipset

import (
	"log/slog"
	"os/exec"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
)

// Name is the backend's name in firewall.backend.
const Name = "iptables"

// Built-in chains of the filter table the backend hooks into.
const (
	HookInput      firewall.Hook = "INPUT"
	HookForward    firewall.Hook = "FORWARD"
	HookDockerUser firewall.Hook = "DOCKER-USER" // Docker's chain for user rules, jumped to from FORWARD
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

// backend is the registration of this package; init fills it, as Open
// refers back to New, which checks settings with it.
var backend firewall.Backend

func init() {
	backend = firewall.Backend{
		Open: func(s firewall.Settings, log *slog.Logger) (firewall.Firewall, error) {
			return New(s, log)
		},
		ValidateHooks: func(hooks []firewall.Hook, _ firewall.Action) ([]firewall.Hook, error) {
			return firewall.CheckHookNames(Name, hooks, HookInput, HookForward, HookDockerUser)
		},
		Cleanup: cleanup,
	}
	firewall.Register(Name, backend)
}

// cleanup removes the rules and sets of any earlier configuration. Without
// the tools nothing of the backend can be in the kernel. IPv6 is off so that
// a missing ip6tables is no error; Remove cleans both families anyway.
func cleanup(log *slog.Logger) error {
	for _, tool := range []string{"ipset", "iptables", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil
		}
	}
	b, err := New(firewall.Settings{Hooks: []firewall.Hook{HookInput}, Action: firewall.ActionDrop, LogRate: 1, LogPer: time.Second}, log)
	if err != nil {
		return err
	}
	return b.Remove()
}

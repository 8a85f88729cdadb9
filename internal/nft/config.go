package nft

import (
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
)

// Name is the backend's name in firewall.backend.
const Name = "nftables"

// Hooks of the nftables backend (netfilter hooks of the inet family).
const (
	HookPrerouting firewall.Hook = "prerouting"
	HookInput      firewall.Hook = "input"
	HookForward    firewall.Hook = "forward"
)

// backend is the registration of this package; init fills it, as Open
// refers back to New, which checks settings with it.
var backend firewall.Backend

func init() {
	backend = firewall.Backend{
		Open: func(s firewall.Settings, log *slog.Logger) (firewall.Firewall, error) {
			return New(s, log)
		},
		ValidateHooks: validateHooks,
		Cleanup: func(log *slog.Logger) error {
			b, err := New(cleanupSettings, log)
			if err != nil {
				return err
			}
			return b.Remove()
		},
	}
	firewall.Register(Name, backend)
}

// cleanupSettings open a backend only to remove the table: Remove deletes
// it whole, whatever the settings that built it.
var cleanupSettings = firewall.Settings{Hooks: []firewall.Hook{HookPrerouting}, Action: firewall.ActionDrop,
	IPv6: true, LogRate: 1, LogPer: time.Second}

// validateHooks accepts the hooks of the inet family that see incoming
// packets.
func validateHooks(hooks []firewall.Hook, action firewall.Action) ([]firewall.Hook, error) {
	hooks, err := firewall.CheckHookNames(Name, hooks, HookPrerouting, HookInput, HookForward)
	// The kernel refuses reject in prerouting; silently dropping there
	// instead would hide a misconfiguration.
	if action == firewall.ActionReject && slices.Contains(hooks, HookPrerouting) {
		err = errors.Join(err, &firewall.SettingError{Field: "action", Msg: "reject cannot be used with the prerouting hook: " +
			"the kernel allows the reject statement only in the input, forward and output hooks " +
			"(use hooks [input, forward], or action drop)"})
	}
	return hooks, err
}

package daemon

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// roleSet is one feed's list in force with its role, for naming the feeds
// of a logged packet from the monitor's goroutine.
type roleSet struct {
	name string
	role config.Role
	set  ipnet.Set
}

// noteRoles publishes the feeds' lists in force for resolveFeeds; it runs
// on the main loop whenever the kernel's lists change.
func (d *Daemon) noteRoles() {
	roles := d.cfg.Roles()
	out := make([]roleSet, 0, len(d.feeds)+1)
	for _, f := range d.feeds {
		if f.inUse != nil {
			out = append(out, roleSet{f.name, withDefaults(roles[f.name]), f.inUse.Set})
		}
	}
	if d.manualInUse != nil {
		out = append(out, roleSet{config.ManualFeedName, config.EnforceInbound, d.manualInUse.Set})
	}
	d.roleSets.Store(&out)
}

func withDefaults(r config.Role) config.Role {
	if r.Mode == "" {
		return config.EnforceInbound
	}
	return r
}

// resolveFeeds names the feeds whose role puts a in the kernel list that
// logged a packet of kind: the kernel keeps one set per role, the daemon
// knows the feeds (see feedDrops).
func (d *Daemon) resolveFeeds(kind string, a netip.Addr) []string {
	p := d.roleSets.Load()
	if p == nil {
		return nil
	}
	return resolveIn(*p, kind, a)
}

// resolveIn names the feeds of sets whose role logs kind and which list a.
func resolveIn(sets []roleSet, kind string, a netip.Addr) []string {
	var out []string
	for _, rs := range sets {
		if roleLogs(rs.role, kind) && rs.set.Contains(a) {
			out = append(out, rs.name)
		}
	}
	return out
}

// roleLogs reports whether a feed of role r puts its entries in the list
// whose rule logs kind.
func roleLogs(r config.Role, kind string) bool {
	monitor := r.Mode == config.ModeMonitor
	switch kind {
	case HitDrop:
		return !monitor && r.Inbound()
	case HitWouldUnsolicited, HitWouldReply:
		return monitor
	case HitOutbound:
		// The output chain counts connections to the blocklist and the
		// monitor sets (nft roles.go).
		return monitor || (r.Inbound() && r.Scope < 0)
	case HitBlockedOut:
		return !monitor && r.Outbound()
	}
	return false
}

// roleText is a feed's role as `sikkerctl check` names it: the mode, and
// the direction and scope where they are not the defaults.
func roleText(r config.Role) string {
	r = withDefaults(r)
	s := r.Mode
	if r.Direction != config.DirInbound && r.Direction != "" {
		s += ", " + r.Direction
	}
	if r.ScopeText != "" {
		s += ", " + r.ScopeText + " only"
	}
	return s
}

// explainRoles explains an address that the blocklist does not drop on
// every port but a role list holds: monitored, scoped or outbound.
func (d *Daemon) explainRoles(a netip.Addr, listedBy []string) (msg string, blocked, ok bool) {
	by := strings.Join(listedBy, ", ")
	dry := ""
	if d.cfg.DryRun {
		dry = " (dry run: nothing is dropped)"
	}
	for i, s := range d.applied.Scoped {
		if s.Contains(a) {
			scope := d.cfg.FirewallSettings().Scopes[i].String()
			return fmt.Sprintf("blocked for %s only: listed by %s%s", scope, by, dry), !d.cfg.DryRun, true
		}
	}
	if d.applied.Out.Contains(a) {
		return fmt.Sprintf("blocked outbound: this host cannot open connections to it; listed by %s%s", by, dry), !d.cfg.DryRun, true
	}
	if d.applied.Monitor.Contains(a) {
		return fmt.Sprintf("monitored only: listed by %s; its traffic is counted and logged as WOULD-BLOCK", by), false, true
	}
	return "", false, false
}

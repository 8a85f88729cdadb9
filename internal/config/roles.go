package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
)

// A feed's role says what the firewall does with its entries: drop them
// (enforce) or only count and log them (monitor), for traffic from them
// (inbound), to them (outbound) or both, and, for a scoped feed, only for
// some protocols and ports.

// Role is one feed's role, as the decision and `sikkerctl check` see it.
type Role struct {
	Mode      string // ModeEnforce or ModeMonitor
	Direction string // DirInbound, DirOutbound or DirBoth
	// Scope is the index of the feed's scope in FirewallSettings().Scopes,
	// -1 for an unscoped feed.
	Scope int
	// ScopeText is the scope as written ("22/tcp"); "" when unscoped.
	ScopeText string
}

// Inbound reports whether the feed acts on traffic from its entries.
func (r Role) Inbound() bool { return r.Direction != DirOutbound }

// Outbound reports whether the feed acts on traffic to its entries.
func (r Role) Outbound() bool { return r.Direction == DirOutbound || r.Direction == DirBoth }

// String describes the role for `sikkerctl check`: "enforce, inbound",
// "monitor, both", "enforce, inbound, 22/tcp only".
func (r Role) String() string {
	s := r.Mode + ", " + r.Direction
	if r.ScopeText != "" {
		s += ", " + r.ScopeText + " only"
	}
	return s
}

// EnforceInbound is the role of a feed without settings: the SikkerAPI
// feed in enforce mode, and the entries blocked by hand.
var EnforceInbound = Role{Mode: ModeEnforce, Direction: DirInbound, Scope: -1}

// Roles returns the role of every feed by name: the SikkerAPI feed
// (ReservedFeedName) and each extra feed. The config must be valid.
func (c Config) Roles() map[string]Role {
	api := EnforceInbound
	api.Mode = orMode(c.API.Mode)
	out := map[string]Role{ReservedFeedName: api, ManualFeedName: EnforceInbound}
	scopes := c.scopes()
	for _, f := range c.Feeds {
		r := Role{Mode: orMode(f.Mode), Direction: f.Direction, Scope: -1}
		if r.Direction == "" {
			r.Direction = DirInbound
		}
		if sc, ok := FeedScope(f); ok {
			r.Scope = slices.IndexFunc(scopes, sc.Equal)
			r.ScopeText = sc.String()
		}
		out[f.Name] = r
	}
	return out
}

func orMode(m string) string {
	if m == "" {
		return ModeEnforce
	}
	return m
}

// scopes lists the distinct scopes of the feeds, in the order of first use.
func (c Config) scopes() []firewall.Scope {
	var out []firewall.Scope
	for _, f := range c.Feeds {
		if sc, ok := FeedScope(f); ok && !slices.ContainsFunc(out, sc.Equal) {
			out = append(out, sc)
		}
	}
	return out
}

// FirewallSettings returns what the backend takes: the firewall section
// and the objects the feeds' roles need.
func (c Config) FirewallSettings() firewall.Settings {
	s := c.Firewall.Settings()
	s.Monitor = c.API.Mode == ModeMonitor
	for _, f := range c.Feeds {
		s.Monitor = s.Monitor || f.Mode == ModeMonitor
		s.Outbound = s.Outbound || (f.Mode != ModeMonitor && (f.Direction == DirOutbound || f.Direction == DirBoth))
	}
	s.Scopes = c.scopes()
	return s
}

// FeedScope returns the scope of a feed with ports or protocols. Ports
// without protocols mean TCP and UDP. It ignores what validation refuses.
func FeedScope(f Feed) (firewall.Scope, bool) {
	if len(f.Ports) == 0 && len(f.Protocols) == 0 {
		return firewall.Scope{}, false
	}
	var sc firewall.Scope
	for _, p := range f.Protocols {
		if n, ok := firewall.ProtocolNames[strings.ToLower(strings.TrimSpace(p))]; ok && !slices.Contains(sc.Protocols, n) {
			sc.Protocols = append(sc.Protocols, n)
		}
	}
	if len(sc.Protocols) == 0 {
		sc.Protocols = []uint8{firewall.ProtocolNames["tcp"], firewall.ProtocolNames["udp"]}
	}
	for _, p := range f.Ports {
		if r, err := parsePortRange(p); err == nil && !slices.Contains(sc.Ports, r) {
			sc.Ports = append(sc.Ports, r)
		}
	}
	slices.Sort(sc.Protocols)
	slices.SortFunc(sc.Ports, func(a, b firewall.PortRange) int { return int(a.Lo) - int(b.Lo) })
	return sc, true
}

// parsePortRange reads "22" or "6000-6010".
func parsePortRange(s string) (firewall.PortRange, error) {
	s = strings.TrimSpace(s)
	lo, hi, isRange := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	b := a
	var err2 error
	if isRange {
		b, err2 = strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
	}
	switch {
	case err1 != nil || err2 != nil:
		return firewall.PortRange{}, fmt.Errorf("%q is not a port (1..65535) or a range such as 6000-6010", s)
	case a == 0:
		return firewall.PortRange{}, fmt.Errorf("%q: port 0 is not a port", s)
	case b < a:
		return firewall.PortRange{}, fmt.Errorf("%q: the range ends before it starts", s)
	}
	return firewall.PortRange{Lo: uint16(a), Hi: uint16(b)}, nil
}

// validateRole checks a feed's mode, direction and scope; path is
// "feeds[2]" or "api" (which has only a mode).
func (c *Config) validateRole(p *problems, path string, mode *string, f *Feed) {
	*mode = strings.ToLower(strings.TrimSpace(*mode))
	nft := c.Firewall.Backend != BackendIPTables
	if *mode != "" && oneOf(p, path+".mode", *mode, ModeEnforce, ModeMonitor) && *mode == ModeMonitor && !nft {
		p.add(path+".mode", "monitor needs firewall.backend: nftables")
	}
	if f == nil {
		return
	}
	f.Direction = strings.ToLower(strings.TrimSpace(f.Direction))
	if f.Direction != "" && oneOf(p, path+".direction", f.Direction, DirInbound, DirOutbound, DirBoth) &&
		f.Direction != DirInbound && !nft {
		p.add(path+".direction", "%s needs firewall.backend: nftables", f.Direction)
	}
	if len(f.Ports) == 0 && len(f.Protocols) == 0 {
		return
	}
	switch {
	case !nft:
		p.add(path+".ports", "a scope (ports, protocols) needs firewall.backend: nftables")
		return
	case *mode == ModeMonitor:
		p.add(path+".ports", "ports and protocols scope an enforcing feed; a monitor feed watches all traffic from its entries")
		return
	case f.Direction != "" && f.Direction != DirInbound:
		p.add(path+".direction", "ports and protocols scope inbound traffic only; %s is not inbound", f.Direction)
		return
	}
	withPorts := false
	for i, name := range f.Protocols {
		name = strings.ToLower(strings.TrimSpace(name))
		f.Protocols[i] = name
		n, ok := firewall.ProtocolNames[name]
		if !ok {
			p.add(fmt.Sprintf("%s.protocols[%d]", path, i), "%q is not one of dccp, icmp, icmpv6, sctp, tcp, udp, udplite", name)
			continue
		}
		withPorts = withPorts || slices.Contains(firewall.PortProtocols, n)
	}
	for i, s := range f.Ports {
		if _, err := parsePortRange(s); err != nil {
			p.add(fmt.Sprintf("%s.ports[%d]", path, i), "%v", err)
		}
	}
	if len(f.Ports) > 0 && len(f.Protocols) > 0 && !withPorts {
		p.add(path+".ports", "none of the protocols has ports; add tcp, udp, sctp, dccp or udplite, or drop the ports")
	}
}

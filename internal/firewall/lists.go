package firewall

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// Lists is everything a backend holds, each list merged. Block and Allow
// are the contract's blocklist and whitelist; the others exist only when
// the settings ask for them (Settings.Monitor, Settings.Outbound,
// Settings.Scopes) and are otherwise empty.
type Lists struct {
	// Block holds the sources dropped on every port: the entries of the
	// enforcing inbound feeds.
	Block ipnet.Set
	// Allow holds the sources accepted before any list is consulted.
	Allow ipnet.Set
	// Monitor holds the entries of monitor feeds that no enforcing feed
	// lists: counted and logged, never dropped.
	Monitor ipnet.Set
	// Out holds the destinations the host itself may not connect to
	// (feeds with direction outbound or both).
	Out ipnet.Set
	// Scoped[i] holds the sources dropped only for the traffic of
	// Settings.Scopes[i].
	Scoped []ipnet.Set
}

// Equal reports whether l and o hold the same lists.
func (l Lists) Equal(o Lists) bool {
	if !l.Block.Equal(o.Block) || !l.Allow.Equal(o.Allow) || !l.Monitor.Equal(o.Monitor) ||
		!l.Out.Equal(o.Out) || len(l.Scoped) != len(o.Scoped) {
		return false
	}
	for i := range l.Scoped {
		if !l.Scoped[i].Equal(o.Scoped[i]) {
			return false
		}
	}
	return true
}

// Extra reports whether l holds anything beyond Block and Allow.
func (l Lists) Extra() bool {
	if !l.Monitor.IsEmpty() || !l.Out.IsEmpty() {
		return true
	}
	return slices.ContainsFunc(l.Scoped, func(s ipnet.Set) bool { return !s.IsEmpty() })
}

// Family keeps only the IPv4 entries of every list when ipv6 is false.
func (l Lists) Family(ipv6 bool) Lists {
	if ipv6 {
		return l
	}
	l.Block.V6, l.Allow.V6, l.Monitor.V6, l.Out.V6 = nil, nil, nil, nil
	sc := make([]ipnet.Set, len(l.Scoped))
	for i, s := range l.Scoped {
		sc[i] = ipnet.Set{V4: s.V4}
	}
	l.Scoped = sc
	return l
}

// NFLOG prefixes of the log rules, which tell the daemon what a logged
// packet is: dropped from a listed source (BLOCKED), from a monitor feed's
// source (unsolicited, or a reply to this host), this host's own new
// connection to a listed address, or such a connection dropped.
const (
	LogPrefixDrop    = "sikkerguard: "
	LogPrefixWould   = "sikkerguard-would: "
	LogPrefixReply   = "sikkerguard-reply: "
	LogPrefixOut     = "sikkerguard-out: "
	LogPrefixOutDrop = "sikkerguard-outdrop: "
)

// Scope restricts a feed to some traffic: the packets of Protocols (IP
// protocol numbers) and, for protocols with ports, to the destination
// ports of Ports (none: every port).
type Scope struct {
	Protocols []uint8
	Ports     []PortRange
}

// PortRange is an inclusive range of ports; a single port has Lo == Hi.
type PortRange struct{ Lo, Hi uint16 }

// String is the config file's spelling: "22" or "6000-6010".
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// ProtocolNames maps the protocol names the config file takes to their
// IP protocol numbers. The ones with ports are in PortProtocols.
var ProtocolNames = map[string]uint8{"tcp": 6, "udp": 17, "sctp": 132, "dccp": 33, "udplite": 136, "icmp": 1, "icmpv6": 58}

// PortProtocols are the protocols whose header starts with the ports.
var PortProtocols = []uint8{6, 17, 132, 33, 136}

// ProtocolName returns the config file's name of protocol number n.
func ProtocolName(n uint8) string {
	for k, v := range ProtocolNames {
		if v == n {
			return k
		}
	}
	return fmt.Sprint(n)
}

// String is the scope as `sikkerctl check` shows it: "22,80/tcp,udp".
func (s Scope) String() string {
	var ps, ns []string
	for _, p := range s.Ports {
		ps = append(ps, p.String())
	}
	for _, n := range s.Protocols {
		ns = append(ns, ProtocolName(n))
	}
	if len(ps) == 0 {
		return strings.Join(ns, ",")
	}
	return strings.Join(ps, ",") + "/" + strings.Join(ns, ",")
}

// Equal reports whether two scopes are the same.
func (s Scope) Equal(o Scope) bool {
	return slices.Equal(s.Protocols, o.Protocols) && slices.Equal(s.Ports, o.Ports)
}

package safety

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// NeverBlock is everything the firewall must never block, by origin, so the
// start-up log and `sikkerctl check` can say why an address is exempt.
//
// The rules (CONTRACT.md, "Safety rules"): loopback, the default gateway(s),
// the DNS servers of resolv.conf, the host's own addresses, the API
// endpoint's addresses and the user's whitelist are always exempt. A directly
// connected subnet is exempt as a whole only when it lies inside a private
// range (RFC 1918, CGNAT 100.64.0.0/10, ULA fc00::/7, link-local); on a
// public subnet, typically a hosting provider's shared segment where the
// neighbours are strangers, only the gateway and the host's own addresses are.
//
// Gateways and DNS may carry an IPv6 zone (fe80::1%eth0) so that they can be
// probed; the zone is dropped in Set.
type NeverBlock struct {
	Gateways []netip.Addr   // default-route next hops, IPv4 and IPv6
	DNS      []netip.Addr   // nameservers from resolv.conf, and the upstream servers of systemd-resolved
	Own      []netip.Addr   // addresses assigned to the host's interfaces
	API      []netip.Addr   // the API endpoint's addresses
	APIPort  uint16         // the API endpoint's port, for probing
	Subnets  []netip.Prefix // directly connected private subnets
	Loopback []netip.Prefix // 127.0.0.0/8 and ::1/128
	User     []netip.Prefix // the config whitelist
	Runtime  []netip.Prefix // entries added with `sikkerctl whitelist add`
}

// Loopback returns the loopback ranges of both families.
func Loopback() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// privateRanges are the ranges whose connected subnets are exempt whole:
// traffic from them cannot come from the internet at large.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// IsPrivateSubnet reports whether every address of p is inside one of the
// private ranges, so the whole subnet may be exempt. A subnet that only
// overlaps one (10.0.0.0/7 also covers 11.0.0.0/8) is not.
func IsPrivateSubnet(p netip.Prefix) bool {
	p = unmapPrefix(p)
	if !p.IsValid() {
		return false
	}
	for _, r := range privateRanges {
		if p.Bits() >= r.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

// Set returns the merged set of every address that must never be blocked.
func (n NeverBlock) Set() ipnet.Set {
	return ipnet.Union(
		ipnet.FromAddrs(n.Gateways...),
		ipnet.FromAddrs(n.DNS...),
		ipnet.FromAddrs(n.Own...),
		ipnet.FromAddrs(n.API...),
		ipnet.FromPrefixes(n.Subnets...),
		ipnet.FromPrefixes(n.Loopback...),
		ipnet.FromPrefixes(n.User...),
		ipnet.FromPrefixes(n.Runtime...),
	)
}

// Counts returns how many single addresses and how many wider CIDR ranges the
// merged whitelist holds. It counts what is in force, not what was listed:
// an own address inside an exempt subnet, or a DNS server that is also the
// gateway, is not counted twice.
func (n NeverBlock) Counts() (ips, ranges int) {
	for p := range n.Set().AllPrefixes() {
		if p.IsSingleIP() {
			ips++
		} else {
			ranges++
		}
	}
	return ips, ranges
}

// WhitelistLine formats the start-up log line of the contract.
func WhitelistLine(ips, ranges int) string {
	return fmt.Sprintf("Safety whitelist: %d IPs + %d CIDR ranges", ips, ranges)
}

// Route is one route as discovery needs it.
type Route struct {
	Dst      netip.Prefix // 0.0.0.0/0 or ::/0 for a default route
	Gateways []netip.Addr // next hops (several for a multipath route); none for a link route
	Ifindex  int          // output interface, 0 when unknown or per next hop
	Main     bool         // in the main table, where connected routes live
}

// IfAddr is one address assigned to an interface.
type IfAddr struct {
	Addr    netip.Addr   // the local address
	Subnet  netip.Prefix // the connected subnet (the peer's for point-to-point links)
	Ifindex int
}

// Source reads the host's routes and interface addresses. Netlink is the
// kernel's; tests pass fixtures.
type Source interface {
	Routes() ([]Route, error)
	Addrs() ([]IfAddr, error)
}

// Classify applies the rules to the host's routes and addresses: gateways of
// default routes, own addresses, connected private subnets, loopback. It is
// pure; the other fields of the result are left empty.
func Classify(routes []Route, addrs []IfAddr) NeverBlock {
	var n NeverBlock
	var subnets []netip.Prefix
	for _, r := range routes {
		if r.Dst.Bits() == 0 {
			n.Gateways = append(n.Gateways, r.Gateways...)
			continue
		}
		// A link route on the main table (ip route add 10.9.0.0/16 dev eth1)
		// is as directly connected as an interface's own subnet.
		if r.Main && len(r.Gateways) == 0 && r.Dst.IsValid() {
			subnets = append(subnets, r.Dst)
		}
	}
	for _, a := range addrs {
		if !a.Addr.IsValid() {
			continue
		}
		n.Own = append(n.Own, a.Addr.WithZone("").Unmap())
		if a.Subnet.IsValid() {
			subnets = append(subnets, a.Subnet)
		}
	}
	for _, p := range subnets {
		if p = unmapPrefix(p); IsPrivateSubnet(p) {
			n.Subnets = append(n.Subnets, p)
		}
	}
	n.Gateways = uniqAddrs(n.Gateways)
	n.Own = uniqAddrs(n.Own)
	n.Subnets = uniqPrefixes(n.Subnets)
	n.Loopback = Loopback()
	return n
}

func uniqAddrs(as []netip.Addr) []netip.Addr {
	out := as[:0]
	for _, a := range as {
		if a.IsValid() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Clip(out)
}

func uniqPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := ps[:0]
	for _, p := range ps {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Clip(out)
}

// DefaultResolvConf is where the system's resolvers are listed.
const DefaultResolvConf = "/etc/resolv.conf"

// DefaultLookupTimeout bounds the API host's name resolution.
const DefaultLookupTimeout = 5 * time.Second

// Discovery says where Discover looks.
type Discovery struct {
	Net        Source // routes and addresses; Netlink{} on a real host
	ResolvConf string // default DefaultResolvConf
	// UpstreamResolvConf lists systemd-resolved's upstream servers; default
	// DefaultUpstreamResolvConf. A missing file adds nothing.
	UpstreamResolvConf string
	// Upstream asks a local resolver for its servers; default Resolved{},
	// systemd-resolved over the system bus. NoUpstream{} asks nobody.
	Upstream      UpstreamSource
	APIURL        string   // the SikkerAPI base URL; empty skips the API
	Resolver      Resolver // default net.DefaultResolver
	LookupTimeout time.Duration
}

// Discover collects the never-block list of the host (of the network
// namespace the calling thread is in, for the netlink part). A failing
// source does not hide the others: the result holds everything that was
// found, and err joins what failed, so the daemon can warn and still keep
// the addresses it does know about out of the blocklist.
func Discover(ctx context.Context, d Discovery) (NeverBlock, error) {
	var errs []error
	var routes []Route
	var addrs []IfAddr
	if d.Net != nil {
		var err error
		if routes, err = d.Net.Routes(); err != nil {
			errs = append(errs, err)
		}
		if addrs, err = d.Net.Addrs(); err != nil {
			errs = append(errs, err)
		}
	}
	n := Classify(routes, addrs)

	dns, err := discoverDNS(ctx, d)
	n.DNS = dns
	errs = append(errs, err)

	if d.APIURL != "" {
		timeout := d.LookupTimeout
		if timeout <= 0 {
			timeout = DefaultLookupTimeout
		}
		lctx, cancel := context.WithTimeout(ctx, timeout)
		ep, err := ResolveEndpoint(lctx, d.Resolver, d.APIURL)
		cancel()
		if err != nil {
			errs = append(errs, err)
		}
		n.API, n.APIPort = ep.Addrs, ep.Port
	}
	return n, errors.Join(errs...)
}

// discoverDNS joins the resolvers of resolv.conf with the servers a local
// stub forwards to: with systemd-resolved, /etc/resolv.conf names only
// 127.0.0.53, and the servers that actually answer are elsewhere.
func discoverDNS(ctx context.Context, d Discovery) ([]netip.Addr, error) {
	path := orDefault(d.ResolvConf, DefaultResolvConf)
	dns, err := ReadResolvConf(path)
	errs := []error{err}
	up, err := ReadResolvConf(orDefault(d.UpstreamResolvConf, DefaultUpstreamResolvConf))
	dns, errs = appendNew(dns, up...), append(errs, err)
	var src UpstreamSource = Resolved{}
	if d.Upstream != nil {
		src = d.Upstream
	}
	up, err = src.UpstreamDNS(ctx)
	dns, errs = appendNew(dns, up...), append(errs, err)
	return dns, errors.Join(errs...)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// appendNew appends the addresses of add that as does not hold yet.
func appendNew(as []netip.Addr, add ...netip.Addr) []netip.Addr {
	for _, a := range add {
		if !slices.Contains(as, a) {
			as = append(as, a)
		}
	}
	return as
}

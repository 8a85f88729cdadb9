package safety

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"syscall"
)

// Netlink reads routes and addresses from the kernel over rtnetlink. The
// socket is opened per call on the calling thread, so it sees the network
// namespace that thread is in: the process's own under `ip netns exec`, or
// the one a test's locked thread entered.
type Netlink struct{}

// Routes dumps the unicast routes of every table but the local one.
func (Netlink) Routes() ([]Route, error) {
	b, err := syscall.NetlinkRIB(syscall.RTM_GETROUTE, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("dump routes: %w", err)
	}
	return parseRoutes(b)
}

// Addrs dumps the addresses of every interface.
func (Netlink) Addrs() ([]IfAddr, error) {
	b, err := syscall.NetlinkRIB(syscall.RTM_GETADDR, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("dump addresses: %w", err)
	}
	return parseAddrs(b)
}

const (
	rtaVia        = 18  // RTA_VIA: a next hop of the other family (IPv4 via IPv6)
	rtTableLocal  = 255 // RT_TABLE_LOCAL: the host's own and broadcast addresses
	sizeofNexthop = 8   // struct rtnexthop
)

// parseRoutes decodes an RTM_NEWROUTE dump.
func parseRoutes(b []byte) ([]Route, error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return nil, fmt.Errorf("parse route dump: %w", err)
	}
	var routes []Route
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWROUTE {
			continue
		}
		if len(m.Data) < syscall.SizeofRtMsg {
			return nil, fmt.Errorf("parse route dump: message of %d bytes is shorter than rtmsg", len(m.Data))
		}
		family, dstLen, table, typ := m.Data[0], int(m.Data[1]), uint32(m.Data[4]), m.Data[7]
		if typ != syscall.RTN_UNICAST || (family != syscall.AF_INET && family != syscall.AF_INET6) {
			continue // blackhole, unreachable, broadcast, local, multicast
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			return nil, fmt.Errorf("parse route attributes: %w", err)
		}
		r := Route{Dst: netip.PrefixFrom(zeroAddr(family), 0)}
		var ifindex int
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.RTA_DST:
				if ip, ok := netip.AddrFromSlice(a.Value); ok {
					r.Dst = netip.PrefixFrom(ip, dstLen)
				}
			case syscall.RTA_GATEWAY:
				if ip, ok := netip.AddrFromSlice(a.Value); ok {
					r.Gateways = append(r.Gateways, ip)
				}
			case rtaVia:
				if ip, ok := viaAddr(a.Value); ok {
					r.Gateways = append(r.Gateways, ip)
				}
			case syscall.RTA_OIF:
				if len(a.Value) >= 4 {
					ifindex = int(binary.NativeEndian.Uint32(a.Value))
				}
			case syscall.RTA_TABLE:
				if len(a.Value) >= 4 {
					table = binary.NativeEndian.Uint32(a.Value)
				}
			case syscall.RTA_MULTIPATH:
				hops, err := parseMultipath(a.Value)
				if err != nil {
					return nil, err
				}
				r.Gateways = append(r.Gateways, hops...)
			}
		}
		if table == rtTableLocal {
			continue
		}
		r.Main = table == syscall.RT_TABLE_MAIN
		r.Ifindex = ifindex
		for j, g := range r.Gateways {
			r.Gateways[j] = withLinkZone(g, ifindex)
		}
		routes = append(routes, r)
	}
	return routes, nil
}

// parseMultipath decodes the rtnexthop array of RTA_MULTIPATH (ECMP default
// routes list each gateway there rather than in RTA_GATEWAY).
func parseMultipath(b []byte) ([]netip.Addr, error) {
	var gws []netip.Addr
	for len(b) >= sizeofNexthop {
		n := int(binary.NativeEndian.Uint16(b))
		if n < sizeofNexthop || n > len(b) {
			return nil, fmt.Errorf("parse multipath route: next hop length %d of %d bytes", n, len(b))
		}
		ifindex := int(int32(binary.NativeEndian.Uint32(b[4:])))
		for attrs := b[sizeofNexthop:n]; len(attrs) >= syscall.SizeofRtAttr; {
			l := int(binary.NativeEndian.Uint16(attrs))
			typ := binary.NativeEndian.Uint16(attrs[2:])
			if l < syscall.SizeofRtAttr || l > len(attrs) {
				return nil, fmt.Errorf("parse multipath route: attribute length %d of %d bytes", l, len(attrs))
			}
			v := attrs[syscall.SizeofRtAttr:l]
			var ip netip.Addr
			var ok bool
			switch typ {
			case syscall.RTA_GATEWAY:
				ip, ok = netip.AddrFromSlice(v)
			case rtaVia:
				ip, ok = viaAddr(v)
			}
			if ok {
				gws = append(gws, withLinkZone(ip, ifindex))
			}
			attrs = attrs[min(align4(l), len(attrs)):]
		}
		b = b[min(align4(n), len(b)):]
	}
	return gws, nil
}

// viaAddr decodes struct rtvia: a 16-bit family, then the address.
func viaAddr(b []byte) (netip.Addr, bool) {
	if len(b) < 2 {
		return netip.Addr{}, false
	}
	ip, ok := netip.AddrFromSlice(b[2:])
	return ip, ok
}

// parseAddrs decodes an RTM_NEWADDR dump.
func parseAddrs(b []byte) ([]IfAddr, error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return nil, fmt.Errorf("parse address dump: %w", err)
	}
	var out []IfAddr
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWADDR {
			continue
		}
		if len(m.Data) < syscall.SizeofIfAddrmsg {
			return nil, fmt.Errorf("parse address dump: message of %d bytes is shorter than ifaddrmsg", len(m.Data))
		}
		bits := int(m.Data[1])
		ifindex := int(binary.NativeEndian.Uint32(m.Data[4:]))
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			return nil, fmt.Errorf("parse address attributes: %w", err)
		}
		// IFA_LOCAL is the host's side; IFA_ADDRESS is the same address, or
		// the peer's on a point-to-point link, and defines the subnet.
		var local, peer netip.Addr
		for _, a := range attrs {
			ip, ok := netip.AddrFromSlice(a.Value)
			if !ok {
				continue
			}
			switch a.Attr.Type {
			case syscall.IFA_LOCAL:
				local = ip
			case syscall.IFA_ADDRESS:
				peer = ip
			}
		}
		if !local.IsValid() {
			local = peer
		}
		if !local.IsValid() {
			continue
		}
		ia := IfAddr{Addr: local, Ifindex: ifindex}
		if p, err := peer.Prefix(bits); err == nil {
			ia.Subnet = p
		}
		out = append(out, ia)
	}
	return out, nil
}

func zeroAddr(family byte) netip.Addr {
	if family == syscall.AF_INET {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// withLinkZone gives a link-local next hop its interface, by index, so that
// it can be dialled; the net package accepts a numeric zone.
func withLinkZone(a netip.Addr, ifindex int) netip.Addr {
	if a.Is6() && a.IsLinkLocalUnicast() && ifindex > 0 {
		return a.WithZone(strconv.Itoa(ifindex))
	}
	return a
}

func align4(n int) int { return (n + 3) &^ 3 }

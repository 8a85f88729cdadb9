package safety

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"syscall"
	"testing"
)

// Builders for rtnetlink dumps as the kernel writes them (host byte order).

func nlmsg(typ uint16, body ...[]byte) []byte {
	var payload []byte
	for _, b := range body {
		payload = append(payload, b...)
	}
	n := syscall.NLMSG_HDRLEN + len(payload)
	b := make([]byte, syscall.NLMSG_HDRLEN, align4(n))
	binary.NativeEndian.PutUint32(b[0:], uint32(n))
	binary.NativeEndian.PutUint16(b[4:], typ)
	b = append(b, payload...)
	return b[:cap(b)]
}

func rtattr(typ uint16, val []byte) []byte {
	n := syscall.SizeofRtAttr + len(val)
	b := make([]byte, syscall.SizeofRtAttr, align4(n))
	binary.NativeEndian.PutUint16(b[0:], uint16(n))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, val...)
	return b[:cap(b)]
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func ip(s string) []byte { return netip.MustParseAddr(s).AsSlice() }

func rtmsg(family, dstLen, table, typ byte) []byte {
	return []byte{family, dstLen, 0, 0, table, 3 /* boot */, 0, typ, 0, 0, 0, 0}
}

func nexthop(ifindex int32, attrs ...[]byte) []byte {
	var a []byte
	for _, x := range attrs {
		a = append(a, x...)
	}
	b := binary.NativeEndian.AppendUint16(nil, uint16(sizeofNexthop+len(a)))
	b = append(b, 0, 0)
	b = binary.NativeEndian.AppendUint32(b, uint32(ifindex))
	return append(b, a...)
}

func TestParseRoutes(t *testing.T) {
	const main, local = syscall.RT_TABLE_MAIN, rtTableLocal
	dump := slices.Concat(
		// default via 192.0.2.1 dev 2
		nlmsg(syscall.RTM_NEWROUTE, rtmsg(syscall.AF_INET, 0, main, syscall.RTN_UNICAST),
			rtattr(syscall.RTA_GATEWAY, ip("192.0.2.1")), rtattr(syscall.RTA_OIF, u32(2))),
		// 192.0.2.0/24 dev 2 scope link
		nlmsg(syscall.RTM_NEWROUTE, rtmsg(syscall.AF_INET, 24, main, syscall.RTN_UNICAST),
			rtattr(syscall.RTA_DST, ip("192.0.2.0")), rtattr(syscall.RTA_OIF, u32(2))),
		// local 192.0.2.10 table local: the host's own, not a route out
		nlmsg(syscall.RTM_NEWROUTE, rtmsg(syscall.AF_INET, 32, local, syscall.RTN_LOCAL),
			rtattr(syscall.RTA_DST, ip("192.0.2.10"))),
		// blackhole default in table 100
		nlmsg(syscall.RTM_NEWROUTE, rtmsg(syscall.AF_INET, 0, 100, syscall.RTN_BLACKHOLE)),
		// default table 1000 (above 255: RTA_TABLE) via 10.9.0.1
		nlmsg(syscall.RTM_NEWROUTE, rtmsg(syscall.AF_INET, 0, syscall.RT_TABLE_COMPAT, syscall.RTN_UNICAST),
			rtattr(syscall.RTA_TABLE, u32(1000)), rtattr(syscall.RTA_GATEWAY, ip("10.9.0.1"))),
		// default nexthop via fe80::1 dev 3 nexthop via fe80::2 dev 4 (ECMP)
		nlmsg(syscall.RTM_NEWROUTE, rtmsg(syscall.AF_INET6, 0, main, syscall.RTN_UNICAST),
			rtattr(syscall.RTA_TABLE, u32(main)),
			rtattr(syscall.RTA_MULTIPATH, slices.Concat(
				nexthop(3, rtattr(syscall.RTA_GATEWAY, ip("fe80::1"))),
				nexthop(4, rtattr(syscall.RTA_GATEWAY, ip("fe80::2"))),
			))),
		// 198.51.100.0/24 via inet6 2001:db8::1 (RTA_VIA)
		nlmsg(syscall.RTM_NEWROUTE, rtmsg(syscall.AF_INET, 24, main, syscall.RTN_UNICAST),
			rtattr(syscall.RTA_DST, ip("198.51.100.0")),
			rtattr(rtaVia, append([]byte{syscall.AF_INET6, 0}, ip("2001:db8::1")...))),
		nlmsg(syscall.NLMSG_DONE, u32(0)),
	)
	got, err := parseRoutes(dump)
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateways: addrs("192.0.2.1"), Ifindex: 2, Main: true},
		{Dst: netip.MustParsePrefix("192.0.2.0/24"), Ifindex: 2, Main: true},
		{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateways: addrs("10.9.0.1")},
		{Dst: netip.MustParsePrefix("::/0"), Gateways: addrs("fe80::1%3", "fe80::2%4"), Main: true},
		{Dst: netip.MustParsePrefix("198.51.100.0/24"), Gateways: addrs("2001:db8::1"), Main: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d routes %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Dst != w.Dst || g.Ifindex != w.Ifindex || g.Main != w.Main || !slices.Equal(g.Gateways, w.Gateways) {
			t.Errorf("route %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestParseRoutesMalformed(t *testing.T) {
	tests := map[string][]byte{
		"short rtmsg": nlmsg(syscall.RTM_NEWROUTE, []byte{syscall.AF_INET, 0, 0}),
		"bad next hop length": nlmsg(syscall.RTM_NEWROUTE, rtmsg(syscall.AF_INET6, 0, syscall.RT_TABLE_MAIN, syscall.RTN_UNICAST),
			rtattr(syscall.RTA_MULTIPATH, []byte{200, 0, 0, 0, 1, 0, 0, 0})),
		"attribute past the end": nlmsg(syscall.RTM_NEWROUTE, rtmsg(syscall.AF_INET, 0, syscall.RT_TABLE_MAIN, syscall.RTN_UNICAST), []byte{200, 0, 1, 0}),
	}
	for name, b := range tests {
		if rs, err := parseRoutes(b); err == nil {
			t.Errorf("%s: parsed %+v without error", name, rs)
		}
	}
}

func ifaddrmsg(family, bits byte, ifindex uint32) []byte {
	return binary.NativeEndian.AppendUint32([]byte{family, bits, 0, 0}, ifindex)
}

func TestParseAddrs(t *testing.T) {
	dump := slices.Concat(
		nlmsg(syscall.RTM_NEWADDR, ifaddrmsg(syscall.AF_INET, 8, 1),
			rtattr(syscall.IFA_ADDRESS, ip("127.0.0.1")), rtattr(syscall.IFA_LOCAL, ip("127.0.0.1"))),
		nlmsg(syscall.RTM_NEWADDR, ifaddrmsg(syscall.AF_INET, 24, 2),
			rtattr(syscall.IFA_ADDRESS, ip("192.0.2.10")), rtattr(syscall.IFA_LOCAL, ip("192.0.2.10"))),
		// point-to-point: local 10.8.0.1 peer 10.8.0.2/32
		nlmsg(syscall.RTM_NEWADDR, ifaddrmsg(syscall.AF_INET, 32, 5),
			rtattr(syscall.IFA_LOCAL, ip("10.8.0.1")), rtattr(syscall.IFA_ADDRESS, ip("10.8.0.2"))),
		// IPv6 carries only IFA_ADDRESS
		nlmsg(syscall.RTM_NEWADDR, ifaddrmsg(syscall.AF_INET6, 64, 2), rtattr(syscall.IFA_ADDRESS, ip("fe80::10"))),
		nlmsg(syscall.NLMSG_DONE, u32(0)),
	)
	got, err := parseAddrs(dump)
	if err != nil {
		t.Fatal(err)
	}
	want := []IfAddr{
		{netip.MustParseAddr("127.0.0.1"), netip.MustParsePrefix("127.0.0.0/8"), 1},
		{netip.MustParseAddr("192.0.2.10"), netip.MustParsePrefix("192.0.2.0/24"), 2},
		{netip.MustParseAddr("10.8.0.1"), netip.MustParsePrefix("10.8.0.2/32"), 5},
		{netip.MustParseAddr("fe80::10"), netip.MustParsePrefix("fe80::/64"), 2},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if _, err := parseAddrs(nlmsg(syscall.RTM_NEWADDR, []byte{2, 24})); err == nil {
		t.Error("short ifaddrmsg parsed without error")
	}
}

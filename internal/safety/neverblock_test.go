package safety

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func ifaddr(local, subnet string) IfAddr {
	return IfAddr{Addr: netip.MustParseAddr(local), Subnet: netip.MustParsePrefix(subnet), Ifindex: 2}
}

func TestIsPrivateSubnet(t *testing.T) {
	tests := []struct {
		p    string
		want bool
	}{
		{"10.1.2.0/24", true},
		{"10.0.0.0/8", true},
		{"10.0.0.0/7", false}, // also covers 11.0.0.0/8
		{"172.16.0.0/12", true},
		{"172.32.0.0/16", false},
		{"192.168.1.0/24", true},
		{"100.64.0.0/10", true},
		{"100.64.0.0/9", false},
		{"169.254.0.0/16", true},
		{"fd12:3456::/64", true},
		{"fc00::/7", true},
		{"fe80::/64", true},
		{"::ffff:192.168.1.0/120", true},
		{"192.0.2.0/24", false},
		{"198.51.100.0/24", false},
		{"2001:db8::/64", false},
		{"0.0.0.0/0", false},
	}
	for _, tt := range tests {
		if got := IsPrivateSubnet(netip.MustParsePrefix(tt.p)); got != tt.want {
			t.Errorf("IsPrivateSubnet(%s) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name         string
		routes       []Route
		addrs        []IfAddr
		wantGateways []netip.Addr
		wantOwn      []netip.Addr
		wantSubnets  []netip.Prefix
		allowed      []string // must be in Set
		blocked      []string // must stay blockable
	}{
		{
			name: "home LAN",
			routes: []Route{
				{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateways: addrs("192.168.1.1"), Main: true},
				{Dst: netip.MustParsePrefix("192.168.1.0/24"), Main: true},
			},
			addrs:        []IfAddr{ifaddr("192.168.1.20", "192.168.1.0/24"), ifaddr("127.0.0.1", "127.0.0.0/8")},
			wantGateways: addrs("192.168.1.1"),
			wantOwn:      addrs("127.0.0.1", "192.168.1.20"),
			wantSubnets:  prefixes("192.168.1.0/24"),
			allowed:      []string{"192.168.1.77", "127.0.0.9", "::1"},
			blocked:      []string{"192.168.2.1", "198.51.100.1"},
		},
		{
			name: "hosting provider on a public subnet",
			routes: []Route{
				{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateways: addrs("192.0.2.1"), Main: true},
				{Dst: netip.MustParsePrefix("192.0.2.0/24"), Main: true},
				{Dst: netip.MustParsePrefix("::/0"), Gateways: addrs("fe80::1%2"), Main: true},
				{Dst: netip.MustParsePrefix("2001:db8:5::/64"), Main: true},
				{Dst: netip.MustParsePrefix("fe80::/64"), Main: true},
			},
			addrs: []IfAddr{
				ifaddr("192.0.2.10", "192.0.2.0/24"),
				ifaddr("2001:db8:5::10", "2001:db8:5::/64"),
				ifaddr("fe80::10", "fe80::/64"),
			},
			wantGateways: addrs("192.0.2.1", "fe80::1%2"),
			wantOwn:      addrs("192.0.2.10", "2001:db8:5::10", "fe80::10"),
			wantSubnets:  prefixes("fe80::/64"),
			allowed:      []string{"192.0.2.1", "192.0.2.10", "2001:db8:5::10", "fe80::1", "fe80::99"},
			blocked:      []string{"192.0.2.11", "192.0.2.254", "2001:db8:5::11"},
		},
		{
			name: "multiple gateways, ECMP and a second table",
			routes: []Route{
				{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateways: addrs("198.51.100.1", "198.51.100.2"), Main: true},
				{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateways: addrs("10.9.0.1")},
				{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateways: addrs("198.51.100.1"), Main: true}, // higher metric
				{Dst: netip.MustParsePrefix("203.0.113.0/24"), Gateways: addrs("198.51.100.3"), Main: true},
			},
			addrs:        []IfAddr{ifaddr("198.51.100.10", "198.51.100.0/24"), ifaddr("10.9.0.2", "10.9.0.0/30")},
			wantGateways: addrs("10.9.0.1", "198.51.100.1", "198.51.100.2"),
			wantOwn:      addrs("10.9.0.2", "198.51.100.10"),
			wantSubnets:  prefixes("10.9.0.0/30"),
			allowed:      []string{"198.51.100.2", "10.9.0.3"},
			blocked:      []string{"198.51.100.3", "198.51.100.4", "203.0.113.1", "10.9.0.4"},
		},
		{
			name: "CGNAT, ULA, link routes and a point-to-point peer",
			routes: []Route{
				{Dst: netip.MustParsePrefix("100.64.0.0/16"), Main: true},
				{Dst: netip.MustParsePrefix("10.77.0.0/16"), Main: true},
				{Dst: netip.MustParsePrefix("10.78.0.0/16")}, // link route of another table: not connected here
				{Dst: netip.MustParsePrefix("10.0.0.0/7"), Main: true},
			},
			addrs: []IfAddr{
				ifaddr("100.64.3.4", "100.64.0.0/10"),
				ifaddr("fd00:1::5", "fd00:1::/64"),
				ifaddr("172.20.0.1", "172.20.9.9/32"), // IFA_LOCAL vs the peer's IFA_ADDRESS
			},
			wantOwn:     addrs("100.64.3.4", "172.20.0.1", "fd00:1::5"),
			wantSubnets: prefixes("10.77.0.0/16", "100.64.0.0/10", "100.64.0.0/16", "172.20.9.9/32", "fd00:1::/64"),
			allowed:     []string{"100.127.0.1", "fd00:1::77", "172.20.9.9", "10.77.5.5"},
			blocked:     []string{"10.78.0.1", "11.0.0.1", "fd00:2::1", "172.20.9.10"},
		},
		{
			name:        "nothing known",
			wantSubnets: nil,
			allowed:     []string{"127.0.0.1", "::1"},
			blocked:     []string{"10.0.0.1", "fe80::1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := Classify(tt.routes, tt.addrs)
			if !slices.Equal(n.Gateways, tt.wantGateways) {
				t.Errorf("Gateways = %v, want %v", n.Gateways, tt.wantGateways)
			}
			if !slices.Equal(n.Own, tt.wantOwn) {
				t.Errorf("Own = %v, want %v", n.Own, tt.wantOwn)
			}
			if !slices.Equal(n.Subnets, tt.wantSubnets) {
				t.Errorf("Subnets = %v, want %v", n.Subnets, tt.wantSubnets)
			}
			set := n.Set()
			for _, s := range tt.allowed {
				if !set.Contains(netip.MustParseAddr(s)) {
					t.Errorf("%s is not whitelisted", s)
				}
			}
			for _, s := range tt.blocked {
				if set.Contains(netip.MustParseAddr(s)) {
					t.Errorf("%s is whitelisted", s)
				}
			}
		})
	}
}

func TestCountsAndLine(t *testing.T) {
	n := NeverBlock{
		Gateways: addrs("192.0.2.1", "fe80::1%2"),
		DNS:      addrs("192.0.2.1", "10.0.0.53"), // one repeats the gateway, one is inside a subnet
		Own:      addrs("192.0.2.10", "10.0.0.5"),
		API:      addrs("198.51.100.80"),
		Subnets:  prefixes("10.0.0.0/24"),
		Loopback: Loopback(),
		User:     prefixes("203.0.113.0/25", "203.0.113.128/25"), // adjacent: merge into one /24
		Runtime:  prefixes("2001:db8::7/128"),
	}
	ips, ranges := n.Counts()
	// IPs: 192.0.2.1, 192.0.2.10, 198.51.100.80, fe80::1, ::1, 2001:db8::7.
	// Ranges: 10.0.0.0/24, 127.0.0.0/8, 203.0.113.0/24.
	if ips != 6 || ranges != 3 {
		t.Errorf("Counts() = %d, %d; want 6, 3", ips, ranges)
	}
	if got, want := WhitelistLine(ips, ranges), "Safety whitelist: 6 IPs + 3 CIDR ranges"; got != want {
		t.Errorf("WhitelistLine = %q, want %q", got, want)
	}
}

type fakeSource struct {
	routes    []Route
	addrs     []IfAddr
	routesErr error
}

func (f fakeSource) Routes() ([]Route, error) { return f.routes, f.routesErr }
func (f fakeSource) Addrs() ([]IfAddr, error) { return f.addrs, nil }

func TestDiscover(t *testing.T) {
	src := fakeSource{
		routes: []Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateways: addrs("192.168.0.1"), Main: true}},
		addrs:  []IfAddr{ifaddr("192.168.0.9", "192.168.0.0/24")},
	}
	n, err := Discover(context.Background(), Discovery{
		Net:                src,
		ResolvConf:         filepath.Join("testdata", "resolv-linklocal.conf"),
		UpstreamResolvConf: filepath.Join("testdata", "missing.conf"),
		Upstream:           NoUpstream{},
		APIURL:             "https://api.example.com",
		Resolver:           &fakeResolver{addrs: addrs("198.51.100.80")},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := NeverBlock{
		Gateways: addrs("192.168.0.1"),
		DNS:      addrs("fe80::1%eth0", "192.0.2.53", "198.51.100.7"),
		Own:      addrs("192.168.0.9"),
		API:      addrs("198.51.100.80"),
		APIPort:  443,
		Subnets:  prefixes("192.168.0.0/24"),
		Loopback: Loopback(),
	}
	if !equalNeverBlock(n, want) {
		t.Errorf("Discover = %+v\nwant       %+v", n, want)
	}
	wantTargets := []string{"gateway 192.168.0.1:53", "dns [fe80::1%eth0]:53", "dns 192.0.2.53:53",
		"dns 198.51.100.7:53", "api 198.51.100.80:443"}
	var got []string
	for _, tg := range n.Targets(0) {
		got = append(got, tg.String())
	}
	if !slices.Equal(got, wantTargets) {
		t.Errorf("Targets = %q, want %q", got, wantTargets)
	}
}

// A failing source must not hide what the others found.
func TestDiscoverPartial(t *testing.T) {
	routesErr := errors.New("dump routes: permission denied")
	lookupErr := errors.New("no such host")
	n, err := Discover(context.Background(), Discovery{
		Net:                fakeSource{addrs: []IfAddr{ifaddr("10.1.0.9", "10.1.0.0/16")}, routesErr: routesErr},
		ResolvConf:         filepath.Join("testdata", "resolv-bad.conf"),
		UpstreamResolvConf: filepath.Join("testdata", "missing.conf"),
		Upstream:           NoUpstream{},
		APIURL:             "https://api.example.com",
		Resolver:           &fakeResolver{err: lookupErr},
	})
	if !errors.Is(err, routesErr) || !errors.Is(err, lookupErr) || !strings.Contains(err.Error(), "line 2:") {
		t.Errorf("err = %v; want the routes, resolv.conf and lookup failures", err)
	}
	if !slices.Equal(n.Own, addrs("10.1.0.9")) || !slices.Equal(n.DNS, addrs("192.0.2.53", "2001:db8::53")) ||
		!slices.Equal(n.Subnets, prefixes("10.1.0.0/16")) || n.APIPort != 443 {
		t.Errorf("partial result lost data: %+v", n)
	}
}

func equalNeverBlock(a, b NeverBlock) bool {
	return slices.Equal(a.Gateways, b.Gateways) && slices.Equal(a.DNS, b.DNS) && slices.Equal(a.Own, b.Own) &&
		slices.Equal(a.API, b.API) && a.APIPort == b.APIPort && slices.Equal(a.Subnets, b.Subnets) &&
		slices.Equal(a.Loopback, b.Loopback) && slices.Equal(a.User, b.User) && slices.Equal(a.Runtime, b.Runtime)
}

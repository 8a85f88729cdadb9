package safety

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// hostNet builds a host namespace with two links:
//
//	eth0 192.0.2.10/24 2001:db8:1::10/64 — gw0 in gw: 192.0.2.1 (default gateway), 192.0.2.53, 2001:db8:1::1
//	eth1 198.51.100.10/24 10.20.30.1/24  — pub0 in pub: 198.51.100.1, a public neighbour
//
// 192.0.2.0/24 and 198.51.100.0/24 stand for public subnets; 10.20.30.0/24 is
// a private one on the same wire.
func hostNet(t *testing.T) (host, gw *testnet.NS) {
	testnet.RequireRoot(t)
	lab := testnet.NewLab(t, "sf",
		testnet.Link{HostIf: "eth0", Host: prefixes("192.0.2.10/24", "2001:db8:1::10/64"),
			PeerIf: "gw0", Peer: prefixes("192.0.2.1/24", "192.0.2.53/24", "2001:db8:1::1/64")},
		testnet.Link{HostIf: "eth1", Host: prefixes("198.51.100.10/24", "10.20.30.1/24"),
			PeerIf: "pub0", Peer: prefixes("198.51.100.1/24")})
	lab.Host.MustRun("ip", "route", "add", "default", "via", "192.0.2.1")
	lab.Host.MustRun("ip", "-6", "route", "add", "default", "via", "2001:db8:1::1")
	return lab.Host, lab.Peers[0]
}

func discoverIn(t *testing.T, ns *testnet.NS) NeverBlock {
	t.Helper()
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "nameserver 192.0.2.53\nnameserver 198.51.100.53\n"
	if err := os.WriteFile(resolv, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var n NeverBlock
	err := ns.Do(func() (err error) {
		n, err = Discover(context.Background(), Discovery{Net: Netlink{}, ResolvConf: resolv,
			UpstreamResolvConf: filepath.Join(t.TempDir(), "none"), Upstream: NoUpstream{}, APIURL: "https://192.0.2.1:8443/"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestDiscoverNetns(t *testing.T) {
	host, _ := hostNet(t)
	n := discoverIn(t, host)

	if want := addrs("192.0.2.1", "2001:db8:1::1"); !slices.Equal(n.Gateways, want) {
		t.Errorf("Gateways = %v, want %v", n.Gateways, want)
	}
	for _, a := range addrs("127.0.0.1", "::1", "192.0.2.10", "198.51.100.10", "10.20.30.1", "2001:db8:1::10") {
		if !slices.Contains(n.Own, a) {
			t.Errorf("Own %v lacks %v", n.Own, a)
		}
	}
	for _, a := range n.Own {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() && !slices.Contains(addrs("192.0.2.10", "198.51.100.10", "10.20.30.1", "2001:db8:1::10"), a) {
			t.Errorf("Own holds %v, which the namespace does not have", a)
		}
	}
	if want := prefixes("10.20.30.0/24", "fe80::/64"); !slices.Equal(n.Subnets, want) {
		t.Errorf("Subnets = %v, want %v", n.Subnets, want)
	}
	if want := addrs("192.0.2.53", "198.51.100.53"); !slices.Equal(n.DNS, want) {
		t.Errorf("DNS = %v, want %v", n.DNS, want)
	}
	if !slices.Equal(n.API, addrs("192.0.2.1")) || n.APIPort != 8443 {
		t.Errorf("API = %v port %d", n.API, n.APIPort)
	}

	set := n.Set()
	for _, s := range []string{"192.0.2.1", "192.0.2.10", "192.0.2.53", "10.20.30.99", "2001:db8:1::1", "127.0.0.1"} {
		if !set.Contains(netip.MustParseAddr(s)) {
			t.Errorf("%s is not whitelisted", s)
		}
	}
	// Neighbours on the public subnets stay blockable, the public peer included.
	for _, s := range []string{"192.0.2.77", "198.51.100.1", "198.51.100.77", "2001:db8:1::77", "10.20.31.1"} {
		if set.Contains(netip.MustParseAddr(s)) {
			t.Errorf("%s is whitelisted", s)
		}
	}
}

// nsDialer dials from inside a namespace: the socket is created on a thread
// that entered it, and keeps it for life.
type nsDialer struct{ ns *testnet.NS }

func (d nsDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := d.ns.Do(func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, address)
		return err
	})
	return c, err
}

func TestVerifyNetns(t *testing.T) {
	host, gw := hostNet(t)
	n := discoverIn(t, host)

	gw.ServeTCP(netip.MustParseAddrPort("192.0.2.1:8443")) // the API; nothing on :53, so the gateway answers RST
	serveDNS(t, listenUDPIn(t, gw, "192.0.2.53:53"), func(_ int, q []byte) [][]byte { return [][]byte{withRcode(q, 5)} })

	p := &Prober{Dialer: nsDialer{host}, Timeout: time.Second}
	b, err := p.Before(context.Background(), n.Targets(0))
	if err != nil {
		t.Fatal(err)
	}
	wantReach := []Target{
		target(KindGateway, "192.0.2.1:53"),
		target(KindGateway, "[2001:db8:1::1]:53"),
		target(KindDNS, "192.0.2.53:53"),
		target(KindAPI, "192.0.2.1:8443"),
	}
	if !slices.Equal(b.Reachable(), wantReach) {
		t.Errorf("Reachable = %v, want %v (unreachable: %v)", b.Reachable(), wantReach, b.Unreachable())
	}
	if u := b.Unreachable(); len(u) != 1 || u[0].Target != target(KindDNS, "198.51.100.53:53") {
		t.Errorf("Unreachable = %v, want only the missing resolver", u)
	}
	if lost, err := b.After(context.Background()); lost != nil || err != nil {
		t.Fatalf("After with no change = %v, %v", lost, err)
	}

	dropFrom(host, "192.0.2.1")

	lost, err := b.After(context.Background())
	if want := []Target{target(KindGateway, "192.0.2.1:53"), target(KindAPI, "192.0.2.1:8443")}; !slices.Equal(lost, want) {
		t.Errorf("lost = %v, want %v", lost, want)
	}
	if _, ok := err.(*LostError); !ok {
		t.Errorf("err = %v, want a *LostError", err)
	}
}

// listenUDPIn opens a UDP socket on addr inside ns.
func listenUDPIn(t *testing.T, ns *testnet.NS, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

// dropFrom makes ns drop every packet from src, as a blocklist would.
func dropFrom(ns *testnet.NS, src string) {
	ns.MustRun("nft", "add table inet sgtest")
	ns.MustRun("nft", "add chain inet sgtest in { type filter hook input priority 0 ; }")
	ns.MustRun("nft", "add rule inet sgtest in ip saddr "+src+" drop")
}

// An IPv6 default route via the gateway's link-local address: discovery must
// return it with its interface as zone, and the probe must reach it with it.
func TestLinkLocalGatewayNetns(t *testing.T) {
	host, gw := hostNet(t)
	var ll netip.Addr
	for _, f := range strings.Fields(gw.MustRun("ip", "-6", "-o", "addr", "show", "dev", "gw0", "scope", "link")) {
		if p, err := netip.ParsePrefix(f); err == nil {
			ll = p.Addr()
		}
	}
	if !ll.IsLinkLocalUnicast() {
		t.Fatalf("no link-local address on gw0")
	}
	host.MustRun("ip", "-6", "route", "replace", "default", "via", ll.String(), "dev", "eth0")
	var ifindex int
	if err := host.Do(func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err == nil {
			ifindex = ifc.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	n := discoverIn(t, host)
	want := ll.WithZone(strconv.Itoa(ifindex))
	if !slices.Equal(n.Gateways, []netip.Addr{netip.MustParseAddr("192.0.2.1"), want}) {
		t.Fatalf("Gateways = %v, want 192.0.2.1 and %v", n.Gateways, want)
	}
	if !n.Set().Contains(ll) {
		t.Errorf("%v is not whitelisted", ll)
	}
	// The gateway answers on its link-local address once duplicate address
	// detection has finished with it.
	host.WaitReach(t, netip.Addr{}, netip.AddrPortFrom(want, 9))
	p := &Prober{Dialer: nsDialer{host}, Timeout: time.Second}
	if err := p.Probe(context.Background(), Target{KindGateway, netip.AddrPortFrom(want, 53)}); err != nil {
		t.Error(err)
	}
}

// systemd-resolved in miniature: a stub on 127.0.0.53 in the host namespace
// forwards to 192.0.2.53, which only resolv.conf's upstream file names, and
// answers SERVFAIL when it gets nothing back. When the rules cut that server
// off, the server and the stub must both count as lost. Before, the server
// was not on the list at all and the stub's SERVFAIL counted as an answer.
func TestStubAndUpstreamNetns(t *testing.T) {
	host, gw := hostNet(t)
	serveDNS(t, listenUDPIn(t, gw, "192.0.2.53:53"), func(_ int, q []byte) [][]byte { return [][]byte{withRcode(q, 0)} })

	var stub, fwd *net.UDPConn
	if err := host.Do(func() (err error) {
		if stub, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.53:53"))); err != nil {
			return err
		}
		fwd, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.53:53")))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fwd.Close() })
	serveDNS(t, stub, func(_ int, q []byte) [][]byte {
		if _, err := fwd.Write(q); err != nil {
			return [][]byte{withRcode(q, 2)}
		}
		buf := make([]byte, 512)
		fwd.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		for {
			n, err := fwd.Read(buf)
			if err != nil {
				return [][]byte{withRcode(q, 2)}
			}
			if n >= 2 && buf[0] == q[0] && buf[1] == q[1] {
				return [][]byte{slices.Clone(buf[:n])}
			}
		}
	})

	dir := t.TempDir()
	resolv, upstream := filepath.Join(dir, "resolv.conf"), filepath.Join(dir, "upstream.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.53\noptions edns0 trust-ad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(upstream, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var n NeverBlock
	if err := host.Do(func() (err error) {
		n, err = Discover(context.Background(), Discovery{Net: Netlink{}, ResolvConf: resolv,
			UpstreamResolvConf: upstream, Upstream: NoUpstream{}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if want := addrs("127.0.0.53", "192.0.2.53"); !slices.Equal(n.DNS, want) {
		t.Fatalf("DNS = %v, want %v", n.DNS, want)
	}
	if !n.Set().Contains(netip.MustParseAddr("192.0.2.53")) {
		t.Error("the upstream server is not exempt")
	}

	p := &Prober{Dialer: nsDialer{host}, Timeout: time.Second}
	b, err := p.Before(context.Background(), n.Targets(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range []Target{target(KindDNS, "127.0.0.53:53"), target(KindDNS, "192.0.2.53:53")} {
		if !slices.Contains(b.Reachable(), tg) {
			t.Fatalf("%v not reachable before the change (unreachable: %v)", tg, b.Unreachable())
		}
	}

	dropFrom(host, "192.0.2.53")

	lost, err := b.After(context.Background())
	if want := []Target{target(KindDNS, "127.0.0.53:53"), target(KindDNS, "192.0.2.53:53")}; !slices.Equal(lost, want) {
		t.Errorf("lost = %v, want %v (%v)", lost, want, err)
	}
	// Whether the stub's SERVFAIL arrives in time or not depends on the
	// machine's load; either way the stub is lost (TestProbeStub checks the
	// message).
	if _, ok := err.(*LostError); !ok {
		t.Errorf("err = %v, want a *LostError", err)
	}
}

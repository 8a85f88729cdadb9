package safety

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
)

type fakeUpstream struct {
	addrs []netip.Addr
	err   error
}

func (f fakeUpstream) UpstreamDNS(context.Context) ([]netip.Addr, error) { return f.addrs, f.err }

// Behind systemd-resolved /etc/resolv.conf names only the stub; the servers
// it forwards to, from its own resolv.conf and from D-Bus, must be protected
// and probed as well.
func TestDiscoverUpstream(t *testing.T) {
	n, err := Discover(context.Background(), Discovery{
		ResolvConf:         filepath.Join("testdata", "resolv-resolved.conf"),
		UpstreamResolvConf: filepath.Join("testdata", "resolved-upstream.conf"),
		Upstream:           fakeUpstream{addrs: addrs("198.51.100.53", "203.0.113.53", "fe80::53%eth1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := addrs("127.0.0.53", "198.51.100.53", "2001:db8::53", "203.0.113.53", "fe80::53%eth1")
	if !slices.Equal(n.DNS, want) {
		t.Errorf("DNS = %v, want %v", n.DNS, want)
	}
	set := n.Set()
	for _, a := range addrs("198.51.100.53", "2001:db8::53", "203.0.113.53", "fe80::53") {
		if !set.Contains(a) {
			t.Errorf("upstream server %s is not in the never-block set", a)
		}
	}
	var got []string
	for _, tg := range n.Targets(0) {
		got = append(got, tg.String())
	}
	wantTargets := []string{"dns 127.0.0.53:53", "dns 198.51.100.53:53", "dns [2001:db8::53]:53",
		"dns 203.0.113.53:53", "dns [fe80::53%eth1]:53"}
	if !slices.Equal(got, wantTargets) {
		t.Errorf("Targets = %q, want %q", got, wantTargets)
	}
}

// A failing upstream source is reported but hides nothing else.
func TestDiscoverUpstreamFails(t *testing.T) {
	boom := errors.New("bus timeout")
	n, err := Discover(context.Background(), Discovery{
		ResolvConf:         filepath.Join("testdata", "resolv-resolved.conf"),
		UpstreamResolvConf: filepath.Join("testdata", "resolv-bad.conf"),
		Upstream:           fakeUpstream{addrs: addrs("203.0.113.53"), err: boom},
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "resolv-bad.conf") {
		t.Errorf("err = %v; want the bad upstream file and the bus failure", err)
	}
	if want := addrs("127.0.0.53", "192.0.2.53", "2001:db8::53", "203.0.113.53"); !slices.Equal(n.DNS, want) {
		t.Errorf("DNS = %v, want %v", n.DNS, want)
	}
}

func TestResolvedAddrs(t *testing.T) {
	ifname := func(i int) string { return "if" + strconv.Itoa(i) }
	servers := []resolvedServer{
		{0, 2, []byte{198, 51, 100, 53}},
		{3, 10, netip.MustParseAddr("2001:db8::53").AsSlice()},
		{3, 10, netip.MustParseAddr("fe80::1").AsSlice()},
		{0, 2, []byte{198, 51, 100, 53}}, // again, from another link
		{0, 10, netip.MustParseAddr("::ffff:192.0.2.53").AsSlice()},
		{0, 2, []byte{1, 2, 3}},
		{0, 10, []byte{192, 0, 2, 1}},
		{0, 7, []byte{192, 0, 2, 1}},
		{0, 2, []byte{0, 0, 0, 0}},
	}
	got, err := resolvedAddrs(servers, ifname)
	if want := addrs("198.51.100.53", "2001:db8::53", "fe80::1%if3", "192.0.2.53"); !slices.Equal(got, want) {
		t.Errorf("addrs = %v, want %v", got, want)
	}
	for _, s := range []string{"entry 5: family 2 with 3 address bytes", "entry 6: family 10 with 4",
		"entry 7: family 7", "entry 8: 0.0.0.0 is not a server address"} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("err = %v, want it to contain %q", err, s)
		}
	}
}

// fakeResolved serves org.freedesktop.DBus.Properties.Get for resolve1.
type fakeResolved struct {
	value    dbus.Variant // DNS
	fallback *dbus.Variant
	hang     chan struct{}
}

func (f *fakeResolved) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	if f.hang != nil {
		<-f.hang
	}
	switch {
	case iface == resolvedIface && name == "DNS":
		return f.value, nil
	case iface == resolvedIface && name == "FallbackDNS" && f.fallback != nil:
		return *f.fallback, nil
	}
	return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{iface + "." + name})
}

func exportResolved(t *testing.T, bus *dbustest.Bus, f *fakeResolved) {
	t.Helper()
	conn := bus.Connect(t)
	if err := conn.Export(f, resolvedPath, "org.freedesktop.DBus.Properties"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(resolvedName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own %s: %v %v", resolvedName, reply, err)
	}
}

func TestResolvedOverBus(t *testing.T) {
	dbustest.SkipWithoutDaemon(t)
	bus := dbustest.StartBus(t, dbustest.Open)
	ctx := context.Background()

	// No resolved on the bus, and no bus at all: nothing, and no error.
	if got, err := (Resolved{Address: bus.Address}).UpstreamDNS(ctx); got != nil || err != nil {
		t.Errorf("without resolved: %v, %v", got, err)
	}
	noBus := "unix:path=" + filepath.Join(t.TempDir(), "none")
	if got, err := (Resolved{Address: noBus}).UpstreamDNS(ctx); got != nil || err != nil {
		t.Errorf("without a bus: %v, %v", got, err)
	}

	exportResolved(t, bus, &fakeResolved{value: dbus.MakeVariant([]resolvedServer{
		{0, 2, []byte{198, 51, 100, 53}},
		{2, 10, netip.MustParseAddr("2001:db8::53").AsSlice()},
	})})
	got, err := (Resolved{Address: bus.Address}).UpstreamDNS(ctx)
	if want := addrs("198.51.100.53", "2001:db8::53"); err != nil || !slices.Equal(got, want) {
		t.Errorf("UpstreamDNS = %v, %v; want %v", got, err, want)
	}
}

// With no server configured, resolved uses its fallback servers; an older
// resolved without the property gives none.
func TestResolvedFallback(t *testing.T) {
	dbustest.SkipWithoutDaemon(t)
	fallback := dbus.MakeVariant([]resolvedServer{{0, 2, []byte{192, 0, 2, 53}}})
	none := dbus.MakeVariant([]resolvedServer{})
	for name, tc := range map[string]struct {
		f    *fakeResolved
		want []netip.Addr
	}{
		"fallback in use":       {&fakeResolved{value: none, fallback: &fallback}, addrs("192.0.2.53")},
		"configured wins":       {&fakeResolved{value: dbus.MakeVariant([]resolvedServer{{0, 2, []byte{198, 51, 100, 53}}}), fallback: &fallback}, addrs("198.51.100.53")},
		"no FallbackDNS (<246)": {&fakeResolved{value: none}, nil},
	} {
		bus := dbustest.StartBus(t, dbustest.Open)
		exportResolved(t, bus, tc.f)
		got, err := (Resolved{Address: bus.Address}).UpstreamDNS(context.Background())
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, %v; want %v", name, got, err, tc.want)
		}
	}
}

func TestResolvedWrongType(t *testing.T) {
	dbustest.SkipWithoutDaemon(t)
	bus := dbustest.StartBus(t, dbustest.Open)
	exportResolved(t, bus, &fakeResolved{value: dbus.MakeVariant("192.0.2.53")})
	_, err := (Resolved{Address: bus.Address}).UpstreamDNS(context.Background())
	if err == nil || !strings.Contains(err.Error(), "DNS property of type s") {
		t.Errorf("err = %v, want a type error", err)
	}
}

// A resolved that never answers costs the timeout, not the start.
func TestResolvedHung(t *testing.T) {
	dbustest.SkipWithoutDaemon(t)
	bus := dbustest.StartBus(t, dbustest.Open)
	hang := make(chan struct{})
	exportResolved(t, bus, &fakeResolved{hang: hang})
	t.Cleanup(func() { close(hang) })
	start := time.Now()
	_, err := (Resolved{Address: bus.Address, Timeout: 300 * time.Millisecond}).UpstreamDNS(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// tcpAlwaysDialer dials UDP for real and pretends every TCP connect
// succeeds, as it does to a stub listening on loopback.
type tcpAlwaysDialer struct{}

func (tcpAlwaysDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if network == "tcp" {
		c, peer := net.Pipe()
		peer.Close()
		return c, nil
	}
	return (&net.Dialer{}).DialContext(ctx, network, address)
}

// systemd-resolved's stub answers SERVFAIL when its upstream servers are
// cut off, and always accepts TCP: neither may count as reachable.
func TestProbeStub(t *testing.T) {
	servfail := dnsServer(t, func(_ int, q []byte) [][]byte { return [][]byte{withRcode(q, 2)} })
	refused := dnsServer(t, func(_ int, q []byte) [][]byte { return [][]byte{withRcode(q, 5)} })
	answers := dnsServer(t, func(_ int, q []byte) [][]byte { return [][]byte{withRcode(q, 0)} })
	p := &Prober{Dialer: tcpAlwaysDialer{}, Timeout: 400 * time.Millisecond}
	for name, at := range map[string]netip.AddrPort{"SERVFAIL": servfail, "REFUSED": refused} {
		err := p.Probe(context.Background(), Target{KindDNS, at})
		if !errors.Is(err, errStubFailed) || !strings.Contains(err.Error(), "rcode") {
			t.Errorf("%s from the stub: err = %v, want unreachable", name, err)
		}
	}
	if err := p.Probe(context.Background(), Target{KindDNS, answers}); err != nil {
		t.Errorf("NOERROR from the stub: %v", err)
	}
}

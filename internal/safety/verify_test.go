package safety

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	errUnreach = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}
	errTimeout = &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}
)

// fakeDialer answers each "network address" with the next outcome of its
// plan (the last one repeats); an address without a plan times out.
type fakeDialer struct {
	mu    sync.Mutex
	plan  map[string][]error
	calls map[string]int
}

func newFakeDialer(plan map[string][]error) *fakeDialer {
	return &fakeDialer{plan: plan, calls: map[string]int{}}
}

func (f *fakeDialer) DialContext(_ context.Context, network, address string) (net.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := network + " " + address
	n := f.calls[key]
	f.calls[key]++
	p, ok := f.plan[key]
	if !ok {
		return nil, errTimeout
	}
	if err := p[min(n, len(p)-1)]; err != nil {
		return nil, err
	}
	c, peer := net.Pipe()
	peer.Close()
	return c, nil
}

func (f *fakeDialer) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

func target(kind Kind, s string) Target { return Target{kind, netip.MustParseAddrPort(s)} }

func TestProbeTCP(t *testing.T) {
	d := newFakeDialer(map[string][]error{
		"tcp 192.0.2.1:53":     {nil},
		"tcp 192.0.2.2:53":     {errRefused},
		"tcp 192.0.2.3:53":     {errUnreach},
		"tcp 192.0.2.80:443":   {nil},
		"tcp 192.0.2.81:443":   {errRefused},
		"tcp [2001:db8::1]:53": {nil},
	})
	p := &Prober{Dialer: d, Timeout: time.Second}
	tests := []struct {
		t       Target
		wantErr error
	}{
		{target(KindGateway, "192.0.2.1:53"), nil},
		{target(KindGateway, "192.0.2.2:53"), nil}, // RST: reachable
		{target(KindGateway, "192.0.2.3:53"), syscall.EHOSTUNREACH},
		{target(KindGateway, "192.0.2.4:53"), os.ErrDeadlineExceeded},
		{target(KindGateway, "[2001:db8::1]:53"), nil},
		{target(KindAPI, "192.0.2.80:443"), nil},
		{target(KindAPI, "192.0.2.81:443"), syscall.ECONNREFUSED}, // the API must accept
	}
	for _, tt := range tests {
		err := p.Probe(context.Background(), tt.t)
		switch {
		case tt.wantErr == nil && err != nil:
			t.Errorf("%s: %v", tt.t, err)
		case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
			t.Errorf("%s: err = %v, want %v", tt.t, err, tt.wantErr)
		case err != nil && !strings.HasPrefix(err.Error(), "probe "+tt.t.String()+": "):
			t.Errorf("%s: error %q does not name the target", tt.t, err)
		}
	}
	if err := p.Probe(context.Background(), target("smtp", "192.0.2.1:25")); err == nil || !strings.Contains(err.Error(), `unknown target kind "smtp"`) {
		t.Errorf("unknown kind: err = %v", err)
	}
}

func TestDNSQuery(t *testing.T) {
	want := []byte{0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1}
	if got := dnsQuery(0x1234); !slices.Equal(got, want) {
		t.Errorf("dnsQuery = % x, want % x", got, want)
	}
}

func TestCheckDNSAnswer(t *testing.T) {
	answer := func(id uint16, flags1, flags2 byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, id)
		return append(b, flags1, flags2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1)
	}
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"NOERROR", answer(7, 0x81, 0x80), true},
		{"SERVFAIL", answer(7, 0x81, 0x82), true},
		{"REFUSED", answer(7, 0x81, 0x85), true},
		{"header only", answer(7, 0x81, 0x85)[:12], true},
		{"other id", answer(8, 0x81, 0x80), false},
		{"a query, not a response", answer(7, 0x01, 0x00), false},
		{"opcode STATUS", answer(7, 0x91, 0x80), false},
		{"short", []byte{0, 7, 0x81}, false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		err := checkDNSAnswer(tt.b, 7)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, errNotAnswer) {
			t.Errorf("%s: err = %v does not wrap errNotAnswer", tt.name, err)
		}
	}
}

// dnsServer answers on loopback UDP: reply returns the datagrams to send
// back for the n-th query (none to stay silent).
func dnsServer(t *testing.T, reply func(n int, q []byte) [][]byte) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	return serveDNS(t, c, reply)
}

// serveDNS answers the queries arriving on c until the test ends.
func serveDNS(t *testing.T, c *net.UDPConn, reply func(n int, q []byte) [][]byte) netip.AddrPort {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for n := 0; ; n++ {
			m, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			for _, r := range reply(n, slices.Clone(buf[:m])) {
				c.WriteToUDPAddrPort(r, from)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// withRcode turns a query into a response with the given rcode.
func withRcode(q []byte, rcode byte) []byte {
	q = slices.Clone(q)
	q[2] |= 0x80
	q[3] = 0x80 | rcode
	return q
}

// These servers listen on loopback, so they are judged as stubs: only an
// answer that is not SERVFAIL or REFUSED counts (TestProbeStub). A remote
// server's SERVFAIL counts too (TestCheckDNSAnswer, TestVerifyNetns).
func TestProbeDNS(t *testing.T) {
	nxdomain := dnsServer(t, func(_ int, q []byte) [][]byte { return [][]byte{withRcode(q, 3)} })
	// Silent on the first query: the probe must send it again.
	lossy := dnsServer(t, func(n int, q []byte) [][]byte {
		if n == 0 {
			return nil
		}
		return [][]byte{withRcode(q, 0)}
	})
	// A stray datagram with another id before the real answer.
	stray := dnsServer(t, func(_ int, q []byte) [][]byte {
		wrong := withRcode(q, 0)
		wrong[1]++
		return [][]byte{wrong, withRcode(q, 0)}
	})
	garbage := dnsServer(t, func(int, []byte) [][]byte { return [][]byte{[]byte("HTTP/1.1 400 Bad Request\r\n")} })

	p := &Prober{Timeout: 800 * time.Millisecond}
	for name, at := range map[string]netip.AddrPort{"nxdomain": nxdomain, "lossy": lossy, "stray": stray} {
		if err := p.probeDNS(context.Background(), at); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := p.probeDNS(context.Background(), garbage); !errors.Is(err, errNotAnswer) {
		t.Errorf("garbage: probeDNS err = %v, want a not-an-answer error", err)
	}
}

// Nothing listens on the port: the ICMP port unreachable and the RST both
// come from a live host, so a remote server counts as reachable; the UDP
// step alone does not count it. A stub on loopback that does not listen is
// simply down.
func TestProbeDNSClosedPort(t *testing.T) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	at := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	p := &Prober{Timeout: 800 * time.Millisecond}
	if err := p.probeDNS(context.Background(), at); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("probeDNS err = %v, want ECONNREFUSED", err)
	}
	if err := p.Probe(context.Background(), Target{KindDNS, at}); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("Probe of a stub that is down: err = %v, want ECONNREFUSED", err)
	}
	remote := &Prober{Dialer: newFakeDialer(map[string][]error{"udp 192.0.2.53:53": {errRefused}, "tcp 192.0.2.53:53": {errRefused}})}
	if err := remote.Probe(context.Background(), target(KindDNS, "192.0.2.53:53")); err != nil {
		t.Errorf("Probe of a remote host with port 53 closed: %v", err)
	}
}

// Neither UDP nor TCP gets through: the server is unreachable, and the error
// says what both attempts met.
func TestProbeDNSUnreachable(t *testing.T) {
	d := newFakeDialer(map[string][]error{"udp 192.0.2.53:53": {errUnreach}, "tcp 192.0.2.53:53": {errTimeout}})
	p := &Prober{Dialer: d, Timeout: time.Second}
	err := p.Probe(context.Background(), target(KindDNS, "192.0.2.53:53"))
	if !errors.Is(err, syscall.EHOSTUNREACH) || !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "over tcp") {
		t.Errorf("err = %v", err)
	}
}

func TestBaseline(t *testing.T) {
	d := newFakeDialer(map[string][]error{
		"tcp 192.0.2.1:53":     {nil, errTimeout},        // gateway: lost
		"tcp 192.0.2.80:443":   {nil},                    // API: fine throughout
		"udp 192.0.2.53:53":    {errUnreach},             // resolver already down before
		"tcp 192.0.2.53:53":    {errUnreach},             //
		"tcp 192.0.2.81:443":   {nil, errTimeout, nil},   // one lost SYN after: not lost
		"tcp 198.51.100.1:53":  {errTimeout, nil},        // down before, up after: ignored
		"tcp [2001:db8::1]:53": {errRefused, errUnreach}, // RST before, unreachable after: lost
	})
	p := &Prober{Dialer: d, Timeout: time.Second}
	targets := []Target{
		target(KindGateway, "192.0.2.1:53"),
		target(KindAPI, "192.0.2.80:443"),
		target(KindDNS, "192.0.2.53:53"),
		target(KindAPI, "192.0.2.81:443"),
		target(KindGateway, "198.51.100.1:53"),
		target(KindGateway, "[2001:db8::1]:53"),
	}
	b, err := p.Before(context.Background(), targets)
	if err != nil {
		t.Fatal(err)
	}
	wantReach := []Target{targets[0], targets[1], targets[3], targets[5]}
	if !slices.Equal(b.Reachable(), wantReach) {
		t.Errorf("Reachable = %v, want %v", b.Reachable(), wantReach)
	}
	var unreach []Target
	for _, u := range b.Unreachable() {
		unreach = append(unreach, u.Target)
		if u.Err == nil {
			t.Errorf("%s unreachable without a reason", u.Target)
		}
	}
	if want := []Target{targets[2], targets[4]}; !slices.Equal(unreach, want) {
		t.Errorf("Unreachable = %v, want %v", unreach, want)
	}

	lost, err := b.After(context.Background())
	if want := []Target{targets[0], targets[5]}; !slices.Equal(lost, want) {
		t.Errorf("lost = %v, want %v", lost, want)
	}
	var le *LostError
	if !errors.As(err, &le) || len(le.Lost) != 2 {
		t.Fatalf("err = %v, want a *LostError with 2 targets", err)
	}
	wantMsg := "connectivity lost after rule change: probe gateway 192.0.2.1:53: dial tcp: i/o timeout; " +
		"probe gateway [2001:db8::1]:53: dial tcp: connect: no route to host"
	if err.Error() != wantMsg {
		t.Errorf("message = %q\nwant        %q", err, wantMsg)
	}
	// The resolver that was down before is not probed again after.
	if n := d.count("udp 192.0.2.53:53"); n != 1 {
		t.Errorf("down resolver probed %d times, want 1", n)
	}
	// The flaky API address was confirmed with a second probe.
	if n := d.count("tcp 192.0.2.81:443"); n != 3 {
		t.Errorf("flaky API probed %d times, want 3", n)
	}
}

func TestAfterNothingLost(t *testing.T) {
	d := newFakeDialer(map[string][]error{"tcp 192.0.2.80:443": {nil}})
	p := &Prober{Dialer: d}
	b, err := p.Before(context.Background(), []Target{target(KindAPI, "192.0.2.80:443"), target(KindAPI, "192.0.2.99:443")})
	if err != nil {
		t.Fatal(err)
	}
	if lost, err := b.After(context.Background()); lost != nil || err != nil {
		t.Errorf("After = %v, %v; want nothing lost", lost, err)
	}
}

func TestCancelled(t *testing.T) {
	d := newFakeDialer(map[string][]error{"tcp 192.0.2.80:443": {nil}})
	p := &Prober{Dialer: d}
	ts := []Target{target(KindAPI, "192.0.2.80:443")}
	b, err := p.Before(context.Background(), ts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if lost, err := b.After(ctx); lost != nil || !errors.Is(err, context.Canceled) {
		t.Errorf("After(cancelled) = %v, %v; want nil, context.Canceled", lost, err)
	}
	if b, err := p.Before(ctx, ts); !errors.Is(err, context.Canceled) || len(b.Reachable()) != 0 {
		t.Errorf("Before(cancelled) = %v, %v", b.Reachable(), err)
	}
}

package testnet

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// Probe is a few packets from one source address in the lab's peer to the
// host, sent again on every try.
type Probe struct {
	Name    string // "UDP 192.0.2.50 → 192.0.2.1:5000"
	Packets int    // packets one try puts on the wire
	// try sends once and returns a check of whether the packets arrived;
	// the check may turn true until the try's window has passed.
	try    func(t testing.TB) (arrived func() bool)
	window time.Duration
}

// Windows: how long one try waits for its packets. A datagram crosses a
// veth in microseconds; 300 ms leaves room for a busy machine, and Delivers
// tries again. TCP stays below the first SYN retransmission (1 s), so that
// one try is one SYN. TCP and ping wait inside the try, so they need no
// window after it.
const (
	udpWindow  = 300 * time.Millisecond
	tcpWindow  = 500 * time.Millisecond
	pingWindow = time.Second
)

// UDP probes with three datagrams from src to the host's sink (Sink).
func (l *Lab) UDP(src netip.Addr) Probe {
	l.t.Helper()
	sink := l.Sink(src)
	s := l.Peer.DialUDP(src, sink.Addr())
	return Probe{
		Name: fmt.Sprintf("UDP %v → %v", src, sink.Addr()), Packets: 3, window: udpWindow,
		try: func(t testing.TB) func() bool {
			before := sink.CountFrom(src)
			for range 3 {
				if err := s.Send([]byte("probe")); err != nil {
					t.Fatalf("send from %v: %v", src, err)
				}
			}
			return func() bool { return sink.CountFrom(src) > before }
		},
	}
}

// TCP probes with one SYN from src to dst (a ServeTCP address of the host);
// it arrived when the connection was accepted.
func (l *Lab) TCP(src netip.Addr, dst netip.AddrPort) Probe {
	return Probe{
		Name: fmt.Sprintf("TCP %v → %v", src, dst), Packets: 1,
		try: func(testing.TB) func() bool {
			ok := l.Peer.DialTCP(src, dst, tcpWindow) == nil
			return func() bool { return ok }
		},
	}
}

// ICMP probes with one echo request from src to dst; it arrived when the
// reply came back.
func (l *Lab) ICMP(src, dst netip.Addr) Probe {
	return Probe{
		Name: fmt.Sprintf("ping %v → %v", src, dst), Packets: 1,
		try: func(testing.TB) func() bool {
			ok := l.Peer.Ping(src, dst, 1, pingWindow) == nil
			return func() bool { return ok }
		},
	}
}

// tries is how often Delivers sends a probe before it calls it dropped: one
// try can miss on a busy machine (make check runs packages in parallel).
const tries = 3

// Delivers reports whether the probe arrives within three tries. Use it
// where a packet is expected through; use AssertBlocked where a drop is.
func (l *Lab) Delivers(t testing.TB, p Probe) bool {
	t.Helper()
	for range tries {
		if waitFor(p.window, p.try(t)) {
			return true
		}
	}
	return false
}

// AssertBlocked sends the probe once and fails t unless none of it arrived
// and the drop counters of sikkerguard's objects in the host (Drops) rose
// by at least the packets sent: a packet that merely got lost on the way
// does not pass for a blocked one.
func (l *Lab) AssertBlocked(t testing.TB, p Probe) {
	t.Helper()
	if ok, why := l.Blocked(t, p); !ok {
		t.Error(why)
	}
}

// Blocked is AssertBlocked that reports instead of failing: whether the
// probe was blocked, and if not, why not.
func (l *Lab) Blocked(t testing.TB, p Probe) (ok bool, why string) {
	t.Helper()
	before := l.Drops(t)
	arrived := p.try(t)
	var rose uint64
	counted := waitFor(l.countWait, func() bool {
		rose = 0
		if after := l.Drops(t).Total(); after > before.Total() { // a counter made anew never counts
			rose = after - before.Total()
		}
		return rose >= uint64(p.Packets)
	})
	// Let the window pass too: a late packet that arrives is a pass.
	if waitFor(p.window, arrived) {
		return false, fmt.Sprintf("%s passed, want it blocked (drop counters rose by %d)", p.Name, rose)
	}
	if !counted {
		return false, fmt.Sprintf("%s did not arrive, but the drop counters rose by %d, not by the %d packets sent: not dropped by sikkerguard",
			p.Name, rose, p.Packets)
	}
	return true, ""
}

// countWait bounds the wait for a drop to be counted (Lab.countWait); it
// only bounds a failing test, it asserts nothing about speed.
const countWait = 5 * time.Second

// waitFor polls cond until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

package testnet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Link is one veth pair of a Lab, from the host namespace to one peer
// namespace. The first address of each family on each side is the link's
// warm-up pair: keep the peer's one off every block list.
type Link struct {
	HostIf, PeerIf string         // interface names; "fw0" and "pe0" when empty
	Host           []netip.Prefix // Host4/24 and Host6/64 when empty
	Peer           []netip.Prefix
}

// The host's addresses on a link that names none: the firewall under test
// and the destination of every probe.
var (
	Host4 = netip.MustParseAddr("192.0.2.1")
	Host6 = netip.MustParseAddr("2001:db8:1::1")
)

// Lab is a host namespace, where the firewall under test runs, and one or
// more peer namespaces, each joined to it by a veth pair. Tests give it
// addresses from 192.0.2.0/24, 198.51.100.0/24 and 2001:db8::/32 only.
type Lab struct {
	Host  *NS
	Peer  *NS   // Peers[0], the namespace probes and floods send from
	Peers []*NS // one per Link
	t     testing.TB
	links []Link
	sinks map[bool]*UDPSink // by family (true = IPv4), made on first use
	// countWait is how long Blocked waits for the drop counters.
	countWait time.Duration
}

// linkTimeout bounds the warm-up of one link: a fresh veth drops packets
// until the kernel's link watcher has turned its carrier on, which takes up
// to a second on an idle machine and longer on a loaded one.
const linkTimeout = 15 * time.Second

// NewLab creates the host namespace sgt<name>…, a peer sgt<name>p<i>… per
// link and the veth pairs, and returns once every link carries packets both
// ways in every family it has addresses of. Callers check RequireRoot
// first. Everything is removed in t.Cleanup.
func NewLab(t testing.TB, name string, links ...Link) *Lab {
	t.Helper()
	if len(links) == 0 {
		t.Fatal("lab: no link")
	}
	l := &Lab{Host: New(t, name), t: t, links: slices.Clone(links), sinks: map[bool]*UDPSink{}, countWait: countWait}
	for i, ln := range l.links {
		if ln.HostIf == "" {
			ln.HostIf = "fw0"
		}
		if ln.PeerIf == "" {
			ln.PeerIf = "pe0"
		}
		if len(ln.Host) == 0 {
			ln.Host = []netip.Prefix{netip.PrefixFrom(Host4, 24), netip.PrefixFrom(Host6, 64)}
		}
		l.links[i] = ln
		peer := New(t, fmt.Sprintf("%sp%d", name, i))
		Veth(t, l.Host, ln.HostIf, ln.Host, peer, ln.PeerIf, ln.Peer)
		l.Peers = append(l.Peers, peer)
	}
	l.Peer = l.Peers[0]
	for i, ln := range l.links {
		for _, v4 := range []bool{true, false} {
			src, dst := first(ln.Peer, v4), first(ln.Host, v4)
			if src.IsValid() && dst.IsValid() {
				l.Peers[i].WaitReach(t, src, netip.AddrPortFrom(dst, discardPort))
			}
		}
	}
	return l
}

// discardPort is where the warm-up knocks: nothing listens there, so the
// host answers with a reset, which proves the path both ways.
const discardPort = 9

// WaitReach dials TCP from src (the zero Addr: any) to dst until the
// connection is accepted or refused, and fails t when neither happened
// within the link timeout.
func (ns *NS) WaitReach(t testing.TB, src netip.Addr, dst netip.AddrPort) {
	t.Helper()
	const try = 200 * time.Millisecond
	var err error
	for deadline := time.Now().Add(linkTimeout); time.Now().Before(deadline); {
		start := time.Now()
		if err = ns.DialTCP(src, dst, try); err == nil || errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		time.Sleep(time.Until(start.Add(try))) // an error at once (no route yet) must not spin
	}
	t.Fatalf("lab: %v → %v never came up in %s: %v", src, dst, ns.Name, err)
}

// first returns the first address of the family in ps.
func first(ps []netip.Prefix, v4 bool) netip.Addr {
	for _, p := range ps {
		if p.Addr().Is4() == v4 {
			return p.Addr()
		}
	}
	return netip.Addr{}
}

// HostAddr returns the host's first address of a's family on the first
// link: where probes from a are sent.
func (l *Lab) HostAddr(a netip.Addr) netip.Addr {
	l.t.Helper()
	h := first(l.links[0].Host, a.Is4())
	if !h.IsValid() {
		l.t.Fatalf("lab: the host has no address of %v's family", a)
	}
	return h
}

// SinkPort is the UDP port of the host's sinks.
const SinkPort = 5000

// Sink returns the UDP receiver on HostAddr(a), port SinkPort, opening it on
// first use.
func (l *Lab) Sink(a netip.Addr) *UDPSink {
	l.t.Helper()
	if s, ok := l.sinks[a.Is4()]; ok {
		return s
	}
	s := l.Host.ListenUDP(netip.AddrPortFrom(l.HostAddr(a), SinkPort))
	l.sinks[a.Is4()] = s
	return s
}

// FloodResult is what became of a Lab.Flood.
type FloodResult struct {
	Sent    int64  // datagrams sent
	Arrived int64  // of them, received by the host's sinks
	Per     string // " src:n" for every source that got any through
	Dropped uint64 // rise of the host's drop counters (Drops) meanwhile
	// Lost is how many packets the kernel lost in its receive queues
	// meanwhile, machine-wide: an upper bound of what the flood lost before
	// any firewall saw it.
	Lost uint64
}

// Flood sends UDP from every src in the peer to the host's sink of its
// family (see Flood) until stop is called, which waits for the last
// datagrams to be received or counted and returns what became of them.
func (l *Lab) Flood(srcs ...netip.Addr) (stop func() FloodResult) {
	l.t.Helper()
	senders := make([]*UDPSender, len(srcs))
	arrived0 := make([]int64, len(srcs))
	for i, src := range srcs {
		senders[i] = l.Peer.DialUDP(src, l.Sink(src).Addr())
		arrived0[i] = l.Sink(src).CountFrom(src)
	}
	drops0, lost0 := l.Drops(l.t), backlogDrops()
	halt := Flood(senders...)
	return func() FloodResult {
		l.t.Helper()
		r := FloodResult{Sent: halt()}
		count := func() bool {
			r.Arrived, r.Per = 0, ""
			for i, src := range srcs {
				if n := l.Sink(src).CountFrom(src) - arrived0[i]; n > 0 {
					r.Arrived += n
					r.Per += fmt.Sprintf(" %v:%d", src, n)
				}
			}
			if d := l.Drops(l.t).Total(); d > drops0.Total() {
				r.Dropped = d - drops0.Total()
			}
			r.Lost = backlogDrops() - lost0
			return uint64(r.Arrived)+r.Dropped+r.Lost >= uint64(r.Sent)
		}
		// Wait for stragglers still in flight when the senders stopped:
		// until every datagram is accounted for, or for a counter that was
		// made anew meanwhile, until the figures have stood for 100 ms.
		last, since := r, time.Now()
		for deadline := time.Now().Add(time.Second); !count() && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if r != last {
				last, since = r, time.Now()
			} else if time.Since(since) >= 100*time.Millisecond {
				break
			}
		}
		return r
	}
}

// AssertFloodBlocked fails t unless the flood was sent, none of it arrived
// and the host's drop counters account for every datagram the kernel did
// not lose on the way.
func (l *Lab) AssertFloodBlocked(t testing.TB, r FloodResult, during string) {
	t.Helper()
	if !AssertNonePassed(t, r, during) {
		return
	}
	if r.Dropped+r.Lost < uint64(r.Sent) {
		t.Errorf("none of %d flood datagrams passed during %s, but the drop counters rose by only %d (%d lost in the kernel's queues)",
			r.Sent, during, r.Dropped, r.Lost)
		return
	}
	t.Logf("0 of %d flood datagrams passed during %s; %d counted as dropped", r.Sent, during, r.Dropped)
}

// AssertNonePassed is AssertFloodBlocked without the counters, for a test
// that rebuilds them meanwhile (an iptables chain declared again starts
// from zero); follow it with AssertBlocked. It reports whether it passed.
func AssertNonePassed(t testing.TB, r FloodResult, during string) bool {
	t.Helper()
	switch {
	case r.Sent == 0:
		t.Errorf("flood sent nothing during %s", during)
	case r.Arrived != 0:
		t.Errorf("%d of %d flood datagrams passed during %s:%s", r.Arrived, r.Sent, during, r.Per)
	default:
		return true
	}
	return false
}

// backlogDrops sums the packets the kernel dropped from its per-CPU
// receive queues (/proc/net/softnet_stat, second column), which a veth
// feeds; the figure is the same in every namespace.
func backlogDrops() uint64 {
	b, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		return 0
	}
	var n uint64
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			v, _ := strconv.ParseUint(f[1], 16, 64)
			n += v
		}
	}
	return n
}

// PinNeighbours makes the host's link-layer address a permanent neighbour
// entry on every peer, for every host address: then no neighbour probe is
// ever sent from a peer address, and a test that counts what the firewall
// drops or logs from a listed source sees only its own packets.
func (l *Lab) PinNeighbours() {
	l.t.Helper()
	for i, ln := range l.links {
		mac := strings.TrimSpace(l.Host.MustRun("cat", "/sys/class/net/"+ln.HostIf+"/address"))
		for _, p := range ln.Host {
			l.Peers[i].MustRun("ip", "neigh", "replace", p.Addr().String(), "lladdr", mac, "dev", ln.PeerIf, "nud", "permanent")
		}
	}
}

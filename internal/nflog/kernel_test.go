package nflog

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/nft"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

var (
	goodAddr4 = netip.MustParseAddr("192.0.2.2")
	badAddr4  = netip.MustParseAddr("192.0.2.50")
	goodAddr6 = netip.MustParseAddr("2001:db8:1::2")
	badAddr6  = netip.MustParseAddr("2001:db8:1::bad")
)

const logGroup = 7

// recorder collects what the listener delivers.
type recorder struct {
	mu     sync.Mutex
	events []Event
	agg    *Aggregator
}

func (r *recorder) add(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	r.agg.Add(ev)
}

func (r *recorder) take() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.events
	r.events = nil
	return evs
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// waitFor polls cond until it holds or a generous deadline passes; the
// deadline only bounds a failing test, it asserts nothing about speed.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestKernelDropEvents(t *testing.T) {
	testnet.RequireRoot(t)
	lab := testnet.NewLab(t, "nl", testnet.Link{
		Peer: []netip.Prefix{netip.PrefixFrom(goodAddr4, 24), netip.PrefixFrom(badAddr4, 24),
			netip.PrefixFrom(goodAddr6, 64), netip.PrefixFrom(badAddr6, 64)},
	})
	// Otherwise a neighbour probe sent from the blocked address would be
	// dropped and logged too.
	lab.PinNeighbours()
	fw, peer := lab.Host, lab.Peer

	log := slog.New(slog.DiscardHandler)
	backend, err := nft.New(firewall.Settings{Hooks: []firewall.Hook{nft.HookInput}, Action: firewall.ActionDrop, LogGroup: logGroup, LogRate: 1000, LogPer: time.Second, IPv6: true},
		log, nft.WithNetNSFd(fw.FD()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := backend.Remove(); err != nil {
			t.Errorf("remove table: %v", err)
		}
	})
	if err := backend.Apply(firewall.Lists{Block: ipnet.FromAddrs(badAddr4, badAddr6), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}

	l, err := Open(Config{Group: logGroup, Prefix: "sikkerguard: ", NetNSFd: fw.FD()}, log)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{agg: NewAggregator(AggregatorConfig{Services: map[uint16]string{23: "telnet", 5060: "sip"}}, log)}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- l.Run(ctx, rec.add) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})

	// Traffic from an unlisted address is neither dropped nor logged (the
	// aggregated total at the end counts every logged packet).
	for _, good := range []netip.Addr{goodAddr4, goodAddr6} {
		if !lab.Delivers(t, lab.UDP(good)) {
			t.Fatalf("UDP from unlisted %v was dropped", good)
		}
	}

	type fam struct {
		name    string
		fw, bad netip.Addr
		icmp    string
		dropped func(firewall.Counters) uint64
	}
	fams := []fam{
		{"ipv4", testnet.Host4, badAddr4, TransportICMP, func(d firewall.Counters) uint64 { return d.Packets4 }},
		{"ipv6", testnet.Host6, badAddr6, TransportICMPv6, func(d firewall.Counters) uint64 { return d.Packets6 }},
	}
	for _, f := range fams {
		cases := []struct {
			transport string
			port      uint16
			sent      int
			send      func(t *testing.T)
		}{
			{TransportTCP, 23, 3, func(t *testing.T) {
				// 300 ms is well below the first SYN retransmission (1 s),
				// so each dial sends exactly one SYN.
				for range 3 {
					if err := peer.DialTCP(f.bad, netip.AddrPortFrom(f.fw, 23), 300*time.Millisecond); err == nil {
						t.Fatalf("TCP from listed %v connected", f.bad)
					}
				}
			}},
			{TransportUDP, 5060, 5, func(t *testing.T) {
				s := peer.DialUDP(f.bad, netip.AddrPortFrom(f.fw, 5060))
				for range 5 {
					if err := s.Send([]byte("REGISTER")); err != nil {
						t.Fatal(err)
					}
					// Stay inside the rule's burst of 5 at 1000/s.
					time.Sleep(5 * time.Millisecond)
				}
			}},
			{f.icmp, 0, 3, func(t *testing.T) {
				if err := peer.Ping(f.bad, f.fw, 3, time.Second); err == nil {
					t.Fatalf("ping from listed %v answered", f.bad)
				}
			}},
		}
		for _, c := range cases {
			t.Run(f.name+"/"+c.transport, func(t *testing.T) {
				before, err := backend.Counters()
				if err != nil {
					t.Fatal(err)
				}
				rec.take()
				rec.agg.Flush()
				c.send(t)
				var delta uint64
				waitFor(func() bool {
					after, err := backend.Counters()
					if err != nil {
						t.Fatal(err)
					}
					delta = f.dropped(after) - f.dropped(before)
					return delta >= uint64(c.sent)
				})
				if delta != uint64(c.sent) {
					t.Fatalf("nft counter dropped %d packets, sent %d", delta, c.sent)
				}
				if !waitFor(func() bool { return rec.len() >= c.sent }) {
					t.Fatalf("got %d events, want %d (stats %+v)", rec.len(), c.sent, l.Stats())
				}
				for _, ev := range rec.take() {
					if ev.Src != f.bad || ev.DstPort != c.port || ev.Transport != c.transport || ev.Prefix != "sikkerguard: " || ev.Time.IsZero() {
						t.Errorf("event %+v, want from %v to port %d over %s", ev, f.bad, c.port, c.transport)
					}
					if (c.transport == TransportICMP && ev.ICMPType != 8) || (c.transport == TransportICMPv6 && ev.ICMPType != 128) {
						t.Errorf("ICMP type %d, want an echo request", ev.ICMPType)
					}
				}
				win := rec.agg.Flush()
				if len(win) != 1 || win[0].Src != f.bad || win[0].Port != c.port || win[0].Transport != c.transport || win[0].Count != uint64(c.sent) {
					t.Fatalf("window %v, want one count of %d from %v", win, c.sent, f.bad)
				}
			})
		}
	}
	st := l.Stats()
	if st.Received != st.Events || st.ParseErrors != 0 || st.Overruns != 0 || st.QueueDrops != 0 || st.Foreign != 0 {
		t.Errorf("listener stats %+v", st)
	}
	total := rec.agg.Stats().Packets
	if total != 2*(3+5+3) {
		t.Errorf("aggregated %d packets in all, want %d", total, 2*(3+5+3))
	}
}

func TestOpenRejectsGroupZero(t *testing.T) {
	if _, err := Open(Config{}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "group 0") {
		t.Fatalf("Open(group 0) = %v", err)
	}
}

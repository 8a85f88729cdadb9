package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/nft"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// Feed roles against the kernel: the decision splits the feeds by role,
// the nftables backend holds the lists, real packets cross a veth pair,
// and the Monitor turns the NFLOG copies into the journal lines.

var (
	rolGood = netip.MustParseAddr("192.0.2.2")  // the link's warm-up pair, never listed
	rolMon  = netip.MustParseAddr("192.0.2.70") // on a monitor feed
	rolBoth = netip.MustParseAddr("192.0.2.71") // on an enforcing and a monitor feed
	rolEnf  = netip.MustParseAddr("192.0.2.72") // on an enforcing feed
	rolOut  = netip.MustParseAddr("192.0.2.73") // on an outbound feed
	rolSSH  = netip.MustParseAddr("192.0.2.74") // on a feed scoped to 22/tcp
)

// rolLab is a lab whose host runs the nftables backend built for cfg's
// feeds with the lists feeds give, and a Monitor naming the feeds.
type rolLab struct {
	*testnet.Lab
	rec   *monLog
	clock *monClock
	win   time.Duration
	mu    sync.Mutex
	hits  []Hit
}

func newRolLab(t *testing.T, feeds []config.Feed, lists map[string][]string) *rolLab {
	t.Helper()
	testnet.RequireRoot(t)
	peer := []netip.Prefix{netip.PrefixFrom(rolGood, 24)}
	for _, a := range []netip.Addr{rolMon, rolBoth, rolEnf, rolOut, rolSSH} {
		peer = append(peer, netip.PrefixFrom(a, 24))
	}
	l := &rolLab{Lab: testnet.NewLab(t, "sgmon", testnet.Link{Host: []netip.Prefix{netip.PrefixFrom(testnet.Host4, 24)}, Peer: peer}),
		rec: &monLog{}, clock: &monClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, win: 200 * time.Millisecond}
	l.PinNeighbours()

	cfg := monConfig(t, monGroup)
	cfg.Firewall.Hooks = []firewall.Hook{nft.HookInput}
	cfg.Firewall.LogRate = config.LogRate{N: 1000, Unit: time.Second}
	cfg.Firewall.IPv6 = false
	cfg.Safety.StripPrivate = false
	cfg.Feeds = feeds
	for i := range cfg.Feeds {
		cfg.Feeds[i].File = "/etc/sikkerguard/" + cfg.Feeds[i].Name + ".txt"
		cfg.Feeds[i].Interval = time.Hour
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := nft.New(cfg.FirewallSettings(), slog.New(slog.DiscardHandler), nft.WithNetNSFd(l.Host.FD()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Remove(); err != nil {
			t.Errorf("remove table: %v", err)
		}
	})
	roles := cfg.Roles()
	in := Inputs{IPv6: false, Limits: LimitsOf(cfg), Scopes: len(cfg.FirewallSettings().Scopes)}
	var sets []roleSet
	for _, f := range feeds {
		s := snap(t, f.Name, lists[f.Name]...)
		in.Feeds = append(in.Feeds, FeedInput{Name: f.Name, Candidate: s, Role: roles[f.Name]})
		sets = append(sets, roleSet{f.Name, withDefaults(roles[f.Name]), s.Set})
	}
	dec, err := Decide(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(dec.Plan.Lists); err != nil {
		t.Fatal(err)
	}
	m, err := NewMonitor(cfg, config.Secret{}, slog.New(l.rec), MonitorOptions{
		NetNSFd: l.Host.FD(), Window: l.win, Now: l.clock.Now,
		Feeds: func(kind string, a netip.Addr) []string { return resolveIn(sets, kind, a) },
		Hits: func(h Hit) {
			l.mu.Lock()
			l.hits = append(l.hits, h)
			l.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	monStart(t, m)
	monWait(t, "the listener", func() bool { return m.Stats().Listening })
	return l
}

// flush ends windows until a line starting with prefix and ending with
// suffix is logged (the NFLOG copies arrive after the packets), and
// returns it.
func (l *rolLab) flush(t *testing.T, prefix, suffix string) string {
	t.Helper()
	var line string
	monWait(t, prefix+"…"+suffix, func() bool {
		l.clock.Advance(l.win)
		for _, s := range l.rec.with(prefix) {
			if strings.HasSuffix(s, suffix) {
				line = s
				return true
			}
		}
		return false
	})
	return line
}

func (l *rolLab) hit(kind string, a netip.Addr) (Hit, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.IndexFunc(l.hits, func(h Hit) bool { return h.Kind == kind && h.Addr == a })
	if i < 0 {
		return Hit{}, false
	}
	return l.hits[i], true
}

// TestMonitorFeedKernel: a monitor feed's source connects and is counted
// and logged as unsolicited; a reply to a connection the host opened to it
// is counted as a reply; the host's own connection to an enforced address
// is counted as outbound for that feed; an address on both an enforcing
// and a monitor feed is dropped.
func TestMonitorFeedKernel(t *testing.T) {
	l := newRolLab(t, []config.Feed{{Name: "drop"}, {Name: "trial", Mode: config.ModeMonitor}},
		map[string][]string{"drop": {"192.0.2.71/32", "192.0.2.72/32"}, "trial": {"192.0.2.70/32", "192.0.2.71/32"}})
	svc := netip.AddrPortFrom(testnet.Host4, 5999)
	l.Host.ServeTCP(svc)

	// Unsolicited: the monitored source connects, and is only counted.
	if err := l.Peer.DialTCP(rolMon, svc, 5*time.Second); err != nil {
		t.Fatalf("monitored %v could not connect: %v", rolMon, err)
	}
	monWait(t, "would_new4", func() bool { return l.Counter(t, nft.CounterNew4) > 0 })
	if n := l.Counter(t, nft.CounterReply4); n != 0 {
		t.Errorf("would_reply4 = %d after an inbound connection, want 0", n)
	}
	l.flush(t, fmt.Sprintf("WOULD-BLOCK %v:5999 (unknown) proto=TCP x", rolMon), " feed=trial")
	if h, ok := l.hit(HitWouldUnsolicited, rolMon); !ok || !slices.Equal(h.Feeds, []string{"trial"}) || h.Packets == 0 {
		t.Errorf("hit %+v (%v), want a would_unsolicited hit of trial", h, ok)
	}

	// Reply: the host connects to the monitored address; its answers are
	// replies, and the host's own attempt is an outbound one.
	remote := netip.AddrPortFrom(rolMon, 5998)
	l.Peer.ServeTCP(remote)
	newBefore := l.Counter(t, nft.CounterNew4)
	if err := l.Host.DialTCP(testnet.Host4, remote, 5*time.Second); err != nil {
		t.Fatalf("the host could not connect to monitored %v: %v", remote, err)
	}
	monWait(t, "would_reply4", func() bool { return l.Counter(t, nft.CounterReply4) > 0 })
	if n := l.Counter(t, nft.CounterNew4); n != newBefore {
		t.Errorf("would_new4 grew by %d on the host's own connection", n-newBefore)
	}
	l.flush(t, fmt.Sprintf("WOULD-BLOCK %v:5998 (unknown) proto=TCP x", rolMon), " feed=trial reply")

	// An enforcing feed wins over a monitor feed.
	dropped, newBefore := l.Drops(t).V4, l.Counter(t, nft.CounterNew4)
	if err := l.Peer.DialTCP(rolBoth, svc, 300*time.Millisecond); err == nil {
		t.Fatalf("%v, on an enforcing and a monitor feed, connected", rolBoth)
	}
	monWait(t, "the drop counter", func() bool { return l.Drops(t).V4 > dropped })
	if n := l.Counter(t, nft.CounterNew4); n != newBefore {
		t.Errorf("would_new4 counted %d packets of %v, which the enforcing feed drops", n-newBefore, rolBoth)
	}

	// Outbound: the host's own attempt to reach an enforced address.
	outBefore := l.Counter(t, nft.CounterOut4)
	l.Peer.ServeTCP(netip.AddrPortFrom(rolEnf, 5998))
	if err := l.Host.DialTCP(testnet.Host4, netip.AddrPortFrom(rolEnf, 5998), 300*time.Millisecond); err == nil {
		t.Errorf("the host connected to enforced %v: its replies should be dropped", rolEnf)
	}
	monWait(t, "outbound4", func() bool { return l.Counter(t, nft.CounterOut4) > outBefore })
	l.flush(t, fmt.Sprintf("OUTBOUND %v:5998 proto=TCP feed=drop x", rolEnf), "")
	if h, ok := l.hit(HitOutbound, rolEnf); !ok || !slices.Equal(h.Feeds, []string{"drop"}) {
		t.Errorf("hit %+v (%v), want an outbound hit of drop", h, ok)
	}
	if got := l.Delivers(t, l.UDP(rolGood)); !got {
		t.Errorf("unlisted %v did not get through", rolGood)
	}
}

// TestOutboundAndScopedFeedsKernel: an outbound feed stops the host's own
// connection to a listed address and logs it, and leaves inbound traffic
// from it alone; a feed scoped to 22/tcp drops a listed source on 22 and
// lets it reach another port.
func TestOutboundAndScopedFeedsKernel(t *testing.T) {
	l := newRolLab(t, []config.Feed{{Name: "c2", Direction: config.DirOutbound}, {Name: "ssh", Ports: []string{"22"}, Protocols: []string{"tcp"}}},
		map[string][]string{"c2": {"192.0.2.73/32"}, "ssh": {"192.0.2.74/32"}})
	remote := netip.AddrPortFrom(rolOut, 5998)
	l.Peer.ServeTCP(remote)
	if err := l.Host.DialTCP(testnet.Host4, remote, 2*time.Second); err == nil {
		t.Fatalf("the host connected to %v, a destination of an outbound feed", remote)
	}
	if n := l.Counter(t, nft.CounterOutDrop4); n == 0 {
		t.Errorf("dropped_out4 = 0 after a blocked connection")
	}
	l.flush(t, fmt.Sprintf("BLOCKED-OUT %v:5998 proto=TCP feed=c2 x", rolOut), "")
	svc := netip.AddrPortFrom(testnet.Host4, 5999)
	l.Host.ServeTCP(svc)
	if err := l.Peer.DialTCP(rolOut, svc, 5*time.Second); err != nil {
		t.Errorf("%v, on an outbound-only feed, could not connect in: %v", rolOut, err)
	}

	ssh := netip.AddrPortFrom(testnet.Host4, 22)
	l.Host.ServeTCP(ssh)
	before := l.Drops(t).V4
	if err := l.Peer.DialTCP(rolSSH, ssh, 300*time.Millisecond); err == nil {
		t.Errorf("%v, on a feed scoped to 22/tcp, connected to port 22", rolSSH)
	}
	monWait(t, "the drop counter", func() bool { return l.Drops(t).V4 > before })
	if err := l.Peer.DialTCP(rolSSH, svc, 5*time.Second); err != nil {
		t.Errorf("%v, on a feed scoped to 22/tcp, could not reach port 5999: %v", rolSSH, err)
	}
	if got := l.Delivers(t, l.UDP(rolSSH)); !got {
		t.Errorf("UDP from %v, on a feed scoped to 22/tcp, was dropped", rolSSH)
	}
}

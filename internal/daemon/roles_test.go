package daemon

import (
	"log/slog"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"net/netip"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/nflog"
	"github.com/sikkerapi/sikkerguard/internal/safety"
)

// TestDecideSplitsByRole: each feed's entries go to the list of its role;
// an enforcing feed's entry leaves the monitor and scoped lists; the
// never-block set leaves every list.
func TestDecideSplitsByRole(t *testing.T) {
	mon := config.Role{Mode: config.ModeMonitor, Direction: config.DirInbound, Scope: -1}
	out := config.Role{Mode: config.ModeEnforce, Direction: config.DirOutbound, Scope: -1}
	both := config.Role{Mode: config.ModeEnforce, Direction: config.DirBoth, Scope: -1}
	ssh := config.Role{Mode: config.ModeEnforce, Direction: config.DirInbound, Scope: 0, ScopeText: "22/tcp"}
	in := Inputs{
		Feeds: []FeedInput{
			{Name: "drop", Candidate: snap(t, "drop", "45.0.0.1/32", "45.0.0.9/32")},
			{Name: "trial", Candidate: snap(t, "trial", "45.0.0.1/32", "45.0.1.0/24", "10.0.0.1/32"), Role: mon},
			{Name: "c2", Candidate: snap(t, "c2", "46.0.0.1/32", "45.0.2.5/32"), Role: out},
			{Name: "malware", Candidate: snap(t, "malware", "47.0.0.1/32"), Role: both},
			{Name: "ssh", Candidate: snap(t, "ssh", "45.0.0.9/32", "48.0.0.1/32"), Role: ssh},
		},
		Never: set(t, "45.0.2.5/32"), StripPrivate: true, IPv6: true, Scopes: 1,
		Limits: safety.Limits{MaxGrowth: 2, MaxEntries: 1000, MaxBlockShare: 0.1},
	}
	dec, err := Decide(in)
	if err != nil {
		t.Fatal(err)
	}
	p := dec.Plan
	for _, c := range []struct {
		name      string
		got, want ipnet.Set
	}{
		{"block", p.Block, set(t, "45.0.0.1/32", "45.0.0.9/32", "47.0.0.1/32")},
		{"monitor", p.Monitor, set(t, "45.0.1.0/24")},
		{"out", p.Out, set(t, "46.0.0.1/32", "47.0.0.1/32")},
		{"scoped", p.Scoped[0], set(t, "48.0.0.1/32")},
	} {
		if !c.got.Equal(c.want) {
			t.Errorf("%s list %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestDecideChecksRoleLists: the merged-list checks hold for a monitor
// list like for the blocklist.
func TestDecideChecksRoleLists(t *testing.T) {
	mon := config.Role{Mode: config.ModeMonitor, Direction: config.DirInbound, Scope: -1}
	in := Inputs{
		Feeds:  []FeedInput{{Name: "trial", Accepted: snap(t, "trial", "45.0.0.1/32"), Candidate: snap(t, "trial", "45.0.0.0/8"), Role: mon}},
		IPv6:   true,
		Limits: safety.Limits{MaxGrowth: 1e9, MaxEntries: 1000, MaxBlockShare: 0.001},
	}
	dec, err := Decide(in)
	if err != nil || dec.Feeds[0].Refused == nil {
		t.Fatalf("Decide = %v, refused %v: want the /8 monitor list refused", err, dec.Feeds[0].Refused)
	}
	if !dec.Plan.Monitor.Contains(netip.MustParseAddr("45.0.0.1")) || dec.Plan.Monitor.Contains(netip.MustParseAddr("45.1.0.1")) {
		t.Errorf("monitor list %s, want the accepted one kept", dec.Plan.Monitor)
	}
}

func TestResolveFeeds(t *testing.T) {
	a := netip.MustParseAddr("45.0.0.1")
	sets := []roleSet{
		{"drop", config.EnforceInbound, set(t, "45.0.0.0/24")},
		{"trial", config.Role{Mode: config.ModeMonitor, Direction: config.DirInbound, Scope: -1}, set(t, "45.0.0.1/32")},
		{"c2", config.Role{Mode: config.ModeEnforce, Direction: config.DirOutbound, Scope: -1}, set(t, "45.0.0.1/32")},
		{"ssh", config.Role{Mode: config.ModeEnforce, Direction: config.DirInbound, Scope: 0}, set(t, "45.0.0.1/32")},
	}
	for kind, want := range map[string]string{
		HitDrop: "[drop ssh]", HitWouldUnsolicited: "[trial]", HitWouldReply: "[trial]",
		HitOutbound: "[drop trial]", HitBlockedOut: "[c2]",
	} {
		if got := resolveIn(sets, kind, a); fmtList(got) != want {
			t.Errorf("%s: feeds %v, want %s", kind, got, want)
		}
	}
}

func fmtList(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}

func TestRoleLines(t *testing.T) {
	a := netip.MustParseAddr("185.16.39.79")
	svc := map[uint16]string{23: "telnet", 443: "https"}
	for _, c := range []struct {
		k     roleKey
		feeds []string
		want  string
	}{
		{roleKey{HitWouldUnsolicited, a, 23, nflog.TransportTCP}, []string{"trial"}, "WOULD-BLOCK 185.16.39.79:23 (telnet) proto=TCP x47 feed=trial"},
		{roleKey{HitWouldReply, a, 443, nflog.TransportTCP}, []string{"trial", "other"}, "WOULD-BLOCK 185.16.39.79:443 (https) proto=TCP x47 feed=trial,other reply"},
		{roleKey{HitOutbound, a, 443, nflog.TransportTCP}, []string{"drop"}, "OUTBOUND 185.16.39.79:443 proto=TCP feed=drop x47"},
		{roleKey{HitBlockedOut, a, 0, nflog.TransportICMP}, nil, "BLOCKED-OUT 185.16.39.79 proto=ICMP feed=- x47"},
	} {
		if got := roleLine(c.k, 47, c.feeds, svc); got != c.want {
			t.Errorf("roleLine = %q, want %q", got, c.want)
		}
	}
}

// TestOutboundTotals: the per-feed, per-destination totals add up over
// windows and stay bounded.
func TestOutboundTotals(t *testing.T) {
	monTime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := newRoleLog(slog.New(slog.DiscardHandler), nil, func(string, netip.Addr) []string { return []string{"drop"} })
	dst := netip.MustParseAddr("203.0.113.9")
	for range 2 {
		r.add(HitOutbound, nflog.Event{Dst: dst, DstPort: 443, Transport: nflog.TransportTCP})
		r.flush(monTime)
	}
	got := r.outbound()
	if len(got) != 1 || got[0] != (OutboundCount{Feed: "drop", Dest: dst, Port: 443, Count: 2}) {
		t.Errorf("outbound %+v, want drop → %v:443 x2", got, dst)
	}
	for i := range maxOutboundDests + 10 {
		r.add(HitOutbound, nflog.Event{Dst: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), Transport: nflog.TransportUDP, DstPort: 53})
	}
	r.flush(monTime)
	if n := len(r.outbound()); n != maxOutboundDests {
		t.Errorf("%d outbound totals, want the bound %d", n, maxOutboundDests)
	}
}

package dbusapi_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
	"github.com/sikkerapi/sikkerguard/internal/ledger"
)

// Every field of a ledger record survives the bus.
func TestFeedsRoundTrip(t *testing.T) {
	e := setup(t, dbustest.Open, dbusapi.Options{})
	at := time.Unix(1764000000, 0)
	want := []ledger.Record{{
		Name: "sikkerapi", Mode: ledger.ModeEnforce, Entries: 1020, Addresses: 4096, KernelBytes: 81600,
		Drops24h: 3, Drops7d: 40, DropsTotal: 400, Unique7d: 2, Unique30d: 9, UniqueTotal: 99, HitsPer1000: 39.2,
		LastHit: at, DataChanged: at.Add(-time.Hour), ListAge: time.Hour, LastPull: at, PullRatio: 0.75,
		Outbound7d: 4, OutboundTotal: 5, BlockedOut7d: 1, BlockedOutTotal: 2, OutboundHosts: 1,
		Destinations:     []ledger.Destination{{Addr: netip.MustParseAddr("203.0.113.9"), Outbound: 5, BlockedOut: 2, Last: at}},
		WouldUnsolicited: 7, WouldReplies: 1, WouldUnsolicited7d: 6, WouldReplies7d: 1,
		Since: at.Add(-48 * time.Hour), Advice: "breaks outbound traffic: 1 hosts",
	}, {Name: "watch", Mode: ledger.ModeMonitor, PullRatio: -1, Advice: "monitor: no match yet"}}
	e.fake.SetFeeds(want)
	got, err := e.client.Feeds(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	// Latency is for /metrics only and does not travel.
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("Feeds (-want +got):\n%s", d)
	}
}

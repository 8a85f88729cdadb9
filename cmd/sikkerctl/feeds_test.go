package main

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
	"github.com/sikkerapi/sikkerguard/internal/ledger"
)

func TestFeeds(t *testing.T) {
	r := startDaemon(t, dbustest.Shipped)
	addr := []string{"--address", r.bus.Address}
	if res := sikkerctl(t, nil, append(addr, "feeds")...); res.code != 0 || res.stdout != "no feeds\n" {
		t.Fatalf("no feeds: exit %d, %q %q", res.code, res.stdout, res.stderr)
	}
	r.fake.SetFeeds([]ledger.Record{{
		Name: "sikkerapi", Mode: ledger.ModeEnforce, Entries: 1020, Addresses: 4096, KernelBytes: 81600,
		Drops24h: 3, Drops7d: 40, DropsTotal: 4000, Unique7d: 2, Unique30d: 9, HitsPer1000: 39.2157,
		LastHit: fixedNow.Add(-5 * time.Minute), DataChanged: fixedNow.Add(-26 * time.Hour), ListAge: 26 * time.Hour,
		LastPull: fixedNow, PullRatio: 0.75, Outbound7d: 4, OutboundHosts: 1,
		Destinations: []ledger.Destination{{Addr: netip.MustParseAddr("203.0.113.9"), Outbound: 4, Last: fixedNow.Add(-time.Hour)}},
		Advice:       "breaks outbound traffic: 1 hosts",
	}, {Name: "watch", Mode: ledger.ModeMonitor, Entries: 10, PullRatio: -1, WouldUnsolicited: 3412,
		Advice: "monitor: would drop 3,412 unsolicited, 0 replies — safe to enforce"}})
	res := sikkerctl(t, nil, append(addr, "feeds")...)
	want := `FEED       MODE     RANGES  ADDRESSES  KERNEL    DROPS 24H/7D/ALL  UNIQUE 7D/30D  HITS/1K  LAST HIT  LIST AGE  PULLS 7D  OUTBOUND 7D  WOULD UNSOL/REPLY  ADVICE
sikkerapi  enforce  1,020   4,096      79.7 KiB  3/40/4,000        2/9            39.2     5m ago    1d2h      75%       4 (1 hosts)  -                  breaks outbound traffic: 1 hosts
watch      monitor  10      0          0 B       0/0/0             0/0            0.0      never     -         -         0 (0 hosts)  3,412/0            monitor: would drop 3,412 unsolicited, 0 replies — safe to enforce

FEED       OUTBOUND DESTINATION  ATTEMPTS  DROPPED  LAST
sikkerapi  203.0.113.9           4         0        1h0m ago
`
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if d := cmp.Diff(want, res.stdout); d != "" {
		t.Errorf("stdout (-want +got):\n%s", d)
	}
	res = sikkerctl(t, nil, append(addr, "feeds", "--json")...)
	var got []feedLedgerJSON
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].HitsPer1000 != 39.22 || *got[0].PullRatio != 0.75 || *got[0].ListAgeSeconds != 26*3600 ||
		got[0].Destinations[0].Addr != "203.0.113.9" || got[1].PullRatio != nil || got[1].ListAgeSeconds != nil || got[1].WouldUnsolicited != 3412 {
		t.Errorf("json: %s", res.stdout)
	}
	if res := sikkerctl(t, nil, append(addr, "feeds", "x")...); res.code != exitUsage {
		t.Errorf("feeds x: exit %d", res.code)
	}
}

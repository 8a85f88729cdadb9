package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
)

func TestHubStatus(t *testing.T) {
	r := startDaemon(t, dbustest.Shipped)
	addr := []string{"--address", r.bus.Address}
	if res := sikkerctl(t, nil, append(addr, "hub", "status")...); res.code != exitError || !strings.Contains(res.stderr, "hub.listen is off") && !strings.Contains(res.stderr, "not found") {
		t.Fatalf("not a hub: exit %d, stderr %q", res.code, res.stderr)
	}
	gen := fixedNow.Add(-time.Hour)
	r.fake.SetHub(&dbusapi.HubStatus{Listen: "[::]:9548", Generation: gen, Entries: 1234, Window: 24 * time.Hour, Active: 1,
		Requests: 10, NotMod: 7, Refused: 1, Received: 5, Forwarded: 2,
		Hosts: []dbusapi.HubHost{{Name: "web1", Addr: "192.0.2.10:4000", LastPull: fixedNow.Add(-time.Minute), Generation: gen, Reports: 5},
			{Name: "web2"}}})
	res := sikkerctl(t, nil, append(addr, "hub", "status")...)
	want := `Listening:  [::]:9548
List:       1,234 entries, generated 2023-11-15 00:13:20 UTC
Hosts:      1 of 2 pulled in the last 24h0m0s
Requests:   10 (7 not modified, 1 refused)
Reports:    5 events received, 2 rows forwarded, 0 pending

HOST  LAST PULL                LIST                               REPORTS  ADDRESS
web1  2023-11-15 01:12:20 UTC  2023-11-15 00:13:20 UTC (current)  5        192.0.2.10:4000
web2  never                    never                              0        -
`
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if d := cmp.Diff(want, res.stdout); d != "" {
		t.Errorf("stdout (-want +got):\n%s", d)
	}
	res = sikkerctl(t, nil, append(addr, "hub", "status", "--json")...)
	var got hubJSON
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Hosts) != 2 || !got.Hosts[0].Active || !got.Hosts[0].Current || got.Hosts[1].Active || got.Hosts[1].LastPull != nil ||
		got.ActiveHosts != 1 || got.ReportsForwarded != 2 || *got.Generation != "2023-11-15T00:13:20Z" {
		t.Errorf("json: %s", res.stdout)
	}
	if res := sikkerctl(t, nil, append(addr, "hub")...); res.code != exitUsage {
		t.Errorf("bare hub: exit %d", res.code)
	}
}

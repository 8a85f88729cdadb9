package health

import (
	"testing"
	"time"
)

func TestHubMetrics(t *testing.T) {
	snap := running
	s, _ := newTest(t, snap)
	samples, err := parseExposition(readBody(t, get(t, s.Handler(), "GET", "/metrics")))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := samples["sikkerguard_hub_active_hosts"]; ok {
		t.Fatal("hub series on a daemon that is no hub")
	}
	gen := t0.Add(-time.Hour)
	snap.Hub = &Hub{ActiveHosts: 2, Generation: gen, Requests: 9, NotModified: 6, Refused: 1, Received: 4, Forwarded: 3,
		Hosts: []HubHost{{Name: "web1", LastPull: t0, Generation: gen, Reports: 4}, {Name: "web2"}}}
	s, _ = newTest(t, snap)
	samples, err = parseExposition(readBody(t, get(t, s.Handler(), "GET", "/metrics")))
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{
		`sikkerguard_hub_active_hosts`:                                        2,
		`sikkerguard_hub_list_generation_timestamp_seconds`:                   float64(gen.Unix()),
		`sikkerguard_hub_not_modified_total`:                                  6,
		`sikkerguard_hub_refused_total`:                                       1,
		`sikkerguard_hub_reports_received_total`:                              4,
		`sikkerguard_hub_reports_forwarded_total`:                             3,
		`sikkerguard_hub_host_last_pull_timestamp_seconds{host="web1"}`:       float64(t0.Unix()),
		`sikkerguard_hub_host_last_pull_timestamp_seconds{host="web2"}`:       0,
		`sikkerguard_hub_host_list_generation_timestamp_seconds{host="web1"}`: float64(gen.Unix()),
		`sikkerguard_hub_host_reports_total{host="web1"}`:                     4,
	} {
		if got, ok := samples[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
}

package health

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ledger"
)

var dashboardFile = filepath.Join("..", "..", "docs", "grafana", "sikkerguard.json")

// fullSnapshot has every optional part set, so that every family renders.
func fullSnapshot() Snapshot {
	at := time.Unix(1764000000, 0)
	return Snapshot{
		State: StateRunning, Version: "1.0", Started: at, LastPull: at,
		Feeds: []Feed{{Name: "sikkerapi", Entries: 10, LastPull: at, State: "ok"}},
		Quota: &Quota{Used: 1, Limit: 2, Remaining: 1, Reset: at}, ServiceTotals: map[string]uint64{"ssh": 1},
		FeedLedger: []ledger.Record{{Name: "sikkerapi", Mode: ledger.ModeEnforce, Entries: 10, DropsTotal: 3, DataChanged: at,
			ListAge: time.Hour, PullRatio: 0.5, Latency: ledger.Histogram{Counts: make([]uint64, len(ledger.LatencyBounds)+1)}}},
	}
}

// exported lists the series names /metrics can carry: every family, and a
// histogram's _bucket, _sum and _count.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, line := range strings.Split(string(renderMetrics(fullSnapshot())), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		out[f[2]] = true
		if f[3] == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[f[2]+s] = true
			}
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\bsikkerguard_[a-zA-Z0-9_]+`)

// queried collects the metric names in every expr and template query of a
// Grafana dashboard, however deep the panels nest.
func queried(v any, out map[string]bool) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && (k == "expr" || k == "query") {
				n++
				for _, m := range metricName.FindAllString(s, -1) {
					out[m] = true
				}
				continue
			}
			n += queried(e, out)
		}
	case []any:
		for _, e := range x {
			n += queried(e, out)
		}
	}
	return n
}

func missing(have, want map[string]bool) []string {
	var out []string
	for m := range want {
		if !have[m] {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out
}

// Every metric the shipped dashboard queries is one the daemon exports.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	want := map[string]bool{}
	if n := queried(dash, want); n < 10 || len(want) < 10 {
		t.Fatalf("%s: found %d queries naming %d metrics; is it still a Grafana dashboard?", dashboardFile, n, len(want))
	}
	have := exported(t)
	if m := missing(have, want); len(m) > 0 {
		t.Errorf("%s queries metrics /metrics does not export: %v", dashboardFile, m)
	}
	// The check itself catches a name that is not exported.
	bogus := map[string]bool{}
	queried(map[string]any{"expr": "rate(sikkerguard_feed_dropped_packets_totl[5m])"}, bogus)
	if m := missing(have, bogus); !slices.Equal(m, []string{"sikkerguard_feed_dropped_packets_totl"}) {
		t.Errorf("a misspelt metric was not caught: %v", m)
	}
}

func TestLedgerMetrics(t *testing.T) {
	out := string(renderMetrics(fullSnapshot()))
	for _, want := range []string{
		`sikkerguard_feed_unique_drops_total{feed="sikkerapi"} 0`,
		`sikkerguard_feed_would_block_total{feed="sikkerapi",kind="reply"} 0`,
		`sikkerguard_feed_mode{feed="sikkerapi",mode="enforce"} 1`,
		`sikkerguard_feed_mode{feed="sikkerapi",mode="monitor"} 0`,
		`sikkerguard_feed_list_age_seconds{feed="sikkerapi"} 3600`,
		`sikkerguard_feed_pull_success_ratio{feed="sikkerapi"} 0.5`,
		`sikkerguard_feed_lastseen_to_kernel_seconds_bucket{feed="sikkerapi",le="300"} 0`,
		`sikkerguard_feed_lastseen_to_kernel_seconds_bucket{feed="sikkerapi",le="+Inf"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

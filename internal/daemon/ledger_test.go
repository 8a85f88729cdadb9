package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/ledger"
	"github.com/sikkerapi/sikkerguard/internal/mock"
)

// ledgerDaemon is a daemon with two feeds in force, a and b, that share
// 45.0.0.1: 45.0.0.3 is listed by a alone.
func ledgerDaemon(t *testing.T, dir string, now time.Time) *Daemon {
	t.Helper()
	d, err := New(Options{Config: config.Config{StateDir: dir, DryRun: true}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a, b := hosts(t, "a", 3), hosts(t, "b", 1)
	a.FetchedAt, b.FetchedAt = now.Add(-time.Hour), now.Add(-time.Hour)
	// b's one entry was last seen an hour before its fetch.
	b.Seen = feed.NewSeenSummary(b.FetchedAt, ledger.LatencyBounds)
	b.Seen.Add(now.Add(-2 * time.Hour))
	d.feeds = []*feedState{{name: "a", inUse: a}, {name: "b", inUse: b}}
	d.noteRoles()
	d.publish()
	return d
}

func byName(t *testing.T, recs []ledger.Record, name string) ledger.Record {
	t.Helper()
	for _, r := range recs {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no record of feed %s in %+v", name, recs)
	return ledger.Record{}
}

// The drop log reaches the ledger with the feeds listing each source, and
// the ledger survives a restart of the daemon.
func TestDropsReachTheLedger(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	d := ledgerDaemon(t, dir, now)
	for _, src := range []string{"45.0.0.1", "45.0.0.3", "45.0.0.3", "198.51.100.1", "::ffff:45.0.0.5"} {
		a := netip.MustParseAddr(src).Unmap()
		d.takeHit(Hit{Kind: HitDrop, Addr: a, Feeds: d.resolveFeeds(HitDrop, a), Packets: 1, Time: now})
	}
	d.ledger.Pulled("a", true, now)
	check := func(d *Daemon) {
		t.Helper()
		recs := d.Feeds()
		a, b := byName(t, recs, "a"), byName(t, recs, "b")
		if a.DropsTotal != 4 || a.UniqueTotal != 3 || a.Entries != 3 || a.Addresses != 3 || a.KernelBytes != 3*kernelBytesPerRange4 ||
			a.PullRatio != 1 || a.ListAge != time.Hour {
			t.Errorf("a: %+v", a)
		}
		// b's data is dated by its newest lastSeen, and its delay to the
		// kernel is in the histogram.
		if b.DropsTotal != 1 || b.UniqueTotal != 0 || b.ListAge != 2*time.Hour || b.Latency.Counts[3] != 1 {
			t.Errorf("b: %+v", b)
		}
	}
	check(d)
	if st := d.Status(); len(st.Feeds) != 2 || st.Feeds[0].Dropped != 4 || st.Feeds[1].Dropped != 1 {
		t.Errorf("status feeds %+v, want a with 4 drops and b with 1", st.Feeds)
	}
	d.saveLedger()
	check(ledgerDaemon(t, dir, now))
}

// A daemon saves its ledger when it stops, and the next one goes on from it.
func TestLedgerSurvivesARestart(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	d, stop := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	// What the monitor hands over for each window's address.
	a := netip.MustParseAddr("203.0.113.7")
	d.takeHit(Hit{Kind: HitDrop, Addr: a, Feeds: d.resolveFeeds(HitDrop, a), Packets: 1, Time: time.Now()})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	d2, _ := l.start(nil)
	l.note.waitCount(t, "READY=1", 2)
	if r := byName(t, d2.Feeds(), SikkerFeedName); r.DropsTotal != 1 || r.UniqueTotal != 1 || r.PullRatio != 1 || r.Entries != 1 {
		t.Errorf("after a restart: %+v", r)
	}
}

// With api.format json the SikkerAPI list's lastSeen reach the ledger's
// histogram and /metrics, though no entry is kept; the data's age is the
// newest lastSeen.
func TestJSONPullFillsTheLatencyHistogram(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	now := time.Now()
	// Last seen within the 30 days before the pull; 100 of them a minute ago.
	entries := mock.Generate(mock.GenerateOptions{N: 500, Seed: 5, Base: now.Add(-3 * time.Minute)})
	for i := range 100 {
		entries[i].LastSeen = now.Add(-time.Minute)
	}
	l.srv.SetEntries(entries)
	l.cfg.API.Format = config.FormatJSON
	l.cfg.API.ScoreMin = 1
	l.cfg.Health.Listen = freeLoopbackPort(t)
	d, _ := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)

	r := byName(t, d.Feeds(), SikkerFeedName)
	var n uint64
	for _, c := range r.Latency.Counts {
		n += c
	}
	if r.Entries != uint64(len(entries)) || n != uint64(len(entries)) || r.Latency.Counts[0] < 100 {
		t.Errorf("record %+v: want %d entries, all in the histogram", r, len(entries))
	}
	// Every entry was seen at most 30 days before its pull.
	if last := r.Latency.Counts[len(ledger.LatencyBounds)]; last != 0 {
		t.Errorf("%d entries older than 30 days: %v", last, r.Latency.Counts)
	}
	if r.ListAge < time.Minute || r.ListAge > time.Hour {
		t.Errorf("list age %v, want the newest lastSeen's (1 min)", r.ListAge)
	}
	waitFor(t, "the health endpoint", func() bool {
		c, err := net.Dial("tcp", l.cfg.Health.Listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	_, metrics := get(t, "http://"+l.cfg.Health.Listen+"/metrics")
	for _, want := range []string{
		fmt.Sprintf(`sikkerguard_feed_lastseen_to_kernel_seconds_bucket{feed="sikkerapi",le="+Inf"} %d`, len(entries)),
		fmt.Sprintf(`sikkerguard_feed_lastseen_to_kernel_seconds_count{feed="sikkerapi"} %d`, len(entries)),
		fmt.Sprintf(`sikkerguard_feed_lastseen_to_kernel_seconds_bucket{feed="sikkerapi",le="2.592e+06"} %d`, len(entries)),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	want := fmt.Sprintf(`sikkerguard_feed_lastseen_to_kernel_seconds_bucket{feed="sikkerapi",le="300"} %d`, r.Latency.Counts[0])
	if !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %q:\n%s", want, metrics)
	}
	if q := l.srv.Requests(); len(q) == 0 || q[len(q)-1].Query.Get("plaintext") != "" {
		t.Errorf("the pull asked for plaintext: %+v", q)
	}
}

package ledger

import (
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/nflog"
)

// BenchmarkFlood sends 1 M drops from random spoofed sources through what
// the daemon keeps per drop: the ledger (fixed per feed) alone, then with
// the per-source totals (nflog.Aggregator, capped at
// nflog.DefaultMaxSources) that the monitor keeps beside it. It reports
// the live heap after half the flood and after all of it, both well past
// the cap: a bound shows as two equal figures, growth as a second one
// larger than the first. The drop log is a rate-limited sample
// (firewall.log_rate), so the flood is cut into windows as the kernel's
// limit cuts it.
//
//	go test ./internal/ledger -run '^$' -bench Flood -benchtime 1x -timeout 1h
func BenchmarkFlood(b *testing.B) {
	// Three feeds, one listing everything: every source is "listed".
	var all, half, other ipnet.Set
	all.AddPrefix(netip.MustParsePrefix("0.0.0.0/1"))
	all.AddPrefix(netip.MustParsePrefix("128.0.0.0/1"))
	half.AddPrefix(netip.MustParsePrefix("0.0.0.0/1"))
	other.AddPrefix(netip.MustParsePrefix("203.0.113.0/24"))
	sets := []namedSet{{"all", all}, {"half", half}, {"other", other}}
	for _, withTotals := range []bool{false, true} {
		name := "ledger"
		if withTotals {
			name = "ledger+totals"
		}
		b.Run(name, func(b *testing.B) { flood(b, sets, withTotals) })
	}
}

func flood(b *testing.B, sets []namedSet, withTotals bool) {
	const sources = 500_000 // a half
	// The kernel logs at most firewall.log_rate packets, so one window holds
	// a bounded number of events: 10,000 is 1,000/s over 10 s.
	const window = 10_000
	for b.Loop() {
		base := heap()
		agg := nflog.NewAggregator(nflog.AggregatorConfig{}, slog.New(slog.DiscardHandler))
		l := New(Config{}, nil)
		l.SetFeeds([]Facts{{Name: "all"}, {Name: "half"}, {Name: "other", Mode: ModeMonitor}})
		r := rand.New(rand.NewPCG(1, 2))
		t := time.Now()
		flood := func() {
			names := make([]string, 0, len(sets))
			for i := range sources {
				if withTotals && i%window == 0 {
					agg.Flush() // the monitor ends a window every nflog.DefaultWindow
				}
				src := netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
				if withTotals {
					agg.Add(nflog.Event{Src: src, DstPort: 22, Transport: nflog.TransportTCP, Time: t})
				}
				names = names[:0]
				for _, s := range sets {
					if s.set.Contains(src) {
						names = append(names, s.name)
					}
				}
				l.Add(Hit{Kind: Drop, Addr: src, Feeds: names, Packets: 1, Time: t})
			}
		}
		flood()
		first := heap() - base
		flood()
		second := heap() - base
		b.ReportMetric(float64(first)/(1<<10), "KiB-after-0.5M")
		b.ReportMetric(float64(second)/(1<<10), "KiB-after-1M")
		b.ReportMetric(float64(agg.Stats().Sources), "sources-kept")
		if rec := l.Records(); rec[0].DropsTotal != 2*sources {
			b.Fatalf("ledger counted %d drops, want %d", rec[0].DropsTotal, 2*sources)
		}
		runtime.KeepAlive(agg)
		runtime.KeepAlive(l)
	}
}

type namedSet struct {
	name string
	set  ipnet.Set
}

// heap is the live heap after a collection.
func heap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkAdd is the ledger's cost per drop (three feeds named).
func BenchmarkAdd(b *testing.B) {
	l := New(Config{}, nil)
	l.SetFeeds([]Facts{{Name: "a"}, {Name: "b"}, {Name: "c"}})
	h := Hit{Kind: Drop, Addr: netip.MustParseAddr("192.0.2.1"), Feeds: []string{"a", "b", "c"}, Packets: 1, Time: time.Now()}
	for b.Loop() {
		l.Add(h)
	}
}

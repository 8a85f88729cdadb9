package daemon

import (
	"math/rand/v2"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/safety"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// BenchmarkDecide1M is the decision of a start from the cache: one feed
// of a million random IPv4 addresses in force, no candidate.
func BenchmarkDecide1M(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	s := &feed.Snapshot{Name: "sikkerapi"}
	for range 1_000_000 {
		a := r.Uint32()
		s.Set.V4 = append(s.Set.V4, ipnet.Range4{Lo: a, Hi: a})
	}
	s.Set.Merge()
	in := Inputs{Feeds: []FeedInput{{Name: s.Name, Accepted: s}}, IPv6: true, StripPrivate: true,
		Never:  testnet.Set("127.0.0.0/8", "::1/128", "192.0.2.1/32", "10.0.0.0/8"),
		Limits: safety.Limits{MaxGrowth: 2, MaxShrink: 0.5, MaxEntries: 5_000_000, MaxBlockShare: 0.10}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decide(in); err != nil {
			b.Fatal(err)
		}
	}
}

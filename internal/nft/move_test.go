package nft

import (
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// TestMoveBetweenSets floods from 192.0.2.50 while it moves between a
// single entry (hash set) and a range (interval set) of 20k-entry lists,
// five times each way, through every way of loading a list. Within one
// transaction the hash sets switch before the interval sets do, so a single
// that moves into a range must stay in its hash set until the range is
// there: not one probe may pass.
func TestMoveBetweenSets(t *testing.T) {
	single := []string{"192.0.2.50/32", "192.0.2.64/28"}
	wide := []string{"192.0.2.48/28", "192.0.2.64/28"}
	for _, tc := range []struct {
		name string
		load func(b *Backend, i int, src []string) error
	}{
		{"Update", func(b *Backend, i int, src []string) error { return b.Update(randomList(uint64(i+2), 20_000, src...)) }},
		{"ReplaceAll", func(b *Backend, i int, src []string) error {
			return b.ReplaceAll(randomList(uint64(i+2), 20_000, src...))
		}},
		// Different lists: Apply replaces in full.
		{"Apply full", func(b *Backend, i int, src []string) error {
			return b.Apply(firewall.Lists{Block: randomList(uint64(i+2), 20_000, src...), Allow: ipnet.Set{}})
		}},
		// The same list but for the moving address: Apply sends a delta.
		{"Apply delta", func(b *Backend, _ int, src []string) error {
			return b.Apply(firewall.Lists{Block: ipnet.Union(randomList(1, 20_000), set(src...)), Allow: ipnet.Set{}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			sink := l.Sink(badAddr4)
			b := l.backend(t, testConfig{IPv6: true})
			if err := b.Apply(firewall.Lists{Block: randomList(1, 20_000, single...), Allow: ipnet.Set{}}); err != nil {
				t.Fatal(err)
			}
			stop := l.Flood(badAddr4)
			var toRange, toSingle int64
			for i := range 10 {
				src := wide
				if i%2 == 1 {
					src = single
				}
				before := sink.CountFrom(badAddr4)
				if err := tc.load(b, i, src); err != nil {
					stop()
					t.Fatalf("move %d: %v", i, err)
				}
				time.Sleep(20 * time.Millisecond)
				if n := sink.CountFrom(badAddr4) - before; i%2 == 0 {
					toRange += n
				} else {
					toSingle += n
				}
				if i%2 == 0 && hasElement(t, l.Host, SetHosts4, "192.0.2.50") {
					t.Errorf("move %d: 192.0.2.50 still in %s after it moved into a range", i, SetHosts4)
				}
			}
			r := stop()
			t.Logf("%d over 5 single→range moves, %d over 5 range→single moves", toRange, toSingle)
			l.AssertFloodBlocked(t, r, "10 moves between sets")
			if !hasElement(t, l.Host, SetHosts4, "192.0.2.50") || hasElement(t, l.Host, SetBlock4, "192.0.2.50") {
				t.Error("after the last move 192.0.2.50 is not (only) a single entry")
			}
		})
	}
}

package nft

import (
	"math/rand/v2"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
	"golang.org/x/sys/unix"
)

// BenchmarkCreate1M times the transaction that creates the table with a
// million single IPv4 addresses (the hash set) or 200,000 ranges (the
// interval set), with and without a declared size: the floor of a start
// without a table. An op is one transaction; the table is deleted between
// ops, untimed.
func BenchmarkCreate1M(b *testing.B) {
	testnet.RequireRoot(b)
	r := rand.New(rand.NewPCG(1, 1))
	var hosts, ranges ipnet.Set
	for range 1_000_000 {
		a := r.Uint32()
		hosts.V4 = append(hosts.V4, ipnet.Range4{Lo: a, Hi: a})
	}
	for range 200_000 {
		a := r.Uint32() &^ 0xf
		ranges.V4 = append(ranges.V4, ipnet.Range4{Lo: a, Hi: a | 0xf})
	}
	hosts.Merge()
	ranges.Merge()
	ns := testnet.New(b, "sgbootb")
	for _, c := range []struct {
		name  string
		list  ipnet.Set
		sized bool
	}{{"hash/sized", hosts, true}, {"hash/unsized", hosts, false}, {"interval/sized", ranges, true}, {"interval/unsized", ranges, false}} {
		b.Run(c.name, func(b *testing.B) {
			fw, err := New(testConfig{}.settings(), nil, WithNetNSFd(ns.FD()))
			if err != nil {
				b.Fatal(err)
			}
			lay := fw.lay.sized(c.list, ipnet.Set{}, false)
			for i, s := range lay.sets {
				switch {
				case !c.sized:
					lay.sets[i].size = 0
				case s.part == partWide:
					lay.sets[i].size = hashSize(uint64(2 * len(c.list.V4)))
				}
			}
			for range b.N {
				b.StopTimer()
				_ = fw.Remove()
				bt := fw.newBatch()
				if err := buildTable(bt, lay, false); err != nil {
					b.Fatal(err)
				}
				for _, s := range lay.sets {
					fw.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, pick(s, c.list, ipnet.Set{}, fw.pending))
				}
				b.StartTimer()
				if err := fw.send(bt, "create"); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = fw.Remove()
		})
	}
}

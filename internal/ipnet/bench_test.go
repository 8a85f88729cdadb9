package ipnet

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// benchFeed is a 1,000,000-line feed shaped like a merged real list: mostly
// single IPv4 addresses, some CIDRs, some IPv6, a few comments and ranges.
var benchFeed = sync.OnceValue(func() []byte {
	rng := rand.New(rand.NewPCG(42, 42))
	var b bytes.Buffer
	b.Grow(18 << 20)
	b.WriteString("# generated benchmark feed\n")
	for i := range 1_000_000 - 1 {
		switch n := rng.IntN(1000); {
		case n < 850:
			fmt.Fprintf(&b, "%d.%d.%d.%d\n", 1+rng.IntN(222), rng.IntN(256), rng.IntN(256), rng.IntN(256))
		case n < 920:
			fmt.Fprintf(&b, "%d.%d.%d.0/%d ; SBL%d\n", 1+rng.IntN(222), rng.IntN(256), rng.IntN(256), 16+rng.IntN(9), i)
		case n < 990:
			fmt.Fprintf(&b, "2a0%x:%x:%x::%x\n", rng.IntN(16), rng.IntN(65536), rng.IntN(65536), rng.IntN(65536))
		case n < 995:
			fmt.Fprintf(&b, "%d.%d.%d.1-%d.%d.%d.200\n", 100, rng.IntN(256), rng.IntN(256), 100, rng.IntN(256), 255)
		default:
			b.WriteString("# comment line\n")
		}
	}
	return b.Bytes()
})

func BenchmarkParseMerge1M(b *testing.B) {
	feed := benchFeed()
	b.SetBytes(int64(len(feed)))
	b.ReportAllocs()
	for b.Loop() {
		s, st, err := Parse(bytes.NewReader(feed), ParseOptions{})
		if err != nil || st.Lines != 1_000_000 {
			b.Fatal(err, st.Lines)
		}
		s.Merge()
	}
}

func BenchmarkParse1M(b *testing.B) {
	feed := benchFeed()
	b.SetBytes(int64(len(feed)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Parse(bytes.NewReader(feed), ParseOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// randomSet returns a merged set of about n random single IPv4 addresses and
// n/20 IPv6 ones.
func randomSet(seed uint64, n int) Set {
	rng := rand.New(rand.NewPCG(seed, 1))
	var s Set
	s.V4 = make([]Range4, 0, n)
	for range n {
		v := rng.Uint32()
		s.V4 = append(s.V4, Range4{v, v})
	}
	for range n / 20 {
		v := U128{0x2a00000000000000 | rng.Uint64()>>8, rng.Uint64()}
		s.V6 = append(s.V6, Range6{v, v})
	}
	s.Merge()
	return s
}

func BenchmarkSubtract1M(b *testing.B) {
	s := randomSet(1, 1_000_000)
	del := Union(randomSet(2, 100_000), NonGlobal())
	b.ReportAllocs()
	for b.Loop() {
		s.Subtract(del)
	}
}

func BenchmarkDiff1M(b *testing.B) {
	prev := randomSet(1, 1_000_000)
	next := Union(prev.Subtract(randomSet(2, 200_000)), randomSet(3, 50_000))
	b.ReportAllocs()
	for b.Loop() {
		Diff(prev, next)
	}
}

func BenchmarkMerge1M(b *testing.B) {
	s := randomSet(1, 1_000_000)
	rng := rand.New(rand.NewPCG(9, 9))
	rng.Shuffle(len(s.V4), func(i, j int) { s.V4[i], s.V4[j] = s.V4[j], s.V4[i] })
	work := s.Clone()
	b.ReportAllocs()
	for b.Loop() {
		copy(work.V4, s.V4)
		work.V4 = work.V4[:len(s.V4)]
		work.Merge()
	}
}

func BenchmarkContains(b *testing.B) {
	s := randomSet(1, 1_000_000)
	addrs := randomSet(5, 1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Contains(AddrFrom4(addrs.V4[i&1023].Lo))
		i++
	}
}

package nft

import (
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

func TestHashSize(t *testing.T) {
	for _, c := range []struct {
		n    uint64
		want uint32
	}{{0, 1 << 16}, {1, 1 << 16}, {32768, 1 << 16}, {32769, 1 << 17}, {1_000_000, 1 << 21}, {1 << 20, 1 << 21}, {1<<20 + 1, 1 << 22}, {5_000_000, 1 << 24}, {1 << 31, 1<<32 - 1}} {
		if got := hashSize(c.n); got != c.want {
			t.Errorf("hashSize(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestPlanAdoptionSizes: a hash set declared too small for the list is
// recreated, one large enough or without a size is kept; an interval set
// with a size is not ours.
func TestPlanAdoptionSizes(t *testing.T) {
	block := testnet.RandomList(1, 40_000, 0) // ~36k singles: size 2^17
	l := newLayout(testConfig{}.settings()).sized(block, ipnet.Set{}, false)
	host, wide := l.set(SetHosts4), l.set(SetBlock4)
	if host.size != 1<<17 || host.need < 30_000 || wide.size != 0 {
		t.Fatalf("sized layout: %s size %d need %d, %s size %d", host.name, host.size, host.need, wide.name, wide.size)
	}
	hs := func(size uint32) kernelSet { return kernelSet{name: SetHosts4, keyType: 7, keyLen: 4, size: size} }
	for _, c := range []struct {
		name string
		ks   kernelSet
		keep bool
	}{
		{"unsized hash set", hs(0), true},
		{"large enough", hs(1 << 16), true},
		{"too small", hs(1 << 15), false},
		{"interval set with a size", kernelSet{name: SetBlock4, flags: 2, keyType: 7, keyLen: 4, size: 1 << 20}, false},
	} {
		p := planAdoption(l, &kernelTable{sets: []kernelSet{c.ks}})
		if p.keepSets[c.ks.name] != c.keep || slices.Contains(p.delSets, c.ks.name) == c.keep {
			t.Errorf("%s: keep %v del %v, want keep %v", c.name, p.keepSets, p.delSets, c.keep)
		}
	}
	// After the kernel refused a batch for a full set, every sized hash
	// set is recreated.
	p := planAdoption(newLayout(testConfig{}.settings()).sized(block, ipnet.Set{}, true), &kernelTable{sets: []kernelSet{hs(1 << 24), hs(0)}})
	if !slices.Contains(p.delSets, SetHosts4) {
		t.Errorf("renew kept the sized hash set: del %v", p.delSets)
	}
}

var sizeRe = regexp.MustCompile(`size (\d+)`)

func declaredSize(t *testing.T, ns *testnet.NS, set string) string {
	t.Helper()
	out, err := ns.Run("nft", "list", "set", "inet", TableName, set)
	if err != nil {
		t.Fatal(err)
	}
	if m := sizeRe.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return "none"
}

// spread returns n single IPv4 addresses from 11.0.0.0 on, two apart so
// that none merge, plus extra.
func spread(n int, extra ...string) ipnet.Set {
	s := ipnet.Set{V4: make([]ipnet.Range4, n)}
	for i := range s.V4 {
		a := uint32(0x0b000000 + 2*i)
		s.V4[i] = ipnet.Range4{Lo: a, Hi: a}
	}
	return ipnet.Union(s, set(extra...))
}

// TestGrowWithoutGap: lists that outgrow the declared size of the hash set
// recreate it with a larger one, by an adoption and by Apply, while a
// listed source floods, moving between a single entry and a range: not one
// datagram may pass, and every element is in place.
func TestGrowWithoutGap(t *testing.T) {
	l := newLab(t)
	cfg := testConfig{IPv6: true, LogGroup: 5}
	single := []string{"192.0.2.50/32", "192.0.2.64/28"}
	wide := []string{"192.0.2.48/28", "192.0.2.64/28"}
	if err := l.backend(t, cfg).Apply(firewall.Lists{Block: spread(1000, single...), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	if got := declaredSize(t, l.Host, SetHosts4); got != "65536" {
		t.Fatalf("%s declared with size %s, want 65536", SetHosts4, got)
	}
	ops := recordOps(t)
	stop := l.Flood(badAddr4)
	// A new process adopts the table with a list too big for it. The
	// source stays a single entry: an adoption that cannot know the old
	// singles (no presumed list) recreates the set without them.
	b := l.backend(t, cfg)
	steps := []struct {
		list ipnet.Set
		size string
	}{{spread(70_000, single...), "262144"}, {spread(300_000, wide...), "1048576"}, {spread(20_000, single...), "1048576"}}
	for _, s := range steps {
		if err := b.Apply(firewall.Lists{Block: s.list, Allow: ipnet.Set{}}); err != nil {
			stop()
			t.Fatalf("apply %d entries: %v", len(s.list.V4), err)
		}
		if got := declaredSize(t, l.Host, SetHosts4); got != s.size {
			t.Errorf("after %d entries %s has size %s, want %s", len(s.list.V4), SetHosts4, got, s.size)
		}
	}
	l.AssertFloodBlocked(t, stop(), "hash sets recreated with larger sizes")
	if n := countGrow(*ops); n != 1 || (*ops)[0] != "adopt" {
		t.Errorf("transactions %q: want an adoption and 1 grow transaction", *ops)
	}
	if !hasElement(t, l.Host, SetHosts4, "192.0.2.50") || hasElement(t, l.Host, SetBlock4, "192.0.2.50") {
		t.Error("after the last list 192.0.2.50 is not (only) a single entry")
	}
	if !hasElement(t, l.Host, SetHosts4, "11.0.156.62") || hasElement(t, l.Host, SetHosts4, "11.0.156.64") {
		t.Error("the hash set does not hold the last list's 20,000 singles")
	}
	// The content records were written with the grown sets: the next
	// process knows what they hold.
	*ops = nil
	last := steps[len(steps)-1].list
	if err := l.backend(t, cfg).Apply(firewall.Lists{Block: last, Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*ops, []string{"adopt (content known)"}) {
		t.Errorf("adopting the grown table: transactions %q, want one with the content known", *ops)
	}
}

func countGrow(ops []string) int {
	n := 0
	for _, op := range ops {
		if op == "grow hash sets" {
			n++
		}
	}
	return n
}

// TestAdoptFullKeptSet: a plain adoption keeps the earlier singles in the
// hash set; when they and the new ones exceed its size the kernel refuses
// the batch (ENFILE), and the adoption recreates the hash sets instead.
func TestAdoptFullKeptSet(t *testing.T) {
	l := newLab(t)
	cfg := testConfig{}
	if err := l.backend(t, cfg).Apply(firewall.Lists{Block: spread(33_000), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	// 33k singles (size 2^17), then 100k others: they fit the size alone
	// but not with the earlier ones.
	next := spread(100_000)
	for i := range next.V4 {
		next.V4[i].Lo++
		next.V4[i].Hi++
	}
	next = ipnet.Union(next, set("192.0.2.50/32"))
	ops := recordOps(t)
	if err := l.backend(t, cfg).Apply(firewall.Lists{Block: next, Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(*ops, []string{"adopt", "adopt", "trim hash sets"}) {
		t.Errorf("transactions %q: want a refused adoption, then one that recreates the hash sets", *ops)
	}
	if !hasElement(t, l.Host, SetHosts4, "192.0.2.50") {
		t.Error("the new list is not in place")
	}
	if got, want := declaredSize(t, l.Host, SetHosts4), fmt.Sprint(hashSize(singles(next, false))); got != want {
		t.Errorf("%s has size %s, want %s", SetHosts4, got, want)
	}
}

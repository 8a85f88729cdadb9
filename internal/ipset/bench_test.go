package ipset

import (
	"fmt"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"os/exec"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// Run with: go test -run '^$' -bench . -benchtime 5x ./internal/ipset/

const benchSize = 100_000

func benchBackend(b *testing.B) *Backend {
	testnet.RequireRoot(b)
	ns := testnet.New(b, "ipb")
	be, err := New(testConfig{}.settings(), nil, WithNetNS(ns.Name))
	if err != nil {
		b.Fatal(err)
	}
	return be
}

// BenchmarkFullRefresh swaps in a new 100k list each iteration.
func BenchmarkFullRefresh(b *testing.B) {
	be := benchBackend(b)
	lists := []ipnet.Set{randomList(1, benchSize), randomList(2, benchSize)}
	for i := 0; b.Loop(); i++ {
		if err := be.Apply(firewall.Lists{Block: lists[i%2], Allow: ipnet.Set{}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDelta1Percent changes 1% of a 100k list each iteration.
func BenchmarkDelta1Percent(b *testing.B) {
	be := benchBackend(b)
	base := randomList(1, benchSize)
	var lists [2]ipnet.Set
	for k := range lists {
		extra := randomList(uint64(10+k), benchSize/100)
		// Keep the /24 lengths as they are: single addresses only.
		var s ipnet.Set
		s.V4 = append(s.V4, base.V4...)
		for _, r := range extra.V4 {
			if r.Lo == r.Hi {
				s.V4 = append(s.V4, r)
			}
		}
		s.Merge()
		lists[k] = s
	}
	if err := be.Apply(firewall.Lists{Block: lists[1], Allow: ipnet.Set{}}); err != nil {
		b.Fatal(err)
	}
	before := be.stats.delta
	n := 0
	for i := 0; b.Loop(); i++ {
		if err := be.Apply(firewall.Lists{Block: lists[i%2], Allow: ipnet.Set{}}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if be.stats.delta-before != n {
		b.Fatalf("%d of %d refreshes were deltas", be.stats.delta-before, n)
	}
}

// BenchmarkPlainScript is the shell way: one prebuilt `ipset restore`
// script that fills a default-sized temporary set and swaps it in (the
// list's /24s as single hash:net entries would need a second set; they are
// left out, so this does slightly less work than FullRefresh).
func BenchmarkPlainScript(b *testing.B) {
	testnet.RequireRoot(b)
	ns := testnet.New(b, "ipb")
	ns.MustRun("ipset", "create", "plain", "hash:ip", "maxelem", "1000000")
	scripts := make([]string, 2)
	for k := range scripts {
		var sb strings.Builder
		sb.WriteString("create plain-tmp hash:ip maxelem 1000000\n")
		for _, r := range randomList(uint64(k+1), benchSize).V4 {
			if r.Lo == r.Hi {
				fmt.Fprintf(&sb, "add plain-tmp %v\n", ipnet.AddrFrom4(r.Lo))
			}
		}
		sb.WriteString("swap plain-tmp plain\ndestroy plain-tmp\n")
		scripts[k] = sb.String()
	}
	for i := 0; b.Loop(); i++ {
		cmd := exec.Command("ip", "netns", "exec", ns.Name, "ipset", "restore")
		cmd.Stdin = strings.NewReader(scripts[i%2])
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

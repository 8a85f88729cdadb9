package daemon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// keepingFirewall holds the slices it is given, as the nftables backend
// does for its deltas and Restore, instead of the fake's clones.
type keepingFirewall struct {
	*fakeFirewall
	block, allow ipnet.Set
}

func (f *keepingFirewall) Apply(l firewall.Lists) error {
	f.block, f.allow = l.Block, l.Allow
	return nil
}

func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A big list is held once: the feed's list, its last good copy, the applied
// plan and the backend share one array, and pulling or reloading the same
// list again keeps it so. Measured as live heap after collection.
func TestABigListIsHeldOnceThroughPullsAndReloads(t *testing.T) {
	const n = 250_000
	list := bigList(t, n)
	listBytes := uint64(n * 8) // one Range4 per address
	l := newLab(t, "203.0.113.7\n")
	l.cfg.Feeds = []config.Feed{{Name: "big", File: list, Interval: time.Hour}}
	fw := &keepingFirewall{fakeFirewall: &fakeFirewall{}}
	reload := make(chan struct{})
	before := heapNow()
	d, _ := l.start(func(o *Options) {
		o.Key = config.Secret{} // the file feed alone: its list is the plan
		o.NewFirewall = func(config.Config) (firewall.Firewall, error) { return fw, nil }
		o.Reload = reload
		o.Load = func() (config.Config, config.Secret, error) { return l.cfg, config.Secret{}, nil }
	})
	l.note.waitCount(t, "READY=1", 1)
	if v4, _ := fw.block.Len(); v4 < n*9/10 {
		t.Fatalf("the backend holds %d ranges, want about %d", v4, n)
	}
	started := heapNow()
	if started > before+listBytes*3/2 {
		grown := started - before
		t.Errorf("after start the heap holds %d bytes more, want about one list (%d)", grown, listBytes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 3 {
		if err := d.Pull(ctx, ""); err != nil {
			t.Fatal(err)
		}
		reload <- struct{}{}
		l.note.waitCount(t, "READY=1", 2+i)
	}
	if now := heapNow(); now > started+listBytes/2 {
		grown := now - started
		t.Errorf("three pulls and reloads of the same list left %d bytes more on the heap, want none (a list is %d)", grown, listBytes)
	}
}

// bigList writes n distinct random global IPv4 addresses to a file.
func bigList(t *testing.T, n int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(15, 15))
	var b strings.Builder
	seen := make(map[uint32]bool, n)
	for len(seen) < n {
		a := rng.Uint32()
		if seen[a] || !ipnet.IsGlobal(ipnet.AddrFrom4(a)) {
			continue
		}
		seen[a] = true
		fmt.Fprintf(&b, "%d.%d.%d.%d\n", a>>24, a>>16&0xff, a>>8&0xff, a&0xff)
	}
	path := filepath.Join(t.TempDir(), "big.list")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

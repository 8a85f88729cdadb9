package ipset

import (
	"context"
	"fmt"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"sync"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// TestRestoreAfterForeignChanges breaks the backend's rules and sets the
// way other programs do, under a flood from a listed single address, and
// repairs them the way the daemon does (a structural report is confirmed
// with Intact; an element count that differs is restored). The times and
// the probes that got through are logged for docs/benchmarks.md; only
// generous bounds are asserted.
func TestRestoreAfterForeignChanges(t *testing.T) {
	l := newLab(t)
	b, err := New(testConfig{IPv6: true}.settings(), nil, WithNetNS(l.Host.Name), WithPollInterval(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(firewall.Lists{Block: set(blockList...), Allow: set(allowList...)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var done []time.Time
	var whats []string
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for c := range ch {
			if !c.Sure {
				if ok, err := b.Intact(); err == nil && ok {
					continue
				}
			}
			if err := b.Restore(nil); err != nil {
				t.Errorf("restore after %q: %v", c.What, err)
				continue
			}
			mu.Lock()
			done, whats = append(done, time.Now()), append(whats, c.Who()+": "+c.What)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-ended })
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(done) }

	sink := l.Sink(hostAddr4)
	for _, tc := range []struct {
		cmd   []string
		limit time.Duration
	}{
		{[]string{"iptables", "-F", "INPUT"}, 2 * time.Second},
		{[]string{"ipset", "flush", SetHosts4}, 5 * time.Second}, // the polling period is 500 ms here
		{[]string{"iptables", "-t", "filter", "-F", Chain}, 2 * time.Second},
	} {
		n := count()
		before := sink.CountFrom(hostAddr4)
		stop := testnet.Flood(l.Peer.DialUDP(hostAddr4, sink.Addr()))
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		l.Host.MustRun(tc.cmd[0], tc.cmd[1:]...)
		var at time.Time
		var what string
		for deadline := time.Now().Add(tc.limit); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			mu.Lock()
			if len(done) > n {
				at, what = done[n], whats[n]
			}
			mu.Unlock()
			if !at.IsZero() {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
		sent := stop()
		through := sink.CountFrom(hostAddr4) - before
		if at.IsZero() {
			t.Fatalf("%v: not repaired within %v", tc.cmd, tc.limit)
		}
		t.Logf("%-40s repaired %6.1f ms after the command started, %d of %d probes through (%s)",
			fmt.Sprint(tc.cmd), float64(at.Sub(start).Microseconds())/1000, through, sent, what)
		if ok, err := b.Intact(); err != nil || !ok {
			t.Fatalf("%v: not intact after the repair: %v %v", tc.cmd, ok, err)
		}
		if l.Delivers(t, l.UDP(hostAddr4)) || !l.Delivers(t, l.UDP(goodAddr4)) {
			t.Fatalf("%v: after the repair the listed address must be dropped and the good one pass", tc.cmd)
		}
	}
	// Our own refresh is no change.
	n := count()
	if err := b.Apply(firewall.Lists{Block: set(append(blockList, "192.0.2.77/32")...), Allow: set(allowList...)}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if got := count(); got != n {
		t.Errorf("our own apply caused %d repairs", got-n)
	}
}

package nft

import (
	"context"
	"fmt"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// restorer does what the daemon does with the backend's reports: element
// changes are restored at once, structural ones once Intact confirms them.
// It records when each restore finished.
type restorer struct {
	mu    sync.Mutex
	done  []time.Time
	whos  []string
	stop  func()
	ended chan struct{}
	hot   []netip.Addr // what the daemon would pass: the sources it saw dropped
}

func startRestorer(t *testing.T, b *Backend, hot ...netip.Addr) *restorer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := &restorer{stop: cancel, ended: make(chan struct{}), hot: hot}
	go func() {
		defer close(r.ended)
		for c := range ch {
			seen := time.Now()
			if debugDrift {
				t.Logf("change: %+v", c)
			}
			if !c.Sure {
				if ok, err := b.Intact(); err == nil && ok {
					continue
				}
			}
			if err := b.Restore(r.hot); err != nil {
				t.Errorf("restore after %q: %v", c.What, err)
				continue
			}
			r.mu.Lock()
			r.done, r.whos = append(r.done, time.Now()), append(r.whos, fmt.Sprintf("restore took %.1f ms; %s: %s", float64(time.Since(seen).Microseconds())/1000, c.Who(), c.What))
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-r.ended })
	return r
}

func (r *restorer) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.done)
}

// waitAfter waits for a restore that finished after n restores, and
// returns when it finished and who the change was attributed to.
func (r *restorer) waitAfter(t *testing.T, n int, limit time.Duration) (time.Time, string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		if len(r.done) > n {
			at, who := r.done[n], r.whos[n]
			r.mu.Unlock()
			return at, who
		}
		r.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no restore within %v", limit)
	return time.Time{}, ""
}

var debugDrift = os.Getenv("SIKKER_DRIFT_DEBUG") != ""

var reHandle = regexp.MustCompile(`# handle (\d+)$`)

// TestRestoreAfterForeignChanges changes the table the way other programs
// do, under a flood from a listed single address, and measures how long
// until the restore finished and how many probes got through. Timings are
// logged for docs/benchmarks.md; only generous bounds are asserted.
func TestRestoreAfterForeignChanges(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{})
	if debugDrift {
		b.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	block := randomList(3, 10_000, "192.0.2.48/28", "192.0.2.77/32")
	if err := b.Apply(firewall.Lists{Block: block, Allow: set("192.0.2.55/32")}); err != nil {
		t.Fatal(err)
	}
	r := startRestorer(t, b, newAddr4)
	sink := l.Sink(newAddr4)
	foreignFile := "testdata/debian-nftables.conf"
	cases := []struct {
		name string
		run  func() error
	}{
		{"nft flush ruleset", func() error { _, err := l.Host.Run("nft", "flush", "ruleset"); return err }},
		{"nft delete table inet sikkerguard", func() error {
			_, err := l.Host.Run("nft", "delete", "table", "inet", TableName)
			return err
		}},
		{"nft flush set inet sikkerguard blockhost4", func() error {
			_, err := l.Host.Run("nft", "flush", "set", "inet", TableName, "blockhost4")
			return err
		}},
		{"nft delete rule (the blockhost4 lookup)", func() error {
			out := l.Host.MustRun("nft", "-a", "list", "table", "inet", TableName)
			for _, line := range strings.Split(out, "\n") {
				if m := reHandle.FindStringSubmatch(strings.TrimSpace(line)); m != nil && strings.Contains(line, "@blockhost4") {
					chain := ruleChain(out, line)
					_, err := l.Host.Run("nft", "delete", "rule", "inet", TableName, chain, "handle", m[1])
					return err
				}
			}
			t.Fatalf("no rule references blockhost4:\n%s", out)
			return nil
		}},
		{"nft delete element blockhost4 { 192.0.2.77 }", func() error {
			_, err := l.Host.Run("nft", "delete", "element", "inet", TableName, "blockhost4", "{ 192.0.2.77 }")
			return err
		}},
		{"nft -f debian-nftables.conf (flush ruleset)", func() error { _, err := l.Host.Run("nft", "-f", foreignFile); return err }},
	}
	for _, tc := range cases {
		n := r.count()
		before := sink.CountFrom(newAddr4)
		stop := testnet.Flood(l.Peer.DialUDP(newAddr4, sink.Addr()))
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		if err := tc.run(); err != nil {
			stop()
			t.Fatalf("%s: %v", tc.name, err)
		}
		at, who := r.waitAfter(t, n, 5*time.Second)
		time.Sleep(100 * time.Millisecond)
		sent := stop()
		through := sink.CountFrom(newAddr4) - before
		took := at.Sub(start)
		t.Logf("%-45s restored %6.1f ms after the command started, %d of %d probes through (%s)",
			tc.name, float64(took.Microseconds())/1000, through, sent, who)
		if took > 2*time.Second {
			t.Errorf("%s: restored after %v", tc.name, took)
		}
		if !l.Delivers(t, l.UDP(goodAddr4)) || l.Delivers(t, l.UDP(newAddr4)) {
			t.Fatalf("%s: after the restore the good address must pass and the listed one must not", tc.name)
		}
		if ok, err := b.Intact(); err != nil || !ok {
			t.Fatalf("%s: not intact after the restore: %v %v", tc.name, ok, err)
		}
	}

	// An element added by another program is removed again.
	n := r.count()
	l.Host.MustRun("nft", "add", "element", "inet", TableName, "blockhost4", "{ 192.0.2.2 }")
	at, who := r.waitAfter(t, n, 5*time.Second)
	t.Logf("%-45s restored (%s)", "nft add element blockhost4 { 192.0.2.2 }", who)
	_ = at
	waitPass(t, l, goodAddr4)
	if !strings.Contains(who, "nft") {
		t.Errorf("the change was attributed to %q, want the nft process", who)
	}

	// Our own transactions are not reported.
	n = r.count()
	if err := b.Apply(firewall.Lists{Block: randomList(4, 10_000, "192.0.2.48/28", "192.0.2.77/32"), Allow: set("192.0.2.55/32")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := r.count(); got != n {
		t.Errorf("our own apply caused %d restores", got-n)
	}
}

func waitPass(t *testing.T, l lab, a netip.Addr) {
	t.Helper()
	for range 20 {
		if l.Delivers(t, l.UDP(a)) {
			return
		}
	}
	t.Fatalf("%v never passed again", a)
}

// ruleChain finds the chain a listed rule line belongs to.
func ruleChain(listing, line string) string {
	chain := ""
	for _, l := range strings.Split(listing, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "chain" {
			chain = f[1]
		}
		if l == line {
			return chain
		}
	}
	return chain
}

// TestRestoreHotFirstAfterFlushRuleset runs `nft flush ruleset` five times
// with a large list loaded (100k entries; SIKKER_DRIFT_ENTRIES sets another
// size, e.g. 1000000 for the figures in docs/benchmarks.md) while a listed
// single address floods, and logs the median time until the flood was
// dropped again and the probes that got through. The restorer passes the
// flooding address as the daemon passes the sources its drop monitor saw.
func TestRestoreHotFirstAfterFlushRuleset(t *testing.T) {
	n := 100_000
	if v := os.Getenv("SIKKER_DRIFT_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("SIKKER_DRIFT_ENTRIES=%q is not a positive number", v)
		}
	}
	l := newLab(t)
	b := l.backend(t, testConfig{})
	if debugDrift {
		b.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	block := randomList(5, n, "192.0.2.48/28", "192.0.2.77/32")
	if err := b.Apply(firewall.Lists{Block: block, Allow: set("192.0.2.55/32")}); err != nil {
		t.Fatal(err)
	}
	r := startRestorer(t, b, newAddr4)
	sink := l.Sink(newAddr4)
	var dropped, restored []time.Duration
	var throughs []int64
	for i := range 5 {
		k := r.count()
		before := sink.CountFrom(newAddr4)
		stop := testnet.Flood(l.Peer.DialUDP(newAddr4, sink.Addr()))
		time.Sleep(50 * time.Millisecond)
		// The last moment a probe arrived tells when dropping resumed.
		var last atomic.Int64
		watching := make(chan struct{})
		go func() {
			defer close(watching)
			seen := sink.CountFrom(newAddr4)
			for k == r.count() || time.Since(time.Unix(0, last.Load())) < 200*time.Millisecond {
				if c := sink.CountFrom(newAddr4); c != seen {
					seen = c
					last.Store(time.Now().UnixNano())
				}
				time.Sleep(200 * time.Microsecond)
			}
		}()
		start := time.Now()
		last.Store(start.UnixNano())
		l.Host.MustRun("nft", "flush", "ruleset")
		at, _ := r.waitAfter(t, k, 30*time.Second)
		<-watching
		stop()
		through := sink.CountFrom(newAddr4) - before
		d := time.Unix(0, last.Load()).Sub(start)
		dropped, restored, throughs = append(dropped, d), append(restored, at.Sub(start)), append(throughs, through)
		t.Logf("run %d: %d entries, flood dropped again %.1f ms after `nft flush ruleset` started, whole list back after %.1f ms, %d probes through",
			i+1, n, ms(d), ms(at.Sub(start)), through)
		if !l.Delivers(t, l.UDP(goodAddr4)) || l.Delivers(t, l.UDP(badAddr4)) {
			t.Fatal("after the restore the good address must pass and the listed range must not")
		}
	}
	slices.Sort(dropped)
	slices.Sort(restored)
	slices.Sort(throughs)
	t.Logf("median of 5 (%d entries): dropping again after %.1f ms, whole list after %.1f ms, %d probes through",
		n, ms(dropped[2]), ms(restored[2]), throughs[2])
	if dropped[2] > 5*time.Second {
		t.Errorf("median time until the flood was dropped again: %v", dropped[2])
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// TestIntactCountsElementsWhenUnwatched: without a watcher, the periodic
// check still finds elements another program deleted or added, by their
// count, once the ruleset generation has moved; with nothing committed it
// reads no element.
func TestIntactCountsElementsWhenUnwatched(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{IPv6: true})
	if err := b.Apply(firewall.Lists{Block: randomList(8, 5_000, "192.0.2.48/28", "192.0.2.77/32", "2001:db8:1::bad/128"), Allow: set("192.0.2.55/32")}); err != nil {
		t.Fatal(err)
	}
	intact := func() bool {
		t.Helper()
		ok, err := b.Intact()
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !intact() {
		t.Fatal("not intact right after the apply")
	}
	for _, cmd := range [][]string{
		{"nft", "delete", "element", "inet", TableName, "blockhost4", "{ 192.0.2.77 }"},
		{"nft", "add", "element", "inet", TableName, "blocklist4", "{ 198.51.100.0/24 }"},
		{"nft", "delete", "element", "inet", TableName, "blockhost6", "{ 2001:db8:1::bad }"},
	} {
		l.Host.MustRun(cmd[0], cmd[1:]...)
		if intact() {
			t.Errorf("%v: Intact did not notice", cmd)
		}
		if err := b.Restore(nil); err != nil {
			t.Fatal(err)
		}
		if !intact() {
			t.Errorf("%v: not intact after the restore", cmd)
		}
	}
	// A change elsewhere moves the generation: counted once, then cheap.
	l.Host.MustRun("nft", "add", "table", "inet", "admin")
	if !intact() || !intact() {
		t.Error("a table of another program made ours look changed")
	}
}

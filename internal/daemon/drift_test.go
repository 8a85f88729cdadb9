package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

func TestRestoreGuard(t *testing.T) {
	g := restoreGuard{restorePolicy: restorePolicy{}.withDefaults()}
	t0 := time.Unix(1_000_000, 0)
	for i := range 10 {
		now := t0.Add(time.Duration(i) * time.Second)
		if d := g.delay(now); d != 0 {
			t.Fatalf("restore %d delayed by %v; the first ten are immediate", i+1, d)
		}
		g.record(now)
	}
	now := t0.Add(10 * time.Second)
	if !g.fought(now) {
		t.Fatal("ten restores within a minute are not a fight")
	}
	var got []time.Duration
	for range 7 {
		got = append(got, g.delay(now))
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff %v, want %v", got, want)
		}
	}
	if c := g.calmAt(); !c.Equal(t0.Add(time.Minute)) {
		t.Errorf("calm at %v, want a minute after the first restore", c)
	}
	later := t0.Add(time.Minute + time.Second)
	if g.fought(later) || g.delay(later) != 0 {
		t.Error("a minute later the restores are still delayed")
	}
}

// changeLab is a daemon whose fake backend reports changes on a channel.
func changeLab(t *testing.T, policy restorePolicy) (*lab, *Daemon, chan firewall.Change) {
	t.Helper()
	l := newLab(t, "203.0.113.7\n")
	ch := make(chan firewall.Change, 1)
	l.fw.changes = ch
	d, _ := l.start(func(o *Options) { o.restorePolicy = policy })
	l.note.waitCount(t, "READY=1", 1)
	return l, d, ch
}

func (f *fakeFirewall) wipe() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.block = ipnet.Set{}
}

func (f *fakeFirewall) restoreCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores
}

func TestChangeIsRestoredAtOnce(t *testing.T) {
	l, d, ch := changeLab(t, restorePolicy{})
	l.fw.wipe()
	ch <- firewall.Change{What: "elements deleted from set blockhost4 of inet sikkerguard", PID: 4242, Comm: "nft", Sure: true}
	waitFor(t, "the restore", func() bool { return l.fw.blocks("203.0.113.7") })
	if n := d.restored.Load(); n != 1 {
		t.Errorf("%d restores counted, want 1", n)
	}
	if logs := l.logs.String(); !strings.Contains(logs, "RulesRestored") || !strings.Contains(logs, "nft (pid 4242)") {
		t.Errorf("the restore's log line does not name the process:\n%s", logs)
	}
	if l.fw.count() != 1 {
		t.Errorf("%d applies; a restore must not go through the decision and apply again", l.fw.count())
	}
	// A structural report whose objects still stand changes nothing.
	ch <- firewall.Change{What: "rule deleted from chain DOCKER of ip filter"}
	time.Sleep(50 * time.Millisecond)
	if n := l.fw.restoreCount(); n != 1 {
		t.Errorf("%d restores after a report of an intact firewall, want 1", n)
	}
	if d.State() != StateRunning {
		t.Errorf("state %s, want running", d.State())
	}
}

// TestRestoresBackOffAndRecover: a program that changes the rules again
// and again makes the state degraded and the restores sparse; the state
// recovers once it stops.
func TestRestoresBackOffAndRecover(t *testing.T) {
	policy := restorePolicy{window: 400 * time.Millisecond, limit: 3, backoffMin: 20 * time.Millisecond, backoffMax: 80 * time.Millisecond}
	l, d, ch := changeLab(t, policy)
	start := time.Now()
	for time.Since(start) < 300*time.Millisecond {
		select {
		case ch <- firewall.Change{What: "table inet sikkerguard deleted", PID: 7, Comm: "flusher", Sure: true}:
		default:
		}
		time.Sleep(5 * time.Millisecond)
	}
	restores := l.fw.restoreCount()
	// ~60 changes in 300 ms: 3 at once, then one per backoff step at most.
	if restores < 3 || restores > 3+300/20 {
		t.Errorf("%d restores for a change every 5 ms over 300 ms", restores)
	}
	if d.State() != StateDegraded {
		t.Errorf("state %s while being fought, want degraded", d.State())
	}
	if st := d.Status(); !strings.Contains(st.LastError, "flusher (pid 7)") {
		t.Errorf("the degraded reason does not name the process: %q", st.LastError)
	}
	waitFor(t, "the state to recover", func() bool { return d.State() == StateRunning })
	if !l.fw.blocks("203.0.113.7") {
		t.Error("the rules are not restored after the fight")
	}
}

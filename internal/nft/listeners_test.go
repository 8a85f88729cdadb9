package nft

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/logging"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
	"golang.org/x/sys/unix"
)

// listenerWarning is the start of the warning of listeners.go.
const listenerWarning = "nftables: another program listens to nftables events"

// warnLog keeps the warnings a backend logs; the watcher logs from its own
// goroutine.
type warnLog struct {
	mu   sync.Mutex
	recs []string // message and attributes, one record each
}

func (w *warnLog) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnLog) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *warnLog) WithGroup(string) slog.Handler            { return w }
func (w *warnLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	s := r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	w.mu.Lock()
	w.recs = append(w.recs, s)
	w.mu.Unlock()
	return nil
}

// take returns the listener warnings logged since the last call.
func (w *warnLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, r := range w.recs {
		if strings.HasPrefix(r, listenerWarning) {
			out = append(out, r)
		}
	}
	w.recs = nil
	return out
}

// A transaction large enough to check (the threshold lowered to 500
// elements; every list here stays under 2,000, since a listener makes the
// kernel hold 8 KiB per element) warns of `nft monitor` and of a bare
// socket in the event group, naming the process, and does not warn of the
// backend's own watcher.
func TestWarnsOfForeignEventListeners(t *testing.T) {
	testnet.RequireRoot(t)
	testnet.RequireTools(t, "nft")
	ns := testnet.New(t, "sgguard")
	logs := &warnLog{}
	b, err := New(testConfig{IPv6: true}.settings(), slog.New(logging.Check(logs, t.Errorf)), WithNetNSFd(ns.FD()))
	if err != nil {
		t.Fatal(err)
	}
	b.listenerMin = 500
	t.Cleanup(func() { _ = b.Remove() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if _, err := b.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	lists := []ipnet.Set{testnet.RandomList(1, 800, 0), testnet.RandomList(2, 800, 0)}
	next := 0
	apply := func(what string) []string {
		t.Helper()
		if err := b.Apply(firewall.Lists{Block: lists[next%2]}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		next++
		return logs.take()
	}
	members := func() int {
		t.Helper()
		socks, err := readNetlink(ns.FD())
		if err != nil {
			t.Fatal(err)
		}
		return len(eventListeners(socks, 0))
	}
	waitMembers := func(n int, what string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); members() != n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d members of the event group, want %d", what, members(), n)
			}
		}
	}

	// The watcher is a member of the group between transactions; it
	// leaves for ours and must not count.
	if n := members(); n != 1 {
		t.Fatalf("%d members of the event group with the watcher running, want 1", n)
	}
	if w := apply("first load, no listener"); len(w) != 0 {
		t.Errorf("warned without a foreign listener: %q", w)
	}

	mon := exec.Command("ip", "netns", "exec", ns.Name, "nft", "monitor")
	mon.Stdout, mon.Stderr = io.Discard, io.Discard
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = mon.Process.Kill()
			_ = mon.Wait()
		}
	}
	t.Cleanup(stop)
	waitMembers(2, "nft monitor started")
	w := apply("replace with nft monitor running")
	if len(w) != 1 {
		t.Fatalf("got %d listener warnings with nft monitor running, want 1: %q", len(w), w)
	}
	t.Logf("warning: %s", w[0])
	// ip netns exec execs nft in place: the same pid.
	for _, want := range []string{fmt.Sprintf("nft (pid %d)", mon.Process.Pid), "op=replace", "kernel_memory_estimate="} {
		if !strings.Contains(w[0], want) {
			t.Errorf("warning %q does not say %q", w[0], want)
		}
	}
	stop()
	waitMembers(1, "nft monitor stopped")

	// A socket of this very process that joined the group is foreign too:
	// only the watcher's socket is ours.
	var fd int
	err = ns.Do(func() (err error) {
		if fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, nfnlgrpNFTables)
	})
	if err != nil {
		t.Fatal(err)
	}
	waitMembers(2, "socket joined")
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	w = apply("replace with a socket in the group")
	if want := fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), os.Getpid()); len(w) != 1 || !strings.Contains(w[0], want) {
		t.Errorf("warnings %q, want one naming %q", w, want)
	}
	unix.Close(fd)
	waitMembers(1, "socket closed")
	if w := apply("replace after the listeners left"); len(w) != 0 {
		t.Errorf("warned after every foreign listener left: %q", w)
	}
	// /metrics counts the two warned loads.
	if c, err := b.Counters(); err != nil || c.ListenerWarnings != 2 {
		t.Errorf("Counters() = %+v, %v; want ListenerWarnings 2", c, err)
	}
}

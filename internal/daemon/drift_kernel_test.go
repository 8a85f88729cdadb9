package daemon

import (
	"log/slog"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/nft"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

var (
	spinFW4   = netip.MustParseAddr("192.0.2.1")
	spinGood4 = netip.MustParseAddr("192.0.2.2")
	spinBad4  = netip.MustParseAddr("192.0.2.77") // listed by the mock
)

var rePing = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// TestFlushLoopDoesNotMakeTheDaemonSpin runs the daemon on the real
// nftables backend in a namespace while a program flushes the ruleset
// every 100 ms for 10 s and a listed source floods (ping -f, a process of
// its own so that its CPU is not counted): the daemon stays under half a
// core, turns degraded while it is being fought, and recovers afterwards
// with the table back. The fight window is shortened to 5 s so that the
// recovery is seen within the test; the limit and backoff are the
// defaults.
func TestFlushLoopDoesNotMakeTheDaemonSpin(t *testing.T) {
	testnet.RequireRoot(t)
	lab := testnet.NewLab(t, "spin", testnet.Link{Host: []netip.Prefix{netip.PrefixFrom(spinFW4, 24)},
		Peer: []netip.Prefix{netip.PrefixFrom(spinGood4, 24), netip.PrefixFrom(spinBad4, 24)}})
	fw, peer := lab.Host, lab.Peer

	l := newLab(t, "192.0.2.77\n")
	l.cfg.Firewall.LogGroup = 0
	l.cfg.Report.Enabled = false
	d, _ := l.start(func(o *Options) {
		o.NewFirewall = func(config.Config) (firewall.Firewall, error) {
			return nft.New(firewall.Settings{Hooks: []firewall.Hook{nft.HookPrerouting}, Action: firewall.ActionDrop,
				LogRate: 1, LogPer: time.Second, IPv6: true}, slog.New(slog.DiscardHandler), nft.WithNetNSFd(fw.FD()))
		}
		o.restorePolicy = restorePolicy{window: 5 * time.Second}
	})
	l.note.waitCount(t, "READY=1", 1)
	t.Cleanup(func() { fw.Run("nft", "delete", "table", "inet", nft.TableName) })

	ping := exec.Command("ip", "netns", "exec", peer.Name, "ping", "-f", "-q", "-n", "-w", "14", "-I", spinBad4.String(), spinFW4.String())
	pingOut := make(chan string, 1)
	go func() { out, _ := ping.CombinedOutput(); pingOut <- string(out) }()
	t.Cleanup(func() {
		if ping.Process != nil {
			ping.Process.Kill()
		}
	})
	time.Sleep(500 * time.Millisecond)

	var before syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	flushes, degraded := 0, false
	for time.Since(start) < 10*time.Second {
		if out, err := fw.Run("nft", "flush", "ruleset"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		flushes++
		degraded = degraded || d.State() == StateDegraded
		time.Sleep(100 * time.Millisecond)
	}
	var after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	wall := time.Since(start)
	cpu := time.Duration(after.Utime.Nano()-before.Utime.Nano()) + time.Duration(after.Stime.Nano()-before.Stime.Nano())
	restores := d.restored.Load()
	t.Logf("%d flushes in %v: %d restores, CPU %v (%.2f of a core), state %s", flushes, wall.Round(time.Millisecond),
		restores, cpu.Round(time.Millisecond), cpu.Seconds()/wall.Seconds(), d.State())
	if share := cpu.Seconds() / wall.Seconds(); share >= 0.5 {
		t.Errorf("the daemon used %.2f of a core while being fought", share)
	}
	if !degraded {
		t.Error("the state never turned degraded")
	}
	if restores >= uint64(flushes) {
		t.Errorf("%d restores for %d flushes: no backoff", restores, flushes)
	}
	waitFor(t, "the state to recover", func() bool { return d.State() == StateRunning })
	waitFor(t, "the table to be back", func() bool {
		_, err := fw.Run("nft", "list", "set", "inet", nft.TableName, "blockhost4")
		return err == nil
	})
	out := <-pingOut
	if m := rePing.FindStringSubmatch(out); m != nil {
		sent, _ := strconv.Atoi(m[1])
		got, _ := strconv.Atoi(m[2])
		t.Logf("ping -f from the listed source: %d of %d echo requests answered", got, sent)
	} else {
		t.Logf("ping output: %s", out)
	}
}

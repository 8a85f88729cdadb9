package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// otherHost is a link-layer address of nobody on the link.
var otherHost = net.HardwareAddr{0x02, 0x00, 0x5e, 0x00, 0x53, 0x99}

// clockTick is USER_HZ, the unit of /proc/stat and /proc/PID/stat.
const clockTick = 100

// pktFlood floods the host from srcs for d and measures it.
func pktFlood(tb *benchTB, lab *testnet.Lab, c pktCase, srcs []netip.Addr, d time.Duration) (pktRow, error) {
	drops0, err := pktDrops(tb, lab, c.chain)
	if err != nil {
		return pktRow{}, err
	}
	ct0, err := conntrackCount(lab)
	if err != nil {
		return pktRow{}, err
	}
	soft0, ksoft0 := softirqTicks(), ksoftirqdTicks()
	var mac net.HardwareAddr
	if c.srcs == "floor" {
		mac = otherHost
	}
	f, err := lab.RawFlood(0, mac, srcs, netip.AddrPortFrom(pktHost.Addr(), 9), d)
	if err != nil {
		return pktRow{}, err
	}
	soft1, ksoft1 := softirqTicks(), ksoftirqdTicks()
	time.Sleep(50 * time.Millisecond) // the last frames of the backlog
	drops1, err := pktDrops(tb, lab, c.chain)
	if err != nil {
		return pktRow{}, err
	}
	ct1, err := conntrackCount(lab)
	if err != nil {
		return pktRow{}, err
	}
	return pktRow{
		sent: uint64(f.Sent), dropped: drops1 - drops0, elapsed: f.Elapsed,
		cpu:       f.CPU + ticks(ksoft1-ksoft0),
		softirq:   ticks(soft1 - soft0),
		conntrack: ct1 - ct0,
	}, nil
}

func ticks(n uint64) time.Duration { return time.Duration(n) * time.Second / clockTick }

// pktDrops reads the drop counter the case's chain counts with: ours for
// the inet chains, the netdev table's for netdev.
func pktDrops(tb *benchTB, lab *testnet.Lab, chain string) (uint64, error) {
	if chain != "netdev" {
		return lab.Drops(tb).V4, nil
	}
	out, err := lab.Host.Run("nft", "-j", "list", "counter", "netdev", pktNetdev, "dropped4")
	if err != nil {
		return 0, err
	}
	var doc struct {
		Nftables []struct {
			Counter *struct{ Packets uint64 }
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return 0, fmt.Errorf("nft -j list counter: %w", err)
	}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			return o.Counter.Packets, nil
		}
	}
	return 0, fmt.Errorf("no counter in %q", out)
}

// conntrackCount is the host namespace's number of conntrack entries.
func conntrackCount(lab *testnet.Lab) (int64, error) {
	out, err := lab.Host.Run("cat", "/proc/sys/net/netfilter/nf_conntrack_count")
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(out), 10, 64)
}

// softirqTicks is the machine's softirq time (the seventh figure of the cpu
// line of /proc/stat). The kernel here samples it at every tick, so it is
// coarse: a figure over seconds of flood.
func softirqTicks() uint64 {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	v, _ := strconv.ParseUint(f[7], 10, 64)
	return v
}

// ksoftirqdTicks is the CPU time of the ksoftirqd threads, which take over
// the receive path from the sender when it runs too long.
func ksoftirqdTicks() uint64 {
	var n uint64
	paths, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || !strings.HasPrefix(string(b), "ksoftirqd/") {
			continue
		}
		st, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised name: utime and stime are the
		// 12th and 13th.
		_, rest, _ := strings.Cut(string(st), ") ")
		if f := strings.Fields(rest); len(f) > 12 {
			u, _ := strconv.ParseUint(f[11], 10, 64)
			s, _ := strconv.ParseUint(f[12], 10, 64)
			n += u + s
		}
	}
	return n
}

// iperf runs one iperf3 TCP stream from the peer to the host for d and
// returns what the host received, in Gbit/s.
func iperf(lab *testnet.Lab, d time.Duration) (float64, error) {
	srv := exec.Command("ip", "netns", "exec", lab.Host.Name, "iperf3", "-s", "-1", "-B", pktHost.Addr().String())
	if err := srv.Start(); err != nil {
		return 0, fmt.Errorf("iperf3 server: %w", err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	var out string
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) { // until the server listens
		out, err = lab.Peer.Run("iperf3", "-c", pktHost.Addr().String(), "-J", "-t", strconv.Itoa(max(1, int(d.Seconds()))))
		if !strings.Contains(out, "unable to connect") || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("iperf3: %w", err)
	}
	var doc struct {
		Error string
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return 0, fmt.Errorf("iperf3 -J output: %w", err)
	}
	if doc.Error != "" || doc.End.SumReceived.BitsPerSecond == 0 {
		return 0, fmt.Errorf("iperf3 measured nothing: %q: %.300s", doc.Error, out)
	}
	return doc.End.SumReceived.BitsPerSecond / 1e9, nil
}

// printPacket prints the floods' table: the run of median CPU per packet
// of each case.
func printPacket(cases []pktCase, all [][]pktRow, n int) {
	fmt.Printf("\n| flood, 60-byte UDP frames, %d + %d entries listed (median of %d) | packets/s | dropped | CPU per packet | CPU s per M packets | softirq s per M (machine) | conntrack count Δ |\n",
		n, n, len(all[0]))
	fmt.Printf("|---|---:|---:|---:|---:|---:|---:|\n")
	// Each lab's rows are set against its own floor.
	base := map[bool]time.Duration{}
	for i, c := range cases {
		if c.srcs == "floor" {
			base[c.roles] = median(all[i], pktRow.perPacket).perPacket()
		}
	}
	for i, c := range cases {
		r := median(all[i], pktRow.perPacket)
		rel := ""
		if c.srcs != "floor" {
			rel = fmt.Sprintf(" (floor %+d)", (r.perPacket() - base[c.roles]).Nanoseconds())
		}
		mpk := float64(r.sent) / 1e6
		fmt.Printf("| %s | %.0f | %.1f %% | %d ns%s | %.3f | %.3f | %d |\n", c.name,
			float64(r.sent)/r.elapsed.Seconds(), 100*float64(r.dropped)/float64(max(r.sent, 1)),
			r.perPacket().Nanoseconds(), rel, r.cpu.Seconds()/mpk, r.softirq.Seconds()/mpk, r.conntrack)
	}
}

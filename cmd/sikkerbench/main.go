// Command sikkerbench measures blocklist loading in a throwaway network
// namespace: sikkerguard's nftables and iptables backends (full replace and
// delta) against `nft -f` and `ipset restore` + `ipset swap`, for generated
// lists. Every
// method runs in its own child process so that its peak RSS is its own; it
// prints a Markdown table. It needs root and never touches the host's
// namespace (see docs/benchmarks.md).
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

func main() {
	child := flag.String("child", "", "internal: run one measurement (method) in this process")
	ns := flag.String("netns", "", "internal: namespace name for -child")
	sizes := flag.String("sizes", "100000,1000000", "comma-separated list sizes (entries before merging)")
	mixes := flag.String("mix", "single,cidr", "list shapes: single (single IPv4 addresses), cidr (realistic mix)")
	methods := flag.String("methods", "ours-full,ours-delta1,ours-delta10,nft-full,ipt-full,ipt-delta1,ipt-delta10,ipset-swap", "methods to run")
	runs := flag.Int("runs", 1, "measure each method this many times (interleaved) and report the run of median wall time")
	size := flag.Int("n", 0, "internal: list size for -child")
	mix := flag.String("m", "", "internal: mix for -child")
	packet := flag.Int("packet", 0, "instead: measure the packet path with this many listed addresses and as many ranges (see packet.go)")
	flag.Parse()

	if *child != "" {
		res, err := runChild(*child, *ns, *size, *mix)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sikkerbench:", err)
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "sikkerbench: -runs must be at least 1")
		os.Exit(2)
	}
	if *packet > 0 {
		if err := runPacket(*packet, 3*time.Second, *runs); err != nil {
			fmt.Fprintln(os.Stderr, "sikkerbench: packet:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(strings.Split(*sizes, ","), strings.Split(*mixes, ","), strings.Split(*methods, ","), *runs); err != nil {
		fmt.Fprintln(os.Stderr, "sikkerbench:", err)
		os.Exit(1)
	}
}

// result is what one child reports.
type result struct {
	Method   string
	Entries  int // entries generated
	Ranges   int // ranges after merging (elements ipset/nft see may differ)
	Changed  int // ranges added+removed for deltas
	Wall     time.Duration
	RSSKiB   int64  // peak RSS during the measured operation (ours: VmHWM; tools: wait4)
	ToolKiB  int64  // peak RSS of the external tool, if any
	SlabKiB  int64  // kernel Slab after the operation minus before the table existed
	Elements int    // elements sent (ours) or lines fed (tools)
	Ours     bool   // RSSKiB is sikkerguard's own code at work
	Op       string // what the iptables backend chose: replace or update
}

func run(sizes, mixes, methods []string, runs int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("| list | entries | ranges | method | wall | vs ipset | peak RSS (ours) | peak RSS (tool) | kernel Slab Δ |\n")
	fmt.Printf("|---|---:|---:|---|---:|---:|---:|---:|---:|\n")
	for _, mix := range mixes {
		for _, sz := range sizes {
			// Runs are interleaved so that a slow phase of the machine
			// touches every method alike.
			all := make([][]result, len(methods))
			for range runs {
				for i, m := range methods {
					r, err := measure(self, m, sz, mix)
					if err != nil {
						return fmt.Errorf("%s %s %s: %w", mix, sz, m, err)
					}
					all[i] = append(all[i], r)
				}
			}
			var rows []result
			var ipsetWall time.Duration
			for i, m := range methods {
				slices.SortFunc(all[i], func(a, b result) int { return cmp.Compare(a.Wall, b.Wall) })
				r := all[i][len(all[i])/2]
				if m == "ipset-swap" {
					ipsetWall = r.Wall
				}
				rows = append(rows, r)
			}
			for _, r := range rows {
				ratio := "–"
				if ipsetWall > 0 {
					ratio = fmt.Sprintf("%.2f×", float64(r.Wall)/float64(ipsetWall))
				}
				name := r.Method
				switch {
				case r.Changed > 0 && r.Op != "":
					name += fmt.Sprintf(" (%d changed, %s)", r.Changed, r.Op)
				case r.Changed > 0:
					name += fmt.Sprintf(" (%d changed)", r.Changed)
				case r.Op != "":
					name += fmt.Sprintf(" (%s)", r.Op)
				}
				tool := "–"
				if r.ToolKiB > 0 {
					tool = fmt.Sprintf("%.1f MiB", float64(r.ToolKiB)/1024)
				}
				ours := "–"
				if r.Ours {
					ours = fmt.Sprintf("%.1f MiB", float64(r.RSSKiB)/1024)
				}
				fmt.Printf("| %s | %d | %d | %s | %s | %s | %s | %s | %.1f MiB |\n", mix, r.Entries, r.Ranges, name,
					r.Wall.Round(time.Millisecond), ratio, ours, tool, float64(r.SlabKiB)/1024)
			}
		}
	}
	return nil
}

// measure runs one method in a fresh namespace and a fresh child process.
func measure(self, method, size, mix string) (result, error) {
	name := fmt.Sprintf("sgtbench%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return result{}, fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	// Freed set memory goes through RCU; give it a moment between runs.
	time.Sleep(500 * time.Millisecond)
	cmd := exec.Command(self, "-child", method, "-netns", name, "-n", size, "-m", mix)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, err
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return result{}, fmt.Errorf("child output %q: %w", out, err)
	}
	return r, nil
}

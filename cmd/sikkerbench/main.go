// Command sikkerbench measures sikkerguard as users meet it, beside the
// tools it replaces, in throwaway network namespaces (sgwbench*, and
// sgtbench* for the backends), and prints one Markdown table per section:
//
//	backends  the nftables and iptables backends alone (full replace and
//	          delta) against `nft -f` and `ipset restore` + `ipset swap`
//	once      the cron run: `sikkerguard --once`, fetch included, against
//	          the seed's curl + ipset restore + swap, and its parts
//	daemon    the daemon: start-up to READY=1 (cold, boot, adopt), reload,
//	          pull, and its resident memory after each
//	scale     one full load of 100 k, 1 M and 5 M entries, ours against
//	          ipset, and how time and memory grow with the list
//
// Sections are chosen with -bench (default: all, in this order). The once,
// daemon and scale sections drive the built binaries (-bin), never the
// packages; backends runs each method in a child process of its own, so
// that its peak RSS is its own. It needs root and never touches the
// machine's own namespace (see docs/benchmarks.md).
package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A section is one part of the benchmark. A file adds one with register
// in its init; order places it in the default run.
type section struct {
	name  string
	order int
	about string
	run   func(o *options) error
}

var sections []section

func register(s section) {
	sections = append(sections, s)
	slices.SortFunc(sections, func(a, b section) int { return cmp.Compare(a.order, b.order) })
}

// options are the flags every section may read.
type options struct {
	runs    int
	binDir  string
	entries int           // list size of the once and daemon sections
	settle  time.Duration // wait before reading resident memory at rest
	scale   []int         // list sizes of the scale section
	policy  string        // the shipped D-Bus policy file
	// The backends section.
	sizes, mixes, methods []string
}

// setUp finds the binaries under test and makes the section's scratch
// directory, removed at the end.
func (o *options) setUp(section string) (binaries, string, error) {
	bin, err := findBinaries(o.binDir)
	if err != nil {
		return bin, "", err
	}
	dir, err := os.MkdirTemp("", "sikkerbench-"+section+"-")
	if err != nil {
		return bin, "", err
	}
	atExit(func() { os.RemoveAll(dir) })
	return bin, dir, nil
}

// cleanups run at the end, also after SIGINT or SIGTERM, newest first:
// whatever a section creates (namespaces, processes) is registered here.
var cleanups []func()

func atExit(f func()) { cleanups = append(cleanups, f) }

func runCleanups() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

func main() {
	child := flag.String("child", "", "internal: run one measurement (method) in this process")
	ns := flag.String("netns", "", "internal: namespace name for -child")
	size := flag.Int("n", 0, "internal: list size for -child")
	mix := flag.String("m", "", "internal: mix for -child")
	bench := flag.String("bench", "all", "comma-separated sections to run: all, or "+sectionNames())
	var o options
	sizes := flag.String("sizes", "100000,1000000", "backends: comma-separated list sizes (entries before merging)")
	mixes := flag.String("mix", "single,cidr", "backends: list shapes: single (single IPv4 addresses), cidr (realistic mix)")
	methods := flag.String("methods", "ours-full,ours-delta1,ours-delta10,nft-full,ipt-full,ipt-delta1,ipt-delta10,ipset-swap", "backends: methods to run")
	scale := flag.String("scale-sizes", "100000,1000000,5000000", "scale: comma-separated list sizes")
	flag.IntVar(&o.runs, "runs", 1, "measure each case this many times (interleaved) and report the run of median wall time")
	flag.IntVar(&o.entries, "entries", 1_000_000, "once, daemon: entries of the served list")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "daemon: wait this long after an operation before reading resident memory at rest")
	flag.StringVar(&o.policy, "policy", "dbus/com.sikkerapi.SikkerGuard1.conf", "daemon: the D-Bus policy file the private bus includes")
	self, _ := os.Executable()
	flag.StringVar(&o.binDir, "bin", filepath.Dir(self), "directory holding sikkerguard, sikkerctl and sikkerapi-mock")
	kernelLimit := flag.Int64("kernel-limit", 4096, "stop a program of the benchmark when the kernel's unreclaimable memory grows by more than this many MiB while it runs")
	flag.Parse()
	kernelLimitKiB = *kernelLimit << 10

	if *child != "" {
		res, err := runChild(*child, *ns, *size, *mix)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sikkerbench:", err)
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	o.sizes, o.mixes, o.methods = strings.Split(*sizes, ","), strings.Split(*mixes, ","), strings.Split(*methods, ",")
	for _, f := range strings.Split(*scale, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			usage("-scale-sizes: %q is not a list size", f)
		}
		o.scale = append(o.scale, n)
	}
	if o.runs < 1 {
		usage("-runs must be at least 1")
	}
	if o.entries < 100 {
		usage("-entries must be at least 100")
	}
	todo, err := pick(*bench)
	if err != nil {
		usage("%v", err)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		runCleanups()
		os.Exit(130)
	}()
	// A section that fails says why; the others still run.
	failed := 0
	for _, s := range todo {
		fmt.Printf("## %s: %s\n\n", s.name, s.about)
		start := time.Now()
		err := s.run(&o)
		runCleanups()
		if err != nil {
			fmt.Printf("**%s failed**: see the error below.\n\n", s.name)
			fmt.Fprintf(os.Stderr, "sikkerbench: %s: %v\n", s.name, err)
			failed++
			continue
		}
		fmt.Printf("\n(%s took %s)\n\n", s.name, time.Since(start).Round(time.Second))
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func usage(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sikkerbench: "+format+"\n", args...)
	os.Exit(2)
}

func sectionNames() string {
	var names []string
	for _, s := range sections {
		names = append(names, s.name)
	}
	return strings.Join(names, ", ")
}

// pick returns the sections named in list, in their order.
func pick(list string) ([]section, error) {
	if list == "all" {
		return sections, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		if !slices.ContainsFunc(sections, func(s section) bool { return s.name == n }) {
			return nil, fmt.Errorf("-bench: unknown section %q (have %s)", n, sectionNames())
		}
		want[n] = true
	}
	var out []section
	for _, s := range sections {
		if want[s.name] {
			out = append(out, s)
		}
	}
	return out, nil
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

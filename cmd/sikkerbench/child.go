package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/firewall/firewalltest"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/nft"
)

// benchSettings are the config file's defaults on one hook, without NFLOG:
// the benchmark measures loading, not logging.
func benchSettings(hook firewall.Hook) firewall.Settings {
	return firewalltest.Settings(firewall.Settings{IPv6: true}, hook)
}

// gen returns n entries: "single" draws addresses from 1.0.0.0–223.255.255.255;
// "cidr" is a blocklist-like mix: 90% single addresses, 7% /24, 2% /20–/23,
// 1% /16–/19. seed selects the list, so two seeds give two different lists.
func gen(n int, mix string, seed uint64) ipnet.Set {
	r := rand.New(rand.NewPCG(seed, 42))
	var s ipnet.Set
	s.V4 = make([]ipnet.Range4, 0, n)
	for range n {
		a := 1<<24 + r.Uint32N(223<<24-1<<24)
		bits := 32
		if mix == "cidr" {
			switch p := r.IntN(100); {
			case p < 90:
			case p < 97:
				bits = 24
			case p < 99:
				bits = 20 + r.IntN(4)
			default:
				bits = 16 + r.IntN(4)
			}
		}
		mask := ^uint32(0) << (32 - bits)
		s.V4 = append(s.V4, ipnet.Range4{Lo: a & mask, Hi: a&mask | ^mask})
	}
	s.Merge()
	return s
}

// churn replaces pct percent of the ranges of s with fresh ones.
func churn(s ipnet.Set, n int, mix string, pct int) ipnet.Set {
	k := len(s.V4) * pct / 100
	fresh := gen(k, mix, 7)
	out := ipnet.Set{V4: make([]ipnet.Range4, 0, len(s.V4))}
	r := rand.New(rand.NewPCG(3, 4))
	for _, x := range s.V4 {
		if r.IntN(100) >= pct {
			out.V4 = append(out.V4, x)
		}
	}
	out.V4 = append(out.V4, fresh.V4...)
	out.Merge()
	return out
}

func slabKiB() int64 { return fieldKiB("/proc/meminfo", "Slab") }

// kernelKiB is the kernel memory a set can take: slab objects, and vmalloc
// areas, where ipset keeps large hash tables.
func kernelKiB() int64 {
	return fieldKiB("/proc/meminfo", "Slab") + fieldKiB("/proc/meminfo", "VmallocUsed")
}

func hwmKiB() int64 { return fieldKiB("/proc/self/status", "VmHWM") }

// resetHWM returns the garbage of the set-up (list generation, the first
// load) to the OS, so that it does not count as the operation's, and makes
// VmHWM start again from the current RSS (Linux ≥ 4.0).
func resetHWM() {
	debug.FreeOSMemory()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

func runChild(method, ns string, n int, mix string) (result, error) {
	res := result{Method: method, Entries: n}
	fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return res, err
	}
	slab0 := slabKiB()
	a := gen(n, mix, 1)
	next := gen(n, mix, 2)
	switch method {
	case "ours-delta1", "ipt-delta1":
		next = churn(a, n, mix, 1)
	case "ours-delta10", "ipt-delta10":
		next = churn(a, n, mix, 10)
	}
	res.Ranges = len(next.V4)
	added, removed := ipnet.Diff(a, next)

	var b *nft.Backend
	if strings.HasPrefix(method, "ipt-") {
		return runIptables(res, ns, method, a, next, slab0)
	}
	if method != "ipset-swap" {
		b, err = nft.New(benchSettings(nft.HookPrerouting), slog.New(slog.DiscardHandler), nft.WithNetNSFd(fd))
		if err != nil {
			return res, err
		}
		if method != "ours-load" {
			if err := b.Apply(firewall.Lists{Block: a, Allow: ipnet.Set{}}); err != nil {
				return res, err
			}
		}
	}
	tool := int64(-1) // the tool's peak RSS in KiB, when one ran
	switch method {
	case "ours-load": // the first load, into a table that does not exist yet
		resetHWM()
		start := time.Now()
		err = b.Apply(firewall.Lists{Block: next, Allow: ipnet.Set{}})
		res.Wall = time.Since(start)
	case "ours-full", "ours-delta1", "ours-delta10":
		resetHWM()
		start := time.Now()
		if method == "ours-full" {
			err = b.ReplaceAll(next)
		} else {
			res.Changed = len(added.V4) + len(removed.V4)
			err = b.Update(next)
		}
		res.Wall = time.Since(start)
	case "nft-full":
		file := writeNftFile(next)
		defer os.Remove(file)
		resetHWM()
		start := time.Now()
		tool, err = runTool(ns, nil, "nft", "-f", file)
		res.Wall = time.Since(start)
	case "ipset-swap":
		typ := "hash:ip"
		if mix == "cidr" {
			typ = "hash:net"
		}
		if _, err := runTool(ns, ipsetScript(a, typ, "sgbench", true), "ipset", "restore"); err != nil {
			return res, err
		}
		script := ipsetScript(next, typ, "sgbench-tmp", false)
		resetHWM()
		start := time.Now()
		tool, err = runTool(ns, script, "ipset", "restore")
		res.Wall = time.Since(start)
	default:
		return res, fmt.Errorf("unknown method %q", method)
	}
	if err != nil {
		return res, err
	}
	res.RSSKiB = hwmKiB()
	if tool >= 0 {
		res.ToolKiB = tool
	} else {
		res.Ours = true
	}
	time.Sleep(time.Second) // RCU frees the old list's memory
	res.SlabKiB = slabKiB() - slab0
	return res, nil
}

// runTool runs a tool in the namespace and returns its peak RSS in KiB,
// taken by GNU time (see execTimed).
func runTool(ns string, stdin []byte, name string, args ...string) (int64, error) {
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	t, err := execTimed(ns, nil, in, name, args...)
	return t.PeakKiB, err
}

// writeNftFile writes the nft equivalent of our full replace: flush both
// IPv4 sets of the sikkerguard table and add the list, singles to the hash set.
func writeNftFile(s ipnet.Set) string {
	f, _ := os.CreateTemp("", "sikkerbench-*.nft")
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "flush set inet %s %s\nflush set inet %s %s\n", nft.TableName, nft.SetHosts4, nft.TableName, nft.SetBlock4)
	for _, single := range []bool{true, false} {
		set := nft.SetBlock4
		if single {
			set = nft.SetHosts4
		}
		first := true
		for _, r := range s.V4 {
			if (r.Lo == r.Hi) != single {
				continue
			}
			if first {
				fmt.Fprintf(w, "add element inet %s %s { ", nft.TableName, set)
				first = false
			} else {
				w.WriteString(", ")
			}
			if single {
				w.WriteString(ipnet.AddrFrom4(r.Lo).String())
			} else {
				w.WriteString(ipnet.AddrFrom4(r.Lo).String() + "-" + ipnet.AddrFrom4(r.Hi).String())
			}
		}
		if !first {
			w.WriteString(" }\n")
		}
	}
	w.Flush()
	f.Close()
	return f.Name()
}

// ipsetScript is the seed's refresh: create a temporary set, fill it, swap
// it with the live one and destroy the old contents (or, with live, just
// create and fill the live set).
func ipsetScript(s ipnet.Set, typ, name string, live bool) []byte {
	var buf bytes.Buffer
	max := len(s.V4)*2 + 1024
	fmt.Fprintf(&buf, "create %s %s family inet hashsize 65536 maxelem %d\n", name, typ, max)
	var ps []netip.Prefix
	for _, r := range s.V4 {
		ps = r.Prefixes(ps[:0])
		for _, p := range ps {
			if typ == "hash:ip" {
				fmt.Fprintf(&buf, "add %s %s\n", name, p.Addr())
			} else {
				fmt.Fprintf(&buf, "add %s %s\n", name, p)
			}
		}
	}
	if !live {
		fmt.Fprintf(&buf, "swap %s sgbench\ndestroy %s\n", name, name)
	}
	return buf.Bytes()
}

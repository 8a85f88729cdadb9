package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/nft"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// The packet benchmark's lab: the host (the firewall under test) and one
// peer that floods it over a veth pair with frames from listed sources.
var (
	pktHost = netip.MustParsePrefix("192.0.2.1/24")
	pktPeer = netip.MustParsePrefix("192.0.2.2/24")
)

const (
	pktHostIf  = "fw0"
	pktSources = 65536 // distinct listed sources of a flood
	pktNetdev  = "sgpkt"
	// pktIngressPrio puts the benchmark's ingress chains first on the device.
	pktIngressPrio = -500
)

// pktCase is one arrangement of the drop: which base chain is hooked in
// and where the flood comes from.
type pktCase struct {
	name  string
	chain string // "" (no base chain hooked), "prerouting", "ingress", "netdev"
	srcs  string // "hash", "interval", "unlisted"
	// roles: in the second lab, whose table is built with the role
	// objects (packet_roles.go) and stays as built.
	roles bool
}

// pktRow is what one flood of a case measured.
type pktRow struct {
	sent, dropped uint64
	elapsed       time.Duration
	cpu           time.Duration // sender thread (receive path inline) + ksoftirqd
	softirq       time.Duration // softirq time of /proc/stat, machine-wide
	conntrack     int64         // conntrack entries the flood left in the host
}

// runPacket measures what the table costs per packet with n listed single
// addresses (hash set) and n listed ranges (interval set) loaded: floods
// from listed sources dropped at each hook, the CPU per drop, the conntrack
// entries made, the cost to unlisted floods, without and with the objects
// of a monitor feed and an outbound list (a second lab), and to a TCP
// stream (iperf3).
func runPacket(n int, dur time.Duration, runs int) error {
	tb := &benchTB{}
	return tb.run(func() error { return packetBench(tb, n, dur, runs) })
}

func init() {
	register(section{name: "packet", order: 50, run: func(o *options) error { return runPacket(o.entries, 3*time.Second, o.runs) },
		about: "what the table costs per packet: drops at prerouting raw, inet ingress and netdev ingress, conntrack, unlisted floods (also with a monitor feed's and an outbound list's objects) and a TCP stream"})
}

func packetBench(tb *benchTB, n int, dur time.Duration, runs int) error {
	lab, err := pktLab(tb, "sgpkt")
	if err != nil {
		return err
	}
	list := pktList(n)
	start := time.Now()
	b, err := pktBackend(lab, firewall.Settings{IPv6: true, LogGroup: 7})
	if err != nil {
		return err
	}
	singles := ipnet.Set{}
	for _, r := range list.V4 {
		if r.Lo == r.Hi {
			singles.V4 = append(singles.V4, r)
		}
	}
	// The chains are copied from the table while it is empty: nft lists a
	// chain only after reading every element of the table.
	if err := b.Apply(firewall.Lists{}); err != nil {
		return err
	}
	chains, err := pktChains(lab)
	if err != nil {
		return err
	}
	if err := pktLoad(b, list, singles, firewall.Lists{}); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "packet: table loaded (%d ranges) in %s\n", len(list.V4), time.Since(start).Round(time.Millisecond))
	rl, err := pktRolesLab(tb, list, singles)
	if err != nil {
		return err
	}
	labs := map[bool]*testnet.Lab{false: lab, true: rl.lab}
	netdev := n <= pktNetdevMax
	if netdev {
		start = time.Now()
		if err := loadNetdev(lab, singles); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "packet: netdev table loaded in %s\n", time.Since(start).Round(time.Millisecond))
	} else {
		fmt.Fprintf(os.Stderr, "packet: no netdev case above %d entries (nft -f of the copy takes minutes and gigabytes)\n", pktNetdevMax)
	}

	srcs := pktFloodSources(list, rl.lists.Monitor, rl.lists.Out)
	cases := []pktCase{
		{"floor: no firewall, frames dropped by the stack before any hook", "", "floor", false},
		{"prerouting, raw priority (today), hash set", "prerouting", "hash", false},
		{"inet ingress, hash set", "ingress", "hash", false},
		{"netdev ingress, hash set", "netdev", "hash", false},
		{"prerouting, interval set", "prerouting", "interval", false},
		{"inet ingress, interval set", "ingress", "interval", false},
		{"unlisted sources, no table hooked", "", "unlisted", false},
		{"unlisted sources, prerouting", "prerouting", "unlisted", false},
		rolesUnlisted,
		{"unlisted sources, inet ingress", "ingress", "unlisted", false},
		{"unlisted sources, prerouting without the interval rule", "hash-only", "unlisted", false},
		{"unlisted sources, prerouting without the hash rule", "interval-only", "unlisted", false},
		rolesFloor,
	}
	if !netdev {
		cases = slices.DeleteFunc(cases, func(c pktCase) bool { return c.chain == "netdev" })
	}
	all := make([][]pktRow, len(cases))
	for range runs {
		for i, c := range cases {
			switch {
			case c.roles && c.srcs == "unlisted":
				// The second table stays as built. The conntrack entries
				// of the sources are made first, as the earlier unlisted
				// cases made them in the first lab.
				if _, err := rl.lab.RawFlood(0, nil, srcs[c.srcs], netip.AddrPortFrom(pktHost.Addr(), 9), time.Second); err != nil {
					return err
				}
			case !c.roles:
				if err := chains.activate(lab, c.chain); err != nil {
					return err
				}
			}
			r, err := pktFlood(tb, labs[c.roles], c, srcs[c.srcs], dur)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			all[i] = append(all[i], r)
		}
	}
	printPacket(cases, all, n)
	printRoles(cases, all, rl)

	var streams [2][]float64 // Gbit/s without and with the table
	for range runs {
		for i, chain := range []string{"", "prerouting"} {
			if err := chains.activate(lab, chain); err != nil {
				return err
			}
			g, err := iperf(lab, dur)
			if err != nil {
				return err
			}
			streams[i] = append(streams[i], g)
		}
	}
	without, with := median(streams[0], self), median(streams[1], self)
	fmt.Printf("\n| TCP stream (iperf3, %s, median of %d) | Gbit/s | vs no table |\n|---|---:|---:|\n", dur, runs)
	fmt.Printf("| no table hooked | %.2f | – |\n", without)
	fmt.Printf("| table at prerouting, %d + %d entries | %.2f | %+.1f %% |\n", n, n, with, (with/without-1)*100)
	return nil
}

// pktNetdevMax is the largest list the netdev comparison is loaded for: its
// copy of the list goes through nft -f, which needs minutes and gigabytes
// for a million elements, and a machine shared with other loads runs out.
const pktNetdevMax = 200000

// pktChunk bounds the ranges one transaction or nft -f script adds.
const pktChunk = 250000

// pktList is n random single addresses and n random /28 ranges, merged
// (a single inside a range joins it).
func pktList(n int) ipnet.Set {
	s := gen(n, "single", 1)
	wide := gen(n, "single", 2)
	for i := range wide.V4 {
		wide.V4[i].Lo &^= 15
		wide.V4[i].Hi = wide.V4[i].Lo | 15
	}
	s.V4 = append(s.V4, wide.V4...)
	s.Merge()
	return s
}

// pktFloodSources picks pktSources listed single addresses, as many
// addresses inside listed ranges, and unlisted addresses, spread over the
// list; unlisted ones are on none of others either.
func pktFloodSources(list ipnet.Set, others ...ipnet.Set) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	var singles, wide []ipnet.Range4
	for _, r := range list.V4 {
		if r.Lo == r.Hi {
			singles = append(singles, r)
		} else {
			wide = append(wide, r)
		}
	}
	pick := func(rs []ipnet.Range4) []netip.Addr {
		var as []netip.Addr
		for k := range pktSources {
			r := rs[k*len(rs)/pktSources]
			as = append(as, ipnet.AddrFrom4(r.Lo+(r.Hi-r.Lo)/2))
		}
		return as
	}
	rnd := rand.New(rand.NewPCG(9, 9))
	// In random order, as a flood's sources come: in the list's order,
	// consecutive lookups would walk the same upper part of the interval
	// tree and find it in the cache.
	out["hash"], out["interval"] = pick(singles), pick(wide)
	for _, k := range []string{"hash", "interval"} {
		rnd.Shuffle(len(out[k]), func(i, j int) { out[k][i], out[k][j] = out[k][j], out[k][i] })
	}
	out["floor"] = out["hash"]
	for len(out["unlisted"]) < 4096 {
		a := ipnet.AddrFrom4(1<<24 + rnd.Uint32N(223<<24-1<<24))
		if !list.Contains(a) && !slices.ContainsFunc(others, func(s ipnet.Set) bool { return s.Contains(a) }) {
			out["unlisted"] = append(out["unlisted"], a)
		}
	}
	return out
}

// pktChainSet holds the text of every base chain a case may hook in; one
// at a time is present in the kernel.
type pktChainSet struct {
	add, del map[string]string
	active   string
}

var (
	preroutingHook = regexp.MustCompile(`type filter hook prerouting priority [^;]+;`)
	chainName      = regexp.MustCompile(`chain prerouting \{`)
)

// pktChains takes the product's prerouting chain as nft prints it and
// derives an identical chain at the inet ingress hook of the host's link.
func pktChains(lab *testnet.Lab) (*pktChainSet, error) {
	pre, err := lab.Host.Run("nft", "list", "chain", "inet", nft.TableName, "prerouting")
	if err != nil {
		return nil, err
	}
	ing := preroutingHook.ReplaceAllString(pre, fmt.Sprintf(`type filter hook ingress device "%s" priority %d;`, pktHostIf, pktIngressPrio))
	ing = chainName.ReplaceAllString(ing, "chain sgpkt_ingress {")
	if ing == pre || !strings.Contains(ing, "hook ingress") {
		return nil, fmt.Errorf("packet: cannot derive the ingress chain from:\n%s", pre)
	}
	// Variants of prerouting that each leave one lookup of listed sources
	// out, to tell what an unlisted packet pays for which set.
	without := func(set string) string {
		var keep []string
		for _, line := range strings.Split(pre, "\n") {
			if !strings.Contains(line, "@"+set) {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}
	return &pktChainSet{
		add: map[string]string{"prerouting": pre, "ingress": ing,
			"hash-only": without(nft.SetBlock4), "interval-only": without(nft.SetHosts4),
			"netdev": fmt.Sprintf("add chain netdev %s ingress { type filter hook ingress device \"%s\" priority %d; policy accept; }\n"+
				"add rule netdev %[1]s ingress ip saddr @allow4 accept\nadd rule netdev %[1]s ingress ip saddr @blockhost4 goto block4\n"+
				"add rule netdev %[1]s ingress ip saddr @blocklist4 goto block4\n", pktNetdev, pktHostIf, pktIngressPrio)},
		del: map[string]string{
			"prerouting":    "flush chain inet " + nft.TableName + " prerouting\ndelete chain inet " + nft.TableName + " prerouting\n",
			"hash-only":     "flush chain inet " + nft.TableName + " prerouting\ndelete chain inet " + nft.TableName + " prerouting\n",
			"interval-only": "flush chain inet " + nft.TableName + " prerouting\ndelete chain inet " + nft.TableName + " prerouting\n",
			"ingress":       "flush chain inet " + nft.TableName + " sgpkt_ingress\ndelete chain inet " + nft.TableName + " sgpkt_ingress\n",
			"netdev":        "flush chain netdev " + pktNetdev + " ingress\ndelete chain netdev " + pktNetdev + " ingress\n"},
		active: "prerouting",
	}, nil
}

// activate leaves only the named base chain hooked in ("" for none).
func (c *pktChainSet) activate(lab *testnet.Lab, chain string) error {
	if chain == c.active {
		return nil
	}
	script := ""
	if c.active != "" {
		script += c.del[c.active]
	}
	if chain != "" {
		script += c.add[chain]
	}
	if err := nftScript(lab, script); err != nil {
		return err
	}
	c.active = chain
	return nil
}

// loadNetdev builds the netdev table of the comparison: the same IPv4 sets
// and verdict as ours, without a base chain yet, with the list's single
// addresses (the hash set's flood is the one compared).
func loadNetdev(lab *testnet.Lab, list ipnet.Set) error {
	var w strings.Builder
	fmt.Fprintf(&w, "table netdev %s {\n counter dropped4 {}\n set allow4 { type ipv4_addr; flags interval; }\n"+
		" set blockhost4 { type ipv4_addr; }\n set blocklist4 { type ipv4_addr; flags interval; }\n"+
		" chain block4 { counter name \"dropped4\" drop; }\n}\n", pktNetdev)
	for _, single := range []bool{true, false} {
		set := "blocklist4"
		if single {
			set = "blockhost4"
		}
		first, k := true, 0
		for _, r := range list.V4 {
			if (r.Lo == r.Hi) != single {
				continue
			}
			if k++; k%pktChunk == 0 {
				w.WriteString(" }\n")
				if err := nftScript(lab, w.String()); err != nil {
					return err
				}
				w.Reset()
				first = true
			}
			if first {
				fmt.Fprintf(&w, "add element netdev %s %s { ", pktNetdev, set)
			} else {
				w.WriteString(", ")
			}
			first = false
			if single {
				w.WriteString(ipnet.AddrFrom4(r.Lo).String()) // a hash set takes no prefix
			} else {
				w.WriteString(r.String())
			}
		}
		if !first {
			w.WriteString(" }\n")
		}
	}
	return nftScript(lab, w.String())
}

func (r pktRow) perPacket() time.Duration {
	if r.sent == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.sent)
}

// self is the key of a value that is its own key.
func self[T any](x T) T { return x }

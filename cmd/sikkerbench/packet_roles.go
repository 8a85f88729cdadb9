package main

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// The packet benchmark's second lab holds the same table built with the
// objects of a monitor feed and an outbound feed as well (Settings.Monitor
// and Outbound: the monitor sets looked up in the "watch" chain after
// conntrack, the outbound set in the output chain). Its unlisted flood,
// beside the first lab's in the same run, is what those objects cost a
// packet no list names: by design one more lookup per family.

// pktRoles is the second lab and the role lists its table holds.
type pktRoles struct {
	lab   *testnet.Lab
	lists firewall.Lists
}

// The second lab's cases: its floor tells whether the two labs differ at
// all, its unlisted flood goes beside the first lab's.
var (
	rolesUnlisted = pktCase{"unlisted sources, prerouting, table with a monitor feed and an outbound list (second lab)", "prerouting", "unlisted", true}
	rolesFloor    = pktCase{"floor of the second lab", "", "floor", true}
)

// pktRoleLists is a monitor feed of min(n, pktChunk) blocklist-like
// entries (one transaction), without what list enforces (the daemon leaves
// those out), and an outbound list a tenth of its size.
func pktRoleLists(n int, list ipnet.Set) firewall.Lists {
	m := min(n, pktChunk)
	return firewall.Lists{Monitor: gen(m, "cidr", 3).Subtract(list), Out: gen(max(m/10, 1), "single", 4)}
}

// pktRolesLab builds the second lab and loads its table: list as in the
// first lab, and the role lists.
func pktRolesLab(tb *benchTB, list, singles ipnet.Set) (pktRoles, error) {
	start := time.Now()
	lab, err := pktLab(tb, "sgpktr")
	if err != nil {
		return pktRoles{}, err
	}
	b, err := pktBackend(lab, firewall.Settings{IPv6: true, LogGroup: 7, Monitor: true, Outbound: true})
	if err != nil {
		return pktRoles{}, err
	}
	roles := pktRoleLists(len(singles.V4), list)
	if err := pktLoad(b, list, singles, roles); err != nil {
		return pktRoles{}, fmt.Errorf("second lab: %w", err)
	}
	fmt.Fprintf(os.Stderr, "packet: second table (%d ranges, %d monitored, %d outbound) loaded in %s\n",
		len(list.V4), len(roles.Monitor.V4), len(roles.Out.V4), time.Since(start).Round(time.Millisecond))
	return pktRoles{lab: lab, lists: roles}, nil
}

// printRoles puts the unlisted floods of the two tables side by side.
func printRoles(cases []pktCase, all [][]pktRow, rl pktRoles) {
	cost := func(c pktCase) (perPacket, overFloor time.Duration) {
		i := slices.Index(cases, c)
		floor := slices.IndexFunc(cases, func(x pktCase) bool { return x.srcs == "floor" && x.roles == c.roles })
		if i < 0 || floor < 0 {
			return 0, 0
		}
		p := median(all[i], pktRow.perPacket).perPacket()
		return p, p - median(all[floor], pktRow.perPacket).perPacket()
	}
	plain := cases[slices.IndexFunc(cases, func(c pktCase) bool { return c.srcs == "unlisted" && c.chain == "prerouting" && !c.roles })]
	p0, f0 := cost(plain)
	p1, f1 := cost(rolesUnlisted)
	fmt.Printf("\n| unlisted flood at prerouting (median of %d) | CPU per packet | minus its lab's floor |\n|---|---:|---:|\n", len(all[0]))
	fmt.Printf("| table without role objects | %d ns | %d ns |\n", p0.Nanoseconds(), f0.Nanoseconds())
	fmt.Printf("| same table with a monitor feed (%d ranges) and an outbound list (%d) | %d ns | %d ns |\n",
		len(rl.lists.Monitor.V4), len(rl.lists.Out.V4), p1.Nanoseconds(), f1.Nanoseconds())
	rel := 0.0
	if f0 > 0 {
		rel = 100 * float64(f1-f0) / float64(f0)
	}
	fmt.Printf("| what the role objects add | %+d ns | %+d ns (%+.0f %%) |\n", (p1 - p0).Nanoseconds(), (f1 - f0).Nanoseconds(), rel)
}

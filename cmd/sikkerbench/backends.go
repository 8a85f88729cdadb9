package main

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"time"
)

func init() {
	register(section{name: "backends", order: 10, run: runBackends,
		about: "the firewall backends alone against `nft -f` and `ipset restore` + `ipset swap`"})
}

func runBackends(o *options) error {
	sizes, mixes, methods, runs := o.sizes, o.mixes, o.methods, o.runs
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

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func init() {
	register(section{name: "scale", order: 40, run: runScale,
		about: "one full load by size, `sikkerguard --once` of a list file against the seed's `ipset restore` + swap"})
}

// scaleRun is one load of one size by one method.
type scaleRun struct {
	t       timed
	kernKiB int64 // Slab + VmallocUsed after the load minus before
}

// scaleLoad runs load in a fresh namespace and returns it with the kernel
// memory it left behind.
func scaleLoad(load func(ns string) (timed, error)) (scaleRun, error) {
	ns := nsName("s")
	if err := ipNetns("add", ns); err != nil {
		return scaleRun{}, err
	}
	etc := filepath.Join("/etc/netns", ns)
	defer func() {
		_ = ipNetns("del", ns)
		_ = os.RemoveAll(etc)
		time.Sleep(500 * time.Millisecond) // RCU frees the namespace's sets
	}()
	// A resolver of its own, unreachable, rather than the machine's.
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return scaleRun{}, err
	}
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+labDNS+"\n"), 0o644); err != nil {
		return scaleRun{}, err
	}
	kern0 := kernelKiB()
	t, err := load(ns)
	if err != nil {
		return scaleRun{}, err
	}
	time.Sleep(time.Second) // RCU
	return scaleRun{t, kernelKiB() - kern0}, nil
}

func runScale(o *options) error {
	bin, dir, err := o.setUp("scale")
	if err != nil {
		return err
	}
	type row struct {
		n           int
		ours, ipset scaleRun
	}
	var rows []row
	for _, n := range o.scale {
		list, _ := addrList(n, 0, 3)
		file, err := writeList(dir, fmt.Sprintf("list-%d.txt", n), list)
		if err != nil {
			return err
		}
		list = nil
		cfg, err := writeGuardConfig(dir, fmt.Sprintf("scale-%d", n), "http://"+labAPI+":"+labPort, file)
		if err != nil {
			return err
		}
		var ours, ipset []scaleRun
		for range o.runs {
			if err := os.RemoveAll(cfg.state); err != nil {
				return err
			}
			r, err := scaleLoad(func(ns string) (timed, error) { return execTimed(ns, nil, nil, bin.guard, "--once", "-c", cfg.path) })
			if err != nil {
				return fmt.Errorf("%d entries, sikkerguard: %w", n, err)
			}
			ours = append(ours, r)
			if r, err = scaleLoad(func(ns string) (timed, error) { return seedRestore(ns, file, n) }); err != nil {
				return fmt.Errorf("%d entries, ipset: %w", n, err)
			}
			ipset = append(ipset, r)
		}
		wall := func(r scaleRun) time.Duration { return r.t.Wall }
		rows = append(rows, row{n, median(ours, wall), median(ipset, wall)})
		_ = os.Remove(file)
	}

	fmt.Printf("A first load into an empty namespace of N random global IPv4 addresses from a list file (no fetch): "+
		"`sikkerguard --once` with the file as its one feed, against `ipset restore` of the seed's script built from the same file. "+
		"Median of %d runs; peak RSS by GNU time; kernel Δ is the machine's Slab + VmallocUsed (/proc/meminfo; ipset keeps large hash tables in vmalloc areas) 1 s after the load minus before: machine-wide, so other work moves it.\n\n", o.runs)
	fmt.Println("| entries | sikkerguard | per entry | ipset | per entry | ratio | peak RSS (ours) | peak RSS (ipset) | kernel Δ (ours) | kernel Δ (ipset) |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	per := func(d time.Duration, n int) string {
		return fmt.Sprintf("%.2f µs", float64(d.Microseconds())/float64(n))
	}
	for _, r := range rows {
		fmt.Printf("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.n, secs(r.ours.t.Wall), per(r.ours.t.Wall, r.n),
			secs(r.ipset.t.Wall), per(r.ipset.t.Wall, r.n), ratio(r.ours.t.Wall, r.ipset.t.Wall),
			mib(r.ours.t.PeakKiB), mib(r.ipset.t.PeakKiB), slabMiB(r.ours.kernKiB), slabMiB(r.ipset.kernKiB))
	}
	if len(rows) < 2 {
		return nil
	}
	// Growth per entry between consecutive sizes: 1.00× is linear.
	fmt.Println()
	fmt.Println("Growth of the cost per entry from one size to the next (1.00× is linear; above 1.5× is flagged):")
	fmt.Println()
	fmt.Println("| sizes | time (ours) | time (ipset) | peak RSS (ours) | kernel (ours) | kernel (ipset) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	growth := func(a, b int64, na, nb int) string {
		if a <= 0 || b <= 0 {
			return "–"
		}
		g := (float64(b) / float64(nb)) / (float64(a) / float64(na))
		if g > 1.5 {
			return fmt.Sprintf("**%.2f× worse than linear**", g)
		}
		return fmt.Sprintf("%.2f×", g)
	}
	for i := 1; i < len(rows); i++ {
		a, b := rows[i-1], rows[i]
		fmt.Printf("| %d → %d | %s | %s | %s | %s | %s |\n", a.n, b.n,
			growth(int64(a.ours.t.Wall), int64(b.ours.t.Wall), a.n, b.n),
			growth(int64(a.ipset.t.Wall), int64(b.ipset.t.Wall), a.n, b.n),
			growth(a.ours.t.PeakKiB, b.ours.t.PeakKiB, a.n, b.n),
			growth(a.ours.kernKiB, b.ours.kernKiB, a.n, b.n),
			growth(a.ipset.kernKiB, b.ipset.kernKiB, a.n, b.n))
	}
	return nil
}

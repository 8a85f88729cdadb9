package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func init() {
	register(section{name: "once", order: 20, run: runCron,
		about: "the cron run, `sikkerguard --once` (fetch included) against the seed's curl + `ipset restore` + swap"})
}

// cronRun is one round of the once section.
type cronRun struct {
	first, again, changed timed       // sikkerguard --once
	seed                  [3][2]timed // the seed's fetch and restore, per case
	parse                 timed       // --once --dry-run of the list as a file feed
}

func (r cronRun) seedWall(i int) time.Duration { return r.seed[i][0].Wall + r.seed[i][1].Wall }

func runCron(o *options) error {
	bin, dir, err := o.setUp("once")
	if err != nil {
		return err
	}
	list, fresh := addrList(o.entries, o.entries/100, 1)
	fileA, err := writeList(dir, "list.txt", list)
	if err != nil {
		return err
	}
	fileB, err := writeList(dir, "list-changed.txt", changed(list, fresh, 1))
	if err != nil {
		return err
	}
	l, err := newLab(bin, dir, fileA)
	if err != nil {
		return err
	}
	atExit(l.close)
	api, err := writeGuardConfig(dir, "once", l.url(), "")
	if err != nil {
		return err
	}
	fromFile, err := writeGuardConfig(dir, "parse", l.url(), fileA)
	if err != nil {
		return err
	}
	once := func(c guardConfig, env []string, args ...string) (timed, error) {
		return execTimed(l.host, env, nil, bin.guard, append([]string{"-c", c.path}, args...)...)
	}

	var runs []cronRun
	for i := range o.runs {
		var r cronRun
		if i > 0 {
			if err := l.setList(fileA); err != nil {
				return err
			}
		}
		if err := l.emptyHost(api.state); err != nil {
			return err
		}
		steps := []struct {
			what string
			do   func() error
		}{
			{"--once, empty namespace", func() (err error) { r.first, err = once(api, keyEnv, "--once"); return }},
			{"--once again", func() (err error) { r.again, err = once(api, keyEnv, "--once"); return }},
			{"--once --dry-run of a file", func() (err error) { r.parse, err = once(fromFile, nil, "--once", "--dry-run"); return }},
			{"seed, empty", func() error {
				if _, err := inNS(l.host, "ipset", "destroy"); err != nil {
					return err
				}
				time.Sleep(500 * time.Millisecond)
				return seedStep(l, dir, o.entries, &r.seed[0])
			}},
			{"seed again", func() error { return seedStep(l, dir, o.entries, &r.seed[1]) }},
			{"1 % changed", func() error { return l.setList(fileB) }},
			{"--once, 1 % changed", func() (err error) { r.changed, err = once(api, keyEnv, "--once"); return }},
			{"seed, 1 % changed", func() error { return seedStep(l, dir, o.entries, &r.seed[2]) }},
		}
		for _, s := range steps {
			if err := s.do(); err != nil {
				return fmt.Errorf("%s: %w", s.what, l.explain(err))
			}
		}
		runs = append(runs, r)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var loads []result
	for range o.runs {
		r, err := measure(self, "ours-load", strconv.Itoa(o.entries), "single")
		if err != nil {
			return fmt.Errorf("kernel insertion alone: %w", err)
		}
		loads = append(loads, r)
	}
	printCron(o, runs, median(loads, func(r result) time.Duration { return r.Wall }))
	return nil
}

func seedStep(l *lab, dir string, entries int, out *[2]timed) error {
	f, r, err := seedFlow(l.host, l.url(), dir, entries)
	*out = [2]timed{f, r}
	return err
}

func printCron(o *options, runs []cronRun, load result) {
	fmt.Printf("%d random global IPv4 addresses served as plaintext by sikkerapi-mock across a veth; median of %d interleaved runs.\n\n", o.entries, o.runs)
	fmt.Println("| case | sikkerguard `--once` | peak RSS (ours) | seed flow | ratio | target | |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---|")
	cases := []struct {
		name   string
		ours   func(cronRun) timed
		seed   int
		target float64
	}{
		{"first load, empty namespace", func(r cronRun) timed { return r.first }, 0, 0.6},
		{"again, the same list (the daily cron run)", func(r cronRun) timed { return r.again }, 1, 0.35},
		{"again, 1 % of the list changed", func(r cronRun) timed { return r.changed }, 2, 0.4},
	}
	for _, c := range cases {
		ours := median(runs, func(r cronRun) time.Duration { return c.ours(r).Wall })
		seed := median(runs, func(r cronRun) time.Duration { return r.seedWall(c.seed) })
		w, s := c.ours(ours).Wall, seed.seedWall(c.seed)
		fmt.Printf("| %s | %s | %s | %s | %s | ≤ %.2f× | %s |\n", c.name, secs(w), mib(c.ours(ours).PeakKiB), secs(s), ratio(w, s),
			c.target, met(float64(w) <= c.target*float64(s)))
	}

	// The parts of the first load, from the run of median wall time.
	r := median(runs, func(r cronRun) time.Duration { return r.first.Wall })
	s := median(runs, func(r cronRun) time.Duration { return r.seedWall(0) })
	pulled := logTime(r.first.Stderr, r.first.Start, msgPulled)
	built := logTime(r.first.Stderr, r.first.Start, msgBuilt)
	blocking := logTime(r.first.Stderr, r.first.Start, msgBlocking)
	parse := logTime(r.parse.Stderr, r.parse.Start, msgPulled)
	sub := func(a, b time.Duration) time.Duration {
		if a <= 0 || b <= 0 {
			return 0
		}
		return a - b
	}
	fmt.Println()
	fmt.Println("The parts of the first load (the run of median wall time; sikkerguard's from the time stamps of its log lines):")
	fmt.Println()
	fmt.Println("| part | sikkerguard | seed flow |")
	fmt.Println("|---|---:|---:|")
	fmt.Printf("| the fetch alone: curl of the same list | – | %s |\n", secs(s.seed[0][0].Wall))
	fmt.Printf("| start → `feed pulled`: start-up, fetch and parse | %s | – |\n", secs(pulled))
	fmt.Printf("| start → `feed pulled` of the same list as a file (`--once --dry-run`): start-up and parse | %s | – |\n", secs(parse))
	fmt.Printf("| `feed pulled` → `Blocking`: apply (decide, the kernel transaction, verify, save the list) | %s | %s (ipset restore + swap) |\n", secs(sub(blocking, pulled)), secs(s.seed[0][1].Wall))
	fmt.Printf("| of which `feed pulled` → `nftables table built`: decide, build and the kernel transaction | %s | – |\n", secs(sub(built, pulled)))
	fmt.Printf("| of which `nftables table built` → `Blocking`: verify connectivity, save the last good list | %s | – |\n", secs(sub(blocking, built)))
	fmt.Printf("| the kernel's insertion alone: the nftables backend loading %d ranges into a new table, in a process of its own | %s | – |\n", load.Ranges, secs(load.Wall))
	fmt.Printf("| `Blocking` → exit | %s | – |\n", secs(sub(r.first.Wall, blocking)))
	fmt.Printf("| total | %s | %s |\n", secs(r.first.Wall), secs(s.seedWall(0)))
}

package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// timed is one program run: its wall time, seen from here, and its peak
// resident memory.
type timed struct {
	Start   time.Time
	Wall    time.Duration
	PeakKiB int64  // GNU time's %M; 0 without /usr/bin/time
	Stderr  string // the program's standard error (sikkerguard's log)
}

// execTimed runs name in the namespace ns (none when empty) with env added
// to the environment. The peak RSS is taken by GNU time, which forks the
// program from its own small process: the rusage of a process started from
// Go would count the starting process's pages too.
func execTimed(ns string, env []string, stdin io.Reader, name string, args ...string) (timed, error) {
	var argv []string
	if ns != "" {
		argv = append(argv, "ip", "netns", "exec", ns)
	}
	var report string
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		f, err := os.CreateTemp("", "sikkerbench-time-*")
		if err != nil {
			return timed{}, err
		}
		f.Close()
		report = f.Name()
		defer os.Remove(report)
		argv = append(argv, "/usr/bin/time", "-f", "%M", "-o", report)
	}
	if len(env) > 0 {
		argv = append(append(argv, "env"), env...)
	}
	argv = append(append(argv, name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A group of its own, so that the guard can stop the program GNU time
	// forked as well.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t := timed{Start: time.Now()}
	if err := cmd.Start(); err != nil {
		return t, err
	}
	stopGuard := guardKernel(cmd.Process.Pid)
	err := cmd.Wait()
	t.Wall = time.Since(t.Start)
	t.Stderr = stderr.String()
	if gerr := stopGuard(); gerr != nil {
		return t, fmt.Errorf("%s: %w: %s", name, gerr, tail(t.Stderr))
	}
	if err != nil {
		return t, fmt.Errorf("%s: %v: %s%s", name, err, tail(stdout.String()), tail(t.Stderr))
	}
	if report != "" {
		t.PeakKiB, err = readTimeReport(report)
	}
	return t, err
}

// kernelLimitKiB bounds how much the kernel's unreclaimable memory may grow
// while one program of the benchmark runs (-kernel-limit).
var kernelLimitKiB int64 = 4 << 20

// guardKernel watches the machine's unreclaimable kernel memory while the
// process group pgid runs and kills the group when it has grown by more than
// kernelLimitKiB: a run that makes the kernel hold gigabytes (a transaction,
// netlink messages nobody reads) must not make the OOM killer take the
// machine's other work. The figure is machine-wide, so on a shared machine
// another program's growth can stop the run too; the error says so. stop
// ends the watch and says whether it struck.
func guardKernel(pgid int) (stop func() error) {
	base := fieldKiB("/proc/meminfo", "SUnreclaim")
	done, res := make(chan struct{}), make(chan error, 1)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				res <- nil
				return
			case <-tick.C:
				if grown := fieldKiB("/proc/meminfo", "SUnreclaim") - base; grown > kernelLimitKiB {
					_ = syscall.Kill(-pgid, syscall.SIGKILL)
					res <- fmt.Errorf("stopped: the machine's unreclaimable kernel memory (SUnreclaim) grew by %s while it ran, "+
						"more than -kernel-limit %s (machine-wide: other work on the machine counts too)", mib(grown), mib(kernelLimitKiB))
					return
				}
			}
		}
	}()
	return func() error {
		close(done)
		return <-res
	}
}

// readTimeReport reads the peak RSS in KiB that GNU time's -f %M wrote.
func readTimeReport(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("/usr/bin/time report %q: %w", b, err)
	}
	return kib, nil
}

// tail keeps the end of a program's output for an error, where the cause is.
func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// procKiB reads a field (VmRSS, VmHWM) of /proc/PID/status in KiB.
func procKiB(pid int, field string) int64 {
	return fieldKiB(fmt.Sprintf("/proc/%d/status", pid), field)
}

// fieldKiB reads a "Field: N kB" line of a /proc file; 0 when missing.
func fieldKiB(path, field string) int64 {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == field+":" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// clearHWM makes VmHWM of pid start again from its current RSS (Linux ≥ 4.0).
func clearHWM(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// median returns the element of xs with the median key.
func median[T any, K cmp.Ordered](xs []T, key func(T) K) T {
	xs = slices.Clone(xs)
	slices.SortFunc(xs, func(a, b T) int { return cmp.Compare(key(a), key(b)) })
	return xs[len(xs)/2]
}

// secs prints a duration in seconds, as the tables do.
func secs(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// ratio prints a/b.
func ratio(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// mib prints KiB as MiB; a dash for nothing measured.
func mib(kib int64) string {
	if kib <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// slabMiB prints a Slab difference, which noise can make negative.
func slabMiB(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

// met says whether v is within target.
func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

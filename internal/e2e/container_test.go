package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nspawnRunDir is where systemd-nspawn keeps per-container state; it leaves
// empty folders behind that the harness removes.
const nspawnRunDir = "/run/systemd/nspawn"

// container is one booted systemd-nspawn container with its own root file
// system and network namespace.
type container struct {
	t       *testing.T
	root    string
	console string
	cmd     *exec.Cmd
	exited  chan struct{}
	leader  int // the container's PID 1, a child of systemd-nspawn
	stop    sync.Once

	// Host leftovers to remove after the container is gone.
	cgroupDirs   []string
	runDirExists bool
}

// callerCgroups lists nspawn's directories under this process's cgroups in
// the unified and the named systemd hierarchies, deepest first.
func callerCgroups(procCgroup string) ([]string, error) {
	b, err := os.ReadFile(procCgroup)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", procCgroup, err)
	}
	var dirs []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var base string
		switch {
		case parts[0] == "0" && parts[1] == "":
			base = "/sys/fs/cgroup/unified"
			if _, err := os.Stat(base); err != nil {
				base = "/sys/fs/cgroup" // a pure cgroup2 host
			}
		case parts[1] == "name=systemd":
			base = "/sys/fs/cgroup/systemd"
		default:
			continue
		}
		own := filepath.Join(base, parts[2])
		dirs = append(dirs, filepath.Join(own, "payload"), filepath.Join(own, "supervisor"))
	}
	return dirs, nil
}

// removeTree removes a cgroup directory and every directory below it,
// deepest first. Cgroup directories are removed with rmdir even though they
// hold control files; rmdir fails while a process is still inside.
func removeTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("rmdir %s: %w", d, err)
		}
	}
	return nil
}

// removeEmptyDirs removes the empty directories below dir, and dir itself
// when keepTop is false and it ends up empty. Non-empty ones stay.
func removeEmptyDirs(dir string, keepTop bool) {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		if d == dir && keepTop {
			continue
		}
		os.Remove(d) // fails, harmlessly, on a non-empty directory
	}
}

// boot starts systemd-nspawn on root and waits until systemd inside reports
// running. The container and its host leftovers are removed in t.Cleanup,
// also when a later step fails.
func boot(t *testing.T, root, console string) *container {
	t.Helper()
	c := &container{t: t, root: root, console: console, exited: make(chan struct{})}
	var err error
	if c.cgroupDirs, err = callerCgroups("/proc/self/cgroup"); err != nil {
		t.Fatal(err)
	}
	for _, d := range c.cgroupDirs {
		// Left over by an earlier run that was killed: empty, so removable.
		// A live container's directories hold processes and refuse.
		if err := removeTree(d); err != nil {
			t.Fatalf("another container seems to be running (%v); only one at a time", err)
		}
	}
	_, err = os.Stat(nspawnRunDir)
	c.runDirExists = err == nil

	log, err := os.Create(console)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	c.cmd = exec.Command("systemd-nspawn", "-D", root, "--register=no", "--keep-unit",
		"--private-network", "--link-journal=no", "-b", "--console=read-only")
	c.cmd.Stdout, c.cmd.Stderr = log, log
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start systemd-nspawn: %v", err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(c.shutdown)

	deadline := time.Now().Add(20 * time.Second)
	for c.leader == 0 {
		select {
		case <-c.exited:
			t.Fatalf("systemd-nspawn exited early: %v\n%s", c.cmd.ProcessState, c.consoleTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no systemd under systemd-nspawn (pid %d) after 20 s\n%s", c.cmd.Process.Pid, c.consoleTail())
		}
		c.leader = childNamed(c.cmd.Process.Pid, "systemd")
		time.Sleep(50 * time.Millisecond)
	}
	// The manager's bus comes up a few hundred ms after PID 1 does.
	var out string
	for time.Now().Before(deadline) {
		out, err = c.run("systemctl", "is-system-running", "--wait")
		if out == "running" || out == "degraded" {
			if out == "degraded" {
				failed, _ := c.run("systemctl", "--failed", "--no-legend")
				t.Logf("container degraded; failed units:\n%s", failed)
			}
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("container not running: %q %v\n%s", out, err, c.consoleTail())
	return nil
}

// childNamed returns the pid of a direct child of parent with that command
// name, or 0.
func childNamed(parent int, comm string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so cut at the last ')'.
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		rest := strings.Fields(s[close+1:])
		if len(rest) < 2 || s[open+1:close] != comm {
			continue
		}
		if ppid, _ := strconv.Atoi(rest[1]); ppid == parent {
			return pid
		}
	}
	return 0
}

// shutdown stops the container (SIGTERM to nspawn makes systemd power off),
// kills what is left after a grace period, and removes nspawn's leftovers.
func (c *container) shutdown() { c.stop.Do(c.shutdownOnce) }

func (c *container) shutdownOnce() {
	t := c.t
	select {
	case <-c.exited:
	default:
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(20 * time.Second):
			t.Errorf("container did not power off in 20 s; killing it")
			if c.leader != 0 {
				syscall.Kill(c.leader, syscall.SIGKILL) // ends its whole pid namespace
			}
			c.cmd.Process.Kill()
			<-c.exited
		}
	}
	for _, d := range c.cgroupDirs {
		if err := removeTree(d); err != nil {
			t.Errorf("cgroup clean-up: %v", err)
		}
	}
	removeEmptyDirs(nspawnRunDir, c.runDirExists)
}

// consoleTail is the end of the container's console, for failures.
func (c *container) consoleTail() string {
	b, _ := os.ReadFile(c.console)
	return tail(b, 3000)
}

// run executes a command inside every namespace of the container with a
// clean environment and returns its trimmed combined output.
func (c *container) run(args ...string) (string, error) {
	return c.runTimeout(60*time.Second, args...)
}

func (c *container) runTimeout(d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	full := append([]string{"-t", strconv.Itoa(c.leader), "-a", "--", "env", "-i",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "LC_ALL=C.UTF-8", "TERM=dumb"}, args...)
	out, err := exec.CommandContext(ctx, "nsenter", full...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return s, nil
}

// must runs a command inside and fails the test when it fails.
func (c *container) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// path maps a path inside the container onto the host.
func (c *container) path(p string) string { return filepath.Join(c.root, p) }

// writeFile puts a file into the container's file system.
func (c *container) writeFile(p string, data string, mode os.FileMode) {
	c.t.Helper()
	full := c.path(p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(data), mode); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil { // WriteFile keeps an existing file's mode
		c.t.Fatal(err)
	}
}

// dial connects from inside the container's network namespace, so the
// harness can reach services on the container's loopback. The socket
// keeps its namespace; the thread that made it is discarded.
func (c *container) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nsfd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", c.leader), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open container netns: %w", err)
	}
	defer unix.Close(nsfd)
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}

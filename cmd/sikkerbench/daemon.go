package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
)

func init() {
	register(section{name: "daemon", order: 30, run: runDaemon,
		about: "the daemon: start-up to READY=1, reload, pull, and its resident memory"})
}

// notifier is the NOTIFY_SOCKET of the daemons under test: a unixgram
// socket in the scratch directory, as systemd holds one.
type notifier struct {
	path  string
	conn  *net.UnixConn
	notes chan note
}

type note struct {
	at   time.Time
	line string
}

func listenNotify(dir string) (*notifier, error) {
	n := &notifier{path: filepath.Join(dir, "notify.sock"), notes: make(chan note, 4096)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: n.path, Net: "unixgram"})
	if err != nil {
		return nil, err
	}
	n.conn = c
	go func() {
		buf := make([]byte, 8192)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			at := time.Now()
			for _, l := range strings.Split(string(buf[:k]), "\n") {
				n.notes <- note{at, l}
			}
		}
	}()
	return n, nil
}

// drain forgets what was sent so far.
func (n *notifier) drain() {
	for {
		select {
		case <-n.notes:
		default:
			return
		}
	}
}

// wait returns when line arrived; it gives up when the daemon exits.
func (n *notifier) wait(line string, d *guardProc) (time.Time, error) {
	timeout := time.After(5 * time.Minute)
	for {
		select {
		case m := <-n.notes:
			if m.line == line {
				return m.at, nil
			}
		case <-d.done:
			return time.Time{}, d.explain(fmt.Errorf("no %s", line))
		case <-timeout:
			log, _ := os.ReadFile(d.logPath)
			return time.Time{}, fmt.Errorf("no %s within 5 minutes; the daemon's log ends:\n%s", line, tail(string(log)))
		}
	}
}

// guardProc is one running daemon.
type guardProc struct {
	cmd     *exec.Cmd
	pid     int
	done    chan struct{}
	err     error
	logPath string
}

func startGuard(ns string, bin binaries, c guardConfig, env []string, logPath string) (*guardProc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	argv := append(append([]string{"netns", "exec", ns, "env"}, env...), bin.guard, "-c", c.path)
	cmd := exec.Command("ip", argv...)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// ip and env exec the daemon in their place: the pid is the daemon's.
	p := &guardProc{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), logPath: logPath}
	stopGuard := guardKernel(p.pid)
	go func() {
		p.err = cmd.Wait()
		if err := stopGuard(); err != nil {
			p.err = err
		}
		close(p.done)
	}()
	return p, nil
}

// explain adds to a failed operation's error how the daemon ended, when
// it did, with the end of its log.
func (p *guardProc) explain(err error) error {
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		return err
	}
	log, _ := os.ReadFile(p.logPath)
	return fmt.Errorf("%w; the daemon exited: %v; its log ends:\n%s", err, p.err, tail(string(log)))
}

// stop signals the daemon and waits for it to exit.
func (p *guardProc) stop(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("the daemon did not exit after %s", sig)
	}
}

// memOp is one measured operation of the daemon.
type memOp struct {
	wall           time.Duration
	hwmKiB, rssKiB int64 // peak during the operation, resident after it settled
}

// daemonRun is one round of the daemon section.
type daemonRun struct {
	cold, boot, adopt memOp
	reload, pull      []memOp // rssKiB only after the first and the last
	seed              time.Duration
}

func runDaemon(o *options) error {
	policy, err := filepath.Abs(o.policy)
	if err != nil {
		return err
	}
	if _, err := os.Stat(policy); err != nil {
		return fmt.Errorf("the bus policy: %w (run from the source tree, or give -policy)", err)
	}
	bin, dir, err := o.setUp("daemon")
	if err != nil {
		return err
	}
	list, _ := addrList(o.entries, 0, 2)
	file, err := writeList(dir, "list.txt", list)
	if err != nil {
		return err
	}
	l, err := newLab(bin, dir, file)
	if err != nil {
		return err
	}
	atExit(l.close)
	bus, stopBus, err := dbustest.Launch(dir, dbustest.Shipped, policy)
	if err != nil {
		return err
	}
	atExit(stopBus)
	n, err := listenNotify(dir)
	if err != nil {
		return err
	}
	atExit(func() { n.conn.Close() })
	cfg, err := writeGuardConfig(dir, "daemon", l.url(), "")
	if err != nil {
		return err
	}
	env := append([]string{"NOTIFY_SOCKET=" + n.path, "DBUS_SYSTEM_BUS_ADDRESS=" + bus.Address}, keyEnv...)
	logPath := filepath.Join(dir, "daemon.log")
	var cur *guardProc
	atExit(func() {
		if cur != nil {
			_ = cur.stop(syscall.SIGKILL)
		}
	})
	start := func() (memOp, error) {
		n.drain()
		t0 := time.Now()
		p, err := startGuard(l.host, bin, cfg, env, logPath)
		if err != nil {
			return memOp{}, err
		}
		cur = p
		at, err := n.wait("READY=1", p)
		if err != nil {
			return memOp{}, err
		}
		op := memOp{wall: at.Sub(t0), hwmKiB: procKiB(p.pid, "VmHWM")}
		time.Sleep(o.settle)
		op.rssKiB = procKiB(p.pid, "VmRSS")
		return op, nil
	}
	// op measures f on the running daemon; rest says whether to read its
	// resident memory afterwards.
	op := func(f func() error, rest bool) (memOp, error) {
		select {
		case <-cur.done:
			return memOp{}, cur.explain(errors.New("the daemon had exited"))
		default:
		}
		if err := clearHWM(cur.pid); err != nil {
			return memOp{}, err
		}
		t0 := time.Now()
		if err := f(); err != nil {
			return memOp{}, cur.explain(err)
		}
		m := memOp{wall: time.Since(t0), hwmKiB: procKiB(cur.pid, "VmHWM")}
		if rest {
			time.Sleep(o.settle)
			m.rssKiB = procKiB(cur.pid, "VmRSS")
		}
		return m, nil
	}
	reload := func() error {
		n.drain()
		if err := cur.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return err
		}
		if _, err := n.wait("RELOADING=1", cur); err != nil {
			return err
		}
		_, err := n.wait("READY=1", cur)
		return err
	}
	pull := func() error {
		_, err := execTimed("", []string{"DBUS_SYSTEM_BUS_ADDRESS=" + bus.Address}, nil, bin.ctl, "pull")
		return err
	}

	var runs []daemonRun
	for i := range o.runs {
		var r daemonRun
		if err := l.emptyHost(cfg.state); err != nil {
			return err
		}
		if r.cold, err = start(); err != nil {
			return fmt.Errorf("cold start: %w", l.explain(err))
		}
		if i == 0 {
			for k := range 10 {
				m, err := op(reload, k == 0 || k == 9)
				if err != nil {
					return fmt.Errorf("reload %d: %w", k+1, l.explain(err))
				}
				r.reload = append(r.reload, m)
			}
			for k := range 10 {
				m, err := op(pull, k == 0 || k == 9)
				if err != nil {
					return fmt.Errorf("pull %d: %w", k+1, l.explain(err))
				}
				r.pull = append(r.pull, m)
			}
		}
		if err := cur.stop(syscall.SIGTERM); err != nil {
			return err
		}
		if r.boot, err = start(); err != nil {
			return fmt.Errorf("start from the cached list: %w", l.explain(err))
		}
		if err := cur.stop(syscall.SIGKILL); err != nil {
			return err
		}
		if r.adopt, err = start(); err != nil {
			return fmt.Errorf("start after kill -9: %w", l.explain(err))
		}
		if err := cur.stop(syscall.SIGTERM); err != nil {
			return err
		}
		cur = nil
		// The seed's run in the same round, as the reference for the times.
		if _, err := inNS(l.host, "ipset", "destroy"); err != nil {
			return err
		}
		f, rs, err := seedFlow(l.host, l.url(), dir, o.entries)
		if err != nil {
			return fmt.Errorf("seed flow: %w", l.explain(err))
		}
		r.seed = f.Wall + rs.Wall
		runs = append(runs, r)
	}
	printDaemon(o, runs)
	return nil
}

// The targets of the daemon's figures, for a list of 1 M entries.
const (
	bootTarget  = 2 * time.Second
	adoptTarget = time.Second
	peakTarget  = 64 << 10 // KiB
	restTarget  = 40 << 10 // KiB
)

func printDaemon(o *options, runs []daemonRun) {
	fmt.Printf("%d random global IPv4 addresses from sikkerapi-mock; the daemon with its defaults, NOTIFY_SOCKET and a private system bus. "+
		"Starts: median of %d runs; reloads (SIGHUP → RELOADING=1 → READY=1) and pulls (`sikkerctl pull`): 10 in a row in the first run. "+
		"Resident memory (VmRSS) read %s after the operation; the peak is VmHWM, reset before the operation. "+
		"The seed flow (curl + ipset restore + swap, %s) is measured in the same runs; targets are for 1 M entries.\n\n",
		o.entries, o.runs, o.settle, secs(median(runs, func(r daemonRun) time.Duration { return r.seed }).seed))
	seed := median(runs, func(r daemonRun) time.Duration { return r.seed }).seed
	target := func(ok bool, limit string) string {
		if limit == "" {
			return ""
		}
		return "≤ " + limit + " " + met(ok)
	}
	fmt.Println("| case | time | vs seed flow | time target | VmRSS at rest | target | peak VmHWM | target |")
	fmt.Println("|---|---:|---:|---|---:|---|---:|---|")
	row := func(name string, m memOp, timeLimit time.Duration, restLimit bool) {
		tt := ""
		if timeLimit > 0 {
			tt = target(m.wall <= timeLimit, fmt.Sprintf("%.1f s", timeLimit.Seconds()))
		}
		rt := ""
		if restLimit && m.rssKiB > 0 {
			rt = target(m.rssKiB <= restTarget, mib(restTarget))
		}
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", name, secs(m.wall), ratio(m.wall, seed), tt,
			mib(m.rssKiB), rt, mib(m.hwmKiB), target(m.hwmKiB <= peakTarget, mib(peakTarget)))
	}
	pick := func(f func(daemonRun) memOp) memOp {
		return f(median(runs, func(r daemonRun) time.Duration { return f(r).wall }))
	}
	row("cold start: empty namespace, no cached list, to READY=1", pick(func(r daemonRun) memOp { return r.cold }), 0, true)
	first := runs[0]
	series := func(ms []memOp) memOp {
		m := median(ms, func(m memOp) time.Duration { return m.wall })
		m.rssKiB = ms[len(ms)-1].rssKiB
		for _, x := range ms {
			m.hwmKiB = max(m.hwmKiB, x.hwmKiB)
		}
		return m
	}
	if len(first.reload) > 0 {
		row("1 reload of the same list", first.reload[0], 0, false)
		row("10 reloads (median time, highest peak, memory after the 10th)", series(first.reload), 0, true)
	}
	if len(first.pull) > 0 {
		row("1 pull of the same list", first.pull[0], 0, false)
		row("10 pulls (median time, highest peak, memory after the 10th)", series(first.pull), 0, true)
	}
	row("boot: start from the cached list, no table, to READY=1", pick(func(r daemonRun) memOp { return r.boot }), bootTarget, true)
	row("restart after kill -9: adopt the table, to READY=1", pick(func(r daemonRun) memOp { return r.adopt }), adoptTarget, true)
}

// Package instance keeps one sikkerguard per network namespace: the daemon,
// `--once` and `--cleanup` all drive the same kernel objects, so two of them
// at once would undo each other's work.
//
// The lock is an abstract unix socket. Abstract names belong to the network
// namespace, which is exactly the scope of the nftables table and the ipset
// sets; the kernel releases the name when the holder dies, however it dies,
// so a crash never leaves a stale lock; and a process that finds the name
// taken learns the holder's pid from the socket's peer credentials.
package instance

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultName is the abstract socket name of sikkerguard's lock.
const DefaultName = "sikkerguard.lock"

// Lock is a held instance lock; Release gives it up (exit does too).
type Lock struct {
	ln *net.UnixListener
}

// HeldError says that another process holds the lock.
type HeldError struct {
	PID  int    // 0 when the holder could not be identified
	Comm string // its command line, best effort
}

func (e *HeldError) Error() string {
	if e.PID == 0 {
		return "another sikkerguard is running in this network namespace"
	}
	who := fmt.Sprintf("pid %d", e.PID)
	if e.Comm != "" {
		who += " (" + e.Comm + ")"
	}
	return "another sikkerguard is running in this network namespace: " + who
}

// ErrHeld matches every *HeldError with errors.Is.
var ErrHeld = errors.New("instance lock held")

func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Acquire takes the lock name, or returns a *HeldError naming the holder.
func Acquire(name string) (*Lock, error) {
	addr := &net.UnixAddr{Name: "@" + name, Net: "unix"}
	ln, err := net.ListenUnix("unix", addr)
	if err == nil {
		l := &Lock{ln: ln}
		go l.serve()
		return l, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("instance lock: %w", err)
	}
	return nil, holder(addr)
}

// serve answers holder look-ups: the connection itself carries our
// credentials, so it is closed at once.
func (l *Lock) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// holder identifies the process listening on addr.
func holder(addr *net.UnixAddr) error {
	c, err := net.DialUnix("unix", nil, addr)
	if err != nil {
		return &HeldError{}
	}
	defer c.Close()
	raw, err := c.SyscallConn()
	if err != nil {
		return &HeldError{}
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return &HeldError{}
	}
	return &HeldError{PID: int(cred.Pid), Comm: cmdline(int(cred.Pid))}
}

// cmdline reads a process's command line from /proc, NUL-separated words
// joined by spaces and cut to a readable length; "" when it is gone.
func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// Release gives the lock up.
func (l *Lock) Release() error {
	if l == nil || l.ln == nil {
		return nil
	}
	return l.ln.Close()
}

package nft

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Foreign event listeners: while any socket of the namespace is a member of
// the nf_tables event group (`nft monitor`, firewalld, another daemon),
// the kernel builds one notification of about 8 KiB (kmalloc-8k) for every
// element a transaction adds or deletes, and frees them only when the
// commit ends. Measured on Linux 6.18: a 200,000-element load with
// `nft monitor` running took 1.5 GiB of kernel memory (kmalloc-8k objects
// 48 → 199,120), a million elements about 8 GiB, which ran a 24 GiB
// machine out of memory. Our own watcher leaves the group during our
// transactions (content.go); other programs' sockets cannot be made to.
// So before a large transaction the backend looks for them and warns,
// naming the process. It does not refuse: a refused first load would leave
// the host without a blocklist, and the listener may be harmless on a
// machine with the memory to spare.

const (
	// listenerCheckMin is the number of elements from which a transaction
	// is checked for foreign listeners.
	listenerCheckMin = 50_000
	// notifyBytes is the kernel memory one element's notification holds
	// until the commit ends (kmalloc-8k, measured).
	notifyBytes = 8 << 10
)

// netlinkSock is one line of /proc/net/netlink.
type netlinkSock struct {
	Proto  int    // Eth: the netlink protocol (unix.NETLINK_NETFILTER…)
	Port   uint32 // Pid: the socket's port id
	Groups uint32 // the first 32 multicast groups, group g at bit g-1
	Inode  uint64
}

// member reports whether the socket receives nf_tables events.
func (s netlinkSock) member() bool {
	return s.Proto == unix.NETLINK_NETFILTER && s.Groups&(1<<(nfnlgrpNFTables-1)) != 0
}

// parseNetlink reads /proc/net/netlink: a header line, then one socket a
// line (sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode).
func parseNetlink(r io.Reader) ([]netlinkSock, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		return nil, fmt.Errorf("netlink socket table: empty: %w", cmp.Or(sc.Err(), io.ErrUnexpectedEOF))
	}
	if f := strings.Fields(sc.Text()); len(f) < 10 || f[1] != "Eth" || f[3] != "Groups" || f[9] != "Inode" {
		return nil, fmt.Errorf("netlink socket table: unknown header %q", sc.Text())
	}
	var out []netlinkSock
	for line := 2; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 10 {
			return nil, fmt.Errorf("netlink socket table line %d: %d fields, want 10", line, len(f))
		}
		proto, err1 := strconv.Atoi(f[1])
		port, err2 := strconv.ParseUint(f[2], 10, 32)
		groups, err3 := strconv.ParseUint(f[3], 16, 32)
		inode, err4 := strconv.ParseUint(f[9], 10, 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return nil, fmt.Errorf("netlink socket table line %d: %w", line, err)
		}
		out = append(out, netlinkSock{Proto: proto, Port: uint32(port), Groups: uint32(groups), Inode: inode})
	}
	return out, sc.Err()
}

// eventListeners returns the members of the nf_tables event group among
// socks, leaving out the socket with inode skip (our watcher's).
func eventListeners(socks []netlinkSock, skip uint64) []netlinkSock {
	var out []netlinkSock
	for _, s := range socks {
		if s.member() && (skip == 0 || s.Inode != skip) {
			out = append(out, s)
		}
	}
	return out
}

// readNetlink reads the netlink socket table of the namespace nsFD refers
// to (the process's own when nsFD <= 0): /proc/thread-self/net shows the
// namespace of the reading thread.
func readNetlink(nsFD int) ([]netlinkSock, error) {
	var socks []netlinkSock
	err := inNetNS(nsFD, func() error {
		f, err := os.Open("/proc/thread-self/net/netlink")
		if err != nil {
			return err
		}
		defer f.Close()
		socks, err = parseNetlink(f)
		return err
	})
	return socks, err
}

// socketOwners names the processes that hold the sockets of inodes, as
// "nft (pid 42)", from the fd links under procRoot (/proc): a socket's
// link reads socket:[INODE]. Processes this one cannot inspect are left
// out.
func socketOwners(procRoot string, inodes []uint64) map[uint64][]string {
	want := map[string]uint64{}
	for _, ino := range inodes {
		want[fmt.Sprintf("socket:[%d]", ino)] = ino
	}
	out := map[uint64][]string{}
	pids, _ := filepath.Glob(filepath.Join(procRoot, "[0-9]*"))
	for _, dir := range pids {
		pid := filepath.Base(dir)
		fds, err := os.ReadDir(filepath.Join(dir, "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name()))
			if err != nil {
				continue
			}
			ino, ok := want[link]
			if !ok {
				continue
			}
			name := pid
			if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
				name = strings.TrimSpace(string(b)) + " (pid " + pid + ")"
			}
			if !slices.Contains(out[ino], name) {
				out[ino] = append(out[ino], name)
			}
		}
	}
	return out
}

// listenerNames names each listener by the processes holding its socket,
// or by its port id when none can be seen: under the service's sandbox
// (ProtectProc=invisible, no CAP_SYS_PTRACE) other processes are hidden,
// and a process's first netlink socket has its pid as port id.
func listenerNames(ls []netlinkSock, owners map[uint64][]string) []string {
	var who []string
	for _, l := range ls {
		if names := owners[l.Inode]; len(names) > 0 {
			who = append(who, names...)
		} else {
			who = append(who, fmt.Sprintf("netlink port %d (process not visible; often its pid)", l.Port))
		}
	}
	return who
}

// announced is how many element notifications bt makes the kernel build
// for a listener: the elements written, and those of the sets it
// flushes, as far as the copy tells.
func (b *Backend) announced(bt *batch) int {
	n := bt.elems
	for _, name := range bt.flushed {
		for _, s := range b.lay.sets {
			if s.name == name {
				n += b.expectedElements(s)
			}
		}
	}
	return n
}

// warnListeners logs, once for the transaction bt, the foreign members of
// the nf_tables event group when bt announces enough elements to make
// their notifications a hazard. It runs with ws.mu held (sendOn), so the
// watcher's socket, which pauseWatch took out of the group, stays put.
func (b *Backend) warnListeners(bt *batch, op string) {
	if bt.elems < b.listenerMin && len(bt.flushed) == 0 {
		return
	}
	n := b.announced(bt)
	if n < b.listenerMin {
		return
	}
	ls, err := b.foreignListeners()
	if err != nil {
		b.log.Debug("nftables: cannot look for other listeners of nftables events", "err", err)
		return
	}
	if len(ls) == 0 {
		return
	}
	inodes := make([]uint64, len(ls))
	for i, l := range ls {
		inodes[i] = l.Inode
	}
	who := listenerNames(ls, socketOwners("/proc", inodes))
	mem := int64(n) * notifyBytes
	b.listenerWarnings.Add(1)
	b.log.Warn("nftables: another program listens to nftables events; the kernel holds one notification per element of this transaction until it commits",
		"op", op, "elements", n, "kernel_memory_estimate", formatBytes(mem), "kernel_memory_estimate_bytes", mem,
		"listeners", who, "hint", "stop the listener (e.g. `nft monitor`) during large loads, or make sure the host has the memory")
}

// foreignListeners returns the members of the event group in the
// backend's namespace other than our watcher's socket; the caller holds
// ws.mu.
func (b *Backend) foreignListeners() ([]netlinkSock, error) {
	socks, err := readNetlink(b.nsFD)
	if err != nil {
		return nil, err
	}
	var skip uint64
	if b.ws.fd > 0 {
		var st unix.Stat_t
		if unix.Fstat(b.ws.fd, &st) == nil {
			skip = st.Ino
		}
	}
	return eventListeners(socks, skip), nil
}

// formatBytes prints n in binary units: "1.5 GiB", "800 MiB".
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GiB"
	case n >= 1<<20:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n>>10, 10) + " KiB"
}

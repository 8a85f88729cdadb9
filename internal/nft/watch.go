package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables/userdata"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"golang.org/x/sys/unix"
)

// Watching: nf_tables multicasts every committed change to the
// NFNLGRP_NFTABLES group, one message per object (table, chain, rule, set,
// element list), followed by one NEWGEN message per transaction that names
// the new generation and the pid and name of the process that committed
// it. A transaction's messages are sent under the commit mutex, so they
// arrive together and in order: the watcher collects what a transaction
// did to the tables it is asked about and reports it when the NEWGEN
// arrives, unless it came from one of our sockets (the NEWGEN's port id)
// or the committing task is a thread of this process. A dropped message
// (ENOBUFS: the socket buffer ran full, for example during our own load of
// a million elements, which the kernel announces element by element) is
// reported as a Lost change, which makes the daemon check the objects.

// nfnlgrpNFTables is NFNLGRP_NFTABLES (linux/netfilter/nfnetlink.h).
const nfnlgrpNFTables = 7

// Attributes of NFT_MSG_NEWGEN (linux nf_tables.h).
const (
	nftaGenProcPID  = 2
	nftaGenProcName = 3
)

// TableEvent is one object message of a transaction, as the matcher of
// WatchTables sees it.
type TableEvent struct {
	Family uint8  // unix.NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6…
	Table  string // the table the object belongs to
	Msg    int    // unix.NFT_MSG_NEWRULE, NFT_MSG_DELSETELEM…
	Name   string // the chain (of a rule), set (of elements) or object name
	// Comment is a rule's comment (the userdata iptables-nft keeps
	// `-m comment` in, and nft's `comment`), "" when it has none.
	Comment string
	// Keys are the keys of the elements an element message carries;
	// Interval is set when one of them has flags (an interval set's).
	Keys     [][]byte
	Interval bool
}

// Verdict is what a matcher makes of an event.
type Verdict int

const (
	Ignore Verdict = iota // not about the watcher's objects
	Maybe                 // may concern them: Intact decides
	Sure                  // certainly changed them
)

// Delete reports whether the event removes something.
func (e TableEvent) Delete() bool {
	switch e.Msg {
	case unix.NFT_MSG_DELTABLE, unix.NFT_MSG_DELCHAIN, unix.NFT_MSG_DELRULE, unix.NFT_MSG_DELSET,
		unix.NFT_MSG_DELSETELEM, unix.NFT_MSG_DELOBJ, nftMsgDestroyTable, nftMsgDestroyChain,
		nftMsgDestroyRule, nftMsgDestroySet, nftMsgDestroySetElem, nftMsgDestroyObj:
		return true
	}
	return false
}

// Elements reports whether the event changes set elements only.
func (e TableEvent) Elements() bool {
	return e.Msg == unix.NFT_MSG_NEWSETELEM || e.Msg == unix.NFT_MSG_DELSETELEM || e.Msg == nftMsgDestroySetElem
}

// NFT_MSG_DESTROY* (Linux 6.3): deletions that do not fail on a missing
// object; notifications use the DEL types, but a kernel may echo either.
const (
	nftMsgDestroyTable   = 26
	nftMsgDestroyChain   = 27
	nftMsgDestroyRule    = 28
	nftMsgDestroySet     = 29
	nftMsgDestroySetElem = 30
	nftMsgDestroyObj     = 31
)

// eventText says what an event did: %[1]s is the object's name, %[2]s
// its table ("inet sikkerguard").
var eventText = map[int]string{
	unix.NFT_MSG_NEWTABLE:   "table %[2]s changed",
	unix.NFT_MSG_DELTABLE:   "table %[2]s deleted",
	nftMsgDestroyTable:      "table %[2]s deleted",
	unix.NFT_MSG_NEWCHAIN:   "chain %[1]s added or changed in %[2]s",
	unix.NFT_MSG_DELCHAIN:   "chain %[1]s deleted from %[2]s",
	nftMsgDestroyChain:      "chain %[1]s deleted from %[2]s",
	unix.NFT_MSG_NEWRULE:    "rule added to chain %[1]s of %[2]s",
	unix.NFT_MSG_DELRULE:    "rule deleted from chain %[1]s of %[2]s",
	nftMsgDestroyRule:       "rule deleted from chain %[1]s of %[2]s",
	unix.NFT_MSG_NEWSET:     "set %[1]s added or changed in %[2]s",
	unix.NFT_MSG_DELSET:     "set %[1]s deleted from %[2]s",
	nftMsgDestroySet:        "set %[1]s deleted from %[2]s",
	unix.NFT_MSG_NEWSETELEM: "elements added to set %[1]s of %[2]s",
	unix.NFT_MSG_DELSETELEM: "elements deleted from set %[1]s of %[2]s",
	nftMsgDestroySetElem:    "elements deleted from set %[1]s of %[2]s",
	unix.NFT_MSG_NEWOBJ:     "object %[1]s added or changed in %[2]s",
	unix.NFT_MSG_DELOBJ:     "object %[1]s deleted from %[2]s",
	nftMsgDestroyObj:        "object %[1]s deleted from %[2]s",
}

func (e TableEvent) String() string {
	table := familyName(e.Family) + " " + e.Table
	if f, ok := eventText[e.Msg]; ok {
		return fmt.Sprintf(f, e.Name, table)
	}
	return fmt.Sprintf("message %d for %s", e.Msg, table)
}

func familyName(f uint8) string {
	switch f {
	case unix.NFPROTO_INET:
		return "inet"
	case unix.NFPROTO_IPV4:
		return "ip"
	case unix.NFPROTO_IPV6:
		return "ip6"
	case unix.NFPROTO_ARP:
		return "arp"
	case unix.NFPROTO_BRIDGE:
		return "bridge"
	case unix.NFPROTO_NETDEV:
		return "netdev"
	}
	return fmt.Sprintf("family %d", f)
}

// WatchTables reports the transactions of other processes that contain an
// event match does not ignore, until ctx ends; nsFD > 0 watches that
// network namespace. Transactions committed by a thread of this process,
// or by a process for which ours is true (a helper the caller ran, such as
// iptables-restore), are not reported. The channel is closed when ctx ends or the socket
// fails. Changes are coalesced when the reader is slow: a restore only
// needs to know that something changed.
// WatchOptions tune WatchTables.
type WatchOptions struct {
	// Ours reports processes whose transactions are not another
	// program's (helpers the caller ran). It is asked with the committing
	// task's pid as the kernel names it (in the initial pid namespace) and
	// with the sending socket's port id, which the kernel picks as the
	// sender's pid in its own pid namespace: inside a container only the
	// second matches the pid the caller started.
	Ours func(pid int) bool
	// OnCommit, when set, receives the matching events of each foreign
	// transaction before its Change is sent; overflow is set when some
	// were left out (more than maxPending).
	OnCommit func(evs []TableEvent, overflow bool)
	// State, when set, is told whether the watcher listens and whether it
	// lost events (content.go).
	State *watchState
}

// maxPending bounds the events kept of one transaction.
const maxPending = 65536

func WatchTables(ctx context.Context, nsFD int, log *slog.Logger, match func(TableEvent) Verdict, opt WatchOptions) (<-chan firewall.Change, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fd, err := openSocket(nsFD)
	if err != nil {
		return nil, fmt.Errorf("nftables watch: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, nfnlgrpNFTables); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("nftables watch: join the nftables event group: %w", err)
	}
	// Room for the events of ordinary transactions; a big load of our own
	// overruns it anyway, and that is reported as Lost.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	// A bounded wait lets the reader notice the end of ctx.
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200_000})
	out := make(chan firewall.Change, 1)
	if st := opt.State; st != nil {
		st.mu.Lock()
		st.fd = fd
		st.mu.Unlock()
		st.listening.Store(true)
	}
	go func() {
		defer close(out)
		if st := opt.State; st != nil {
			defer func() {
				st.listening.Store(false)
				st.mu.Lock() // not while a transaction of ours has the group left
				st.fd = -1
				unix.Close(fd)
				st.mu.Unlock()
			}()
		} else {
			defer unix.Close(fd)
		}
		self := ownThread
		if opt.Ours != nil {
			self = func(tid int) bool { return ownThread(tid) || opt.Ours(tid) }
		}
		w := watcher{self: self, ours: opt.Ours, match: match, out: out, onCommit: opt.OnCommit}
		buf := make([]byte, 256<<10)
		for ctx.Err() == nil {
			if opt.State != nil && opt.State.kick.Swap(false) {
				w.emit(firewall.Change{What: "a change may have been missed around a transaction of ours", Lost: true})
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			switch {
			case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.ENOBUFS):
				if opt.State != nil {
					opt.State.lost.Store(true)
				}
				w.pending, w.sure, w.overflow = nil, false, false
				if w.onCommit != nil {
					w.onCommit(nil, true)
				}
				w.emit(firewall.Change{What: "nftables events were lost (socket buffer overrun)", Lost: true})
				continue
			case err != nil:
				log.Error("nftables watch stopped; only the periodic check remains", "err", err)
				return
			}
			w.feed(buf[:n])
		}
	}()
	return out, nil
}

// watcher collects the events of one transaction at a time.
type watcher struct {
	self     func(tid int) bool // reports the committing threads of this process
	ours     func(pid int) bool // WatchOptions.Ours, asked with the sending port id
	match    func(TableEvent) Verdict
	out      chan firewall.Change
	pending  []TableEvent // matching events of the transaction in progress
	sure     bool         // one of them was Sure
	overflow bool         // some were left out of pending
	onCommit func([]TableEvent, bool)
}

// feed parses one datagram of notifications.
func (w *watcher) feed(b []byte) {
	for off := 0; off+unix.NLMSG_HDRLEN <= len(b); {
		l := int(binary.NativeEndian.Uint32(b[off:]))
		if l < unix.NLMSG_HDRLEN || off+l > len(b) {
			return
		}
		typ := binary.NativeEndian.Uint16(b[off+4:])
		port := binary.NativeEndian.Uint32(b[off+12:]) // nlmsg_pid: the sending socket
		m := b[off+unix.NLMSG_HDRLEN : off+l]
		off += (l + 3) &^ 3
		if typ>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m) < 4 {
			continue
		}
		msg := int(typ & 0xff)
		attrs := parseAttrs(m[4:])
		if msg == nftMsgNewGen {
			if ownPort(port) {
				w.pending, w.sure, w.overflow = nil, false, false
				continue
			}
			w.commit(int(attrs.u32(nftaGenProcPID)), attrs.str(nftaGenProcName), port)
			continue
		}
		ev := TableEvent{Family: m[0], Msg: msg, Table: attrs.str(1)} // NFTA_*_TABLE (NFTA_TABLE_NAME) is 1 for all
		switch msg {
		case unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_DELCHAIN, nftMsgDestroyChain:
			ev.Name = attrs.str(unix.NFTA_CHAIN_NAME)
		case unix.NFT_MSG_NEWRULE, unix.NFT_MSG_DELRULE, nftMsgDestroyRule:
			ev.Name = attrs.str(unix.NFTA_RULE_CHAIN)
			ev.Comment, _ = userdata.GetString(attrs[unix.NFTA_RULE_USERDATA], userdata.TypeComment)
		case unix.NFT_MSG_NEWSET, unix.NFT_MSG_DELSET, nftMsgDestroySet:
			ev.Name = attrs.str(unix.NFTA_SET_NAME)
		case unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM, nftMsgDestroySetElem:
			ev.Name = attrs.str(unix.NFTA_SET_ELEM_LIST_SET)
			ev.Keys, ev.Interval = elementKeys(attrs[unix.NFTA_SET_ELEM_LIST_ELEMENTS])
		case unix.NFT_MSG_NEWOBJ, unix.NFT_MSG_DELOBJ, nftMsgDestroyObj:
			ev.Name = attrs.str(unix.NFTA_OBJ_NAME)
		}
		switch v := w.match(ev); {
		case v == Ignore:
		case len(w.pending) < maxPending:
			w.pending = append(w.pending, ev)
			w.sure = w.sure || v == Sure
		default:
			w.sure, w.overflow = w.sure || v == Sure, true
		}
	}
}

// commit ends a transaction: a foreign one that touched a watched table is
// reported.
func (w *watcher) commit(pid int, comm string, port uint32) {
	evs, sure, overflow := w.pending, w.sure, w.overflow
	w.pending, w.sure, w.overflow = nil, false, false
	if len(evs) == 0 || w.self(pid) {
		return
	}
	// An autobound socket's port id is its process's pid in that process's
	// own pid namespace (when free), which is the pid a helper was started
	// with even where the committing pid above is not.
	if w.ours != nil && port != 0 && port <= math.MaxInt32 && w.ours(int(port)) {
		return
	}
	if w.onCommit != nil {
		w.onCommit(evs, overflow)
	}
	c := firewall.Change{PID: pid, Comm: comm, Sure: sure}
	var what []string
	for _, e := range evs {
		if s := e.String(); !slices.Contains(what, s) && len(what) < 4 {
			what = append(what, s)
		}
	}
	c.What = strings.Join(what, "; ")
	if c.Comm == "" && pid > 0 {
		c.Comm = procComm(pid)
	}
	w.emit(c)
}

// emit hands a change to the reader; when one is already waiting, the two
// are merged, since the reader restores once for both.
func (w *watcher) emit(c firewall.Change) {
	select {
	case w.out <- c:
		return
	default:
	}
	select {
	case old := <-w.out:
		c = mergeChanges(old, c)
	default:
	}
	select {
	case w.out <- c:
	default: // the reader took the old one meanwhile and another came
	}
}

// mergeChanges keeps the latest change's process and words, and the
// flags of both; a reader that lags behind a flood of changes must not see
// the text grow without bound.
func mergeChanges(a, b firewall.Change) firewall.Change {
	m := b
	m.Lost = a.Lost || b.Lost
	m.Sure = a.Sure || b.Sure
	if a.What != b.What && !strings.HasSuffix(m.What, moreChanges) {
		m.What += moreChanges
	}
	return m
}

const moreChanges = " (and earlier changes)"

// elementKeys returns the keys of an NFTA_SET_ELEM_LIST_ELEMENTS list, and
// whether any element carries flags (an interval set's start or end).
func elementKeys(list []byte) (keys [][]byte, interval bool) {
	eachAttr(list, func(_ uint16, elem []byte) {
		a := parseAttrs(elem)
		if a.u32(unix.NFTA_SET_ELEM_FLAGS) != 0 {
			interval = true
		}
		if k, ok := a[unix.NFTA_SET_ELEM_KEY]; ok {
			if v, ok := parseAttrs(k)[unix.NFTA_DATA_VALUE]; ok {
				keys = append(keys, append([]byte(nil), v...))
			}
		}
	})
	return keys, interval
}

// eachAttr calls fn for every attribute of b, in order (parseAttrs keeps
// only the last of a type).
func eachAttr(b []byte, fn func(typ uint16, payload []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[4:l])
		b = b[min((l+3)&^3, len(b)):]
	}
}

// Our sockets' netlink port ids: a NEWGEN message carries the port id of
// the socket that sent the transaction, which identifies our own commits
// even when the thread that sent them has gone. Sockets are short-lived
// and the kernel picks fresh ids, so a few hundred recent ones suffice.
var ports struct {
	sync.Mutex
	ids  [512]uint32
	next int
}

func notePort(id uint32) {
	ports.Lock()
	defer ports.Unlock()
	ports.ids[ports.next%len(ports.ids)] = id
	ports.next++
}

func ownPort(id uint32) bool {
	if id == 0 {
		return false // the kernel's own
	}
	ports.Lock()
	defer ports.Unlock()
	n := min(ports.next, len(ports.ids))
	return slices.Contains(ports.ids[:n], id)
}

// ownThread reports whether tid is a thread of this process. NEWGEN names
// the committing task, which for a Go program is whichever thread ran the
// sendmsg, not the process id.
func ownThread(tid int) bool {
	if tid <= 0 {
		return false
	}
	if tid == os.Getpid() {
		return true
	}
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", tid))
	return err == nil
}

// procComm reads a process's name from /proc, best effort: the process
// may be gone, or in another pid namespace.
func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Watch reports changes that other programs make to table inet
// sikkerguard. Every object in it is ours, so every such change is Sure.
// Element changes of the hash sets are also kept for Restore, which then
// undoes just them (drift.go).
func (b *Backend) Watch(ctx context.Context) (<-chan firewall.Change, error) {
	return WatchTables(ctx, b.nsFD, b.log, func(e TableEvent) Verdict {
		if e.Family == unix.NFPROTO_INET && e.Table == TableName {
			return Sure
		}
		return Ignore
	}, WatchOptions{OnCommit: b.noteDrift, State: &b.ws})
}

// Package nft is sikkerguard's nftables backend: it owns the table
// `inet sikkerguard` and keeps the kernel's blocklist equal to an ipnet.Set,
// one kernel transaction per operation.
//
// Layout: interval sets allow4/allow6 (whitelist) and blocklist4/blocklist6
// (ranges of two or more addresses), plus hash sets blockhost4/blockhost6 for
// single addresses. Feeds are mostly single addresses; in a hash set each
// costs one 16-byte element on the wire and one kernel object, where an
// interval set needs a start and an end element (40 bytes) and two rbtree
// nodes, and hash inserts are O(1) against the rbtree's O(log n). The price
// is a second lookup per packet (a hash probe); docs/benchmarks.md has the
// numbers.
//
// The backend never reads a set back to plan a change (a dump of a hash set
// costs time quadratic in its size: 28 s for a million elements): it keeps
// its own copy of what it loaded and derives every delta from that copy
// with ipnet.Diff. A failed transaction is rolled back by the kernel, so
// the copy is only replaced after a successful one. Only the first
// transaction of a process reads something: the declaration of a table
// left by an earlier process, to adopt it in place (adopt.go), and the
// content records the table carries, which tell exactly what each set
// holds as long as nothing has committed since (seal.go); then the
// adoption sends only the difference.
//
// Batches are encoded by this package into 1 MiB chunks and sent with one
// sendmsg; google/nftables encodes the rule expressions and reads counters.
package nft

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"golang.org/x/sys/unix"
)

// Backend manages the sikkerguard table. It is safe for concurrent use;
// operations are serialised.
type Backend struct {
	log  *slog.Logger
	cfg  firewall.Settings
	lay  layout
	nsFD int

	mu    sync.Mutex
	built bool // the table was (re)built by this Backend
	// untrimmed: the hash sets may still hold singles of an earlier
	// process (see trimHashes).
	untrimmed bool
	block     ipnet.Set // what the kernel holds, valid when built
	allow     ipnet.Set
	// extra holds the role lists (Monitor, Out, Scoped) the kernel holds;
	// its Block and Allow are unused.
	extra firewall.Lists
	// pending holds the role lists of the operation under way (Apply,
	// Restore): set under mu before a build or commit.
	pending firewall.Lists
	// moved: singles of an earlier list that the hash sets still hold
	// although block covers them with a range (see moved.go).
	moved ipnet.Set
	seq   uint32
	// everBuilt: block and allow hold the lists of the last Apply, which
	// Restore puts back; Remove clears it.
	everBuilt bool
	sig       []string // the declaration the last build left (intact.go)
	// sizes: the declared size of each set of the layout in the kernel
	// (0: none), bases the base chain of each hook (adopt.go), as the
	// last build or resize left them.
	sizes map[string]uint32
	bases map[string]string
	id    identity // where content records are valid (seal.go)
	// presumed: what an earlier process probably applied (Presume), for
	// the first build; cleared by it.
	presumed *[2]ipnet.Set

	driftMu sync.Mutex
	drift   elemDrift // other programs' element changes seen by Watch (drift.go)
	ws      watchState
	// listenerMin: transactions of this many elements look for foreign
	// listeners of nftables events (listeners.go).
	listenerMin int
	// listenerWarnings counts the transactions warnListeners warned of.
	listenerWarnings atomic.Uint64
}

// Option tunes New.
type Option func(*Backend)

// WithNetNSFd makes the backend work in the network namespace the file
// descriptor refers to (tests and benchmarks); the caller keeps it open.
func WithNetNSFd(fd int) Option { return func(b *Backend) { b.nsFD = fd } }

// New checks s and returns a backend; it does not touch the kernel.
func New(s firewall.Settings, log *slog.Logger, opts ...Option) (*Backend, error) {
	cfg, err := backend.Check(s)
	if err != nil {
		return nil, fmt.Errorf("nftables settings: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Backend{log: log, cfg: cfg, lay: newLayout(cfg), seq: uint32(time.Now().Unix()), listenerMin: listenerCheckMin}
	b.ws.fd = -1
	for _, o := range opts {
		o(b)
	}
	b.id = readIdentity(b.nsFD)
	return b, nil
}

func (b *Backend) family(s ipnet.Set) ipnet.Set {
	if !b.cfg.IPv6 {
		s.V6 = nil
	}
	return s
}

// Apply makes the kernel hold the lists (each merged). The first call
// builds the table, or adopts one left by an earlier process without a moment
// unprotected (see adopt.go): with the difference alone when the table's
// records prove what it holds (seal.go), else with the lists in full. Later
// calls send the cheaper of a delta and a full replace of the blocklist; a
// changed whitelist or role list is replaced in full in the same transaction.
// The backend keeps the slices: the caller must not modify them afterwards.
// Role lists the settings did not ask for are an error.
func (b *Backend) Apply(l firewall.Lists) error {
	if err := b.checkRoles(l); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l = l.Family(b.cfg.IPv6)
	block, allow := l.Block, l.Allow
	b.pending = l
	if !b.built {
		return b.build(block, allow)
	}
	added, removed := ipnet.Diff(b.block, block)
	delta := len(added.V4) + len(added.V6) + len(removed.V4) + len(removed.V6)
	full := len(block.V4) + len(block.V6)
	if small := b.tooSmall(block, movedSingles(b.block, block)); len(small) > 0 {
		return b.grow(small, block, allow)
	}
	if delta < full {
		return b.commit("update", block, allow, func(bt *batch) (ipnet.Set, error) {
			return b.writeDelta(bt, block, added, removed), nil
		})
	}
	return b.commit("replace", block, allow, func(bt *batch) (ipnet.Set, error) { return b.writeFull(bt, block), nil })
}

// build brings the kernel to the layout with all elements in one
// transaction: it creates the table, or adopts the one an earlier process
// left (see adopt.go). A batch the kernel refuses because the ruleset changed
// since it was read is planned again.
func (b *Backend) build(block, allow ipnet.Set) error { return b.buildHot(block, allow, ipnet.Set{}) }

// A build attempt: renew recreates every sized hash set (sized.go).
type attempt struct{ renew bool }

// buildHot is build; a missing table with a large list gets the entries of
// hot first (hot.go).
func (b *Backend) buildHot(block, allow, hot ipnet.Set) error {
	var at attempt
	for n := 1; ; n++ {
		err := b.buildOnce(block, allow, hot, at)
		if n < 3 && (errors.Is(err, errDumpInterrupted) || errors.Is(err, unix.ERESTART)) {
			b.log.Debug("nftables ruleset changed while building, retrying", "attempt", n, "err", err)
			continue
		}
		if !at.renew && errors.Is(err, unix.ENFILE) {
			// A plain adoption keeps the earlier singles it cannot
			// know: they and the new ones did not fit the kept set.
			b.log.Info("nftables: a kept hash set is full, recreating the hash sets", "err", err)
			at.renew = true
			continue
		}
		return err
	}
}

func (b *Backend) buildOnce(block, allow, hot ipnet.Set, at attempt) error {
	fd, err := openSocket(b.nsFD)
	if err != nil {
		return fmt.Errorf("nftables build: %w", err)
	}
	defer unix.Close(fd)
	// A dump never takes long; a kernel that does not answer is a bug, not
	// a reason to hang the daemon's start.
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	kt, gen, err := readTable(fd, &b.seq)
	if err != nil {
		return fmt.Errorf("nftables read table: %w", err)
	}
	bt := newBatchAt(b.seq, gen)
	fill := func(bt *batch) {
		for _, s := range b.lay.sets {
			b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, pick(s, block, allow, b.pending))
		}
	}
	op := "build"
	var moved ipnet.Set
	known := false
	l := b.lay.sized(block, ipnet.Set{}, false)
	sizes, bases := declared(l, nil, nil), l.hookNames()
	switch {
	case kt == nil && !hot.IsEmpty() && len(block.V4)+len(block.V6) >= hotMin:
		return b.buildHotFirst(fd, gen, l, block, allow, hot)
	case kt == nil:
		err = buildTable(bt, l, false)
		fill(bt)
	case !kt.ours():
		// The name is ours by contract; whatever holds it is replaced.
		b.log.Warn("replacing a table sikkerguard did not create", "table", "inet "+TableName, "comment", kt.comment)
		op = "replace table"
		err = buildTable(bt, l, true)
		fill(bt)
	default:
		op = "adopt"
		// A kept hash set must take the new singles and the earlier
		// ones that moved into a range (moved.go), which stay until a
		// later transaction; deletions make room within the batch.
		var stay ipnet.Set
		if b.presumed != nil {
			stay = movedSingles(b.presumed[0], block)
		}
		l = b.lay.sized(block, stay, at.renew)
		p := planAdoption(l, kt)
		sizes, bases = declared(l, kt, &p), p.base
		hs, ok := b.knownContent(kt, gen, block, allow)
		if p.known = ok && p.keepsAll(b.lay); p.known {
			// The records prove what the sets hold: send the difference.
			op, known = "adopt (content known)", true
			err = writeAdoption(bt, l, p, func(bt *batch) { moved = b.writeKnown(bt, hs, block, allow) })
		} else {
			err = writeAdoption(bt, l, p, fill)
		}
		b.log.Info("nftables adopting the table left by an earlier run", "table", "inet "+TableName,
			"kept_sets", len(p.keepSets), "recreated_or_deleted_sets", len(p.delSets),
			"base_chains", p.baseChains(), "deleted_base_chains", p.lateDel, "content_known", p.known)
	}
	if err != nil {
		return err
	}
	if op != "adopt" {
		// The sets hold exactly the lists (and moved) after this batch;
		// the plain adoption leaves earlier singles until trimHashes.
		b.sealWith(bt, block, allow, moved)
	}
	if err := b.sendOn(fd, bt, op); err != nil {
		return err
	}
	b.built, b.everBuilt, b.block, b.allow, b.moved, b.presumed, b.extra = true, true, block, allow, moved, nil, b.pending
	b.sizes, b.bases = sizes, bases
	b.recordSignature()
	if op != "adopt" && !known {
		b.ws.lost.Store(false) // every set was loaded from the copy just now
	}
	b.log.Info("nftables table built", "table", "inet "+TableName, "op", op,
		"ranges_ipv4", len(block.V4), "ranges_ipv6", len(block.V6), "allow_ranges_ipv4", len(allow.V4), "allow_ranges_ipv6", len(allow.V6))
	switch {
	case op == "adopt":
		b.untrimmed = true
		return b.trimHashes()
	case !moved.IsEmpty():
		// As in commit: the list is in force, the moved singles go next.
		if err := b.trimMoved(); err != nil {
			b.log.Warn("nftables: could not remove singles that moved into ranges", "err", err)
		}
	}
	return nil
}

// trimHashes replaces the hash sets' elements with the singles of block,
// leaving the interval sets alone; it follows an adoption, which left the
// earlier process's singles in the hash sets.
// Until it succeeds the table also blocks singles the earlier process
// listed; every later operation tries again first.
func (b *Backend) trimHashes() error {
	bt := b.newBatch()
	for _, s := range b.lay.sets {
		if s.part == partSingles {
			flushSet(bt, s)
			b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, b.block)
		}
	}
	b.sealWith(bt, b.block, b.allow, ipnet.Set{})
	if err := b.send(bt, "trim hash sets"); err != nil {
		return err
	}
	b.untrimmed, b.moved = false, ipnet.Set{}
	return nil
}

// trimMoved removes the moved singles from the hash sets; the ranges that
// cover them are in place since the last transaction.
func (b *Backend) trimMoved() error {
	bt := b.newBatch()
	for _, s := range b.lay.sets {
		if s.part == partSingles {
			b.writeSet(bt, unix.NFT_MSG_DELSETELEM, s, b.moved)
		}
	}
	b.sealWith(bt, b.block, b.allow, ipnet.Set{})
	if err := b.send(bt, "remove moved singles"); err != nil {
		return err
	}
	b.moved = ipnet.Set{}
	return nil
}

// commit sends one transaction: the blocklist change written by fill (nil
// for none), which returns the singles it kept although they moved into a
// range, and, when allow differs from the copy, a whitelist replace. Moved
// singles are removed by a second transaction.
func (b *Backend) commit(op string, block, allow ipnet.Set, fill func(*batch) (ipnet.Set, error)) error {
	if b.untrimmed {
		if err := b.trimHashes(); err != nil {
			return err
		}
	}
	// Left by an earlier call whose trimMoved failed; the fill functions
	// assume the hash sets hold exactly the singles of b.block.
	if !b.moved.IsEmpty() {
		if err := b.trimMoved(); err != nil {
			return err
		}
	}
	bt := b.newBatch()
	if !allow.Equal(b.allow) {
		for _, s := range b.lay.sets {
			if s.part == partAll {
				flushSet(bt, s)
				b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, allow)
			}
		}
	}
	extra := b.pending
	for _, s := range b.lay.sets {
		if s.part == partList && !pickList(s, extra).Equal(pickList(s, b.extra)) {
			flushSet(bt, s)
			b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, pickList(s, extra))
		}
	}
	var moved ipnet.Set
	if fill != nil {
		var err error
		if moved, err = fill(bt); err != nil {
			return err
		}
	}
	if len(bt.msgs) == 0 {
		return nil
	}
	b.sealWith(bt, block, allow, moved)
	if err := b.send(bt, op); err != nil {
		return err
	}
	b.block, b.allow, b.moved, b.extra = block, allow, moved, extra
	b.log.Info("nftables sets updated", "op", op, "ranges_ipv4", len(block.V4), "ranges_ipv6", len(block.V6),
		"moved4", len(moved.V4), "moved6", len(moved.V6))
	if !moved.IsEmpty() {
		// The list is in force and every moved single is covered by a
		// range; the next operation tries again first.
		if err := b.trimMoved(); err != nil {
			b.log.Warn("nftables: could not remove singles that moved into ranges", "err", err)
		}
	}
	return nil
}

// writeFull flushes the blocklist sets and loads block; old singles that
// block covers with a range are added back to the hash sets (moved.go) and
// returned.
func (b *Backend) writeFull(bt *batch, block ipnet.Set) ipnet.Set {
	moved := movedSingles(b.block, block)
	for _, s := range b.lay.sets {
		if s.part.blocks() {
			flushSet(bt, s)
			b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, block)
			if s.part == partSingles {
				b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, moved)
			}
		}
	}
	return moved
}

// writeDelta turns the copy into block; removed singles that block covers
// with a range stay in the hash sets (moved.go) and are returned.
func (b *Backend) writeDelta(bt *batch, block, added, removed ipnet.Set) ipnet.Set {
	moved := movedSingles(removed, block)
	kept := without(removed, moved)
	// Deletions first: an updated range often keeps its start address.
	for _, s := range b.lay.sets {
		switch s.part {
		case partSingles:
			b.writeSet(bt, unix.NFT_MSG_DELSETELEM, s, kept)
		case partWide:
			b.writeSet(bt, unix.NFT_MSG_DELSETELEM, s, removed)
		}
	}
	for _, s := range b.lay.sets {
		if s.part.blocks() {
			b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, added)
		}
	}
	return moved
}

// pick returns the list a set is filled from.
func pick(s setDef, block, allow ipnet.Set, extra firewall.Lists) ipnet.Set {
	switch s.part {
	case partAll:
		return allow
	case partList:
		return pickList(s, extra)
	}
	return block
}

func (b *Backend) writeSet(bt *batch, msg int, s setDef, from ipnet.Set) {
	if s.v6 {
		writeRanges6(bt, msg, s, from.V6)
	} else {
		writeRanges4(bt, msg, s, from.V4)
	}
}

func (b *Backend) newBatch() *batch {
	bt := newBatch(b.seq)
	return bt
}

// send transmits bt on a new socket.
func (b *Backend) send(bt *batch, op string) error {
	fd, err := openSocket(b.nsFD)
	if err != nil {
		return fmt.Errorf("nftables %s: %w", op, err)
	}
	defer unix.Close(fd)
	return b.sendOn(fd, bt, op)
}

// sendOn transmits bt; large batches give their memory back to the OS at
// once so that a daemon idling for hours after a 1M-entry load stays small.
func (b *Backend) sendOn(fd int, bt *batch, op string) error {
	start := time.Now()
	if sendHook != nil {
		sendHook(op, false)
	}
	gen0, paused := b.pauseWatch(fd)
	b.warnListeners(bt, op)
	if bt.seal != nil {
		if !paused {
			gen0, _ = readGenID(fd, &b.seq)
		}
		if gen0 != 0 {
			bt.seal(gen0 + 1)
		}
	}
	size := bt.size
	err := send(fd, bt)
	b.seq = bt.seq + 1
	b.resumeWatch(fd, gen0, paused, err == nil)
	if sendHook != nil {
		sendHook(op, true)
	}
	b.log.Debug("nftables transaction", "op", op, "bytes", size, "messages", len(bt.msgs), "took", time.Since(start), "err", err)
	bt.chunks = nil
	if size > 8<<20 {
		debug.FreeOSMemory()
	}
	if err != nil {
		return fmt.Errorf("nftables %s: %w", op, err)
	}
	return nil
}

// sendHook, when set (tests only), runs right before a batch is sent and
// right after the kernel's answer.
var sendHook func(op string, sent bool)

// Remove deletes the table and everything in it. It is idempotent: a missing
// table is not an error.
func (b *Backend) Remove() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.newBatch()
	deleteTable(bt)
	err := b.send(bt, "remove")
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	b.built, b.everBuilt, b.block, b.allow, b.moved, b.sig = false, false, ipnet.Set{}, ipnet.Set{}, ipnet.Set{}, nil
	b.extra, b.pending = firewall.Lists{}, firewall.Lists{}
	return nil
}

func (b *Backend) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	if b.nsFD > 0 {
		opts = append(opts, nftables.WithNetNSFd(b.nsFD))
	}
	return nftables.New(opts...)
}

var table = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}

// Exists reports whether the table is in the kernel (left by any process).
func (b *Backend) Exists() (bool, error) {
	return b.tableExists()
}

func (b *Backend) tableExists() (bool, error) {
	c, err := b.conn()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	_, err = c.ListTableOfFamily(TableName, nftables.TableFamilyINet)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("nftables list table: %w", err)
	}
	return true, nil
}

// Counters reads the two named counters of the verdict chains; it never
// reads a set.
func (b *Backend) Counters() (firewall.Counters, error) {
	c, err := b.conn()
	if err != nil {
		return firewall.Counters{}, fmt.Errorf("nftables: %w", err)
	}
	d := firewall.Counters{ListenerWarnings: b.listenerWarnings.Load()}
	read := func(name string, p, by *uint64) error {
		o, err := c.GetObject(&nftables.CounterObj{Table: table, Name: name})
		if err != nil {
			return fmt.Errorf("nftables read counter %s: %w", name, err)
		}
		if co, ok := o.(*nftables.CounterObj); ok {
			*p, *by = co.Packets, co.Bytes
		}
		return nil
	}
	if err := read(Counter4, &d.Packets4, &d.Bytes4); err != nil {
		return d, err
	}
	if b.cfg.IPv6 {
		if err := read(Counter6, &d.Packets6, &d.Bytes6); err != nil {
			return d, err
		}
	}
	return d, nil
}

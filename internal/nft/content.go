package nft

import (
	"sync"
	"sync/atomic"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"golang.org/x/sys/unix"
)

// Content checks: the periodic check must notice element drift too, but
// counting a million elements reads some 100 MB from the kernel. So it is
// done only when it can matter: the ruleset generation moved since our
// last transaction (someone committed something) while the watcher was not
// listening or lost events. Otherwise the events have shown every foreign
// element change already, and the check costs one small request.

// watchState says whether Watch is listening without loss (content.go):
// every foreign element change since has been reported.
type watchState struct {
	listening atomic.Bool
	lost      atomic.Bool
	lastGen   atomic.Uint32 // ruleset generation after our last transaction, or the last verified one
	// kick asks the watcher to report a Lost change: a foreign commit may
	// have slipped through while it was paused.
	kick atomic.Bool

	mu sync.Mutex
	fd int // the watcher's socket while it runs, else -1 (guarded by mu)
}

// Pausing: with a listener on the event group the kernel builds one
// notification per element of every transaction, which made a 10,000-entry
// load four times slower (18 → 70 ms) and slows a million-entry one by
// seconds; our own events are thrown away anyway. So the watcher leaves the
// group while we send a batch, and nf_tables skips the notifications when
// no one else listens. Transactions are serialised by the kernel, so only
// a foreign commit right before or after ours could go unseen: the ruleset
// generation read before and after tells (ours adds exactly one), and a
// mismatch is reported as lost events, which makes the daemon check.

// pauseWatch leaves the event group for one of our transactions; it
// returns the generation before it, and holds ws.mu until resumeWatch.
func (b *Backend) pauseWatch(fd int) (gen uint32, paused bool) {
	b.ws.mu.Lock()
	if b.ws.fd <= 0 {
		return 0, false
	}
	g, err := readGenID(fd, &b.seq)
	if err != nil {
		return 0, false
	}
	if unix.SetsockoptInt(b.ws.fd, unix.SOL_NETLINK, unix.NETLINK_DROP_MEMBERSHIP, nfnlgrpNFTables) != nil {
		return 0, false
	}
	return g, true
}

// resumeWatch joins the group again and records the generation after our
// transaction; committed says whether it went through.
func (b *Backend) resumeWatch(fd int, gen0 uint32, paused, committed bool) {
	defer b.ws.mu.Unlock()
	if paused {
		if err := unix.SetsockoptInt(b.ws.fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, nfnlgrpNFTables); err != nil {
			b.log.Error("nftables watch: cannot rejoin the event group", "err", err)
			b.ws.lost.Store(true)
			b.ws.kick.Store(true)
		}
	}
	gen, err := readGenID(fd, &b.seq)
	if err != nil {
		return
	}
	if committed {
		b.ws.lastGen.Store(gen)
	}
	want := gen0
	if committed {
		want++
	}
	if paused && gen != want {
		b.ws.lost.Store(true)
		b.ws.kick.Store(true)
	}
}

// contentIntact reports whether the sets may differ from the copy without
// a report, and if so counts their elements against it.
func (b *Backend) contentIntact(fd int) (bool, error) {
	gen, err := readGenID(fd, &b.seq)
	if err != nil {
		return false, err
	}
	if gen == b.ws.lastGen.Load() {
		// Nothing was committed since our last transaction, so events lost
		// meanwhile were our own (a big load overruns the watcher).
		b.ws.lost.Store(false)
		b.takeDrift()
		return true, nil
	}
	if b.ws.listening.Load() && !b.ws.lost.Load() {
		return true, nil
	}
	for _, s := range b.lay.sets {
		n, err := countElements(fd, &b.seq, s.name)
		if err != nil {
			return false, err
		}
		if want := b.expectedElements(s); n != want {
			b.log.Warn("nftables: a set does not hold the elements applied", "set", s.name, "elements", n, "expected", want)
			return false, nil
		}
	}
	b.ws.lastGen.Store(gen)
	b.ws.lost.Store(false)
	return true, nil
}

// expectedElements is how many kernel elements s holds for the copy: one
// per single address in a hash set, a start and an end per range in an
// interval set (no end for a range reaching the top of the family).
func (b *Backend) expectedElements(s setDef) int {
	from := b.block
	switch s.part {
	case partAll:
		from = b.allow
	case partList:
		from = pickList(s, b.extra)
	}
	n := 0
	if s.part == partSingles {
		for _, src := range []ipnet.Set{b.block, b.moved} {
			if s.v6 {
				for _, r := range src.V6 {
					if r.Lo == r.Hi {
						n++
					}
				}
			} else {
				for _, r := range src.V4 {
					if r.Lo == r.Hi {
						n++
					}
				}
			}
		}
		return n
	}
	if s.v6 {
		for _, r := range from.V6 {
			if s.part.takes(r.Lo == r.Hi) {
				n += 2
				if r.Hi == max128 {
					n--
				}
			}
		}
		return n
	}
	for _, r := range from.V4 {
		if s.part.takes(r.Lo == r.Hi) {
			n += 2
			if r.Hi == ^uint32(0) {
				n--
			}
		}
	}
	return n
}

// countElements dumps a set's elements and counts them without keeping
// them.
func countElements(fd int, seq *uint32, set string) (int, error) {
	n := 0
	err := requestEach(fd, seq, unix.NFT_MSG_GETSETELEM, unix.NLM_F_DUMP, "list elements of "+set, func(b *batch) {
		b.str(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
		b.str(unix.NFTA_SET_ELEM_LIST_SET, set)
	}, func(m []byte) {
		eachAttr(parseAttrs(m)[unix.NFTA_SET_ELEM_LIST_ELEMENTS], func(uint16, []byte) { n++ })
	})
	return n, err
}

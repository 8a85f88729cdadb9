package nft

import (
	"net/netip"
	"slices"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"golang.org/x/sys/unix"
)

// Element drift: `nft add element` or `nft delete element` on a hash set
// changes a handful of elements, and reloading a million to undo them
// takes seconds. The events name the elements, so Restore undoes exactly
// those when nothing else changed: it adds back the deleted addresses the
// copy lists and deletes the added ones it does not, in one small
// transaction. Any other change (a rule, a chain, an interval set's
// elements, lost events) takes the full path.

// elemDrift is what other programs did to the hash sets' elements since
// the last restore: the last operation per address.
type elemDrift struct {
	last  map[netip.Addr]bool // true: added, false: deleted
	other bool                // something the element path cannot undo
}

// noteDrift records a foreign transaction's events (the watcher's
// OnCommit).
func (b *Backend) noteDrift(evs []TableEvent, overflow bool) {
	b.driftMu.Lock()
	defer b.driftMu.Unlock()
	d := &b.drift
	if overflow {
		d.other = true
	}
	for _, e := range evs {
		if !e.Elements() || e.Interval || (e.Name != SetHosts4 && e.Name != SetHosts6) {
			d.other = true
			continue
		}
		for _, k := range e.Keys {
			a, ok := netip.AddrFromSlice(k)
			if !ok || a.Is4() != (e.Name == SetHosts4) {
				d.other = true
				continue
			}
			if d.last == nil {
				d.last = map[netip.Addr]bool{}
			}
			if len(d.last) >= maxPending {
				d.other = true
				continue
			}
			d.last[a] = e.Msg == unix.NFT_MSG_NEWSETELEM
		}
	}
}

// takeDrift returns the recorded drift and starts a new record.
func (b *Backend) takeDrift() elemDrift {
	b.driftMu.Lock()
	defer b.driftMu.Unlock()
	d := b.drift
	b.drift = elemDrift{}
	return d
}

// undoElements sends the transaction that undoes d; false when d needs
// the full path (or nothing was recorded).
func (b *Backend) undoElements(d elemDrift) bool {
	if d.other || len(d.last) == 0 || !b.built {
		return false
	}
	var readd, del ipnet.Set
	for a, added := range d.last {
		listed := b.listsSingle(a)
		switch {
		case added && !listed:
			del.AddPrefix(netip.PrefixFrom(a, a.BitLen()))
		case !added && listed:
			readd.AddPrefix(netip.PrefixFrom(a, a.BitLen()))
		}
	}
	readd.Merge()
	del.Merge()
	bt := b.newBatch()
	for _, s := range b.lay.sets {
		if s.part == partSingles {
			b.writeSet(bt, unix.NFT_MSG_DELSETELEM, s, singlesOf(del))
			b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, singlesOf(readd))
		}
	}
	if len(bt.msgs) > 0 {
		if err := b.send(bt, "undo element changes"); err != nil {
			b.log.Warn("nftables: undoing another program's element changes failed; reloading the table", "err", err)
			return false
		}
	}
	b.log.Info("nftables: undid another program's element changes", "readded", len(d.last)-countAdded(d), "entries_considered", len(d.last))
	return true
}

func countAdded(d elemDrift) int {
	n := 0
	for _, added := range d.last {
		if added {
			n++
		}
	}
	return n
}

// listsSingle reports whether the hash sets should hold a: a single of the
// copy, or a moved single still kept (moved.go).
func (b *Backend) listsSingle(a netip.Addr) bool {
	return hasSingle(b.block, a) || hasSingle(b.moved, a)
}

func hasSingle(s ipnet.Set, a netip.Addr) bool {
	if a.Is4() {
		v := ipnet.U32(a)
		i, ok := slices.BinarySearchFunc(s.V4, v, func(r ipnet.Range4, v uint32) int {
			switch {
			case r.Lo < v:
				return -1
			case r.Lo > v:
				return 1
			}
			return 0
		})
		return ok && s.V4[i].Hi == v
	}
	v := ipnet.U128From(a)
	i, ok := slices.BinarySearchFunc(s.V6, v, func(r ipnet.Range6, v ipnet.U128) int { return r.Lo.Cmp(v) })
	return ok && s.V6[i].Hi == v
}

// singlesOf returns the single-address ranges of s, split so that a merged
// run of adjacent addresses is written one element each.
func singlesOf(s ipnet.Set) ipnet.Set {
	var out ipnet.Set
	for _, r := range s.V4 {
		for v := r.Lo; ; v++ {
			out.V4 = append(out.V4, ipnet.Range4{Lo: v, Hi: v})
			if v == r.Hi {
				break
			}
		}
	}
	for _, r := range s.V6 {
		for v := r.Lo; ; v = inc128(v) {
			out.V6 = append(out.V6, ipnet.Range6{Lo: v, Hi: v})
			if v == r.Hi {
				break
			}
		}
	}
	return out
}

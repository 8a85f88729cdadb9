package nft

import (
	"net/netip"
	"slices"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"golang.org/x/sys/unix"
)

// Hot-first restore: after `flush ruleset` the table has to be loaded
// again from nothing, and a million elements take the kernel about two
// seconds to insert, during which every listed source passes. The sources
// that were being dropped just before are the ones attacking now, so when
// the list is large the table, its rules and the entries covering those
// sources go in first, in a transaction of a few milliseconds, and the
// rest follows in a second one.

// hotMin is the blocklist size from which a restore of a missing table is
// split; smaller lists load in one transaction within milliseconds.
const hotMin = 50_000

// covering returns the ranges of block that contain one of hot, sorted and
// without duplicates.
func covering(block ipnet.Set, hot []netip.Addr) ipnet.Set {
	var out ipnet.Set
	for _, a := range hot {
		a = a.Unmap()
		switch {
		case a.Is4():
			v := ipnet.U32(a)
			i, _ := slices.BinarySearchFunc(block.V4, v, func(r ipnet.Range4, v uint32) int {
				if r.Hi < v {
					return -1
				}
				if r.Lo > v {
					return 1
				}
				return 0
			})
			if i < len(block.V4) && block.V4[i].Lo <= v && v <= block.V4[i].Hi {
				out.V4 = append(out.V4, block.V4[i])
			}
		case a.Is6():
			v := ipnet.U128From(a)
			i, _ := slices.BinarySearchFunc(block.V6, v, func(r ipnet.Range6, v ipnet.U128) int {
				if r.Hi.Less(v) {
					return -1
				}
				if v.Less(r.Lo) {
					return 1
				}
				return 0
			})
			if i < len(block.V6) && !v.Less(block.V6[i].Lo) && !block.V6[i].Hi.Less(v) {
				out.V6 = append(out.V6, block.V6[i])
			}
		}
	}
	slices.SortFunc(out.V4, func(a, b ipnet.Range4) int { return int(int64(a.Lo) - int64(b.Lo)) })
	out.V4 = slices.Compact(out.V4)
	slices.SortFunc(out.V6, func(a, b ipnet.Range6) int { return a.Lo.Cmp(b.Lo) })
	out.V6 = slices.Compact(out.V6)
	return out
}

// buildHotFirst creates the missing table with the whitelist and the
// entries covering hot, then adds the rest of block; the caller holds the
// socket and the generation the table was found missing at.
func (b *Backend) buildHotFirst(fd int, gen uint32, l layout, block, allow, hot ipnet.Set) error {
	bt := newBatchAt(b.seq, gen)
	if err := buildTable(bt, l, false); err != nil {
		return err
	}
	for _, s := range b.lay.sets {
		b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, pick(s, hot, allow, b.pending))
	}
	if err := b.sendOn(fd, bt, "build (hot entries first)"); err != nil {
		return err
	}
	// The table stands and drops the active sources. Until the rest is in,
	// built stays false: whatever comes next (a retried Restore, an Apply)
	// adopts the table and loads the whole list.
	b.everBuilt, b.block, b.allow, b.moved, b.extra = true, block, allow, ipnet.Set{}, b.pending
	b.sizes, b.bases = declared(l, nil, nil), l.hookNames()
	rest := without(block, hot)
	bt = b.newBatch()
	for _, s := range b.lay.sets {
		if s.part.blocks() {
			b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, rest)
		}
	}
	b.sealWith(bt, block, allow, ipnet.Set{})
	if err := b.sendOn(fd, bt, "build (remaining entries)"); err != nil {
		return err
	}
	b.built = true
	b.recordSignature()
	b.log.Info("nftables table built", "table", "inet "+TableName, "op", "build (hot entries first)",
		"hot_ranges", len(hot.V4)+len(hot.V6), "ranges4", len(block.V4), "ranges6", len(block.V6))
	return nil
}

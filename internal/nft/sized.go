package nft

import (
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"golang.org/x/sys/unix"
)

// A hash set declared with a size (NFTA_SET_DESC_SIZE) gets the kernel's
// fixed-size hash instead of the resizable rhashtable: inserting a million
// singles took 1.4 s against 3.6 s on Linux 6.18, because the rhashtable
// rehashes again and again while it grows inside the transaction. The size
// is a hard limit, though: an element beyond it fails the whole
// transaction with ENFILE. So the size comes from the list, with room to
// grow (hashSize), and a list that would not fit recreates the set with a
// larger size in the same transaction as its elements; for a hash set that
// is as atomic as a flush (adopt.go). Interval sets (rbtree) stay unsized:
// the rbtree has no fixed-size variant, a size would only be a limit.

// minHashSize is the smallest size declared: small lists grow for long
// before they need a new set.
const minHashSize = 1 << 16

// hashSize returns the size a hash set holding n elements is declared with:
// the next power of two of at least twice n.
func hashSize(n uint64) uint32 {
	if n >= 1<<30 {
		return math.MaxUint32
	}
	return max(minHashSize, uint32(1)<<bits.Len64(2*n-min(2*n, 1)))
}

// singles counts the ranges of one address of one family of s.
func singles(s ipnet.Set, v6 bool) uint64 {
	var n uint64
	if v6 {
		for _, r := range s.V6 {
			if r.Lo == r.Hi {
				n++
			}
		}
		return n
	}
	for _, r := range s.V4 {
		if r.Lo == r.Hi {
			n++
		}
	}
	return n
}

// sized returns l with each hash set needing room for the singles of
// block plus those of also (an upper bound of what a transaction leaves
// there, see moved.go) and sized for it. With renew every existing sized
// hash set is treated as too small: the kernel refused a transaction
// because one was full (ENFILE), the earlier elements a plain adoption
// keeps did not fit.
func (l layout) sized(block, also ipnet.Set, renew bool) layout {
	sets := make([]setDef, len(l.sets))
	copy(sets, l.sets)
	for i, s := range sets {
		if s.part != partSingles {
			continue
		}
		n := singles(block, s.v6) + singles(also, s.v6)
		sets[i].size = hashSize(n)
		sets[i].need = uint32(min(n, math.MaxUint32))
		if renew {
			sets[i].need = math.MaxUint32
		}
	}
	l.sets = sets
	return l
}

// sizeFits reports whether an existing set declared with size can take
// the elements s needs: an unsized one takes any number.
func sizeFits(s setDef, size uint32) bool {
	if s.part != partSingles {
		return size == 0
	}
	return size == 0 || size >= s.need && s.need != math.MaxUint32
}

// declared returns the sizes the kernel's sets of l have after a build
// that created the sets of l not kept by p (nil: all created).
func declared(l layout, kt *kernelTable, p *adoption) map[string]uint32 {
	out := map[string]uint32{}
	for _, s := range l.sets {
		out[s.name] = s.size
	}
	if p == nil || kt == nil {
		return out
	}
	for _, ks := range kt.sets {
		if p.keepSets[ks.name] {
			out[ks.name] = ks.size
		}
	}
	return out
}

// tooSmall returns the names of the hash sets whose declared size cannot
// take the singles of block plus those of moved.
func (b *Backend) tooSmall(block, moved ipnet.Set) []string {
	var out []string
	for _, s := range b.lay.sets {
		if s.part != partSingles {
			continue
		}
		if size := b.sizes[s.name]; size != 0 && uint64(size) < singles(block, s.v6)+singles(moved, s.v6) {
			out = append(out, s.name)
		}
	}
	return out
}

// writeResize appends a transaction that recreates the hash sets named in
// small with a size fitting block, and writes the whole blocklist: the
// recreated sets get the singles of block plus the old singles moved into
// a range, the other blocklist sets are flushed and refilled as in
// writeFull. Rules referencing a set keep it from being deleted, so they are
// flushed and rewritten first, as by an adoption that keeps every other
// object. It returns the moved singles and the layout sized for block.
func (b *Backend) writeResize(bt *batch, small []string, block ipnet.Set) (ipnet.Set, layout, error) {
	moved := movedSingles(b.block, block)
	l := b.lay.sized(block, moved, false)
	p := adoption{keepSets: map[string]bool{}, keepObjs: map[string]bool{}, keepChains: map[string]bool{},
		base: b.bases, newBase: map[string]bool{}, keepContent: true, known: true}
	renew := map[string]bool{}
	for _, n := range small {
		renew[n] = true
	}
	for _, s := range l.sets {
		if renew[s.name] {
			p.delSets = append(p.delSets, s.name)
		} else {
			p.keepSets[s.name] = true
		}
	}
	for _, o := range l.counters() {
		p.keepObjs[o.name] = true
	}
	for _, c := range l.verdictChains() {
		p.keepChains[c.name] = true
	}
	err := writeAdoption(bt, l, p, func(bt *batch) {
		for _, s := range l.sets {
			if !s.part.blocks() {
				continue
			}
			if !renew[s.name] {
				flushSet(bt, s)
			}
			b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, block)
			if s.part == partSingles {
				b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, moved)
			}
		}
	})
	return moved, l, err
}

// grow replaces the blocklist in one transaction that recreates the hash
// sets named in small with a size that fits block (sized.go).
func (b *Backend) grow(small []string, block, allow ipnet.Set) error {
	var l layout
	err := b.commit("grow hash sets", block, allow, func(bt *batch) (moved ipnet.Set, err error) {
		moved, l, err = b.writeResize(bt, small, block)
		return moved, err
	})
	if err != nil {
		return err
	}
	var grown []string
	for _, s := range l.sets {
		if slices.Contains(small, s.name) {
			b.sizes[s.name] = s.size
			grown = append(grown, fmt.Sprintf("%s:%d", s.name, s.size))
		}
	}
	b.log.Info("nftables hash sets recreated with a larger size", "sets", grown)
	// The rules were rewritten: new handles.
	b.recordSignature()
	return nil
}

package nft

import (
	"errors"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// The daemon only calls Apply, which picks the cheaper of a full replace and
// a delta by itself. The two calls below force one of those paths, so that
// cmd/sikkerbench can time each and the kernel tests can check each for
// atomicity; they are not part of the firewall.Firewall interface.

var errNotBuilt = errors.New("nftables: table not built yet (call Apply first)")

// ReplaceAll flushes the blocklist sets and loads block, in one transaction.
func (b *Backend) ReplaceAll(block ipnet.Set) error {
	return b.force("replace", block, b.writeFull)
}

// Update removes the ranges that left the list and adds the new ones, in one
// transaction computed from the backend's copy.
func (b *Backend) Update(block ipnet.Set) error {
	return b.force("update", block, func(bt *batch, block ipnet.Set) ipnet.Set {
		added, removed := ipnet.Diff(b.block, block)
		return b.writeDelta(bt, block, added, removed)
	})
}

// force commits the blocklist change that fill writes, keeping the allow
// sets; the table must have been built by Apply.
func (b *Backend) force(op string, block ipnet.Set, fill func(*batch, ipnet.Set) ipnet.Set) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.built {
		return errNotBuilt
	}
	block = b.family(block)
	b.pending = b.extra
	if small := b.tooSmall(block, movedSingles(b.block, block)); len(small) > 0 {
		return b.grow(small, block, b.allow)
	}
	return b.commit(op, block, b.allow, func(bt *batch) (ipnet.Set, error) { return fill(bt, block), nil })
}

package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"
)

// Intact compares the table's declaration (chains, sets, counters, flags)
// and its rules, by handle, with what the last build left: a deleted or
// added rule, a deleted chain or set, or a dormant table is drift. It reads
// a few small messages and never a set's elements; element changes are
// seen by Watch, and restored from the backend's copy.

// signature is a canonical description of the table's declaration; nil
// when the table is missing.
func readSignature(fd int, seq *uint32) ([]string, error) {
	kt, _, err := readTable(fd, seq)
	if err != nil || kt == nil {
		return nil, err
	}
	sig := []string{fmt.Sprintf("table %q flags %d", kt.comment, kt.flags)}
	for _, c := range kt.chains {
		sig = append(sig, fmt.Sprintf("chain %s base %v hook %d prio %d policy %d", c.name, c.base, c.hook, c.prio, c.policy))
	}
	for _, s := range kt.sets {
		sig = append(sig, fmt.Sprintf("set %s flags %d key %d/%d", s.name, s.flags, s.keyType, s.keyLen))
	}
	for _, o := range kt.objs {
		sig = append(sig, fmt.Sprintf("object %s type %d", o.name, o.typ))
	}
	replies, err := request(fd, seq, unix.NFT_MSG_GETRULE, unix.NLM_F_DUMP, "list rules", func(b *batch) {
		b.str(unix.NFTA_RULE_TABLE, TableName)
	})
	if err != nil {
		return nil, err
	}
	for _, m := range replies {
		a := parseAttrs(m)
		if a.str(unix.NFTA_RULE_TABLE) != TableName {
			continue
		}
		var h uint64
		if v := a[unix.NFTA_RULE_HANDLE]; len(v) == 8 {
			h = binary.BigEndian.Uint64(v)
		}
		sig = append(sig, fmt.Sprintf("rule %s handle %d", a.str(unix.NFTA_RULE_CHAIN), h))
	}
	slices.Sort(sig)
	return sig, nil
}

// recordSignature remembers the declaration the last build left; a failure
// to read it leaves Intact to the table's presence.
func (b *Backend) recordSignature() {
	fd, err := openSocket(b.nsFD)
	if err != nil {
		b.sig = nil
		return
	}
	defer unix.Close(fd)
	sig, err := readSignature(fd, &b.seq)
	if err != nil {
		b.log.Debug("nftables: cannot read the table's declaration", "err", err)
	}
	b.sig = sig
}

// Intact reports whether the table stands as the last build left it: the
// same chains, sets, counters and rules, and, when the events may have
// missed a change, as many elements in each set as the copy says
// (content.go). Another tool's `flush ruleset` (a
// restart of nftables.service, for one) removes it whole; `nft delete rule`
// or `nft add rule` change it.
func (b *Backend) Intact() (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sig == nil {
		return b.tableExists()
	}
	fd, err := openSocket(b.nsFD)
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	defer unix.Close(fd)
	var sig []string
	for attempt := 0; attempt < 3; attempt++ {
		if sig, err = readSignature(fd, &b.seq); !errors.Is(err, errDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return false, fmt.Errorf("nftables read table: %w", err)
	}
	if !slices.Equal(sig, b.sig) {
		return false, nil
	}
	ok, err := b.contentIntact(fd)
	if err != nil {
		return false, fmt.Errorf("nftables count elements: %w", err)
	}
	return ok, nil
}

// Restore rebuilds the table from the backend's copy of the lists. When
// the events showed only element changes of the hash sets, just those are
// undone (drift.go). Otherwise the table is created in one transaction when it is gone (for a large list the
// entries covering hot first, see hot.go), or adopted in place (rules
// rewritten, sets refilled) when it was changed.
func (b *Backend) Restore(hot []netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.everBuilt {
		return nil
	}
	if b.undoElements(b.takeDrift()) {
		return nil
	}
	b.built = false
	b.pending = b.extra
	return b.buildHot(b.block, b.allow, covering(b.block, hot))
}

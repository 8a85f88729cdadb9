package nft

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Adoption: a process that finds the table left by an earlier one (crash,
// SIGKILL, upgrade) must take it over without a moment in which a listed
// source passes. Deleting and recreating the table in one batch is not
// enough: 3-14 % of a flood passed, because the new interval sets are empty
// to lookups until the commit has finished (below). So the adoption batch keeps the table
// and every base chain that already sits at a wanted hook and priority,
// flushes all rules and the kept sets, and refills everything. Within one
// transaction the kernel switches rules and set elements atomically, so a
// packet meets the old rules with the old elements or the new rules with
// the new elements.
//
// The earlier process may have been another version or configuration:
//   - a base chain at a hook or priority we do not want is deleted at the
//     very end of the batch, after its replacement (if any) is complete; a
//     replacement for a hook whose chain cannot be kept is created under a
//     free name (prerouting_1) when the hook's name is taken. Measured: no
//     probe passed while prerouting moved from priority -150 to -300, nor
//     while the hooks changed between input and prerouting;
//   - a regular chain or counter that the configuration no longer wants is
//     deleted, one it wants with another comment is recreated (rules that
//     reference them are flushed first in the batch);
//   - a set is kept whatever its comment (a kept set keeps its old comment)
//     and recreated only when its type or flags differ. A recreated hash
//     set is as atomic as a flush, but a recreated interval set answers
//     lookups only once the commit has finished (below), so a listed range
//     passes for a few milliseconds: 705 of 21,090 flood probes over ten
//     adoptions of a table whose blocklist4 was a hash set. Only a table of
//     an incompatible layout pays this, once.
// The rules of a kept chain are always rewritten, so changes of action, log
// group, rate or IPv6 need no new base chain.
//
// Sets do not all switch at the same instant of a commit: on Linux 6.18 the
// hash sets answer with the new elements from the generation switch on,
// while an interval set answers with its old elements (a new one: with
// none) until the commit has finished, milliseconds later for big batches. An address that moves
// from a single entry (hash) to a range (interval) is then in neither, and
// a third of a flood passed in the tests.
//
// When the table's content records are current (seal.go), the adoption
// knows what every set holds and sends only the difference in the same
// transaction: nothing for an unchanged list, and the earlier singles that
// moved into a range stay in the hash sets until a small second
// transaction removes them (moved.go), as for any update. Otherwise the
// earlier process's singles are unknown (a dump of a big hash set takes
// too long, seal.go), so adoption keeps the kept hash sets' elements and
// only adds the new singles; a second transaction right after
// (trimHashes) flushes and refills the hash sets alone, while the interval
// sets already hold the new ranges.

// adoption is the plan of the batch that brings an existing table to a
// layout. It is derived from the table's declaration only.
type adoption struct {
	keepSets   map[string]bool   // kept: flushed and refilled, or (hash sets) extended
	delSets    []string          // deleted (unwanted, or recreated)
	keepObjs   map[string]bool   // counters kept with their values
	delObjs    []kernelObj       // deleted (unwanted, or recreated)
	keepChains map[string]bool   // regular chains kept (rules rewritten)
	delChains  []string          // deleted before anything is created
	base       map[string]string // hook → base chain name, kept or new
	newBase    map[string]bool   // hooks whose base chain is created
	lateDel    []string          // base chains deleted at the end of the batch
	// keepContent: the content set (seal.go) is kept, its records
	// replaced by the batch's.
	keepContent bool
	// known: the content of every set is known (seal.go), so kept sets
	// are not flushed and fill writes the difference.
	known bool
}

// keepsAll reports whether every set of l is kept.
func (p adoption) keepsAll(l layout) bool {
	for _, s := range l.sets {
		if !p.keepSets[s.name] {
			return false
		}
	}
	return true
}

// ours reports whether the table carries sikkerguard's comment.
func (kt *kernelTable) ours() bool { return strings.HasPrefix(kt.comment, tableMarker) }

// setMatches reports whether an existing set can be kept for s: a hash set
// declared too small for the list is recreated (sized.go). Its comment
// does not matter: a recreated interval set answers lookups only once the
// commit has finished (see above), so a set is only recreated when its type
// or flags leave no choice.
func setMatches(s setDef, ks kernelSet) bool {
	kt := setKeyType(s)
	return !ks.extra && sizeFits(s, ks.size) && ks.flags == setFlags(s) && ks.keyType == kt.GetNFTMagic() && ks.keyLen == kt.Bytes
}

func baseMatches(kc kernelChain, hook string) bool {
	hp := hookPrio[hook]
	return kc.base && kc.hook == hp.num && kc.prio == hp.prio && kc.typ == "filter" && kc.policy == 1 // NF_ACCEPT
}

func planAdoption(l layout, kt *kernelTable) adoption {
	p := adoption{keepSets: map[string]bool{}, keepObjs: map[string]bool{}, keepChains: map[string]bool{},
		base: map[string]string{}, newBase: map[string]bool{}}
	for _, ks := range kt.sets {
		if ks.flags&unix.NFT_SET_ANONYMOUS != 0 {
			continue // bound to a rule, it goes with the rule
		}
		if ks.name == SetContent && contentSetMatches(ks) {
			p.keepContent = true
			continue
		}
		i := slices.IndexFunc(l.sets, func(s setDef) bool { return s.name == ks.name })
		if i >= 0 && setMatches(l.sets[i], ks) {
			p.keepSets[ks.name] = true
		} else {
			p.delSets = append(p.delSets, ks.name)
		}
	}
	counters := l.counters()
	for _, o := range kt.objs {
		i := slices.IndexFunc(counters, func(d objDef) bool { return d.name == o.name })
		if i >= 0 && o.typ == unix.NFT_OBJECT_COUNTER && o.comment == counters[i].comment {
			p.keepObjs[o.name] = true
		} else {
			p.delObjs = append(p.delObjs, o)
		}
	}
	// Base chains first: each wanted hook keeps the first matching chain.
	reused := map[string]bool{}
	for _, h := range l.bases() {
		for _, kc := range kt.chains {
			if !reused[kc.name] && baseMatches(kc, h) {
				p.base[h], reused[kc.name] = kc.name, true
				break
			}
		}
	}
	verdicts := l.verdictChains()
	taken := map[string]bool{}
	for _, c := range verdicts {
		taken[c.name] = true
	}
	for _, kc := range kt.chains {
		i := slices.IndexFunc(verdicts, func(c chainDef) bool { return c.name == kc.name })
		switch {
		case reused[kc.name]:
			taken[kc.name] = true
		case kc.base && i < 0:
			p.lateDel = append(p.lateDel, kc.name)
			taken[kc.name] = true // it lives until the end of the batch
		case !kc.base && i >= 0 && kc.comment == verdicts[i].comment:
			p.keepChains[kc.name] = true
		default:
			// Unwanted regular chains, and chains under a verdict
			// chain's name that must be recreated.
			p.delChains = append(p.delChains, kc.name)
		}
	}
	for _, h := range l.bases() {
		if _, ok := p.base[h]; ok {
			continue
		}
		name := h
		for n := 1; taken[name]; n++ {
			name = fmt.Sprintf("%s_%d", h, n)
		}
		p.base[h], p.newBase[h], taken[name] = name, true, true
	}
	return p
}

// writeAdoption appends the adoption batch; fill writes the elements of
// every set before the late deletions. Kept hash sets are not flushed: see
// trimHashes. With p.known no kept set is flushed: fill writes the
// difference to what they hold.
func writeAdoption(b *batch, l layout, p adoption, fill func(*batch)) error {
	// "add table" on an existing table only updates its flags: 0 wakes a
	// dormant one.
	b.nft(unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE, "update table inet "+TableName)
	b.str(unix.NFTA_TABLE_NAME, TableName)
	b.u32(unix.NFTA_TABLE_FLAGS, 0)
	b.end()
	// Flushing every rule first drops all references to sets, counters and
	// chains, so any of them can be deleted below.
	b.nft(unix.NFT_MSG_DELRULE, 0, "flush rules of table inet "+TableName)
	b.str(unix.NFTA_RULE_TABLE, TableName)
	b.end()
	for _, name := range p.delSets {
		b.nft(unix.NFT_MSG_DELSET, 0, "delete set "+name)
		b.str(unix.NFTA_SET_TABLE, TableName)
		b.str(unix.NFTA_SET_NAME, name)
		b.end()
	}
	for _, o := range p.delObjs {
		b.nft(unix.NFT_MSG_DELOBJ, 0, "delete object "+o.name)
		b.str(unix.NFTA_OBJ_TABLE, TableName)
		b.str(unix.NFTA_OBJ_NAME, o.name)
		b.u32(unix.NFTA_OBJ_TYPE, o.typ)
		b.end()
	}
	for _, name := range p.delChains {
		deleteChain(b, name)
	}

	for _, s := range l.sets {
		switch {
		case !p.keepSets[s.name]:
			addSet(b, s)
		case s.part != partSingles && !p.known:
			flushSet(b, s) // role sets too: refilled from the copy below
		}
	}
	if !p.keepContent {
		addContentSet(b)
	}
	for _, o := range l.counters() {
		if !p.keepObjs[o.name] {
			addCounter(b, o.name, o.comment)
		}
	}
	for _, c := range l.verdictChains() {
		if !p.keepChains[c.name] {
			addChain(b, c.name, "", c.comment)
		}
		if err := c.rules(b, c.name); err != nil {
			return err
		}
	}
	for _, h := range l.bases() {
		if p.newBase[h] {
			addChain(b, p.base[h], h, baseComment(h))
		}
		if err := addBaseRules(b, l, h, p.base[h]); err != nil {
			return err
		}
	}
	fill(b)
	for _, name := range p.lateDel {
		deleteChain(b, name)
	}
	return nil
}

func deleteChain(b *batch, name string) {
	b.nft(unix.NFT_MSG_DELCHAIN, 0, "delete chain "+name)
	b.str(unix.NFTA_CHAIN_TABLE, TableName)
	b.str(unix.NFTA_CHAIN_NAME, name)
	b.end()
}

// baseChains lists the base chains of the adopted table as hook:chain,
// sorted, for the log: a flat list rather than Go's map syntax.
func (p adoption) baseChains() []string {
	out := make([]string, 0, len(p.base))
	for hook, chain := range p.base {
		out = append(out, hook+":"+chain)
	}
	slices.Sort(out)
	return out
}

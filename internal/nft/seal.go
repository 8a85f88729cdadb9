package nft

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"golang.org/x/sys/unix"
)

// Knowing what the kernel holds: a process that finds the table left by an
// earlier one must know what its sets hold to send only the difference. A
// dump cannot tell in time: the kernel resumes every part of a set dump by
// walking the set from its start again, so dumping a hash set costs time
// quadratic in its size (measured on Linux 6.18: 0.38 s for 100k elements,
// 2.1 s for 300k, 28 s for 1M). The table carries the answer instead.
//
// Every transaction that leaves the sets exactly as the backend's copy
// says also rewrites the set `content`: one element per set of the layout,
// whose comment holds a digest of the elements that set holds and the
// ruleset generation the commit produces (read just before it, plus one),
// with the boot and the network namespace. No rule uses the set. The
// generation is the proof: the kernel counts every commit of any program,
// so a record whose generation is the kernel's current one was written by
// the last commit of all, and nothing changed the sets since. Someone who
// flushed a set, added or deleted an element, or committed anything else
// moved the generation on; then the records prove nothing and the
// adoption reloads every set as before (adopt.go). A record can only be
// stale, never wrong: a commit between our read and ours leaves the
// kernel past the generation we wrote.
//
// With a valid record the adopting process compares each set's digest with
// the digest of what it wants the set to hold, and with the digest of what
// it presumes an earlier process applied (Presume, its last lists): a
// match tells the set's content exactly, and the adoption sends only the
// difference, in the one transaction that also rewrites the rules.

// SetContent is the set of the per-set records.
const SetContent = "content"

const (
	contentID      = 0xffff // transaction-local id, apart from the layout's
	contentComment = "sikkerguard: a digest of each set's elements, written with them (no rule uses this set)"
	recordFormat   = "sikkerguard: %s holds %s at generation %d, boot %s netns %d"
)

// record is one set's entry of the content set.
type record struct {
	set    string
	digest string
	gen    uint32
	boot   string
	netns  uint64
}

func (r record) String() string {
	return fmt.Sprintf(recordFormat, r.set, r.digest, r.gen, r.boot, r.netns)
}

func parseRecord(s string) (record, bool) {
	var r record
	_, err := fmt.Sscanf(s, recordFormat, &r.set, &r.digest, &r.gen, &r.boot, &r.netns)
	return r, err == nil
}

// identity names the boot and network namespace a record is valid in: a
// ruleset saved with the table and loaded again elsewhere (or after a
// reboot) may meet a generation that happens to match.
type identity struct {
	boot  string
	netns uint64
}

func readIdentity(nsFD int) identity {
	var id identity
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		id.boot = strings.TrimSpace(string(b))
	}
	var st unix.Stat_t
	var err error
	if nsFD > 0 {
		err = unix.Fstat(nsFD, &st)
	} else {
		err = unix.Stat("/proc/self/ns/net", &st)
	}
	if err == nil {
		id.netns = st.Ino
	}
	return id
}

func (id identity) valid() bool { return id.boot != "" && id.netns != 0 }

// setDigest is the digest of the elements set s holds when it is filled
// from list, plus the singles of extra (hash sets only, see moved.go).
func setDigest(s setDef, list, extra ipnet.Set) string {
	h := sha256.New()
	buf := make([]byte, 0, 32<<10)
	put := func(b ...uint64) {
		for _, v := range b {
			buf = binary.BigEndian.AppendUint64(buf, v)
		}
		if len(buf) >= 32<<10-64 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	for i, src := range []ipnet.Set{list, extra} {
		if i == 1 && s.part != partSingles {
			break
		}
		put(uint64(i) << 63)
		if s.v6 {
			for _, r := range src.V6 {
				if s.part.takes(r.Lo == r.Hi) {
					put(r.Lo.Hi, r.Lo.Lo, r.Hi.Hi, r.Hi.Lo)
				}
			}
		} else {
			for _, r := range src.V4 {
				if s.part.takes(r.Lo == r.Hi) {
					put(uint64(r.Lo)<<32 | uint64(r.Hi))
				}
			}
		}
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func addContentSet(b *batch) {
	b.nft(unix.NFT_MSG_NEWSET, unix.NLM_F_CREATE|unix.NLM_F_EXCL, "add set "+SetContent)
	b.str(unix.NFTA_SET_TABLE, TableName)
	b.str(unix.NFTA_SET_NAME, SetContent)
	b.u32(unix.NFTA_SET_FLAGS, 0)
	b.u32(unix.NFTA_SET_KEY_TYPE, nftables.TypeMark.GetNFTMagic())
	b.u32(unix.NFTA_SET_KEY_LEN, nftables.TypeMark.Bytes)
	b.u32(unix.NFTA_SET_ID, contentID)
	b.attr(unix.NFTA_SET_USERDATA, userdata.AppendString(nil, userdata.NFTNL_UDATA_SET_COMMENT, contentComment))
	b.end()
}

// contentSetMatches reports whether an existing set can serve as the
// content set.
func contentSetMatches(ks kernelSet) bool {
	return !ks.extra && ks.flags == 0 && ks.keyType == nftables.TypeMark.GetNFTMagic() && ks.keyLen == nftables.TypeMark.Bytes
}

// writeRecords appends the replacement of the content set's elements: one
// record per set of the layout for the content list, allow and moved
// describe, valid at generation gen.
func (b *Backend) writeRecords(bt *batch, gen uint32, block, allow, moved ipnet.Set) {
	flushSet(bt, setDef{name: SetContent})
	bt.nft(unix.NFT_MSG_NEWSETELEM, unix.NLM_F_CREATE, "add elements to "+SetContent)
	bt.str(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
	bt.str(unix.NFTA_SET_ELEM_LIST_SET, SetContent)
	list := bt.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
	for i, s := range b.lay.sets {
		r := record{set: s.name, digest: setDigest(s, pick(s, block, allow, b.pending), moved), gen: gen, boot: b.id.boot, netns: b.id.netns}
		e := bt.nest(unix.NFTA_LIST_ELEM)
		k := bt.nest(unix.NFTA_SET_ELEM_KEY)
		var key [4]byte
		binary.BigEndian.PutUint32(key[:], uint32(i+1))
		bt.attr(unix.NFTA_DATA_VALUE, key[:])
		bt.close(k)
		bt.attr(unix.NFTA_SET_ELEM_USERDATA, userdata.AppendString(nil, userdata.NFTNL_UDATA_SET_ELEM_COMMENT, r.String()))
		bt.close(e)
	}
	bt.close(list)
	bt.end()
}

// sealWith makes sendOn end bt with the records of the content the kernel
// holds once bt is committed.
func (b *Backend) sealWith(bt *batch, block, allow, moved ipnet.Set) {
	if !b.id.valid() {
		return
	}
	bt.seal = func(gen uint32) { b.writeRecords(bt, gen, block, allow, moved) }
}

// readRecords reads the records of the content set; the caller checks the
// generation around the read.
func readRecords(fd int, seq *uint32) (map[string]record, error) {
	out := map[string]record{}
	err := requestEach(fd, seq, unix.NFT_MSG_GETSETELEM, unix.NLM_F_DUMP, "list elements of "+SetContent, func(b *batch) {
		b.str(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
		b.str(unix.NFTA_SET_ELEM_LIST_SET, SetContent)
	}, func(m []byte) {
		eachAttr(parseAttrs(m)[unix.NFTA_SET_ELEM_LIST_ELEMENTS], func(_ uint16, e []byte) {
			text, ok := userdata.GetString(parseAttrs(e)[unix.NFTA_SET_ELEM_USERDATA], userdata.NFTNL_UDATA_SET_ELEM_COMMENT)
			if !ok {
				return
			}
			if r, ok := parseRecord(text); ok {
				out[r.set] = r
			}
		})
	})
	return out, err
}

// What knownContent found a set to hold.
type holds uint8

const (
	holdsUnknown  holds = iota
	holdsWanted         // what it should hold now
	holdsPresumed       // what it was filled with from the presumed lists
)

// knownContent tells, from the records of kt read at generation gen, what
// each set of the layout holds. ok is false when a hash set is unknown: its
// earlier singles may have moved into a range (moved.go), so only the plain
// adoption is safe. An unknown interval set is flushed and refilled in the
// same transaction, which is atomic for it.
func (b *Backend) knownContent(kt *kernelTable, gen uint32, block, allow ipnet.Set) (hs []holds, ok bool) {
	if !b.id.valid() || kt.records == nil {
		return nil, false
	}
	for _, s := range b.lay.sets {
		h := holdsUnknown
		r, found := kt.records[s.name]
		if found && r.gen == gen && r.boot == b.id.boot && r.netns == b.id.netns {
			switch {
			case r.digest == setDigest(s, pick(s, block, allow, b.pending), ipnet.Set{}):
				h = holdsWanted
			case b.presumed != nil && r.digest == setDigest(s, pick(s, b.presumed[0], b.presumed[1], firewall.Lists{}), ipnet.Set{}):
				h = holdsPresumed
			}
		}
		if h == holdsUnknown && s.part == partSingles {
			return nil, false
		}
		hs = append(hs, h)
	}
	return hs, true
}

// writeKnown appends, for every set, the difference between what it holds
// (knownContent) and block and allow; it returns the singles kept although
// they moved into a range (moved.go).
func (b *Backend) writeKnown(bt *batch, hs []holds, block, allow ipnet.Set) ipnet.Set {
	var moved ipnet.Set
	for i, s := range b.lay.sets {
		want := pick(s, block, allow, b.pending)
		switch hs[i] {
		case holdsWanted:
			continue
		case holdsUnknown:
			flushSet(bt, s)
			b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, want)
			continue
		}
		added, removed := ipnet.Diff(pick(s, b.presumed[0], b.presumed[1], firewall.Lists{}), want)
		if s.part == partSingles {
			m := movedSingles(removed, want)
			if s.v6 {
				m.V4, moved.V6 = nil, m.V6
			} else {
				m.V6, moved.V4 = nil, m.V4
			}
			removed = without(removed, m)
		}
		// Deletions first: an updated range often keeps its start address.
		b.writeSet(bt, unix.NFT_MSG_DELSETELEM, s, removed)
		b.writeSet(bt, unix.NFT_MSG_NEWSETELEM, s, added)
	}
	return moved
}

// Presume tells the first Apply what an earlier process probably applied
// (its last lists), so that a changed list adopts the table with a delta.
// It is checked against the table's records (see above) and ignored when
// they do not confirm it.
func (b *Backend) Presume(block, allow ipnet.Set) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.presumed = &[2]ipnet.Set{b.family(block), b.family(allow)}
}

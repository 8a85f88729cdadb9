package nft

import (
	"encoding/binary"

	"github.com/google/nftables/userdata"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"golang.org/x/sys/unix"
)

// Interval sets (the kernel's rbtree) hold a range [lo, hi] as two elements:
// a start at lo and an element flagged INTERVAL_END at hi+1. A range that
// reaches the top of the address space has no hi+1; like nft, we send only the
// start (the kernel treats it as open-ended) and mark it INTERVAL_OPEN in the
// element's userdata so that `nft list` prints it as a prefix.
//
// Single addresses go to a separate hash set instead (see the package
// documentation): one element of 16 bytes on the wire instead of two (40 bytes),
// and one kernel object instead of two.

// elemWriter streams elements of one set into element-list messages of
// bounded size, opening a new message whenever the current one is full.
type elemWriter struct {
	b     *batch
	msg   int // NFT_MSG_NEWSETELEM or NFT_MSG_DELSETELEM
	set   setDef
	list  int // offset of the open ELEMENTS nest, -1 when no message is open
	count int
}

func newElemWriter(b *batch, msg int, set setDef) *elemWriter {
	return &elemWriter{b: b, msg: msg, set: set, list: -1}
}

func (w *elemWriter) open() {
	what := "add elements to " + w.set.name
	flags := uint16(unix.NLM_F_CREATE)
	if w.msg == unix.NFT_MSG_DELSETELEM {
		what, flags = "delete elements from "+w.set.name, 0
	}
	w.b.nft(w.msg, flags, what)
	w.b.str(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
	w.b.str(unix.NFTA_SET_ELEM_LIST_SET, w.set.name)
	w.list = w.b.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
}

func (w *elemWriter) flush() {
	if w.list < 0 {
		return
	}
	w.b.close(w.list)
	w.b.end()
	w.list = -1
}

var openUdata = userdata.AppendUint32(nil, userdata.NFTNL_UDATA_SET_ELEM_FLAGS, userdata.NFTNL_UDATA_SET_ELEM_F_INTERVAL_OPEN)

// elem appends one element; key is 4 or 16 bytes, big endian.
func (w *elemWriter) elem(key []byte, end, open bool) {
	if w.list >= 0 && w.b.msgLen() > elemMsgLimit {
		w.flush()
	}
	if w.list < 0 {
		w.open()
	}
	b := w.b
	e := b.nest(unix.NFTA_LIST_ELEM)
	if end {
		b.u32(unix.NFTA_SET_ELEM_FLAGS, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	k := b.nest(unix.NFTA_SET_ELEM_KEY)
	b.attr(unix.NFTA_DATA_VALUE, key)
	b.close(k)
	if open {
		b.attr(unix.NFTA_SET_ELEM_USERDATA, openUdata)
	}
	b.close(e)
	w.count++
	b.elems++
}

// writeRanges4 appends the elements for rs to the set: for a hash set only
// the single addresses of rs, for an interval set only the wider ranges.
func writeRanges4(b *batch, msg int, set setDef, rs []ipnet.Range4) int {
	w := newElemWriter(b, msg, set)
	var k [4]byte
	for _, r := range rs {
		if !set.part.takes(r.Lo == r.Hi) {
			continue
		}
		binary.BigEndian.PutUint32(k[:], r.Lo)
		if !set.interval {
			w.elem(k[:], false, false)
			continue
		}
		top := r.Hi == ^uint32(0)
		w.elem(k[:], false, top)
		if !top {
			binary.BigEndian.PutUint32(k[:], r.Hi+1)
			w.elem(k[:], true, false)
		}
	}
	w.flush()
	return w.count
}

func put128(k []byte, v ipnet.U128) {
	binary.BigEndian.PutUint64(k[0:], v.Hi)
	binary.BigEndian.PutUint64(k[8:], v.Lo)
}

func inc128(v ipnet.U128) ipnet.U128 {
	v.Lo++
	if v.Lo == 0 {
		v.Hi++
	}
	return v
}

var max128 = ipnet.U128{Hi: ^uint64(0), Lo: ^uint64(0)}

func writeRanges6(b *batch, msg int, set setDef, rs []ipnet.Range6) int {
	w := newElemWriter(b, msg, set)
	var k [16]byte
	for _, r := range rs {
		if !set.part.takes(r.Lo == r.Hi) {
			continue
		}
		put128(k[:], r.Lo)
		if !set.interval {
			w.elem(k[:], false, false)
			continue
		}
		top := r.Hi == max128
		w.elem(k[:], false, top)
		if !top {
			put128(k[:], inc128(r.Hi))
			w.elem(k[:], true, false)
		}
	}
	w.flush()
	return w.count
}

// flushSet appends the removal of every element of a set.
func flushSet(b *batch, set setDef) {
	b.flushed = append(b.flushed, set.name)
	b.nft(unix.NFT_MSG_DELSETELEM, 0, "flush set "+set.name)
	b.str(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
	b.str(unix.NFTA_SET_ELEM_LIST_SET, set.name)
	b.end()
}

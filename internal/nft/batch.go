package nft

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The batch writer encodes one nftables transaction (NFNL_MSG_BATCH_BEGIN …
// BATCH_END) straight into a list of fixed-size chunks that are later handed
// to one sendmsg as an iovec. google/nftables keeps every message as its own
// []byte and mdlayher/netlink concatenates them again with append before the
// send, so a million-range batch would exist two to three times in memory;
// writing it once, in place, keeps the peak near the size of the batch itself.

const (
	chunkSize = 1 << 20
	// maxMsg bounds one netlink message (attribute lengths are uint16, and a
	// message never straddles a chunk).
	maxMsg = 60 << 10
	// elemMsgLimit ends an element list message early enough that the next
	// element (at most ~64 bytes) still fits.
	elemMsgLimit = 48 << 10

	nlaNested = unix.NLA_F_NESTED
)

type batch struct {
	chunks  [][]byte
	cur     []byte
	msgOff  int // offset of the open message in cur, -1 when none
	seq     uint32
	firstSq uint32
	msgs    []msgInfo // one per message between begin and end, for error reports
	size    int
	lastIdx int // chunk index and offset of the last real message
	lastOff int
	// seal, when set, appends the content records (seal.go) for the
	// generation the commit will produce; sendOn calls it.
	seal func(gen uint32)
	// elems counts the elements written and flushed names the sets
	// emptied: the kernel announces each element to event listeners
	// (listeners.go).
	elems   int
	flushed []string
}

// msgInfo describes one sent message so that a kernel error can name it.
type msgInfo struct {
	seq  uint32
	what string
}

func newBatch(seq uint32) *batch { return newBatchAt(seq, 0) }

// newBatchAt starts a batch that the kernel refuses (ERESTART) unless the
// ruleset is still at generation gen; 0 means any generation. A batch
// planned from a read of the kernel's state carries the generation of that
// read, so it is never applied to a state it was not planned for.
func newBatchAt(seq, gen uint32) *batch {
	b := &batch{msgOff: -1, seq: seq}
	b.cur = make([]byte, 0, chunkSize)
	b.begin(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, "")
	if gen != 0 {
		b.u32(nfnlBatchGenID, gen)
	}
	b.end()
	b.firstSq = b.seq
	return b
}

func (b *batch) marker(typ uint16) {
	b.begin(typ, unix.NLM_F_REQUEST, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, "")
	b.end()
}

// begin opens a message; res is the nfgenmsg res_id (subsystem for markers).
func (b *batch) begin(typ uint16, flags uint16, family uint8, res uint16, what string) {
	if cap(b.cur)-len(b.cur) < maxMsg {
		b.chunks = append(b.chunks, b.cur)
		b.cur = make([]byte, 0, chunkSize)
	}
	b.seq++
	b.msgOff = len(b.cur)
	var h [unix.NLMSG_HDRLEN + 4]byte
	binary.NativeEndian.PutUint16(h[4:], typ)
	binary.NativeEndian.PutUint16(h[6:], flags)
	binary.NativeEndian.PutUint32(h[8:], b.seq)
	h[16] = family
	h[17] = unix.NFNETLINK_V0
	binary.BigEndian.PutUint16(h[18:], res)
	b.cur = append(b.cur, h[:]...)
	if typ != unix.NFNL_MSG_BATCH_BEGIN && typ != unix.NFNL_MSG_BATCH_END {
		b.msgs = append(b.msgs, msgInfo{seq: b.seq, what: what})
		b.lastIdx, b.lastOff = len(b.chunks), b.msgOff
	}
}

// nft starts an nf_tables message of the given NFT_MSG_* type.
func (b *batch) nft(msg int, flags uint16, what string) {
	b.begin(uint16(unix.NFNL_SUBSYS_NFTABLES<<8|msg), unix.NLM_F_REQUEST|flags, unix.NFPROTO_INET, 0, what)
}

func (b *batch) msgLen() int { return len(b.cur) - b.msgOff }

func (b *batch) end() {
	binary.NativeEndian.PutUint32(b.cur[b.msgOff:], uint32(b.msgLen()))
	b.size += b.msgLen()
	b.msgOff = -1
}

func (b *batch) attr(typ uint16, data []byte) {
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(4+len(data)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	b.cur = append(b.cur, h[:]...)
	b.cur = append(b.cur, data...)
	b.pad()
}

func (b *batch) pad() {
	for len(b.cur)%4 != 0 {
		b.cur = append(b.cur, 0)
	}
}

func (b *batch) str(typ uint16, s string) {
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(4+len(s)+1))
	binary.NativeEndian.PutUint16(h[2:], typ)
	b.cur = append(b.cur, h[:]...)
	b.cur = append(b.cur, s...)
	b.cur = append(b.cur, 0)
	b.pad()
}

func (b *batch) u32(typ uint16, v uint32) {
	var d [4]byte
	binary.BigEndian.PutUint32(d[:], v)
	b.attr(typ, d[:])
}

// nest opens a nested attribute and returns its offset for close.
func (b *batch) nest(typ uint16) int {
	off := len(b.cur)
	var h [4]byte
	binary.NativeEndian.PutUint16(h[2:], typ|nlaNested)
	b.cur = append(b.cur, h[:]...)
	return off
}

func (b *batch) close(off int) {
	binary.NativeEndian.PutUint16(b.cur[off:], uint16(len(b.cur)-off))
}

// finish closes the batch and returns it as an iovec list.
func (b *batch) finish() [][]byte {
	// NLM_F_ACK on the last real message confirms a successful transaction
	// positively instead of inferring success from silence.
	if len(b.msgs) > 0 {
		c := b.cur
		if b.lastIdx < len(b.chunks) {
			c = b.chunks[b.lastIdx]
		}
		f := binary.NativeEndian.Uint16(c[b.lastOff+6:])
		binary.NativeEndian.PutUint16(c[b.lastOff+6:], f|unix.NLM_F_ACK)
	}
	b.marker(unix.NFNL_MSG_BATCH_END)
	b.chunks = append(b.chunks, b.cur)
	b.cur = nil
	return b.chunks
}

package nft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The first transaction of a process has to know whether an earlier process
// left the table behind and what it declared there: an existing base chain
// can only be kept (and so the hook stays protected) if the batch names it.
// readTable reads that declaration: the table, its chains, sets and objects.
// It never reads a set's elements, so it costs a few small messages whatever
// the size of the lists.

// kernelTable is the declaration of an existing table.
type kernelTable struct {
	comment string
	flags   uint32
	chains  []kernelChain
	sets    []kernelSet
	objs    []kernelObj
	// records are the content set's records by set name (seal.go); nil
	// without a content set.
	records map[string]record
}

type kernelChain struct {
	name    string
	base    bool
	hook    uint32
	prio    int32
	typ     string
	policy  uint32
	comment string
}

type kernelSet struct {
	name    string
	flags   uint32
	keyType uint32
	keyLen  uint32
	udata   []byte
	// size is the declared element limit (NFTA_SET_DESC_SIZE), 0 for none.
	size uint32
	// extra is set when the set has a property sikkerguard never creates
	// (data, timeout, expressions, object map): it cannot be reused.
	extra bool
}

type kernelObj struct {
	name    string
	typ     uint32
	comment string
}

// Attribute numbers golang.org/x/sys does not define (linux nf_tables.h).
const (
	nftaSetExpr        = 17
	nftaSetExpressions = 18
	nftaGenID          = 1
	nfnlBatchGenID     = 1
	nftMsgGetGen       = 16
	nftMsgNewGen       = 15
)

var errDumpInterrupted = errors.New("nftables dump interrupted by a concurrent change")

// readTable returns the declaration of table inet sikkerguard (nil when
// there is none) and the ruleset generation it was read at.
func readTable(fd int, seq *uint32) (*kernelTable, uint32, error) {
	gen, err := readGenID(fd, seq)
	if err != nil {
		return nil, 0, err
	}
	kt, err := readDecl(fd, seq)
	if err != nil {
		return nil, 0, err
	}
	// The dumps are separate reads; equal generations around them mean
	// they describe one state.
	after, err := readGenID(fd, seq)
	if err != nil {
		return nil, 0, err
	}
	if after != gen {
		return nil, 0, errDumpInterrupted
	}
	return kt, gen, nil
}

func readDecl(fd int, seq *uint32) (*kernelTable, error) {
	replies, err := request(fd, seq, unix.NFT_MSG_GETTABLE, unix.NLM_F_ACK, "get table", func(b *batch) {
		b.str(unix.NFTA_TABLE_NAME, TableName)
	})
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	kt := &kernelTable{}
	for _, m := range replies {
		a := parseAttrs(m)
		if a.str(unix.NFTA_TABLE_NAME) != TableName {
			continue
		}
		kt.flags = a.u32(unix.NFTA_TABLE_FLAGS)
		kt.comment, _ = userdata.GetString(a[nftaTableUserdata], udataComment)
	}

	replies, err = request(fd, seq, unix.NFT_MSG_GETCHAIN, unix.NLM_F_DUMP, "list chains", nil)
	if err != nil {
		return nil, err
	}
	for _, m := range replies {
		a := parseAttrs(m)
		if a.str(unix.NFTA_CHAIN_TABLE) != TableName {
			continue
		}
		c := kernelChain{name: a.str(unix.NFTA_CHAIN_NAME), typ: a.str(unix.NFTA_CHAIN_TYPE), policy: a.u32(unix.NFTA_CHAIN_POLICY)}
		c.comment, _ = userdata.GetString(a[nftaChainUserdata], udataComment)
		if h, ok := a[unix.NFTA_CHAIN_HOOK]; ok {
			ha := parseAttrs(h)
			c.base, c.hook, c.prio = true, ha.u32(unix.NFTA_HOOK_HOOKNUM), int32(ha.u32(unix.NFTA_HOOK_PRIORITY))
		}
		kt.chains = append(kt.chains, c)
	}

	replies, err = request(fd, seq, unix.NFT_MSG_GETSET, unix.NLM_F_DUMP, "list sets", func(b *batch) {
		b.str(unix.NFTA_SET_TABLE, TableName)
	})
	if err != nil {
		return nil, err
	}
	for _, m := range replies {
		a := parseAttrs(m)
		if a.str(unix.NFTA_SET_TABLE) != TableName {
			continue
		}
		s := kernelSet{name: a.str(unix.NFTA_SET_NAME), flags: a.u32(unix.NFTA_SET_FLAGS),
			keyType: a.u32(unix.NFTA_SET_KEY_TYPE), keyLen: a.u32(unix.NFTA_SET_KEY_LEN), udata: a[unix.NFTA_SET_USERDATA]}
		for _, t := range []uint16{unix.NFTA_SET_DATA_TYPE, unix.NFTA_SET_TIMEOUT, unix.NFTA_SET_OBJ_TYPE, nftaSetExpr, nftaSetExpressions} {
			if _, ok := a[t]; ok {
				s.extra = true
			}
		}
		if d, ok := a[unix.NFTA_SET_DESC]; ok {
			s.size = parseAttrs(d).u32(unix.NFTA_SET_DESC_SIZE)
		}
		kt.sets = append(kt.sets, s)
		if s.name == SetContent && contentSetMatches(s) {
			if kt.records, err = readRecords(fd, seq); err != nil {
				return nil, err
			}
		}
	}

	replies, err = request(fd, seq, unix.NFT_MSG_GETOBJ, unix.NLM_F_DUMP, "list objects", func(b *batch) {
		b.str(unix.NFTA_OBJ_TABLE, TableName)
	})
	if err != nil {
		return nil, err
	}
	for _, m := range replies {
		a := parseAttrs(m)
		if a.str(unix.NFTA_OBJ_TABLE) != TableName {
			continue
		}
		o := kernelObj{name: a.str(unix.NFTA_OBJ_NAME), typ: a.u32(unix.NFTA_OBJ_TYPE)}
		o.comment, _ = userdata.GetString(a[nftaObjUserdata], udataComment)
		kt.objs = append(kt.objs, o)
	}

	return kt, nil
}

func readGenID(fd int, seq *uint32) (uint32, error) {
	replies, err := request(fd, seq, nftMsgGetGen, unix.NLM_F_ACK, "get generation", nil)
	if err != nil {
		return 0, err
	}
	for _, m := range replies {
		if id := parseAttrs(m).u32(nftaGenID); id != 0 {
			return id, nil
		}
	}
	return 0, errors.New("nftables: no ruleset generation in the kernel's reply")
}

// request sends one nf_tables get (or dump) message and returns the
// attributes of every reply message, after the nfgenmsg header.
func request(fd int, seq *uint32, msg int, flags uint16, what string, attrs func(*batch)) ([][]byte, error) {
	var out [][]byte
	err := requestEach(fd, seq, msg, flags, what, attrs, func(m []byte) { out = append(out, append([]byte(nil), m...)) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// requestEach is request handing each reply's attributes to each, which
// must not keep them: a dump of a million elements is read through one
// buffer.
func requestEach(fd int, seq *uint32, msg int, flags uint16, what string, attrs func(*batch), each func([]byte)) error {
	b := &batch{msgOff: -1, seq: *seq, cur: make([]byte, 0, 512)}
	b.nft(msg, flags, what)
	if attrs != nil {
		attrs(b)
	}
	b.end()
	*seq = b.seq + 1
	want := b.seq
	if err := unix.Sendto(fd, b.cur, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	buf := make([]byte, 256<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: read reply: %w", what, err)
		}
		if n > len(buf) {
			return fmt.Errorf("%s: reply of %d bytes exceeds the %d-byte buffer", what, n, len(buf))
		}
		for off := 0; off+unix.NLMSG_HDRLEN <= n; {
			l := int(binary.NativeEndian.Uint32(buf[off:]))
			if l < unix.NLMSG_HDRLEN || off+l > n {
				return fmt.Errorf("%s: malformed reply", what)
			}
			typ := binary.NativeEndian.Uint16(buf[off+4:])
			fl := binary.NativeEndian.Uint16(buf[off+6:])
			sq := binary.NativeEndian.Uint32(buf[off+8:])
			m := buf[off : off+l]
			off += (l + 3) &^ 3
			if sq != want {
				continue
			}
			if fl&unix.NLM_F_DUMP_INTR != 0 {
				return errDumpInterrupted
			}
			switch typ {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(m) < unix.NLMSG_HDRLEN+4 {
					return fmt.Errorf("%s: malformed error reply", what)
				}
				if code := int32(binary.NativeEndian.Uint32(m[unix.NLMSG_HDRLEN:])); code != 0 {
					return &KernelError{Op: what, Errno: unix.Errno(-code), Msg: extAckMsg(m, fl)}
				}
				return nil
			}
			if len(m) >= unix.NLMSG_HDRLEN+4 {
				each(m[unix.NLMSG_HDRLEN+4:])
			}
		}
	}
}

// nlAttrs maps attribute types to payloads (the last one wins).
type nlAttrs map[uint16][]byte

func parseAttrs(b []byte) nlAttrs {
	a := nlAttrs{}
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			break
		}
		a[binary.NativeEndian.Uint16(b[2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER)] = b[4:l]
		b = b[min((l+3)&^3, len(b)):]
	}
	return a
}

func (a nlAttrs) str(t uint16) string {
	v := a[t]
	for len(v) > 0 && v[len(v)-1] == 0 {
		v = v[:len(v)-1]
	}
	return string(v)
}

func (a nlAttrs) u32(t uint16) uint32 {
	if v := a[t]; len(v) == 4 {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"golang.org/x/sys/unix"
)

func TestCheckSettings(t *testing.T) {
	tests := []struct {
		cfg  testConfig
		want string
	}{
		{testConfig{}, ""},
		{testConfig{Hooks: []firewall.Hook{"input", "forward"}, Action: "reject"}, ""},
		{testConfig{Hooks: []firewall.Hook{"output"}}, `hooks[0]: "output" is not one of prerouting, input, forward (nftables backend)`},
		{testConfig{Hooks: []firewall.Hook{"INPUT"}}, ""},
		{testConfig{Hooks: []firewall.Hook{"input", "input"}}, `hooks[1]: "input" is listed twice`},
		{testConfig{Action: "reject"}, "action: reject cannot be used with the prerouting hook"},
		{testConfig{Action: "accept"}, `action: "accept" is not one of drop, reject`},
		{testConfig{LogRate: 1, LogPer: 2 * time.Second}, "log_rate: unit 2s is not one of second, minute, hour, day"},
	}
	for _, tt := range tests {
		_, err := backend.Check(tt.cfg.settings())
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Check(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := New(firewall.Settings{Hooks: []firewall.Hook{"output"}, Action: "drop", LogRate: 1, LogPer: time.Second}, nil); err == nil {
		t.Error("New accepted a hook the backend does not have")
	}
	s, err := backend.Check(testConfig{Hooks: []firewall.Hook{" Input", "FORWARD"}, Action: " Reject"}.settings())
	if err != nil || !slices.Equal(s.Hooks, []firewall.Hook{HookInput, HookForward}) || s.Action != firewall.ActionReject {
		t.Errorf("Check kept the spelling as written: %+v, %v", s, err)
	}
}

// element is one decoded set element.
type element struct {
	key  string
	end  bool
	open bool
}

// decodeElems walks a finished batch and returns, per message, the decoded
// elements of element-list messages; it also checks the framing.
func decodeElems(t *testing.T, bufs [][]byte) (msgs [][]element) {
	t.Helper()
	for _, c := range bufs {
		for off := 0; off < len(c); {
			l := int(binary.NativeEndian.Uint32(c[off:]))
			if l < unix.NLMSG_HDRLEN || off+l > len(c) {
				t.Fatalf("bad message length %d at %d", l, off)
			}
			if l > maxMsg {
				t.Fatalf("message of %d bytes exceeds %d", l, maxMsg)
			}
			typ := binary.NativeEndian.Uint16(c[off+4:])
			if typ&0xff == unix.NFT_MSG_NEWSETELEM || typ&0xff == unix.NFT_MSG_DELSETELEM {
				msgs = append(msgs, decodeList(t, c[off+unix.NLMSG_HDRLEN+4:off+l]))
			}
			off += (l + 3) &^ 3
		}
	}
	return msgs
}

func attrs(b []byte, f func(typ uint16, data []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		f(binary.NativeEndian.Uint16(b[2:])&^nlaNested, b[4:l])
		b = b[min((l+3)&^3, len(b)):]
	}
}

func decodeList(t *testing.T, b []byte) []element {
	var out []element
	attrs(b, func(typ uint16, data []byte) {
		if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			return
		}
		attrs(data, func(_ uint16, el []byte) {
			var e element
			attrs(el, func(typ uint16, d []byte) {
				switch typ {
				case unix.NFTA_SET_ELEM_FLAGS:
					e.end = binary.BigEndian.Uint32(d)&unix.NFT_SET_ELEM_INTERVAL_END != 0
				case unix.NFTA_SET_ELEM_KEY:
					attrs(d, func(_ uint16, k []byte) { e.key = fmt.Sprintf("%x", k) })
				case unix.NFTA_SET_ELEM_USERDATA:
					e.open = true
				}
			})
			out = append(out, e)
		})
	})
	return out
}

func TestWriteRanges4(t *testing.T) {
	set := ipnet.Set{V4: []ipnet.Range4{
		{Lo: 0, Hi: 0x0a000000 - 1},      // 0.0.0.0–9.255.255.255
		{Lo: 0xc0000201, Hi: 0xc0000201}, // 192.0.2.1, single
		{Lo: 0xffffff00, Hi: 0xffffffff}, // 255.255.255.0/24, no end element
	}}
	l := newLayout(testConfig{}.settings())
	for _, tt := range []struct {
		set  string
		want []element
	}{
		{SetBlock4, []element{{key: "00000000"}, {key: "0a000000", end: true}, {key: "ffffff00", open: true}}},
		{SetHosts4, []element{{key: "c0000201"}}},
		{SetAllow4, []element{{key: "00000000"}, {key: "0a000000", end: true}, {key: "c0000201"}, {key: "c0000202", end: true}, {key: "ffffff00", open: true}}},
	} {
		b := newBatch(1)
		writeRanges4(b, unix.NFT_MSG_NEWSETELEM, l.set(tt.set), set.V4)
		msgs := decodeElems(t, b.finish())
		if len(msgs) != 1 {
			t.Fatalf("%s: %d messages, want 1", tt.set, len(msgs))
		}
		if fmt.Sprint(msgs[0]) != fmt.Sprint(tt.want) {
			t.Errorf("%s: elements %v, want %v", tt.set, msgs[0], tt.want)
		}
	}
}

func TestWriteRanges6Top(t *testing.T) {
	set := ipnet.Set{V6: []ipnet.Range6{
		{Lo: ipnet.U128{Hi: 0x20010db8 << 32, Lo: 0}, Hi: ipnet.U128{Hi: 0x20010db8<<32 | 0xffff_ffff, Lo: ^uint64(0)}},
		{Lo: ipnet.U128{Hi: ^uint64(0), Lo: ^uint64(0) - 1}, Hi: max128},
	}}
	b := newBatch(1)
	writeRanges6(b, unix.NFT_MSG_NEWSETELEM, newLayout(testConfig{IPv6: true}.settings()).set(SetBlock6), set.V6)
	got := decodeElems(t, b.finish())[0]
	want := []element{
		{key: "20010db8000000000000000000000000"},
		{key: "20010db9000000000000000000000000", end: true},
		{key: "fffffffffffffffffffffffffffffffe", open: true},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("elements %v, want %v", got, want)
	}
}

// TestChunking checks that a big list is split into bounded messages over
// several chunks and that no element is lost or duplicated.
func TestChunking(t *testing.T) {
	var s ipnet.Set
	for i := uint32(0); i < 300_000; i++ {
		s.V4 = append(s.V4, ipnet.Range4{Lo: i * 4, Hi: i*4 + i%2})
	}
	l := newLayout(testConfig{}.settings())
	b := newBatch(1)
	n := writeRanges4(b, unix.NFT_MSG_NEWSETELEM, l.set(SetHosts4), s.V4)
	n += writeRanges4(b, unix.NFT_MSG_NEWSETELEM, l.set(SetBlock4), s.V4)
	bufs := b.finish()
	if len(bufs) < 2 {
		t.Fatalf("%d chunks, want several", len(bufs))
	}
	total := 0
	for _, m := range decodeElems(t, bufs) {
		total += len(m)
	}
	if want := 150_000 + 2*150_000; total != want || n != want {
		t.Errorf("decoded %d elements, writer counted %d, want %d", total, n, want)
	}
	for _, c := range bufs {
		if cap(c) != chunkSize {
			t.Errorf("chunk capacity %d, want %d (a chunk grew)", cap(c), chunkSize)
		}
	}
}

func TestKernelErrorIs(t *testing.T) {
	err := fmt.Errorf("nftables update: %w", &KernelError{Op: "add elements to blocklist4", Errno: unix.EEXIST})
	if !errors.Is(err, unix.EEXIST) {
		t.Fatal("errors.Is(EEXIST) = false")
	}
	if !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("no hint in %q", err)
	}
}

// TestPlanAdoption plans the adoption of tables left by other
// configurations: what is kept, deleted, created and renamed.
func TestPlanAdoption(t *testing.T) {
	cfg := testConfig{Hooks: []firewall.Hook{HookPrerouting, HookInput}}.settings()
	l := newLayout(cfg)
	pre, in := hookPrio[string(HookPrerouting)], hookPrio[string(HookInput)]
	base := func(name string, hook uint32, prio int32) kernelChain {
		return kernelChain{name: name, base: true, hook: hook, prio: prio, typ: "filter", policy: 1}
	}
	hash4 := kernelSet{name: SetHosts4, keyType: 7, keyLen: 4}
	tests := []struct {
		name string
		kt   kernelTable
		want string
	}{
		{"same layout", kernelTable{
			chains: []kernelChain{base("prerouting", pre.num, pre.prio), base("input", in.num, in.prio),
				{name: chainDrop4, comment: verdictComment(cfg, false)}},
			sets: []kernelSet{hash4, {name: SetBlock4, flags: unix.NFT_SET_INTERVAL, keyType: 7, keyLen: 4, udata: []byte("any comment")}},
			objs: []kernelObj{{name: Counter4, typ: unix.NFT_OBJECT_COUNTER, comment: counterComment(false)}},
		}, "keep sets [blockhost4 blocklist4] del sets [] keep objs [dropped4] del objs [] keep chains [block4] del chains [] base map[input:input output:output prerouting:prerouting] new [output] late []"},
		{"hook added, IPv6 dropped, priority moved", kernelTable{
			chains: []kernelChain{base("prerouting", pre.num, -150), {name: chainDrop6}, {name: chainDrop4, comment: "old"},
				base("forward", unix.NF_INET_FORWARD, -10)},
			sets: []kernelSet{{name: SetHosts4, flags: unix.NFT_SET_INTERVAL, keyType: 7, keyLen: 4}, {name: SetBlock6, flags: unix.NFT_SET_INTERVAL, keyType: 8, keyLen: 16},
				{name: "__set0", flags: unix.NFT_SET_ANONYMOUS}},
			objs: []kernelObj{{name: Counter6, typ: unix.NFT_OBJECT_COUNTER}},
		}, "keep sets [] del sets [blockhost4 blocklist6] keep objs [] del objs [dropped6] keep chains [] del chains [block6 block4] base map[input:input output:output prerouting:prerouting_1] new [input output prerouting] late [prerouting forward]"},
		{"set with a timeout", kernelTable{sets: []kernelSet{{name: SetHosts4, keyType: 7, keyLen: 4, extra: true}}},
			"keep sets [] del sets [blockhost4] keep objs [] del objs [] keep chains [] del chains [] base map[input:input output:output prerouting:prerouting] new [input output prerouting] late []"},
	}
	keys := func(m map[string]bool) []string {
		var k []string
		for n := range m {
			k = append(k, n)
		}
		slices.Sort(k)
		return k
	}
	for _, tt := range tests {
		p := planAdoption(l, &tt.kt)
		var objs []string
		for _, o := range p.delObjs {
			objs = append(objs, o.name)
		}
		got := fmt.Sprintf("keep sets %v del sets %v keep objs %v del objs %v keep chains %v del chains %v base %v new %v late %v",
			keys(p.keepSets), p.delSets, keys(p.keepObjs), objs, keys(p.keepChains), p.delChains, p.base, keys(p.newBase), p.lateDel)
		if got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

// TestWriteAdoptionOrder checks the order that makes adoption safe: rules
// are flushed before anything is deleted, and base chains that go are
// deleted only after every element is written.
func TestWriteAdoptionOrder(t *testing.T) {
	l := newLayout(testConfig{}.settings())
	kt := kernelTable{chains: []kernelChain{{name: "prerouting", base: true, hook: unix.NF_INET_PRE_ROUTING, prio: -150, typ: "filter", policy: 1}},
		sets: []kernelSet{{name: "old", keyType: 7, keyLen: 4}}}
	b := newBatch(1)
	if err := writeAdoption(b, l, planAdoption(l, &kt), func(b *batch) {
		writeRanges4(b, unix.NFT_MSG_NEWSETELEM, l.set(SetBlock4), set("10.0.0.0/8").V4)
	}); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, m := range b.msgs {
		ops = append(ops, m.what)
	}
	idx := func(op string) int { return slices.Index(ops, op) }
	if !(idx("flush rules of table inet sikkerguard") < idx("delete set old") &&
		idx("add chain prerouting_1") < idx("add elements to blocklist4") &&
		idx("add elements to blocklist4") < idx("delete chain prerouting") && idx("delete chain prerouting") == len(ops)-1) ||
		slices.Contains(ops, "delete table inet sikkerguard") {
		t.Errorf("unsafe adoption order: %q", ops)
	}
}

package nft

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"golang.org/x/sys/unix"
)

// recordRE matches what varies in the content set's records between runs.
var recordRE = regexp.MustCompile(`at generation \d+, boot \S+ netns \d+`)

// normalRecords makes `nft list` output comparable across runs.
func normalRecords(s string) string {
	return recordRE.ReplaceAllString(s, "at generation G, boot B netns N")
}

// dumpKeys reads every element of a set as hex key, "/end" marking an
// interval end.
func dumpKeys(t *testing.T, b *Backend, set string) []string {
	t.Helper()
	fd, err := openSocket(b.nsFD)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var out []string
	err = requestEach(fd, &b.seq, unix.NFT_MSG_GETSETELEM, unix.NLM_F_DUMP, "list elements of "+set, func(bt *batch) {
		bt.str(unix.NFTA_SET_ELEM_LIST_TABLE, TableName)
		bt.str(unix.NFTA_SET_ELEM_LIST_SET, set)
	}, func(m []byte) {
		eachAttr(parseAttrs(m)[unix.NFTA_SET_ELEM_LIST_ELEMENTS], func(_ uint16, e []byte) {
			a := parseAttrs(e)
			k := hex.EncodeToString(parseAttrs(a[unix.NFTA_SET_ELEM_KEY])[unix.NFTA_DATA_VALUE])
			if a.u32(unix.NFTA_SET_ELEM_FLAGS)&unix.NFT_SET_ELEM_INTERVAL_END != 0 {
				k += "/end"
			}
			out = append(out, k)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// wantKeys is what dumpKeys returns for a set filled from list.
func wantKeys(s setDef, list ipnet.Set) []string {
	var out []string
	if s.v6 {
		var k [16]byte
		for _, r := range list.V6 {
			if !s.part.takes(r.Lo == r.Hi) {
				continue
			}
			put128(k[:], r.Lo)
			out = append(out, hex.EncodeToString(k[:]))
			if s.interval && r.Hi != max128 {
				put128(k[:], inc128(r.Hi))
				out = append(out, hex.EncodeToString(k[:])+"/end")
			}
		}
	} else {
		var k [4]byte
		for _, r := range list.V4 {
			if !s.part.takes(r.Lo == r.Hi) {
				continue
			}
			binary.BigEndian.PutUint32(k[:], r.Lo)
			out = append(out, hex.EncodeToString(k[:]))
			if s.interval && r.Hi != ^uint32(0) {
				binary.BigEndian.PutUint32(k[:], r.Hi+1)
				out = append(out, hex.EncodeToString(k[:])+"/end")
			}
		}
	}
	slices.Sort(out)
	return out
}

// assertHolds checks that every set holds exactly its part of block and
// allow.
func assertHolds(t *testing.T, b *Backend, block, allow ipnet.Set) {
	t.Helper()
	for _, s := range b.lay.sets {
		got, want := dumpKeys(t, b, s.name), wantKeys(s, pick(s, block, allow, firewall.Lists{}))
		if !slices.Equal(got, want) {
			add, del := diffKeys(got, want)
			t.Errorf("set %s holds %d elements, want %d: extra %v, missing %v", s.name, len(got), len(want), add, del)
		}
	}
}

func diffKeys(got, want []string) (extra, missing []string) {
	for _, k := range got {
		if _, ok := slices.BinarySearch(want, k); !ok && len(extra) < 5 {
			extra = append(extra, k)
		}
	}
	for _, k := range want {
		if _, ok := slices.BinarySearch(got, k); !ok && len(missing) < 5 {
			missing = append(missing, k)
		}
	}
	return extra, missing
}

// recordOps collects the operations of the transactions sent until the
// test ends.
func recordOps(t *testing.T) *[]string {
	var ops []string
	sendHook = func(op string, sent bool) {
		if !sent {
			ops = append(ops, op)
		}
	}
	t.Cleanup(func() { sendHook = nil })
	return &ops
}

// TestAdoptKnownContent: a table whose records are current is adopted with
// the difference alone: nothing for the same lists, one transaction (and
// the removal of a single that moved into a range) for changed ones whose
// earlier version was presumed. A wrong presumption falls back to the
// reload. Every set ends exactly as listed.
func TestAdoptKnownContent(t *testing.T) {
	l := newLab(t)
	cfg := testConfig{IPv6: true, LogGroup: 7}
	a := randomList(1, 3000, "192.0.2.48/28", "192.0.2.77/32", "2001:db8:1::bad/128", "2001:db8:5::/48")
	allowA := set("192.0.2.55/32", "2001:db8:1::55/128")
	if err := l.backend(t, cfg).Apply(firewall.Lists{Block: a, Allow: allowA}); err != nil {
		t.Fatal(err)
	}
	ops := recordOps(t)
	step := func(what string, b *Backend, block, allow ipnet.Set, want ...string) {
		t.Helper()
		*ops = nil
		if err := b.Apply(firewall.Lists{Block: block, Allow: allow}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !slices.Equal(*ops, want) {
			t.Errorf("%s: transactions %q, want %q", what, *ops, want)
		}
		assertHolds(t, b, block, allow)
	}
	step("same lists", l.backend(t, cfg), a, allowA, "adopt (content known)")

	// 192.0.2.77 moves from a single into a range, 2001:db8:1::bad leaves.
	next := randomList(2, 3000, "192.0.2.48/28", "192.0.2.64/27", "2001:db8:5::/48", "2001:db8:6::1/128")
	allowB := set("192.0.2.56/32")
	b := l.backend(t, cfg)
	b.Presume(a, allowA)
	step("changed lists, presumed", b, next, allowB, "adopt (content known)", "remove moved singles")

	b = l.backend(t, cfg)
	b.Presume(a, allowA) // the kernel holds next
	step("wrong presumption", b, randomList(3, 3000), allowB, "adopt", "trim hash sets")
}

// TestAdoptAfterForeignChanges: whatever another program did to the sets
// since the last transaction, the next adoption makes them hold exactly
// the list again.
func TestAdoptAfterForeignChanges(t *testing.T) {
	list := randomList(4, 3000, "192.0.2.48/28", "192.0.2.77/32", "2001:db8:1::bad/128", "2001:db8:5::/48")
	allow := set("192.0.2.55/32")
	for _, change := range [][]string{
		{"flush", "set", "inet", TableName, SetHosts4},
		{"flush", "set", "inet", TableName, SetBlock4},
		{"flush", "set", "inet", TableName, SetAllow4},
		{"add", "element", "inet", TableName, SetHosts4, "{ 198.51.100.7 }"},
		{"delete", "element", "inet", TableName, SetHosts4, "{ 192.0.2.77 }"},
		{"delete", "element", "inet", TableName, SetBlock4, "{ 192.0.2.48/28 }"},
		{"delete", "element", "inet", TableName, SetHosts6, "{ 2001:db8:1::bad }"},
		{"add", "table", "inet", "other"}, // not ours, but a commit
	} {
		t.Run(fmt.Sprint(change), func(t *testing.T) {
			l := newLab(t)
			cfg := testConfig{IPv6: true}
			if err := l.backend(t, cfg).Apply(firewall.Lists{Block: list, Allow: allow}); err != nil {
				t.Fatal(err)
			}
			l.Host.MustRun("nft", change...)
			ops := recordOps(t)
			b := l.backend(t, cfg)
			b.Presume(list, allow)
			if err := b.Apply(firewall.Lists{Block: list, Allow: allow}); err != nil {
				t.Fatal(err)
			}
			if want := []string{"adopt", "trim hash sets"}; !slices.Equal(*ops, want) {
				t.Errorf("transactions %q, want %q", *ops, want)
			}
			assertHolds(t, b, list, allow)
			// The reload wrote current records: the next run knows.
			*ops = nil
			if err := l.backend(t, cfg).Apply(firewall.Lists{Block: list, Allow: allow}); err != nil {
				t.Fatal(err)
			}
			if want := []string{"adopt (content known)"}; !slices.Equal(*ops, want) {
				t.Errorf("after the reload: transactions %q, want %q", *ops, want)
			}
		})
	}
}

func TestParseRecord(t *testing.T) {
	r := record{set: SetHosts4, digest: "00ff", gen: 42, boot: "6f0c-1", netns: 4026531840}
	got, ok := parseRecord(r.String())
	if !ok || got != r {
		t.Errorf("parseRecord(%q) = %+v, %v; want %+v", r.String(), got, ok, r)
	}
	if _, ok := parseRecord("sikkerguard: blockhost4 holds"); ok {
		t.Error("a truncated record parsed")
	}
}

// TestKnownContent: a set's record says what it holds only at the
// generation, boot and namespace it was written for; an interval set may
// be unknown (it is reloaded), a hash set may not.
func TestKnownContent(t *testing.T) {
	b, err := New(testConfig{IPv6: true}.settings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b.id = identity{boot: "b00t", netns: 7}
	a := set("192.0.2.1/32", "192.0.2.64/26", "2001:db8::1/128")
	next := set("192.0.2.2/32", "192.0.2.64/26", "2001:db8::1/128")
	allow := set("198.51.100.1/32")
	kt := &kernelTable{records: map[string]record{}}
	for _, s := range b.lay.sets {
		kt.records[s.name] = record{set: s.name, digest: setDigest(s, pick(s, a, allow, firewall.Lists{}), ipnet.Set{}), gen: 5, boot: "b00t", netns: 7}
	}
	str := func(hs []holds, ok bool) string { return fmt.Sprint(hs, ok) }
	for _, tc := range []struct {
		name         string
		gen          uint32
		block, allow ipnet.Set
		presume      bool
		want         string
	}{
		{"same lists", 5, a, allow, false, "[1 1 1 1 1 1] true"},
		{"a later generation", 6, a, allow, false, "[] false"},
		{"changed, not presumed", 5, next, allow, false, "[] false"},
		{"changed, presumed", 5, next, allow, true, "[1 2 1 1 1 1] true"},
		{"whitelist changed", 5, a, set("198.51.100.2/32"), false, "[0 1 1 1 1 1] true"},
	} {
		b.presumed = nil
		if tc.presume {
			b.Presume(a, allow)
		}
		if got := str(b.knownContent(kt, tc.gen, tc.block, tc.allow)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	b.id.netns = 8
	if got := str(b.knownContent(kt, 5, a, allow)); got != "[] false" {
		t.Errorf("another namespace: %s, want [] false", got)
	}
}

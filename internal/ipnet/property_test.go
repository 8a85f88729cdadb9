package ipnet

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// The property tests compare every set operation with a naive model: a
// bitmap over a small window of the address space. Windows sit at the bottom
// and top of both spaces and across the carry between the halves of a U128,
// where off-by-one and overflow bugs live.

const window = 300

type universe struct {
	name string
	v6   bool
	b4   uint32 // first address of the window
	b6   U128
}

var universes = []universe{
	{name: "v4 bottom", b4: 0},
	{name: "v4 middle", b4: 0x0a0000f0},
	{name: "v4 top", b4: 0xffffffff - window + 1},
	{name: "v6 bottom", v6: true},
	{name: "v6 carry", v6: true, b6: U128{Hi: 0x20010db8, Lo: ^uint64(0) - window/2}},
	{name: "v6 top", v6: true, b6: MaxU128.sub(U128{Lo: window - 1})},
}

type bitmap [window]bool

// add puts offsets lo..hi of the window into s as one range.
func (u universe) add(s *Set, lo, hi int) {
	if u.v6 {
		s.V6 = append(s.V6, Range6{u.b6.add(U128{Lo: uint64(lo)}), u.b6.add(U128{Lo: uint64(hi)})})
	} else {
		s.V4 = append(s.V4, Range4{u.b4 + uint32(lo), u.b4 + uint32(hi)})
	}
}

func (u universe) addr(off int) netip.Addr {
	if u.v6 {
		return AddrFrom6(u.b6.add(U128{Lo: uint64(off)}))
	}
	return AddrFrom4(u.b4 + uint32(off))
}

// random returns an unmerged set of a few random ranges and its bitmap.
func (u universe) random(rng *rand.Rand) (Set, bitmap) {
	var s Set
	var m bitmap
	n := rng.IntN(9)
	for range n {
		lo := rng.IntN(window)
		hi := lo + rng.IntN(1+rng.IntN(window/4))
		if rng.IntN(20) == 0 {
			lo, hi = 0, window-1
		}
		hi = min(hi, window-1)
		u.add(&s, lo, hi)
		for i := lo; i <= hi; i++ {
			m[i] = true
		}
	}
	return s, m
}

// set returns the unique merged set of a bitmap: its maximal runs.
func (u universe) set(m bitmap) Set {
	var s Set
	for i := 0; i < window; {
		if !m[i] {
			i++
			continue
		}
		j := i
		for j+1 < window && m[j+1] {
			j++
		}
		u.add(&s, i, j)
		i = j + 1
	}
	return s
}

func sameSet(a, b Set) bool {
	return slices.Equal(a.V4, b.V4) && slices.Equal(a.V6, b.V6)
}

func TestPropertiesAgainstModel(t *testing.T) {
	for _, u := range universes {
		t.Run(u.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(len(u.name))))
			for iter := range 2000 {
				a, ma := u.random(rng)
				b, mb := u.random(rng)
				a0, b0 := a.Clone(), b.Clone()
				var mor, mdiff, mand bitmap
				for i := range window {
					mor[i] = ma[i] || mb[i]
					mdiff[i] = ma[i] && !mb[i]
					mand[i] = ma[i] && mb[i]
				}

				if got := Union(a, b); !sameSet(got, u.set(mor)) {
					t.Fatalf("#%d Union(%v, %v) = %v, want %v", iter, a, b, got, u.set(mor))
				}
				if got := a.Subtract(b); !sameSet(got, u.set(mdiff)) {
					t.Fatalf("#%d %v.Subtract(%v) = %v, want %v", iter, a, b, got, u.set(mdiff))
				}
				if got := Intersect(a, b); !sameSet(got, u.set(mand)) {
					t.Fatalf("#%d Intersect = %v, want %v", iter, got, u.set(mand))
				}
				if !a.Equal(a0) || !b.Equal(b0) {
					t.Fatalf("#%d inputs modified", iter)
				}

				am := a.Clone()
				am.Merge()
				if !sameSet(am, u.set(ma)) || !am.IsMerged() {
					t.Fatalf("#%d Merge(%v) = %v, want %v", iter, a, am, u.set(ma))
				}
				bm := b.Clone()
				bm.Merge()
				for i := range window {
					addr := u.addr(i)
					if am.Contains(addr) != ma[i] {
						t.Fatalf("#%d %v.Contains(%s) = %v", iter, am, addr, !ma[i])
					}
					if r, ok := am.Lookup(addr); ok && (addr.Less(r.Lo) || r.Hi.Less(addr)) {
						t.Fatalf("#%d Lookup(%s) = %s, which does not hold it", iter, addr, r)
					}
				}

				// Diff as element sets, and the delta turns prev's elements into next's.
				added, removed := Diff(am, bm)
				wantAdded, wantRemoved := elementDiff(am, bm)
				if !sameSet(added, wantAdded) || !sameSet(removed, wantRemoved) {
					t.Fatalf("#%d Diff(%v, %v) = +%v -%v, want +%v -%v", iter, am, bm, added, removed, wantAdded, wantRemoved)
				}
				if got := applyDelta(am, added, removed); !sameSet(got, bm) && !(got.IsEmpty() && bm.IsEmpty()) {
					t.Fatalf("#%d delta applied = %v, want %v", iter, got, bm)
				}

				// The prefix cover of the merged set holds exactly its addresses.
				var cover Set
				for p := range am.AllPrefixes() {
					cover.AddPrefix(p)
				}
				cover.Merge()
				if !sameSet(cover, am) && !(cover.IsEmpty() && am.IsEmpty()) {
					t.Fatalf("#%d prefixes of %v cover %v", iter, am, cover)
				}
			}
		})
	}
}

// elementDiff is Diff by brute force: membership tests on whole elements.
func elementDiff(prev, next Set) (added, removed Set) {
	for _, r := range next.V4 {
		if !slices.Contains(prev.V4, r) {
			added.V4 = append(added.V4, r)
		}
	}
	for _, r := range prev.V4 {
		if !slices.Contains(next.V4, r) {
			removed.V4 = append(removed.V4, r)
		}
	}
	for _, r := range next.V6 {
		if !slices.Contains(prev.V6, r) {
			added.V6 = append(added.V6, r)
		}
	}
	for _, r := range prev.V6 {
		if !slices.Contains(next.V6, r) {
			removed.V6 = append(removed.V6, r)
		}
	}
	return added, removed
}

// Parse(WriteTo(s)) gives s back for random sets anywhere in both spaces.
func TestPropertyRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for iter := range 500 {
		var s Set
		for range rng.IntN(20) {
			a, b := rng.Uint32(), rng.Uint32()
			if rng.IntN(3) == 0 {
				b = a // single addresses are the common case
			}
			s.V4 = append(s.V4, Range4{min(a, b), max(a, b)})
			x := U128{rng.Uint64(), rng.Uint64()}
			y := U128{rng.Uint64(), rng.Uint64()}
			if y.Less(x) {
				x, y = y, x
			}
			if x.Hi>>16 == 0 {
				continue // ::ffff:0:0/96 would come back as IPv4, by design
			}
			s.V6 = append(s.V6, Range6{x, y})
		}
		var out []byte
		w := appendWriter{&out}
		if _, err := s.WriteTo(w); err != nil {
			t.Fatal(err)
		}
		back, st, err := Parse(bytesReader(out), ParseOptions{})
		if err != nil || st.Malformed != 0 {
			t.Fatalf("#%d Parse: %v %+v", iter, err, st)
		}
		if !sameSet(back, s) && !(back.IsEmpty() && s.IsEmpty()) {
			t.Fatalf("#%d round trip\n got %v\nwant %v\ntext %s", iter, back, s, out)
		}
	}
}

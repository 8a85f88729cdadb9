package nft

import "github.com/sikkerapi/sikkerguard/internal/ipnet"

// Within one transaction the hash sets answer with their new elements from
// the generation switch on, while an interval set answers with its old ones
// until the commit has finished, milliseconds later for big batches. An
// address that moves from a single entry (hash) of the old list into a range
// (interval) of the new one would be in neither set meanwhile: 4.5-5.3k of
// ~58k flood probes passed over 5 such moves. So the transaction keeps such
// moved singles in the hash set, and a second one removes them once the
// range is in place (trimMoved). The reverse move needs nothing: the range
// leaves late and the single arrives early.

// movedSingles returns the single addresses of old that lie inside a range
// of two or more addresses of next. Both are merged.
func movedSingles(old, next ipnet.Set) ipnet.Set {
	var m ipnet.Set
	j := 0
	for _, r := range old.V4 {
		if r.Lo != r.Hi {
			continue
		}
		for j < len(next.V4) && next.V4[j].Hi < r.Lo {
			j++
		}
		if j < len(next.V4) && next.V4[j].Lo <= r.Lo && next.V4[j].Lo != next.V4[j].Hi {
			m.V4 = append(m.V4, r)
		}
	}
	j = 0
	for _, r := range old.V6 {
		if r.Lo != r.Hi {
			continue
		}
		for j < len(next.V6) && next.V6[j].Hi.Less(r.Lo) {
			j++
		}
		if j < len(next.V6) && !r.Lo.Less(next.V6[j].Lo) && next.V6[j].Lo != next.V6[j].Hi {
			m.V6 = append(m.V6, r)
		}
	}
	return m
}

// without returns the ranges of from that are not in drop; both are sorted
// and drop holds only ranges that appear in from as they are.
func without(from, drop ipnet.Set) ipnet.Set {
	if drop.IsEmpty() {
		return from
	}
	return ipnet.Set{V4: without4(from.V4, drop.V4), V6: without6(from.V6, drop.V6)}
}

func without4(from, drop []ipnet.Range4) []ipnet.Range4 {
	out := make([]ipnet.Range4, 0, len(from))
	j := 0
	for _, r := range from {
		for j < len(drop) && drop[j].Lo < r.Lo {
			j++
		}
		if j < len(drop) && drop[j] == r {
			continue
		}
		out = append(out, r)
	}
	return out
}

func without6(from, drop []ipnet.Range6) []ipnet.Range6 {
	out := make([]ipnet.Range6, 0, len(from))
	j := 0
	for _, r := range from {
		for j < len(drop) && drop[j].Lo.Less(r.Lo) {
			j++
		}
		if j < len(drop) && drop[j] == r {
			continue
		}
		out = append(out, r)
	}
	return out
}

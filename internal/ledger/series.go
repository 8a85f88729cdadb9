package ledger

import "time"

// series counts events in a ring of fixed-width time buckets: the last
// len(Counts) buckets of Width seconds, the newest at index Last mod len.
// It costs len(Counts) words whatever the traffic, which is what keeps a
// feed's record a fixed size.
type series struct {
	Width  int64    `json:"width"`  // bucket width in seconds
	Last   int64    `json:"last"`   // index (unix seconds / Width) of the newest bucket
	Counts []uint64 `json:"counts"` // ring; Counts[i % len] is bucket i
}

func newSeries(width time.Duration, n int) series {
	return series{Width: int64(width / time.Second), Counts: make([]uint64, n)}
}

// valid reports whether a loaded series has the shape s was made with.
func (s series) valid(width time.Duration, n int) bool {
	return s.Width == int64(width/time.Second) && len(s.Counts) == n
}

// advance moves the ring to bucket idx, zeroing the buckets it passes.
func (s *series) advance(idx int64) {
	n := int64(len(s.Counts))
	if idx <= s.Last {
		return
	}
	if idx-s.Last >= n {
		clear(s.Counts)
	} else {
		for i := s.Last + 1; i <= idx; i++ {
			s.Counts[i%n] = 0
		}
	}
	s.Last = idx
}

// add counts v at t. A time older than the ring (a clock step back, a
// late event) is dropped rather than counted in the wrong bucket.
func (s *series) add(t time.Time, v uint64) {
	idx := t.Unix() / s.Width
	s.advance(idx)
	if s.Last-idx >= int64(len(s.Counts)) || idx < 0 {
		return
	}
	s.Counts[idx%int64(len(s.Counts))] += v
}

// sum adds the buckets that overlap the span d before now, the current
// one included; d is rounded up to whole buckets and capped at the ring.
func (s series) sum(now time.Time, d time.Duration) uint64 {
	n := int64(len(s.Counts))
	cur := now.Unix() / s.Width
	k := min((int64(d/time.Second)+s.Width-1)/s.Width, n)
	var out uint64
	for i := cur - k + 1; i <= cur; i++ {
		if i < 0 || i > s.Last || s.Last-i >= n {
			continue
		}
		out += s.Counts[i%n]
	}
	return out
}

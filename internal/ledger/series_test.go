package ledger

import (
	"testing"
	"time"
)

func TestSeriesRing(t *testing.T) {
	s := newSeries(time.Hour, 3)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	s.add(at(0), 1)
	s.add(at(1), 2)
	s.add(at(2), 4)
	if got := s.sum(at(2), 3*time.Hour); got != 7 {
		t.Errorf("3 h = %d, want 7", got)
	}
	// One step forward drops the oldest bucket only; 90 min rounds up to two.
	s.add(at(3), 8)
	if got, want := s.sum(at(3), 3*time.Hour), uint64(14); got != want {
		t.Errorf("3 h after a step = %d, want %d", got, want)
	}
	if got := s.sum(at(3), 90*time.Minute); got != 12 {
		t.Errorf("90 min = %d, want 12", got)
	}
	// A late event older than the ring is not counted in a wrong bucket;
	// one within it is.
	s.add(at(0), 100)
	s.add(at(2), 16)
	if got := s.sum(at(3), 24*time.Hour); got != 30 {
		t.Errorf("whole ring = %d, want 30", got)
	}
	// Reading ahead of the newest bucket sees only what is still inside.
	if got := s.sum(at(5), 3*time.Hour); got != 8 {
		t.Errorf("2 h later = %d, want 8", got)
	}
	s.add(at(10), 1)
	if got := s.sum(at(10), 3*time.Hour); got != 1 {
		t.Errorf("after a long jump = %d, want 1", got)
	}
}

// Package safety keeps sikkerguard from hurting the host it protects: it
// decides which pulled lists are trustworthy enough to enforce, and (in the
// daemon) which addresses must never be blocked.
package safety

import (
	"errors"
	"fmt"
)

// Limits are the sanity bounds a pulled list must respect (config safety.*).
type Limits struct {
	MaxGrowth  float64 // a list more than MaxGrowth × the previous one is refused
	MaxEntries int     // hard cap on entries (merged ranges) per apply
}

// Reason says why a list was refused; the daemon reports it in its state.
type Reason string

const (
	ReasonEmpty    Reason = "empty"
	ReasonTooLarge Reason = "too_large"
	ReasonGrowth   Reason = "growth"
)

// ErrRejected matches every *RejectError with errors.Is.
var ErrRejected = errors.New("list rejected")

// RejectError is a refused list: the current list stays in force.
type RejectError struct {
	Reason Reason
	Prev   int
	Next   int
	Limit  float64
}

func (e *RejectError) Error() string {
	switch e.Reason {
	case ReasonEmpty:
		return "list rejected: the new list is empty; keeping the current one"
	case ReasonTooLarge:
		return fmt.Sprintf("list rejected: %d entries exceed safety.max_entries %.0f; keeping the current one", e.Next, e.Limit)
	default:
		return fmt.Sprintf("list rejected: %d entries is more than %.2g× the previous %d (safety.max_growth); keeping the current one",
			e.Next, e.Limit, e.Prev)
	}
}

func (e *RejectError) Is(target error) bool { return target == ErrRejected }

// CheckList decides whether a list of next entries may replace one of prev
// entries. Entries are merged ranges, the unit the kernel holds, so a feed
// that adds one /8 counts once rather than sixteen million times. prev == 0
// means nothing was enforced before, so growth cannot be judged.
func CheckList(prev, next int, lim Limits) error {
	switch {
	case next == 0:
		return &RejectError{Reason: ReasonEmpty, Prev: prev, Next: next}
	case lim.MaxEntries > 0 && next > lim.MaxEntries:
		return &RejectError{Reason: ReasonTooLarge, Prev: prev, Next: next, Limit: float64(lim.MaxEntries)}
	case prev > 0 && lim.MaxGrowth > 0 && float64(next) > lim.MaxGrowth*float64(prev):
		return &RejectError{Reason: ReasonGrowth, Prev: prev, Next: next, Limit: lim.MaxGrowth}
	}
	return nil
}

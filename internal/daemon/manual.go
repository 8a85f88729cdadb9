package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/statefile"
)

// Entries blocked by hand (`sikkerctl block`) are one more feed of the
// decision, named "manual": the never-block list is subtracted from them
// and the merged-list checks hold them like any feed's list, so a manual
// entry can never lock the host out where a feed could not.

// manualFile holds the entries blocked by hand, which survive restarts.
const manualFile = "manual.json"

// manualEntry is one range blocked by hand.
type manualEntry struct {
	Prefix  netip.Prefix `json:"prefix"`
	Added   time.Time    `json:"added"`
	Until   time.Time    `json:"until,omitzero"` // zero: until unblocked
	Comment string       `json:"comment,omitempty"`
}

type manualState struct {
	Entries []manualEntry `json:"entries"`
}

func (e manualEntry) expired(now time.Time) bool { return !e.Until.IsZero() && !now.Before(e.Until) }

// checkManualEntry holds an entry to what Block accepts: a valid, masked
// prefix no wider than the lockout guards allow a feed, and a short
// printable comment. A file edited by hand must not block more than the
// D-Bus call could.
func checkManualEntry(e manualEntry, s config.Safety) (manualEntry, error) {
	p := e.Prefix
	if !p.IsValid() {
		return e, errors.New("invalid prefix")
	}
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return e, fmt.Errorf("%s mixes IPv4-mapped and IPv6 space", e.Prefix)
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	minBits := s.MinPrefix6
	if p.Addr().Is4() {
		minBits = s.MinPrefix4
	}
	if p.Bits() < minBits {
		return e, fmt.Errorf("%s is wider than /%d (safety.min_prefix%s)", p, minBits, map[bool]string{true: "4", false: "6"}[p.Addr().Is4()])
	}
	if len(e.Comment) > dbusapi.MaxCommentLen || strings.ContainsFunc(e.Comment, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return e, fmt.Errorf("%s: comment is not one short printable line", p)
	}
	e.Prefix = p
	return e, nil
}

// loadManual reads the entries blocked by hand. A missing file is none; a
// corrupt one is ignored with a warning (blocking nothing by hand is the
// safe side), an invalid or expired entry is left out.
func loadManual(dir string, s config.Safety, now time.Time, log *slog.Logger) []manualEntry {
	var st manualState
	if !loadState(dir, manualFile, "manual block list", &st, log) {
		return nil
	}
	var out []manualEntry
	for _, e := range st.Entries {
		e, err := checkManualEntry(e, s)
		switch {
		case err != nil:
			log.Warn("manual block entry ignored", "file", manualFile, "err", err)
		case e.expired(now):
		case slices.ContainsFunc(out, func(o manualEntry) bool { return o.Prefix == e.Prefix }):
		default:
			out = append(out, e)
		}
	}
	return out
}

// saveManual writes the entries blocked by hand atomically.
func saveManual(dir string, es []manualEntry) error {
	return statefile.WriteAtomic(filepath.Join(dir, manualFile), func(w io.Writer) error {
		return json.NewEncoder(w).Encode(manualState{Entries: es})
	}, 0o640)
}

// manualSnapshot is the manual entries as a feed's list.
func manualSnapshot(es []manualEntry, now time.Time) *feed.Snapshot {
	var s ipnet.Set
	for _, e := range es {
		s.AddPrefix(e.Prefix)
	}
	s.Merge()
	return &feed.Snapshot{Name: config.ManualFeedName, Set: s, FetchedAt: now, Origin: manualFile}
}

// manualInput is the manual entries as an input of the decision; ok is
// false when there are none and none are in force.
func (d *Daemon) manualInput() (FeedInput, bool) {
	if d.manualInUse == nil && d.manualPending == nil {
		return FeedInput{}, false
	}
	return FeedInput{Name: config.ManualFeedName, Accepted: d.manualInUse, Candidate: d.manualPending,
		MayBeEmpty: true, ByHand: true}, true
}

// changeManual puts next in force as the manual entries: decided and
// applied like any list, then saved. On refusal nothing changes and the
// reason is returned.
func (d *Daemon) changeManual(next []manualEntry) error {
	snap := manualSnapshot(next, d.o.Now())
	d.manualPending = snap
	d.reconcile(context.Background())
	if d.manualInUse != snap {
		d.manualPending = nil
		reason := d.manualRefused
		if reason == nil && d.planIssue != "" {
			reason = errors.New(d.planIssue)
		}
		if reason == nil {
			reason = errors.New("the change was not applied")
		}
		return fmt.Errorf("%w: %w", reason, dbusapi.ErrFailed)
	}
	d.manual = next
	if err := saveManual(d.cfg.StateDir, next); err != nil {
		return fmt.Errorf("in force, but not saved for the next start: %w", err)
	}
	return nil
}

// Block blocks p by hand for dur (0: until Unblock). An address the
// never-block list protects is refused with the rule that protects it.
func (d *Daemon) Block(p netip.Prefix, dur time.Duration, comment string) error {
	var err error
	if derr := d.do(context.Background(), func() {
		var e manualEntry
		if e, err = checkManualEntry(manualEntry{Prefix: p, Comment: comment}, d.cfg.Safety); err != nil {
			err = fmt.Errorf("%w: %w", err, dbusapi.ErrInvalidArgs)
			return
		}
		if reason := d.allowReason(e.Prefix.Addr()); reason != "" && e.Prefix.IsSingleIP() {
			err = fmt.Errorf("%s is never blocked: %s: %w", e.Prefix.Addr(), reason, dbusapi.ErrInvalidArgs)
			return
		}
		if d.cfg.Safety.StripPrivate && !ipnet.IsGlobal(e.Prefix.Addr()) {
			// It would be stripped from the plan like any feed's entry:
			// accepting it would claim a block that is not there.
			err = fmt.Errorf("%s is not a global address and safety.strip_private is on: %w", e.Prefix, dbusapi.ErrInvalidArgs)
			return
		}
		now := d.o.Now()
		e.Added = now
		if dur > 0 {
			e.Until = now.Add(dur)
		}
		i := slices.IndexFunc(d.manual, func(o manualEntry) bool { return o.Prefix == e.Prefix })
		if i >= 0 && d.manual[i].Until.Equal(e.Until) && d.manual[i].Comment == e.Comment {
			err = fmt.Errorf("%s is already blocked by hand: %w", e.Prefix, dbusapi.ErrExists)
			return
		}
		next := slices.Clone(d.manual)
		if i >= 0 {
			next[i] = e // a new duration or comment replaces the old one
		} else {
			next = append(next, e)
		}
		if err = d.changeManual(next); err == nil {
			d.log.Info("blocked by hand", "prefix", e.Prefix.String(), "until", timeOrNever(e.Until), "comment", e.Comment)
		}
	}); derr != nil {
		return derr
	}
	return err
}

// Unblock removes an entry blocked by hand.
func (d *Daemon) Unblock(p netip.Prefix) error {
	e, err := checkManualEntry(manualEntry{Prefix: p}, config.Safety{})
	if err != nil {
		return fmt.Errorf("%w: %w", err, dbusapi.ErrInvalidArgs)
	}
	if derr := d.do(context.Background(), func() {
		i := slices.IndexFunc(d.manual, func(o manualEntry) bool { return o.Prefix == e.Prefix })
		if i < 0 {
			err = fmt.Errorf("%s is not blocked by hand (sikkerctl check shows what blocks an address): %w", e.Prefix, dbusapi.ErrNotFound)
			return
		}
		if err = d.changeManual(slices.Delete(slices.Clone(d.manual), i, i+1)); err == nil {
			d.log.Info("unblocked by hand", "prefix", e.Prefix.String())
		}
	}); derr != nil {
		return derr
	}
	return err
}

// expireManual drops the entries whose time is up; it runs on the main
// loop's timer.
func (d *Daemon) expireManual() {
	now := d.o.Now()
	if !slices.ContainsFunc(d.manual, func(e manualEntry) bool { return e.expired(now) }) {
		return
	}
	next := slices.DeleteFunc(slices.Clone(d.manual), func(e manualEntry) bool { return e.expired(now) })
	if err := d.changeManual(next); err != nil {
		d.log.Warn("expired manual entries stay blocked", "err", err)
		return
	}
	d.log.Info("manual block entries expired", "left", len(next))
}

// nextManualExpiry is when the next manual entry expires (zero: never).
func (d *Daemon) nextManualExpiry() time.Time {
	var next time.Time
	for _, e := range d.manual {
		if !e.Until.IsZero() && (next.IsZero() || e.Until.Before(next)) {
			next = e.Until
		}
	}
	return next
}

// manualEntryFor returns the manual entry covering a.
func (d *Daemon) manualEntryFor(a netip.Addr) (manualEntry, bool) {
	for _, e := range d.manual {
		if e.Prefix.Contains(a) {
			return e, true
		}
	}
	return manualEntry{}, false
}

func timeOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

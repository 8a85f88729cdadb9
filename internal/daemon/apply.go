package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/safety"
)

// enforcer is the one apply → verify → rollback step of every mode: the
// daemon's reconcile and `--once` both put their decided plan in the kernel
// through it.
type enforcer struct {
	fw     firewall.Firewall
	prober *safety.Prober
	// verify probes targets before and after the change (config
	// safety.verify_connectivity; never in a dry run, which changes
	// nothing).
	verify bool
}

// presumer is a backend that can take a hint of what an earlier process
// applied, to adopt its table with a delta (nft.Backend.Presume).
type presumer interface {
	Presume(block, allow ipnet.Set)
}

// ApplyError is a plan the backend could not apply. Its transaction is
// atomic, so the kernel still holds what it held before.
type ApplyError struct{ Err error }

func (e *ApplyError) Error() string { return "apply failed: " + e.Err.Error() }
func (e *ApplyError) Unwrap() error { return e.Err }

// RollbackError is a plan that was applied but cut the host off from a
// target that answered before the change; the previous plan is back.
type RollbackError struct {
	Lost error // what stopped answering (*safety.LostError)
	// Restore is the failure to put the previous plan back, if any: then
	// the kernel still holds the plan that broke connectivity.
	Restore error
}

func (e *RollbackError) Error() string {
	if e.Restore != nil {
		return fmt.Sprintf("rollback failed (%v) after: %v", e.Restore, e.Lost)
	}
	return "rolled back: " + e.Lost.Error()
}
func (e *RollbackError) Unwrap() error { return e.Lost }

// enforce makes the kernel hold plan. prev is what it held before (an empty
// blocklist when nothing was applied yet): on lost connectivity it is put
// back, in one transaction as well. Only targets that answered before the
// change count, so a resolver that was already down causes no rollback.
func (e enforcer) enforce(ctx context.Context, plan, prev Plan, targets []safety.Target) error {
	var base *safety.Baseline
	if e.verify && len(targets) > 0 {
		if b, err := e.prober.Before(ctx, targets); err == nil {
			base = &b
		}
	}
	if err := e.fw.Apply(plan.Lists); err != nil {
		return &ApplyError{Err: err}
	}
	if base == nil {
		return nil
	}
	lost, err := base.After(ctx)
	if len(lost) == 0 {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("lost %d targets", len(lost))
	}
	return &RollbackError{Lost: err, Restore: e.fw.Apply(prev.Lists)}
}

// commitAccepted saves every accepted candidate as its feed's last good
// list: only after the plan holding it is in the kernel and verified, so a
// list that was refused or rolled back never becomes the list a restart
// enforces. srcs[i] is the source of dec.Feeds[i].
func commitAccepted(dec Decision, srcs []*feed.CachedSource, log *slog.Logger) {
	for i, f := range dec.Feeds {
		if !f.Accepted {
			continue
		}
		if s := srcs[i]; s != nil {
			if err := s.Commit(f.InUse); err != nil {
				// The list is in force; losing its copy only weakens the
				// next start-up.
				log.Warn("cannot save the last good list", "feed", f.Name, "err", err)
			}
		}
	}
}

// rolledBack reports whether err is a rollback (the kernel holds prev).
func rolledBack(err error) bool {
	var rb *RollbackError
	return errors.As(err, &rb)
}

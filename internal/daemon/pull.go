package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
)

// pulling reports whether any feed is being pulled.
func (d *Daemon) pulling() bool {
	for _, f := range d.feeds {
		if f.inflight {
			return true
		}
	}
	return false
}

// forceDue makes every feed due now, except those a 429 told to wait.
func (d *Daemon) forceDue() {
	now := d.o.Now()
	for _, f := range d.feeds {
		if until, held := f.sched.force(now); held {
			d.log.Info("not pulling before the API's Retry-After", "feed", f.name, "until", until.UTC().Format(time.RFC3339))
		}
	}
}

// pullNow pulls every feed and waits for all of them (start-up only).
func (d *Daemon) pullNow(ctx context.Context) {
	d.forceDue()
	d.startDuePulls(ctx)
	for d.pulling() {
		d.handleResult(<-d.results)
	}
}

// startDuePulls starts a pull of every due feed that is not being pulled.
func (d *Daemon) startDuePulls(ctx context.Context) {
	now := d.o.Now()
	for _, f := range d.feeds {
		if f.inflight || !f.sched.due(now) {
			continue
		}
		if f.name == SikkerFeedName {
			d.warnQuota(f, now)
		}
		f.inflight = true
		src, gen := f.src, f.gen
		go func() {
			snap, err := src.Fetch(ctx)
			select {
			case d.results <- pullResult{feed: f, gen: gen, snap: snap, err: err}:
			case <-ctx.Done():
			}
		}()
	}
}

// handleResult schedules the feed's next pull and keeps a new list as the
// feed's candidate for the next decision. The answer of a source that a
// reload replaced, or of a feed the reload dropped, is thrown away: it
// speaks for settings that are no longer in force.
func (d *Daemon) handleResult(r pullResult) {
	f := r.feed
	if r.gen != f.gen || !d.hasFeed(f) {
		d.log.Info("dropping the answer of a feed source replaced by a reload", "feed", f.name)
		return
	}
	f.inflight = false
	now := d.o.Now()
	d.mu.Lock()
	d.lastPull = now
	d.mu.Unlock()
	if f.name == SikkerFeedName {
		d.noteQuota(r.snap, r.err, now)
	}
	d.ledger.Pulled(f.name, r.err == nil, now)
	if r.err != nil {
		delay := f.sched.failed(now, r.err, d.o.RetryMin, f.interval)
		f.problem, f.failed = r.err.Error(), authFailure(r.err)
		if f.failed {
			f.problem = "the API refused the key: " + f.problem
		}
		logPull(d.log, f.name, r.snap, r.err, "retry_in", delay.Round(time.Second).String(), "state", f.state())
		if f.inUse == nil && r.snap != nil {
			f.pending = r.snap // a last good list not yet in force
		}
		return
	}
	f.sched.succeeded(now, f.interval, d.o.Jitter)
	f.lastGood = now
	f.problem, f.failed = "", false
	f.pending = r.snap
	logPull(d.log, f.name, r.snap, nil)
}

func (d *Daemon) hasFeed(f *feedState) bool {
	for _, g := range d.feeds {
		if g == f {
			return true
		}
	}
	return false
}

// pullWaiter is a Pull call waiting for its pulls to be applied.
type pullWaiter struct {
	feed string // "" = every feed
	ch   chan error
}

// Pull pulls feed ("" = every feed) now, except a feed a 429 told to
// wait, and returns once the result is applied or refused.
func (d *Daemon) Pull(ctx context.Context, name string) error {
	wait := make(chan error, 1)
	var err error
	if derr := d.do(ctx, func() {
		if err = d.forcePull(name); err != nil {
			return
		}
		d.pullWaiters = append(d.pullWaiters, pullWaiter{feed: name, ch: wait})
		d.startDuePulls(ctx)
		if !d.pulling() {
			d.reconcile(ctx)
			d.publish()
			d.pullsDone()
		}
	}); derr != nil {
		return derr
	}
	if err != nil {
		return err
	}
	return d.await(ctx, wait)
}

// forcePull makes the named feeds due now.
func (d *Daemon) forcePull(name string) error {
	now := d.o.Now()
	found := false
	var held []string
	for _, f := range d.feeds {
		if name != "" && f.name != name {
			continue
		}
		found = true
		if until, ok := f.sched.force(now); ok {
			held = append(held, fmt.Sprintf("%s: the API asked not to pull before %s", f.name, until.UTC().Format(time.RFC3339)))
		}
	}
	switch {
	case !found:
		names := make([]string, 0, len(d.feeds))
		for _, f := range d.feeds {
			names = append(names, f.name)
		}
		return fmt.Errorf("no feed %q (feeds: %s): %w", name, strings.Join(names, ", "), dbusapi.ErrNotFound)
	case name != "" && len(held) > 0:
		return fmt.Errorf("%s: %w", held[0], dbusapi.ErrBusy)
	}
	for _, h := range held {
		d.log.Info("not pulling before the API's Retry-After", "detail", h)
	}
	return nil
}

// pullsDone runs once every started pull has returned and the result is
// decided: STATUS= follows the state (a failed pull included), and the
// callers of Reload and Pull get their answers.
func (d *Daemon) pullsDone() {
	d.updateState()
	if d.reloading {
		d.reloading = false
		d.notify(sddaemon.SdNotifyReady + "\n" + d.statusLine())
		d.finishReload()
	} else {
		d.notify(d.statusLine())
	}
	for _, w := range d.pullWaiters {
		w.ch <- d.pullResult(w.feed)
	}
	d.pullWaiters = nil
}

// pullResult is the answer to a Pull: the plan's problem, or the problem
// of a pulled feed.
func (d *Daemon) pullResult(name string) error {
	if d.planIssue != "" {
		return fmt.Errorf("%s: %w", d.planIssue, dbusapi.ErrFailed)
	}
	for _, f := range d.feeds {
		if (name == "" || f.name == name) && f.problem != "" {
			return fmt.Errorf("feed %s: %s: %w", f.name, f.problem, dbusapi.ErrFailed)
		}
	}
	return nil
}

package daemon

import (
	"context"
	"time"
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
	if r.err != nil {
		delay := f.sched.failed(now, r.err, d.o.RetryMin, f.interval)
		f.problem = r.err.Error()
		logPull(d.log, f.name, r.snap, r.err, "retry_in", delay.Round(time.Second))
		if f.inUse == nil && r.snap != nil {
			f.pending = r.snap // a last good list not yet in force
		}
		return
	}
	f.sched.succeeded(now, f.interval, d.o.Jitter)
	f.problem = ""
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

package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/feed"
)

// The SikkerAPI blacklist quota as last seen, from the headers of every
// pull and from /v1/key/status at start, for `sikkerctl status`, /metrics
// and the warning before a pull that would not fit.

// quotaOf turns the headers' numbers into the status's.
func quotaOf(q *feed.Quota) *dbusapi.Quota {
	if q == nil {
		return nil
	}
	return &dbusapi.Quota{Used: q.Used, Limit: q.Limit, Remaining: q.Remaining, Reset: q.Reset}
}

// noteQuota keeps the quota a pull's answer announced (a 429 included).
func (d *Daemon) noteQuota(snap *feed.Snapshot, err error, now time.Time) {
	var q *dbusapi.Quota
	var qe *feed.QuotaError
	switch {
	case errors.As(err, &qe) && !qe.Skipped:
		q = quotaOf(qe.Quota)
		if q == nil {
			q = &dbusapi.Quota{Used: -1, Limit: -1, Remaining: 0}
		}
		if q.Reset.IsZero() {
			q.Reset = qe.RetryAt
		}
	case err == nil && snap != nil && !snap.FromCache:
		q = quotaOf(snap.Quota)
	}
	if q == nil {
		return
	}
	if q.Reset.IsZero() {
		q.Reset = nextMidnightUTC(now) // SikkerAPI's documented reset
	}
	d.setQuota(q)
}

func (d *Daemon) setQuota(q *dbusapi.Quota) {
	d.mu.Lock()
	d.quota = q
	d.mu.Unlock()
}

// warnQuota warns before a pull that the quota left today is smaller than
// the list the feed holds: the answer will be cut short (and refused) or
// be a 429. The pull still happens; only the server knows for sure.
func (d *Daemon) warnQuota(f *feedState, now time.Time) {
	d.mu.Lock()
	q := d.quota
	d.mu.Unlock()
	if q == nil || q.Remaining < 0 || (!q.Reset.IsZero() && !now.Before(q.Reset)) {
		return
	}
	want := int64(f.spec.API.Limit)
	if f.inUse != nil {
		want = int64(f.inUse.Stats.Entries)
		if want == 0 {
			v4, v6 := f.inUse.Count()
			want = int64(v4 + v6)
		}
	}
	if want <= 0 || q.Remaining >= want {
		return
	}
	args := []any{"feed", f.name, "remaining", q.Remaining, "limit", q.Limit, "expected_entries", want}
	if !q.Reset.IsZero() {
		args = append(args, "reset", q.Reset.UTC().Format(time.RFC3339))
	}
	d.log.Warn("the next pull needs more than the blacklist quota left today; its answer will be refused if cut short", args...)
}

// startKeyStatus asks /v1/key/status once, off the main loop, for the
// quota to show before the first pull. It costs no blacklist quota; a
// failure is only logged, since the pulls say the same.
func (d *Daemon) startKeyStatus(ctx context.Context) {
	var status func(context.Context) (*feed.KeyStatus, error)
	for _, f := range d.feeds {
		if f.name == SikkerFeedName {
			status = f.keyStatus
		}
	}
	if status == nil {
		return
	}
	go func() {
		st, err := status(ctx)
		if authFailure(err) {
			// A wrong key shows at once, not at the next scheduled pull,
			// which may be a day away after a restart.
			d.do(ctx, func() { d.keyRefused(err) })
			return
		}
		if err != nil {
			d.log.Warn("cannot read the key's quota", "err", err)
			return
		}
		u, ok := st.Quotas["blacklist"]
		if !ok {
			return
		}
		d.log.Info("SikkerAPI key", "tier", st.TierName, "blacklist_used", u.Used, "blacklist_limit", u.Limit,
			"blacklist_remaining", u.Remaining)
		d.mu.Lock()
		if d.quota == nil { // a pull's headers are newer
			d.quota = &dbusapi.Quota{Used: u.Used, Limit: u.Limit, Remaining: u.Remaining, Reset: nextMidnightUTC(d.o.Now())}
		}
		d.mu.Unlock()
	}()
}

// nextMidnightUTC is when SikkerAPI's daily quotas reset.
func nextMidnightUTC(now time.Time) time.Time {
	y, m, dd := now.UTC().Date()
	return time.Date(y, m, dd+1, 0, 0, 0, 0, time.UTC)
}

// keyRefused marks the SikkerAPI feed failed after /v1/key/status refused
// the key; its last good list stays in force and its schedule is kept.
func (d *Daemon) keyRefused(err error) {
	for _, f := range d.feeds {
		if f.name == SikkerFeedName && f.problem == "" {
			f.problem, f.failed = "the API refused the key: "+err.Error(), true
			d.log.Warn("feed failed; its last good list stays in force", "feed", f.name, "err", err, "state", f.state())
		}
	}
	d.updateState()
	d.publish()
	d.notify(d.statusLine())
}

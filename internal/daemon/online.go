package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sikkerapi/sikkerguard/internal/config"
)

// OnlineCheck is the outcome of one check of `sikkerguard -t --online`.
type OnlineCheck struct {
	What string // "key", or "feed NAME"
	Err  error  // nil when it passed
	OK   string // what was found when it passed
}

// CheckOnline asks once, without touching the firewall and without
// writing to the state directory (a feed's cached list may answer a 304):
// the key through /v1/key/status (which costs no blacklist
// quota) and every extra feed by fetching it. The SikkerAPI blacklist
// itself is not pulled, since a pull spends the day's quota.
func CheckOnline(ctx context.Context, cfg config.Config, key config.Secret, log *slog.Logger) []OnlineCheck {
	var out []OnlineCheck
	for _, s := range feedSpecs(cfg, key) {
		src, status, err := openSourceStatus(cfg, s, log)
		switch {
		case err != nil:
			out = append(out, OnlineCheck{What: "feed " + s.Name, Err: err})
		case status != nil:
			st, err := status(ctx)
			c := OnlineCheck{What: "key", Err: err}
			if err == nil {
				c.OK = "accepted, tier " + orDefault(st.TierName, st.TierID)
				if u, ok := st.Quotas["blacklist"]; ok {
					c.OK += fmt.Sprintf(", blacklist quota %d of %d used today", u.Used, u.Limit)
				}
			}
			out = append(out, c)
		default:
			snap, err := src.Fetch(ctx)
			c := OnlineCheck{What: "feed " + s.Name, Err: err}
			if err == nil {
				c.OK = fmt.Sprintf("%d entries from %s", snap.Stats.Entries, snap.Origin)
			}
			out = append(out, c)
		}
	}
	return out
}

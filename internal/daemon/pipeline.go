// Package daemon is sikkerguard's lifecycle: it turns the configuration into
// feed sources, pulls them, decides what to block, checks the result and
// hands it to a firewall backend. `sikkerguard --once` runs one pass of it.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/version"
)

// SikkerFeedName names the SikkerAPI blacklist among the feeds.
const SikkerFeedName = "sikkerapi"

// Sources builds the feeds of cfg, each wrapped in the last-good cache under
// cfg.StateDir: the SikkerAPI blacklist when a key is present, then every
// extra feed. An empty key leaves SikkerAPI out (the caller has warned).
func Sources(cfg config.Config, key config.Secret, log *slog.Logger) ([]*feed.CachedSource, error) {
	var srcs []feed.Source
	if !key.IsZero() {
		s, err := feed.NewSikker(feed.SikkerOptions{
			Name:            SikkerFeedName,
			BaseURL:         cfg.API.URL,
			Key:             key.Reveal(),
			ScoreMin:        cfg.API.ScoreMin,
			Limit:           cfg.API.Limit,
			IPVersion:       cfg.API.IPVersion,
			Protocols:       cfg.API.Protocols,
			OnlyCountries:   cfg.API.OnlyCountries,
			ExceptCountries: cfg.API.ExceptCountries,
			OnlyASN:         cfg.API.OnlyASN,
			ExceptASN:       cfg.API.ExceptASN,
			MinSeverity:     cfg.API.MinSeverity,
			UserAgent:       version.UserAgent(),
			Logger:          log.With("feed", SikkerFeedName),
		})
		if err != nil {
			return nil, fmt.Errorf("feed %s: %w", SikkerFeedName, err)
		}
		srcs = append(srcs, s)
	}
	for _, f := range cfg.Feeds {
		var (
			s   feed.Source
			err error
		)
		if f.URL != "" {
			s, err = feed.NewURL(feed.URLOptions{Name: f.Name, URL: f.URL, UserAgent: version.UserAgent(), Logger: log.With("feed", f.Name)})
		} else {
			s, err = feed.NewFile(feed.FileOptions{Name: f.Name, Path: f.File})
		}
		if err != nil {
			return nil, fmt.Errorf("feed %s: %w", f.Name, err)
		}
		srcs = append(srcs, s)
	}
	cached := make([]*feed.CachedSource, len(srcs))
	for i, s := range srcs {
		cached[i] = feed.Cached(s, cfg.StateDir, log.With("feed", s.Name()))
	}
	return cached, nil
}

// Pulled is the outcome of pulling every feed once.
type Pulled struct {
	// Snapshots holds a list per feed that has one: fresh, or the last good
	// one standing in for a failed source (FromCache and Stale set).
	Snapshots []*feed.Snapshot
	// Failed maps the feeds whose fetch failed to their error.
	Failed map[string]error
}

// Pull fetches all sources concurrently and logs each outcome.
func Pull(ctx context.Context, srcs []*feed.CachedSource, log *slog.Logger) Pulled {
	snaps := make([]*feed.Snapshot, len(srcs))
	errs := make([]error, len(srcs))
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snaps[i], errs[i] = s.Fetch(ctx)
		}()
	}
	wg.Wait()
	p := Pulled{Failed: map[string]error{}}
	for i, s := range srcs {
		snap, err := snaps[i], errs[i]
		if err != nil {
			p.Failed[s.Name()] = err
			if snap != nil {
				v4, v6 := snap.Count()
				log.Warn("feed failed; enforcing its last good list", "feed", s.Name(), "err", err,
					"fetched_at", snap.FetchedAt.Format(time.RFC3339), "v4", v4, "v6", v6)
			} else {
				log.Error("feed failed and has no last good list", "feed", s.Name(), "err", err)
			}
		}
		if snap == nil {
			continue
		}
		if err == nil {
			v4, v6 := snap.Count()
			log.Info("feed pulled", "feed", s.Name(), "v4", v4, "v6", v6, "cached", snap.FromCache,
				"malformed", snap.Stats.Malformed)
			for _, m := range snap.Stats.Samples {
				log.Warn("malformed line", "feed", s.Name(), "line", m.Line, "text", m.Text)
			}
		}
		p.Snapshots = append(p.Snapshots, snap)
	}
	return p
}

// Plan is what the firewall should hold.
type Plan struct {
	Block ipnet.Set // merged: union of the feeds, stripped and whitelisted
	Allow ipnet.Set // merged: accepted before the blocklist is consulted
	// StrippedRanges counts the feed ranges that touched non-global space.
	StrippedRanges int
}

// alwaysAllowed are addresses no list may ever block, whatever the config:
// the host talking to itself.
var alwaysAllowed = ipnet.FromPrefixes(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))

// BuildPlan merges the feeds' lists, strips non-global space when asked,
// and subtracts the allowlist (interval subtraction: an allowed /32 inside a
// blocked /16 splits it). It is pure.
func BuildPlan(snaps []*feed.Snapshot, allow ipnet.Set, stripPrivate bool) Plan {
	sets := make([]ipnet.Set, 0, len(snaps))
	for _, s := range snaps {
		sets = append(sets, s.Set)
	}
	p := Plan{Block: ipnet.Union(sets...), Allow: ipnet.Union(allow, alwaysAllowed)}
	if stripPrivate {
		p.Block, p.StrippedRanges = ipnet.StripNonGlobal(p.Block)
	}
	p.Block = p.Block.Subtract(p.Allow)
	return p
}

// Whitelist turns the configured whitelist into a merged set.
func Whitelist(cfg config.Config) ipnet.Set {
	return ipnet.FromPrefixes(cfg.Whitelist...)
}

// ErrNoFeeds means there is nothing to pull from.
var ErrNoFeeds = errors.New("no feed configured: set an API key or add feeds")

// ErrNoList means every feed failed and none has a last good list.
var ErrNoList = errors.New("no feed produced a list")

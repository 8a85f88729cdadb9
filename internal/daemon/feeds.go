package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/ledger"
	"github.com/sikkerapi/sikkerguard/internal/version"
)

// SikkerFeedName names the SikkerAPI blacklist among the feeds.
const SikkerFeedName = "sikkerapi"

// feedState is everything the daemon knows about one feed: one record, so
// that a feed added, changed or dropped on reload takes all of it along.
type feedState struct {
	name string
	spec feedSpec
	src  *feed.CachedSource
	// gen counts the sources built for this feed; a pull started by an
	// older one is dropped when it returns, as its settings are gone.
	gen      uint64
	inflight bool

	interval   time.Duration
	mayBeEmpty bool // a local file, which may be empty on purpose

	inUse   *feed.Snapshot // the list the feed contributes (accepted)
	pending *feed.Snapshot // a pulled list waiting for the decision
	sched   schedule
	problem string // why the feed is degraded; "" when it is fine
	// failed is set while the API refuses the key (401, 403): no retry
	// for hours, and the feed's state is failed rather than degraded.
	failed bool
	// keyStatus asks /v1/key/status (the SikkerAPI feed only; nil else).
	keyStatus func(context.Context) (*feed.KeyStatus, error)

	// For the ledger (ledger.go): the list last hashed, its hash and newest
	// lastSeen, and the time of the last successful pull.
	hashed   *feed.Snapshot
	listHash string
	newest   time.Time
	lastGood time.Time
}

// state is the feed's state as status shows it.
func (f *feedState) state() string {
	switch {
	case f.failed:
		return dbusapi.FeedFailed
	case f.problem != "":
		return dbusapi.FeedDegraded
	}
	return dbusapi.FeedOK
}

// feedSpec is what a feed's source is built from. Reload compares specs as
// whole values, so that a setting added later cannot be missed: any change
// rebuilds the source and pulls it again at once.
type feedSpec struct {
	Name     string
	API      config.API  // the SikkerAPI feed; PullInterval zeroed
	Key      string      // the SikkerAPI feed's key
	Feed     config.Feed // an extra feed; Interval zeroed
	Token    string      // read from Feed.TokenFile, so a new token is a change
	Safety   config.Safety
	StateDir string
}

func (s feedSpec) equal(o feedSpec) bool { return reflect.DeepEqual(s, o) }

// fingerprint identifies the spec across restarts without holding the key:
// a start trusts a cached list's age only when it was pulled with the same
// settings (a score_min changed while stopped is pulled at once). Only the
// fields that are set count, so that a setting added in a later version,
// left at its zero default, does not cost a pull on the first start.
func (s feedSpec) fingerprint() string {
	sum := sha256.Sum256(appendSet(nil, "", reflect.ValueOf(s)))
	return hex.EncodeToString(sum[:])
}

// appendSet appends "path=value" lines for the non-zero leaves of v.
func appendSet(b []byte, path string, v reflect.Value) []byte {
	if v.Kind() == reflect.Struct && v.Type().PkgPath() != "time" {
		for i := range v.NumField() {
			b = appendSet(b, path+"."+v.Type().Field(i).Name, v.Field(i))
		}
		return b
	}
	if v.IsZero() {
		return b
	}
	return fmt.Appendf(b, "%s=%#v\n", path, v.Interface())
}

// feedSpecs lists the feeds of cfg in order: SikkerAPI when a key is
// present (the caller has warned when it is not), then the extra feeds.
func feedSpecs(cfg config.Config, key config.Secret) []feedSpec {
	var out []feedSpec
	if !key.IsZero() {
		api := cfg.API
		api.PullInterval = 0
		out = append(out, feedSpec{Name: SikkerFeedName, API: api, Key: key.Reveal(), Safety: cfg.Safety, StateDir: cfg.StateDir})
	}
	for _, f := range cfg.Feeds {
		f.Interval = 0
		out = append(out, feedSpec{Name: f.Name, Feed: f, Safety: cfg.Safety, StateDir: cfg.StateDir})
	}
	return out
}

// interval and mayBeEmpty read what a spec leaves out of the comparison.
func feedInterval(cfg config.Config, name string) time.Duration {
	for _, f := range cfg.Feeds {
		if f.Name == name {
			return f.Interval
		}
	}
	return cfg.API.PullInterval
}

// loadToken reads the feed's token_file into the spec, so that a new token
// in the same file is a change of the feed on reload.
func (s *feedSpec) loadToken() error {
	if s.Feed.TokenFile == "" || s.Token != "" {
		return nil
	}
	tok, err := config.LoadToken(s.Feed.TokenFile)
	if err != nil {
		return fmt.Errorf("feed %s: %w", s.Name, err)
	}
	s.Token = tok.Reveal()
	return nil
}

// openSource builds a feed's source, wrapped in its last-good cache.
func openSource(cfg config.Config, s feedSpec, log *slog.Logger) (*feed.CachedSource, error) {
	src, _, err := openSourceStatus(cfg, s, log)
	return src, err
}

// openSourceStatus is openSource that also returns the key status query
// of the SikkerAPI feed (nil for other feeds).
func openSourceStatus(cfg config.Config, s feedSpec, log *slog.Logger) (*feed.CachedSource, func(context.Context) (*feed.KeyStatus, error), error) {
	if err := s.loadToken(); err != nil {
		return nil, nil, err
	}
	var (
		src    feed.Source
		err    error
		status func(context.Context) (*feed.KeyStatus, error)
	)
	lim := feed.Limits{MinPrefix4: s.Safety.MinPrefix4, MinPrefix6: s.Safety.MinPrefix6, MaxEntries: s.Safety.MaxEntries}
	switch {
	case s.Name == SikkerFeedName && s.Key != "":
		var sk *feed.Sikker
		sk, err = feed.NewSikker(feed.SikkerOptions{
			Name:            SikkerFeedName,
			BaseURL:         s.API.URL,
			Key:             s.Key,
			ScoreMin:        s.API.ScoreMin,
			Limit:           s.API.Limit,
			IPVersion:       s.API.IPVersion,
			Protocols:       s.API.Protocols,
			OnlyCountries:   s.API.OnlyCountries,
			ExceptCountries: s.API.ExceptCountries,
			OnlyASN:         s.API.OnlyASN,
			ExceptASN:       s.API.ExceptASN,
			MinSeverity:     s.API.MinSeverity,
			Format:          s.API.Format,
			SeenBounds:      ledger.LatencyBounds, // lastSeen summarised for the ledger, no entry kept
			Limits:          lim,
			UserAgent:       version.UserAgent(),
			Logger:          log, // the feed adds feed= itself
		})
		if err == nil {
			src, status = sk, sk.Status
		}
	case s.Feed.URL != "":
		src, err = feed.NewURL(feed.URLOptions{Name: s.Name, URL: s.Feed.URL, Token: s.Token, Limits: lim, UserAgent: version.UserAgent(), Logger: log})
	default:
		src, err = feed.NewFile(feed.FileOptions{Name: s.Name, Path: s.Feed.File, Limits: lim})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("feed %s: %w", s.Name, err)
	}
	return feed.Cached(src, cfg.StateDir, log), status, nil
}

// syncFeeds makes feeds follow cfg: new feeds are added (due at once),
// changed ones get a new source (due at once; a pull of the old one still
// running is dropped when it returns), dropped ones leave with their list.
// The order follows the configuration. A source that cannot be built is
// an error and changes nothing.
func syncFeeds(feeds []*feedState, cfg config.Config, key config.Secret, now time.Time, log *slog.Logger) ([]*feedState, error) {
	old := make(map[string]*feedState, len(feeds))
	for _, f := range feeds {
		old[f.name] = f
	}
	specs := feedSpecs(cfg, key)
	for i := range specs {
		if err := specs[i].loadToken(); err != nil {
			return feeds, err
		}
	}
	out := make([]*feedState, 0, len(specs))
	srcs := make([]*feed.CachedSource, len(specs))
	stats := make([]func(context.Context) (*feed.KeyStatus, error), len(specs))
	for i, s := range specs {
		if f := old[s.Name]; f != nil && f.spec.equal(s) {
			continue
		}
		src, status, err := openSourceStatus(cfg, s, log)
		if err != nil {
			return feeds, err
		}
		srcs[i], stats[i] = src, status
	}
	for i, s := range specs {
		f := old[s.Name]
		switch {
		case f == nil:
			f = &feedState{name: s.Name, spec: s, src: srcs[i], gen: 1, keyStatus: stats[i]}
		case srcs[i] != nil:
			f.spec, f.src, f.gen, f.keyStatus = s, srcs[i], f.gen+1, stats[i]
			f.inflight, f.pending, f.problem, f.failed = false, nil, "", false
			f.sched.force(now)
		}
		f.interval = feedInterval(cfg, s.Name)
		f.mayBeEmpty = s.Feed.File != ""
		out = append(out, f)
	}
	return out, nil
}

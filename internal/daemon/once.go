package daemon

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/safety"
)

// OnceOptions are the inputs of one pass.
type OnceOptions struct {
	Config   config.Config
	Key      config.Secret
	Firewall firewall.Firewall // nil with DryRun
	DryRun   bool
	Log      *slog.Logger
	// Discover and Prober default as in the daemon.
	Discover DiscoverFunc
	Prober   *safety.Prober
}

// Once pulls every feed and enforces the result once: the cron-style use of
// sikkerguard. It gives every guarantee of the daemon, through the same
// code: the never-block list (discovered, configured and runtime), every
// list check against each feed's last good list, and the apply → verify →
// rollback step. A list becomes its feed's last good list only once it is
// in force.
func Once(ctx context.Context, o OnceOptions) error {
	cfg, log := o.Config, o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Discover == nil {
		o.Discover = discover
	}
	if o.Prober == nil {
		o.Prober = &safety.Prober{}
	}
	fw := o.Firewall
	if o.DryRun {
		fw = dryRunFirewall{log: log}
	}
	if fw == nil {
		return errors.New("once: no firewall backend")
	}
	if err := ensureStateDir(cfg.StateDir, log); err != nil {
		return err
	}
	protect := discoverProtection(ctx, cfg, loadRuntimeWhitelist(cfg.StateDir, log), o.Discover, log)

	specs := feedSpecs(cfg, o.Key)
	if len(specs) == 0 {
		return ErrNoFeeds
	}
	srcs := make([]*feed.CachedSource, len(specs))
	for i, s := range specs {
		src, err := openSource(cfg, s, log)
		if err != nil {
			return err
		}
		srcs[i] = src
	}
	snaps, errs := fetchAll(ctx, srcs)
	in := Inputs{Never: protect.never().Set(), StripPrivate: cfg.Safety.StripPrivate, IPv6: cfg.Firewall.IPv6, Limits: LimitsOf(cfg),
		Scopes: len(cfg.FirewallSettings().Scopes)}
	roles := cfg.Roles()
	for i, s := range specs {
		f := FeedInput{Name: s.Name, Accepted: srcs[i].Last(), MayBeEmpty: s.Feed.File != "", Role: roles[s.Name]}
		logPull(log, s.Name, snaps[i], errs[i])
		if errs[i] == nil {
			f.Candidate = snaps[i]
		}
		in.Feeds = append(in.Feeds, f)
	}
	// The entries blocked by hand are in force for --once as for the
	// daemon: one more input, with no source to commit to.
	if ms := loadManual(cfg.StateDir, cfg.Safety, time.Now(), log); len(ms) > 0 {
		in.Feeds = append(in.Feeds, FeedInput{Name: config.ManualFeedName, Accepted: manualSnapshot(ms, time.Now()),
			MayBeEmpty: true, ByHand: true})
		srcs = append(srcs, nil)
	}
	// What the kernel is taken to hold now, for a rollback: the last good
	// lists of the previous run.
	prevIn := in
	prevIn.Feeds = make([]FeedInput, len(in.Feeds))
	for i, f := range in.Feeds {
		prevIn.Feeds[i] = FeedInput{Name: f.Name, Candidate: f.Accepted, MayBeEmpty: f.MayBeEmpty, ByHand: f.ByHand, Role: f.Role}
	}
	prev, perr := Decide(prevIn)
	if perr != nil {
		prev.Plan = prev.Plan.Empty()
	} else if p, ok := fw.(presumer); ok {
		// The backend checks this against what the kernel holds; a match
		// lets it send only the changes.
		p.Presume(prev.Plan.Block, prev.Plan.Allow)
	}

	dec, err := Decide(in)
	var refused []error
	for _, v := range dec.Feeds {
		if v.Refused != nil {
			log.Warn("list rejected", "feed", v.Name, "err", v.Refused)
			refused = append(refused, v.Refused)
		}
	}
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(dec.Feeds, func(v FeedVerdict) bool { return v.InUse != nil }) {
		return ErrNoList
	}
	if dec.Plan.StrippedRanges > 0 {
		log.Info("stripped non-global ranges from the feeds", "ranges", dec.Plan.StrippedRanges)
	}
	e := enforcer{fw: fw, prober: o.Prober, verify: cfg.Safety.VerifyConnectivity && !o.DryRun}
	if err := e.enforce(ctx, dec.Plan, prev.Plan, protect.targets()); err != nil {
		if rolledBack(err) {
			log.Error("RolledBack", "reason", err)
		}
		return err
	}
	if !o.DryRun { // a dry run enforces nothing, so it accepts nothing
		commitAccepted(dec, srcs, log)
		logBlocking(log, dec.Plan.Block, cfg.Firewall.IPv6)
	}
	// A refused list leaves its feed's last good list in force, but a cron
	// run must still say that something needs the administrator.
	return errors.Join(refused...)
}

// logPull logs one feed's fetch, in the daemon and in `--once`; extra
// attributes go on a failure's line.
func logPull(log *slog.Logger, name string, snap *feed.Snapshot, err error, extra ...any) {
	switch {
	case err != nil && snap != nil:
		v4, v6 := snap.Count()
		log.Warn("feed failed; its last good list stays in force", append([]any{"feed", name, "err", err, "ranges_ipv4", v4, "ranges_ipv6", v6}, extra...)...)
	case err != nil:
		log.Error("feed failed and has no last good list", append([]any{"feed", name, "err", err}, extra...)...)
	default:
		v4, v6 := snap.Count()
		// Entries as the feed listed them, ranges after merging its overlaps.
		// A cached list is stored merged: its listed entries are not known.
		attrs := []any{"feed", name}
		if !snap.FromCache {
			attrs = append(attrs, "entries", snap.Stats.Entries)
		}
		log.Info("feed pulled", append(attrs, "ranges_ipv4", v4, "ranges_ipv6", v6,
			"cached", snap.FromCache, "malformed", snap.Stats.Malformed)...)
		for _, m := range snap.Stats.Samples {
			log.Warn("malformed line", "feed", name, "line", m.Line, "text", m.Text)
		}
	}
}

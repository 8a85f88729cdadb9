package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/safety"
	"github.com/sikkerapi/sikkerguard/internal/statefile"
)

// appliedFile records the size of the last list put in the kernel, the
// baseline of the growth check across runs.
const appliedFile = "applied.json"

// Applied is the record of the last successful apply.
type Applied struct {
	Ranges4   int       `json:"ranges4"`
	Ranges6   int       `json:"ranges6"`
	AppliedAt time.Time `json:"applied_at"`
}

// LoadApplied reads the record; a missing file is the zero record, a corrupt
// one is reported so the caller can warn and treat it as missing.
func LoadApplied(dir string) (Applied, error) {
	var a Applied
	err := readJSONState(filepath.Join(dir, appliedFile), &a)
	if errors.Is(err, fs.ErrNotExist) {
		return Applied{}, nil
	}
	if err != nil || a.Ranges4 < 0 || a.Ranges6 < 0 {
		return Applied{}, fmt.Errorf("read %s: corrupt state file, ignored: %v", appliedFile, err)
	}
	return a, nil
}

// SaveApplied writes the record atomically.
func SaveApplied(dir string, a Applied) error {
	return statefile.WriteAtomic(filepath.Join(dir, appliedFile), func(w io.Writer) error {
		return json.NewEncoder(w).Encode(a)
	}, 0o640)
}

// OnceOptions are the inputs of one pass.
type OnceOptions struct {
	Config   config.Config
	Key      config.Secret
	Firewall firewall.Firewall // nil with DryRun
	DryRun   bool
	Log      *slog.Logger
}

// Once pulls every feed, checks the merged list and applies it: the
// cron-style use of sikkerguard, and the first pass of the daemon.
func Once(ctx context.Context, o OnceOptions) error {
	cfg, log := o.Config, o.Log
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	srcs, err := Sources(cfg, o.Key, log)
	if err != nil {
		return err
	}
	if len(srcs) == 0 {
		return ErrNoFeeds
	}
	pulled := Pull(ctx, srcs, log)
	if len(pulled.Snapshots) == 0 {
		return ErrNoList
	}
	plan := BuildPlan(pulled.Snapshots, Whitelist(cfg), cfg.Safety.StripPrivate)
	if plan.StrippedRanges > 0 {
		log.Info("stripped non-global ranges from the feeds", "ranges", plan.StrippedRanges)
	}
	prev, err := LoadApplied(cfg.StateDir)
	if err != nil {
		log.Warn("applied-list record unreadable; growth check skipped", "err", err)
	}
	v4, v6 := plan.Block.Len()
	if !cfg.Firewall.IPv6 {
		v6 = 0
	}
	if err := safety.CheckList(prev.Ranges4+prev.Ranges6, v4+v6, safety.Limits{
		MaxGrowth: cfg.Safety.MaxGrowth, MaxEntries: cfg.Safety.MaxEntries,
	}); err != nil {
		return err
	}
	if o.DryRun {
		logDryRun(log, plan)
		return nil
	}
	if err := o.Firewall.Apply(plan.Block, plan.Allow); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	log.Info(fmt.Sprintf("Blocking %d IPs", BlockedCount(plan.Block, cfg.Firewall.IPv6)), "ranges4", v4, "ranges6", v6)
	if err := SaveApplied(cfg.StateDir, Applied{Ranges4: v4, Ranges6: v6, AppliedAt: time.Now().UTC()}); err != nil {
		log.Warn("could not record the applied list", "err", err)
	}
	return nil
}

// BlockedCount is the "N" of "Blocking N IPs": IPv4 addresses, plus IPv6
// ranges counted once each, since one /64 would otherwise add 2^64.
func BlockedCount(s ipnet.Set, ipv6 bool) uint64 {
	a4, _ := s.Addresses()
	if ipv6 {
		_, v6 := s.Len()
		a4 += uint64(v6)
	}
	return a4
}

// logDryRun shows what would be blocked, with a few sample entries.
func logDryRun(log *slog.Logger, p Plan) {
	v4, v6 := p.Block.Len()
	log.Info(fmt.Sprintf("Dry run: would block %d IPs", BlockedCount(p.Block, true)), "ranges4", v4, "ranges6", v6)
	n := 0
	for r := range p.Block.Ranges() {
		if n == 5 {
			break
		}
		log.Info("Dry run: would block", "range", r.String())
		n++
	}
	w4, w6 := p.Allow.Len()
	log.Info("Dry run: would always accept", "ranges4", w4, "ranges6", w6)
}

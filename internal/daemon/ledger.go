package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/ledger"
)

// LedgerFile holds the feeds' value ledger in the state directory.
const LedgerFile = "ledger.json"

// Kernel memory of one range in the blocklist sets, an estimate from the
// kernel Slab growth measured in docs/benchmarks.md (about 72–84 bytes per
// IPv4 range for a million ranges); IPv6 keys are 12 bytes longer, twice
// (start and end element).
const (
	kernelBytesPerRange4 = 80
	kernelBytesPerRange6 = 104
)

// openLedger loads the ledger from the state directory.
func (d *Daemon) openLedger() {
	path := ""
	if d.cfg.StateDir != "" {
		path = filepath.Join(d.cfg.StateDir, LedgerFile)
	}
	d.ledger = ledger.New(ledger.Config{Path: path, Now: d.o.Now}, d.log)
}

// startLedger saves the ledger every ledger.DefaultSaveEvery; the returned
// function stops it and saves once more. It outlives ctx on purpose: Run
// calls stop after drop monitoring has stopped, so that the last save has
// the monitor's last events.
func (d *Daemon) startLedger(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ledger.DefaultSaveEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				d.saveLedger()
				return
			case <-t.C:
				d.saveLedger()
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (d *Daemon) saveLedger() {
	if err := d.ledger.Save(); err != nil {
		d.log.Warn("feed ledger not saved", "err", err)
	}
}

// Feeds returns the ledger's record of every feed (safe from any goroutine).
func (d *Daemon) Feeds() []ledger.Record {
	return d.ledger.Records()
}

// publishLedger hands the ledger the facts of the lists in force. It runs
// on the main loop from publish. A list's content is hashed once, when it
// first comes into force; when the content is new to the ledger, its
// entries' lastSeen (SikkerAPI JSON) are observed as the delay until the
// kernel had them.
func (d *Daemon) publishLedger() {
	now := d.o.Now()
	facts := make([]ledger.Facts, 0, len(d.feeds)+1)
	roles := d.cfg.Roles()
	for _, f := range d.feeds {
		fa := ledger.Facts{Name: f.name, Mode: ledger.ModeEnforce}
		if roles[f.name].Mode == config.ModeMonitor {
			fa.Mode = ledger.ModeMonitor
		}
		if f.inUse != nil {
			if f.hashed != f.inUse {
				// A pull of an unchanged list is a new snapshot of the same
				// ranges (reconcile.go shareEqual): its hash is the old one.
				if f.hashed == nil || !f.hashed.Set.Equal(f.inUse.Set) {
					f.listHash = listHash(f.inUse)
				}
				f.hashed, f.newest = f.inUse, newestSeen(f.inUse)
			}
			fillListFacts(&fa, f.inUse)
			fa.ListHash, fa.NewestData = f.listHash, f.newest
		}
		fa.LastPull = f.lastGood
		facts = append(facts, fa)
	}
	if d.manualInUse != nil && len(d.manual) > 0 {
		fa := ledger.Facts{Name: config.ManualFeedName, Mode: ledger.ModeEnforce, LastPull: d.manualInUse.FetchedAt}
		fillListFacts(&fa, d.manualInUse)
		facts = append(facts, fa)
	}
	for _, name := range d.ledger.SetFeeds(facts) {
		for _, f := range d.feeds {
			if f.name == name && f.inUse != nil {
				d.observeLatency(f.name, f.inUse, now)
			}
		}
	}
}

func fillListFacts(fa *ledger.Facts, s *feed.Snapshot) {
	v4, v6 := s.Count()
	fa.Entries = uint64(v4 + v6)
	fa.Addresses, _ = s.Set.Addresses()
	fa.KernelBytes = uint64(v4)*kernelBytesPerRange4 + uint64(v6)*kernelBytesPerRange6
	fa.ListTime = s.FetchedAt
}

// listHash fingerprints a list's content in its canonical text.
func listHash(s *feed.Snapshot) string {
	h := sha256.New()
	s.Set.WriteTo(h) // a hash.Hash never fails to write
	return hex.EncodeToString(h.Sum(nil))
}

// observeLatency hands the ledger the delays from the lastSeen of a
// list's entries (SikkerAPI JSON) to now, when the list is in force: the
// summary taken at the fetch, moved on by the time since.
func (d *Daemon) observeLatency(name string, s *feed.Snapshot, now time.Time) {
	if s.Seen == nil || s.Seen.Dated() == 0 {
		return
	}
	counts, sum := s.Seen.Histogram(now)
	if err := d.ledger.ObserveHistogram(name, counts, sum); err != nil {
		d.log.Warn("lastSeen histogram not recorded", "feed", name, "err", err)
	}
}

// newestSeen is the newest lastSeen of a list's entries; zero without.
func newestSeen(s *feed.Snapshot) time.Time {
	if s.Seen == nil {
		return time.Time{}
	}
	return s.Seen.Newest
}

// takeHit gives the ledger one window's hit of one address and port,
// with the feeds whose role list holds it, and passes it on to
// Options.Hits. It runs on the monitor's goroutine.
func (d *Daemon) takeHit(h Hit) {
	if k, ok := ledger.ParseKind(h.Kind); ok && len(h.Feeds) > 0 {
		d.ledger.Add(ledger.Hit{Kind: k, Addr: h.Addr, Feeds: h.Feeds, Packets: h.Packets, Time: h.Time})
	}
	if d.o.Hits != nil {
		d.o.Hits(h)
	}
}

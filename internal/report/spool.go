package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
	"github.com/sikkerapi/sikkerguard/internal/statefile"
)

// spoolVersion is the spool format; another version is treated as corrupt.
const spoolVersion = 1

type spoolFile struct {
	Version int           `json:"version"`
	Pending []*entry      `json:"pending"` // rows waiting for an answer, in send order
	Accum   []*entry      `json:"accum"`   // pairs counted since the last cycle
	Recent  []recentEntry `json:"recent"`  // pairs answered within Dedup
	RetryAt time.Time     `json:"retryAt,omitzero"`
	// LastReport survives restarts so that status shows the last answered
	// report rather than "never" after every restart.
	LastReport time.Time `json:"lastReport,omitzero"`
}

type recentEntry struct {
	IP      netip.Addr `json:"ip"`
	Service string     `json:"service"`
	At      time.Time  `json:"at"`
}

// save writes the spool atomically; without a state directory it does
// nothing.
func (r *Reporter) save() error {
	if r.spool == "" {
		return nil
	}
	r.mu.Lock()
	sf := spoolFile{Version: spoolVersion, RetryAt: r.retryAt, LastReport: r.stats.LastReport}
	for _, e := range r.pending {
		c := *e
		sf.Pending = append(sf.Pending, &c)
	}
	for _, e := range r.acc {
		c := *e
		sf.Accum = append(sf.Accum, &c)
	}
	for k, at := range r.recent {
		sf.Recent = append(sf.Recent, recentEntry{k.ip, k.service, at})
	}
	r.mu.Unlock()
	err := statefile.WriteAtomic(r.spool, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(sf)
	}, 0o600)
	if err != nil {
		return fmt.Errorf("save report spool: %w", err)
	}
	return nil
}

// load reads the spool into the empty reporter. A missing spool is not an
// error.
func (r *Reporter) load() error {
	var sf spoolFile
	err := statefile.Read(r.spool, func(rd io.Reader) error {
		dec := json.NewDecoder(rd)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sf); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		if dec.More() {
			return errors.New("trailing data after the spool")
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if sf.Version != spoolVersion {
		return fmt.Errorf("format version %d, want %d", sf.Version, spoolVersion)
	}
	for _, list := range [][]*entry{sf.Pending, sf.Accum} {
		for i, e := range list {
			if e == nil || !e.IP.IsValid() {
				return fmt.Errorf("row %d: no address", i)
			}
		}
	}
	r.pending = sf.Pending
	if !sf.LastReport.IsZero() && !sf.LastReport.After(r.cfg.Now()) {
		r.stats.LastReport = sf.LastReport // a time in the future is not a report
	}
	for _, e := range sf.Accum {
		r.acc[e.key()] = e
	}
	for _, re := range sf.Recent {
		r.recent[pair{re.IP, re.Service}] = re.At
	}
	// A spool written under an unclamped Retry-After, or edited by hand,
	// must not hold reports back for longer than a fresh answer could.
	r.retryAt = sikkerapi.ClampRetryAt(sf.RetryAt, r.cfg.Now())
	r.stats.RetryAt = r.retryAt
	return nil
}

package health

import (
	"encoding/json"
	"net/http"
	"time"
)

// statusJSON keeps the SikkerGuard container's field names, so scripts
// written against the container's /status keep working; version, reason and
// feeds are additions.
type statusJSON struct {
	Status     string     `json:"status"`
	BlockedIPs uint64     `json:"blockedIps"`
	LastPull   *string    `json:"lastPull"`
	LastReport *string    `json:"lastReport"`
	DryRun     bool       `json:"dryRun"`
	Uptime     int64      `json:"uptime"`
	Version    string     `json:"version"`
	Reason     string     `json:"reason,omitempty"`
	Feeds      []feedJSON `json:"feeds"`
}

type feedJSON struct {
	Name     string  `json:"name"`
	Entries  uint64  `json:"entries"`
	LastPull *string `json:"lastPull"`
	Error    string  `json:"error,omitempty"`
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	body, err := json.Marshal(statusOf(s.src.Snapshot(), s.now()))
	if err != nil {
		s.log.Error("Health status not encoded", "err", err)
		http.Error(w, "status not available", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(body, '\n'))
}

func statusOf(snap Snapshot, now time.Time) statusJSON {
	st := statusJSON{
		Status:     snap.State,
		BlockedIPs: snap.BlockedIPv4 + snap.BlockedIPv6,
		LastPull:   rfc3339(snap.LastPull),
		LastReport: rfc3339(snap.LastReport),
		DryRun:     snap.DryRun,
		Version:    snap.Version,
		Feeds:      make([]feedJSON, 0, len(snap.Feeds)),
	}
	if snap.State != StateRunning {
		st.Reason = snap.Reason
	}
	if !snap.Started.IsZero() && now.After(snap.Started) {
		st.Uptime = int64(now.Sub(snap.Started) / time.Second)
	}
	for _, f := range snap.Feeds {
		st.Feeds = append(st.Feeds, feedJSON{Name: f.Name, Entries: f.Entries, LastPull: rfc3339(f.LastPull), Error: f.Error})
	}
	return st
}

// rfc3339 renders a time in UTC, or nil (JSON null) for "never".
func rfc3339(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

package logging

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

func TestJournalFormat(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, Options{Journal: true, Level: slog.LevelDebug})
	log.Info("Blocking 12 IPs", "v4", 10, "v6", 2)
	log.With("feed", "sikkerapi").Warn("pull failed", "err", "quota exhausted")
	log.WithGroup("api").Debug("quota", slog.Group("h", "remaining", 5))
	log.Error("apply failed", "took", 1500*time.Millisecond)
	want := "<6>Blocking 12 IPs v4=10 v6=2\n" +
		"<4>pull failed feed=sikkerapi err=\"quota exhausted\"\n" +
		"<7>quota api.h.remaining=5\n" +
		"<3>apply failed took=1.5s\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestTerminalFormatAndLevel(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	log := New(&buf, Options{Now: func() time.Time { return now }})
	log.Debug("hidden")
	log.Info("Firewall ready", "empty", "")
	got := buf.String()
	// slog stamps records itself; only the shape after the timestamp is fixed.
	if want := " INFO Firewall ready empty=\"\"\n"; len(got) < len(want) || got[len(got)-len(want):] != want {
		t.Errorf("got %q, want suffix %q", got, want)
	}
	if bytes.Contains(buf.Bytes(), []byte("hidden")) {
		t.Error("debug line printed at info level")
	}
}

func TestUnderJournal(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	if UnderJournal() {
		t.Error("UnderJournal with JOURNAL_STREAM unset")
	}
	t.Setenv("JOURNAL_STREAM", "1:2")
	if UnderJournal() {
		t.Error("UnderJournal with a JOURNAL_STREAM naming another stream")
	}
}

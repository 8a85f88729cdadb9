package logging

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
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

type sent struct {
	msg    string
	prio   int
	fields map[string]string
}

func TestJournalFieldsAndFieldsOnlyGroup(t *testing.T) {
	var got []sent
	var buf bytes.Buffer
	fail := false
	log := New(&buf, Options{Journal: true, Send: func(m string, p int, f map[string]string) error {
		if fail {
			return errors.New("journal gone")
		}
		got = append(got, sent{m, p, f})
		return nil
	}})
	log.Info("BLOCKED 192.0.2.66:23 (telnet) proto=TCP x2",
		slog.Group(FieldsOnly, "src", "192.0.2.66", "port", 23, "service", "telnet", "count", 2))
	log.With("feed", "custom").Warn("feed failed", "err", "no such file")

	if len(got) != 2 || buf.Len() != 0 {
		t.Fatalf("sent %d records, wrote %q", len(got), buf.String())
	}
	b := got[0]
	if b.msg != "BLOCKED 192.0.2.66:23 (telnet) proto=TCP x2" || b.prio != 6 {
		t.Errorf("BLOCKED record: %q prio %d; the fields-only group must stay out of the text", b.msg, b.prio)
	}
	for k, v := range map[string]string{"SIKKER_SRC": "192.0.2.66", "SIKKER_PORT": "23", "SIKKER_SERVICE": "telnet",
		"SIKKER_COUNT": "2", "SYSLOG_IDENTIFIER": "sikkerguard"} {
		if b.fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, b.fields[k], v)
		}
	}
	w := got[1]
	if w.msg != `feed failed feed=custom err="no such file"` || w.prio != 4 ||
		w.fields["SIKKER_FEED"] != "custom" || w.fields["SIKKER_ERR"] != "no such file" {
		t.Errorf("warning record: %+v", w)
	}

	fail = true
	log.Info("Firewall ready")
	if buf.String() != "<6>Firewall ready\n" {
		t.Errorf("fallback after a failed send wrote %q", buf.String())
	}
}

func TestFieldName(t *testing.T) {
	for in, want := range map[string]string{"src": "SIKKER_SRC", "api.h.remaining": "SIKKER_API_H_REMAINING", "retry-in": "SIKKER_RETRY_IN"} {
		if got := fieldName(in); got != want {
			t.Errorf("fieldName(%q) = %q, want %q", in, got, want)
		}
	}
}

// Text from a feed line or a server reaches the log in attributes (and now
// and then in a message): an ESC must not reach the reader's terminal and a
// CR must not overwrite the line, in either output format.
func TestControlCharactersEscaped(t *testing.T) {
	for _, journal := range []bool{true, false} {
		var buf bytes.Buffer
		log := New(&buf, Options{Journal: journal})
		log.Warn("malformed line", "line", "\x1b[2J\x1b[31m203.0.113.9", "feed", "evil\rBlocking 0 IPs")
		log.Warn("feed said \x1b]0;owned\x07", "body", "ok\u202egnp.exe", "raw", "\xff\xfe", "city", "Zürich")
		log.Warn("key", "k\x1bey", "v")
		out := buf.String()
		for _, bad := range []string{"\x1b", "\r", "\x07", "\u202e", "\xff"} {
			if strings.Contains(out, bad) {
				t.Errorf("journal=%v: raw %q in the log:\n%q", journal, bad, out)
			}
		}
		for _, want := range []string{
			`malformed line line="\x1b[2J\x1b[31m203.0.113.9" feed="evil\rBlocking 0 IPs"`,
			`feed said \x1b]0;owned\a body="ok\u202egnp.exe" raw="\xff\xfe" city=Zürich`,
			`key k\x1bey=v`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("journal=%v: no %s in\n%s", journal, want, out)
			}
		}
		if got := strings.Count(out, "\n"); got != 3 {
			t.Errorf("journal=%v: %d lines, want 3", journal, got)
		}
	}
}

func TestCheckReportsDuplicatesAndNestedValues(t *testing.T) {
	type plain struct{ A int }
	for _, tc := range []struct {
		name string
		log  func(*slog.Logger)
		want string // "" = no report
	}{
		{"scalars and readable values", func(l *slog.Logger) {
			l.Info("m", "n", 1, "s", "x", "ok", true, "d", time.Second, "addr", netip.MustParseAddr("192.0.2.1"),
				"err", errors.New("e"), "hooks", []string{"prerouting", "input"}, "nets", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")})
		}, ""},
		{"key twice through With", func(l *slog.Logger) { l.With("feed", "sikkerapi").Info("m", "feed", "sikkerapi") }, `key "feed" given twice`},
		{"key twice in the call", func(l *slog.Logger) { l.Info("m", "n", 1, "n", 2) }, `key "n" given twice`},
		{"key twice in With chains", func(l *slog.Logger) { l.With("feed", "a").With("feed", "a").Info("m") }, `key "feed" given twice`},
		{"fields-only member shadows a key", func(l *slog.Logger) {
			l.Info("m", "src", "192.0.2.1", slog.Group(FieldsOnly, "src", "192.0.2.1"))
		}, `key "src" given twice`},
		{"same key in different groups", func(l *slog.Logger) { l.Info("m", "n", 1, slog.Group("g", "n", 2)) }, ""},
		{"map", func(l *slog.Logger) { l.Info("m", "base_chains", map[string]string{"prerouting": "prerouting"}) }, "base_chains=map[prerouting:prerouting] is a map"},
		{"struct", func(l *slog.Logger) { l.Info("m", "v", plain{1}) }, "is a struct"},
		{"pointer to struct", func(l *slog.Logger) { l.Info("m", "v", &plain{1}) }, "is a pointer to a struct"},
		{"list of structs", func(l *slog.Logger) { l.Info("m", "v", []plain{{1}}) }, "is a list of a struct"},
		{"list of lists", func(l *slog.Logger) { l.Info("m", "v", [][]string{{"a"}}) }, "is a list of a slice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reports []string
			l := slog.New(Check(slog.DiscardHandler, func(f string, a ...any) { reports = append(reports, fmt.Sprintf(f, a...)) }))
			tc.log(l)
			switch {
			case tc.want == "" && len(reports) > 0:
				t.Errorf("reported %q", reports)
			case tc.want != "" && (len(reports) != 1 || !strings.Contains(reports[0], tc.want)):
				t.Errorf("reports %q, want one with %q", reports, tc.want)
			}
		})
	}
}

// A list is written flat, comma-separated, not in Go syntax.
func TestFlatLists(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, Options{Journal: true})
	log.Info("Firewall ready", "hooks", []string{"prerouting", "input"}, "nets", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}, "none", []string{})
	if want := "<6>Firewall ready hooks=prerouting,input nets=192.0.2.0/24,2001:db8::/32 none=\"\"\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

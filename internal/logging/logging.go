// Package logging builds the slog.Logger every sikkerguard component is
// handed. Under systemd, stderr goes to the journal, which stamps time and
// unit itself, so the handler then writes "<priority>message key=value"
// lines (sd-daemon(3) priority prefixes) instead of repeating a timestamp.
// With Options.Send (the journal's native protocol) every attribute also
// becomes a journal field SIKKER_<KEY>, so that for example
// `journalctl -u sikkerguard SIKKER_SRC=192.0.2.66` finds one source's drops.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-systemd/v22/journal"
)

// Options choose the output shape.
type Options struct {
	Level slog.Leveler
	// Journal selects the journal line format; see UnderJournal.
	Journal bool
	// Now stamps lines outside the journal; nil means time.Now.
	Now func() time.Time
	// Send, with Journal, delivers each record natively to the journal
	// with its attributes as fields; a failed send falls back to the
	// writer. JournalSend is the real one.
	Send func(message string, priority int, fields map[string]string) error
}

// FieldsOnly names an attribute group whose members become journal fields
// but are left out of the text, for lines that already say everything,
// like "BLOCKED 192.0.2.66:23 (telnet) proto=TCP x2".
const FieldsOnly = "journal"

// JournalSend sends one record over the journal's native socket; nil when
// there is no journal.
func JournalSend() func(string, int, map[string]string) error {
	if !journal.Enabled() {
		return nil
	}
	return func(msg string, prio int, fields map[string]string) error {
		return journal.Send(msg, journal.Priority(prio), fields)
	}
}

// UnderJournal reports whether stderr is connected to the journal: systemd
// sets JOURNAL_STREAM to the device and inode of the stream it hands over.
func UnderJournal() bool {
	v := os.Getenv("JOURNAL_STREAM")
	if v == "" {
		return false
	}
	dev, ino, ok := strings.Cut(v, ":")
	if !ok {
		return false
	}
	fi, err := os.Stderr.Stat()
	if err != nil {
		return false
	}
	st, ok := statDevIno(fi)
	return ok && st.dev == dev && st.ino == ino
}

// New returns a logger writing to w.
func New(w io.Writer, opt Options) *slog.Logger {
	if opt.Level == nil {
		opt.Level = slog.LevelInfo
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return slog.New(&handler{w: w, opt: opt, mu: new(sync.Mutex)})
}

type handler struct {
	w      io.Writer
	opt    Options
	mu     *sync.Mutex
	prefix string            // rendered attributes from WithAttrs
	fields map[string]string // journal fields from WithAttrs
	group  string            // dotted group prefix for later attributes
}

func (h *handler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.opt.Level.Level()
}

// priority maps slog levels onto syslog priorities for the journal.
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	var text strings.Builder
	text.WriteString(escapeControls(r.Message))
	text.WriteString(h.prefix)
	var fields map[string]string
	if h.opt.Journal && h.opt.Send != nil {
		fields = map[string]string{"SYSLOG_IDENTIFIER": "sikkerguard"}
		for k, v := range h.fields {
			fields[k] = v
		}
	}
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&text, fields, h.group, a)
		return true
	})
	if fields != nil {
		if err := h.opt.Send(text.String(), priority(r.Level), fields); err == nil {
			return nil
		}
	}
	var b strings.Builder
	if h.opt.Journal {
		b.WriteString("<" + strconv.Itoa(priority(r.Level)) + ">")
	} else {
		t := r.Time
		if t.IsZero() {
			t = h.opt.Now()
		}
		b.WriteString(t.Format("2006-01-02T15:04:05.000Z07:00"))
		b.WriteByte(' ')
		b.WriteString(r.Level.String())
		b.WriteByte(' ')
	}
	b.WriteString(text.String())
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	fields := map[string]string{}
	for k, v := range h.fields {
		fields[k] = v
	}
	for _, a := range as {
		appendAttr(&b, fields, h.group, a)
	}
	n := *h
	n.prefix, n.fields = b.String(), fields
	return &n
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.group = h.group + name + "."
	return &n
}

// appendAttr renders a into the text and, when fields is not nil, into
// journal fields; members of the FieldsOnly group skip the text.
func appendAttr(b *strings.Builder, fields map[string]string, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key == FieldsOnly && group == "" {
			var discard strings.Builder
			for _, ga := range a.Value.Group() {
				appendAttr(&discard, fields, "", ga)
			}
			return
		}
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			appendAttr(b, fields, g, ga)
		}
		return
	}
	s := a.Value.String()
	switch a.Value.Kind() {
	case slog.KindDuration:
		s = a.Value.Duration().String()
	case slog.KindAny:
		if l, ok := flatList(a.Value.Any()); ok {
			s = l
		}
	}
	if fields != nil {
		fields[fieldName(group+a.Key)] = s
	}
	b.WriteByte(' ')
	b.WriteString(escapeControls(group + a.Key))
	b.WriteByte('=')
	if s == "" || strings.ContainsAny(s, " \"=") || !printable(s) {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

// flatList renders a slice or array as its elements joined by commas
// (`hooks=prerouting,input`) rather than in Go syntax; ok is false for
// anything else, and for []byte, which prints as text.
func flatList(x any) (string, bool) {
	if _, isBytes := x.([]byte); isBytes {
		return "", false
	}
	rv := reflect.ValueOf(x)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return "", false
	}
	parts := make([]string, rv.Len())
	for i := range parts {
		parts[i] = fmt.Sprint(rv.Index(i).Interface())
	}
	return strings.Join(parts, ","), true
}

// printable reports whether s is valid UTF-8 made of printable characters
// only. Values often carry text from feeds and servers: an ESC would drive
// the terminal of whoever reads the log, a CR would overwrite the line
// before it, and U+202E would reorder it.
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return false // RuneError also for a byte that is not UTF-8
		}
	}
	return true
}

// escapeControls writes the non-printable characters of a message or key
// as Go escapes, leaving a clean one as it is.
func escapeControls(s string) string {
	if printable(s) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// fieldName turns an attribute key into a journal field name: SIKKER_ and
// the key in upper case, anything but letters and digits as underscores.
func fieldName(key string) string {
	var b strings.Builder
	b.WriteString("SIKKER_")
	for _, r := range strings.ToUpper(key) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

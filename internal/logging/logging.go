// Package logging builds the slog.Logger every sikkerguard component is
// handed. Under systemd, stderr goes to the journal, which stamps time and
// unit itself, so the handler then writes "<priority>message key=value"
// lines (sd-daemon(3) priority prefixes) instead of repeating a timestamp.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options choose the output shape.
type Options struct {
	Level slog.Leveler
	// Journal selects the journal line format; see UnderJournal.
	Journal bool
	// Now stamps lines outside the journal; nil means time.Now.
	Now func() time.Time
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
	prefix string // rendered attributes from WithAttrs
	group  string // dotted group prefix for later attributes
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
	b.WriteString(r.Message)
	b.WriteString(h.prefix)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.group, a)
		return true
	})
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range as {
		appendAttr(&b, h.group, a)
	}
	n := *h
	n.prefix = b.String()
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

func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			appendAttr(b, g, ga)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(group + a.Key)
	b.WriteByte('=')
	s := a.Value.String()
	if a.Value.Kind() == slog.KindDuration {
		s = a.Value.Duration().String()
	}
	if s == "" || strings.ContainsAny(s, " \t\n\"=") {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

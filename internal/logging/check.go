package logging

import (
	"context"
	"encoding"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
)

// Check wraps h and calls report for every attribute that would read badly
// in the journal: a key that one record carries twice (through With and the
// call, or twice in the call), or a value that is not a scalar or a flat
// list of scalars — a map, a struct without a String or MarshalText method,
// or a list of those, which the handler could only print in Go syntax
// (`base_chains=map[prerouting:prerouting]`). Package tests wrap their
// loggers with it, passing t.Errorf, so that a call site that logs such an
// attribute fails its package's tests.
func Check(h slog.Handler, report func(format string, args ...any)) slog.Handler {
	return &checker{h: h, report: report}
}

type checker struct {
	h      slog.Handler
	report func(string, ...any)
	keys   []string // keys added by WithAttrs, group-qualified
	group  string
}

func (c *checker) Enabled(ctx context.Context, l slog.Level) bool { return true }

func (c *checker) Handle(ctx context.Context, r slog.Record) error {
	seen := slices.Clone(c.keys)
	r.Attrs(func(a slog.Attr) bool {
		seen = c.check(r.Message, seen, c.group, a)
		return true
	})
	if !c.h.Enabled(ctx, r.Level) {
		return nil
	}
	return c.h.Handle(ctx, r)
}

func (c *checker) WithAttrs(as []slog.Attr) slog.Handler {
	n := *c
	n.keys = slices.Clone(c.keys)
	for _, a := range as {
		n.keys = c.check("(With)", n.keys, c.group, a)
	}
	n.h = c.h.WithAttrs(as)
	return &n
}

func (c *checker) WithGroup(name string) slog.Handler {
	if name == "" {
		return c
	}
	n := *c
	n.group = c.group + name + "."
	n.h = c.h.WithGroup(name)
	return &n
}

// check reports what is wrong with a and returns seen with its key added.
func (c *checker) check(msg string, seen []string, group string, a slog.Attr) []string {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return seen
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" && a.Key != FieldsOnly {
			g += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			seen = c.check(msg, seen, g, ga)
		}
		return seen
	}
	key := group + a.Key
	if slices.Contains(seen, key) {
		c.report("log %q: key %q given twice", msg, key)
	}
	if why := notFlat(a.Value); why != "" {
		c.report("log %q: %s=%v is %s; log a scalar or a flat list", msg, key, a.Value, why)
	}
	return append(seen, key)
}

// notFlat says why v is not a scalar or a flat list of scalars, or "".
func notFlat(v slog.Value) string {
	if v.Kind() != slog.KindAny {
		return ""
	}
	x := v.Any()
	if x == nil || readable(x) {
		return ""
	}
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		for i := range rv.Len() {
			e := rv.Index(i)
			if !e.CanInterface() {
				return "a list of unexported values"
			}
			if !readable(e.Interface()) && !scalarKind(e.Kind()) {
				return "a list of " + describe(e)
			}
		}
		return ""
	default:
		if scalarKind(rv.Kind()) {
			return ""
		}
		return describe(rv)
	}
}

// readable reports whether x prints as plain text of its own.
func readable(x any) bool {
	switch x.(type) {
	case error, fmt.Stringer, encoding.TextMarshaler:
		return true
	}
	return false
}

func scalarKind(k reflect.Kind) bool {
	switch k {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func describe(v reflect.Value) string {
	k := v.Kind()
	if k == reflect.Pointer || k == reflect.Interface {
		if v.IsNil() {
			return "a nil " + k.String()
		}
		return "a pointer to " + describe(v.Elem())
	}
	article := "a "
	if strings.ContainsAny(k.String()[:1], "aeiou") {
		article = "an "
	}
	return article + k.String() + " (" + v.Type().String() + ")"
}

// Errorer is the part of testing.TB that Checked needs.
type Errorer interface {
	Errorf(format string, args ...any)
}

// Checked returns a logger for package tests: it discards what it is given
// and fails t for every attribute Check reports.
func Checked(t Errorer) *slog.Logger {
	return slog.New(Check(slog.DiscardHandler, t.Errorf))
}

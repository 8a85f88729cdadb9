package config

import (
	"fmt"
	"strings"
	"time"
)

// FieldError is one configuration problem.
type FieldError struct {
	File  string // the config file, "" when the problem is not from a file
	Line  int    // 1-based line in File, 0 when unknown
	Field string // e.g. "api.score_min", "feeds[1]", "SIKKER_PULL_INTERVAL"; "" for the file as a whole
	Msg   string
}

// Error renders "file:line: field: message", leaving out what is unknown.
func (e FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ValidationError lists every problem found in a configuration.
type ValidationError struct {
	Errors []FieldError
}

// Error puts each problem on its own line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual problems to errors.As.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = fe
	}
	return errs
}

// problems collects FieldErrors; its helpers keep messages uniform.
type problems []FieldError

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// inRange checks lo <= v <= hi and reports "V is out of range LO..HI[ (unit)]".
func inRange[T int | int64 | uint64 | float64](p *problems, field string, v, lo, hi T, unit string) bool {
	if v >= lo && v <= hi {
		return true
	}
	msg := fmt.Sprintf("%v is out of range %v..%v", v, lo, hi)
	if unit != "" {
		msg += " (" + unit + ")"
	}
	*p = append(*p, FieldError{Field: field, Msg: msg})
	return false
}

// durationInRange is inRange for durations, printed the way they are written.
func durationInRange(p *problems, field string, v, lo, hi time.Duration) bool {
	if v >= lo && v <= hi {
		return true
	}
	p.add(field, "%s is out of range %s..%s", fmtDur(v), fmtDur(lo), fmtDur(hi))
	return false
}

// fmtDur trims Go's zero units ("24h0m0s" → "24h") so messages match the
// way users write durations.
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Errors: p}
}

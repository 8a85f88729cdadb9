package firewall

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// fake is a backend with two hooks, "in" and "fwd"; reject works only in
// "in". It records what Open and Cleanup received.
type fake struct {
	opened   []Settings
	cleanups int
	failOpen error
	failRm   error
}

func (f *fake) backend() Backend {
	return Backend{
		Open: func(s Settings, _ *slog.Logger) (Firewall, error) {
			if f.failOpen != nil {
				return nil, f.failOpen
			}
			f.opened = append(f.opened, s)
			return nopFirewall{}, nil
		},
		ValidateHooks: func(hooks []Hook, a Action) ([]Hook, error) {
			hooks, err := CheckHookNames("fake", hooks, "in", "fwd")
			if a == ActionReject && slices.Contains(hooks, "fwd") {
				err = errors.Join(err, &SettingError{Field: "action", Msg: "reject only in in"})
			}
			return hooks, err
		},
		Cleanup: func(*slog.Logger) error { f.cleanups++; return f.failRm },
	}
}

type nopFirewall struct{}

func (nopFirewall) Apply(Lists) error           { return nil }
func (nopFirewall) Remove() error               { return nil }
func (nopFirewall) Intact() (bool, error)       { return true, nil }
func (nopFirewall) Counters() (Counters, error) { return Counters{}, nil }
func (nopFirewall) Restore([]netip.Addr) error  { return nil }
func (nopFirewall) Watch(context.Context) (<-chan Change, error) {
	return nil, nil
}

// withRegistry runs the test against a registry holding only the given
// backends, and restores the real one afterwards.
func withRegistry(t *testing.T, backends map[string]Backend) {
	t.Helper()
	saved := registry
	registry = map[string]Backend{}
	t.Cleanup(func() { registry = saved })
	for name, b := range backends {
		Register(name, b)
	}
}

var good = Settings{Hooks: []Hook{"in"}, Action: ActionDrop, LogRate: 50, LogPer: time.Second}

func TestValidateReportsEveryProblemWithItsField(t *testing.T) {
	f := &fake{}
	withRegistry(t, map[string]Backend{"fake": f.backend()})
	tests := []struct {
		name string
		s    Settings
		want []string // every SettingError, as Field: Msg
	}{
		{"good", good, nil},
		{"no hooks", Settings{Action: ActionDrop, LogRate: 1, LogPer: time.Minute},
			[]string{"hooks: at least one hook is required"}},
		{"unknown and twice", Settings{Hooks: []Hook{"in", "out", " IN"}, Action: ActionDrop, LogRate: 1, LogPer: time.Hour},
			[]string{`hooks[1]: "out" is not one of in, fwd (fake backend)`, `hooks[2]: "in" is listed twice`}},
		{"action", Settings{Hooks: []Hook{"in"}, Action: "accept", LogRate: 1, LogPer: time.Second},
			[]string{`action: "accept" is not one of drop, reject`}},
		{"backend rule on action", Settings{Hooks: []Hook{"fwd"}, Action: "Reject", LogRate: 1, LogPer: time.Second},
			[]string{"action: reject only in in"}},
		{"rate zero", Settings{Hooks: []Hook{"in"}, Action: ActionDrop, LogPer: 24 * time.Hour},
			[]string{"log_rate: the rate must be at least 1 packet per day"}},
		{"rate unit", Settings{Hooks: []Hook{"in"}, Action: ActionDrop, LogRate: 5, LogPer: 2 * time.Second},
			[]string{"log_rate: unit 2s is not one of second, minute, hour, day"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Validate("fake", tt.s)
			var got []string
			for _, se := range SettingErrors(err) {
				got = append(got, se.Error())
			}
			if err != nil && errors.Join(errs(SettingErrors(err))...).Error() != err.Error() {
				t.Errorf("Validate = %v, holds more than its SettingErrors", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Validate = %q, want %q", got, tt.want)
			}
		})
	}
}

func errs(ses []*SettingError) []error {
	out := make([]error, len(ses))
	for i, se := range ses {
		out[i] = se
	}
	return out
}

func TestValidateReturnsCanonicalSpelling(t *testing.T) {
	f := &fake{}
	withRegistry(t, map[string]Backend{"fake": f.backend()})
	s, err := Validate("fake", Settings{Hooks: []Hook{" FWD", "In"}, Action: " DROP", LogRate: 1, LogPer: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Hooks, []Hook{"fwd", "in"}) || s.Action != ActionDrop {
		t.Errorf("Validate = %+v, want hooks [fwd in] and action drop", s)
	}
}

func TestOpenChecksThenOpensTheNamedBackend(t *testing.T) {
	a, b := &fake{}, &fake{}
	withRegistry(t, map[string]Backend{"a": a.backend(), "b": b.backend()})
	if _, err := Open("b", Settings{Hooks: []Hook{"IN"}, Action: ActionDrop, LogRate: 1, LogPer: time.Second}, nil); err != nil {
		t.Fatal(err)
	}
	if len(a.opened) != 0 || len(b.opened) != 1 || b.opened[0].Hooks[0] != "in" {
		t.Errorf("opened a %v, b %v; want b once with canonical hooks", a.opened, b.opened)
	}
	// Settings the backend cannot build never reach its Open.
	_, err := Open("a", Settings{Hooks: []Hook{"out"}, Action: ActionDrop, LogRate: 1, LogPer: time.Second}, nil)
	if err == nil || !strings.Contains(err.Error(), `a settings: hooks[0]: "out" is not one of in, fwd`) || len(a.opened) != 0 {
		t.Errorf("Open with a bad hook = %v (opened %d)", err, len(a.opened))
	}
	a.failOpen = exec.ErrNotFound
	if _, err := Open("a", good, nil); !errors.Is(err, exec.ErrNotFound) || !strings.HasPrefix(err.Error(), "a backend: ") {
		t.Errorf("Open of a failing backend = %v", err)
	}
	_, err = Open("pf", good, nil)
	if !errors.Is(err, ErrUnknownBackend) || err.Error() != `unknown firewall backend "pf" (available: a, b)` {
		t.Errorf("Open of an unknown backend = %v", err)
	}
	if _, err := Validate("pf", good); !errors.Is(err, ErrUnknownBackend) {
		t.Errorf("Validate of an unknown backend = %v", err)
	}
}

func TestCleanupAllTriesEveryBackend(t *testing.T) {
	a, b := &fake{failRm: errors.New("busy")}, &fake{}
	withRegistry(t, map[string]Backend{"a": a.backend(), "b": b.backend()})
	err := CleanupAll(nil)
	if err == nil || err.Error() != "clean up a: busy" {
		t.Errorf("CleanupAll = %v, want the failure of a", err)
	}
	if a.cleanups != 1 || b.cleanups != 1 {
		t.Errorf("cleanups a %d, b %d; want one each", a.cleanups, b.cleanups)
	}
	a.failRm = nil
	if err := CleanupAll(nil); err != nil {
		t.Errorf("second CleanupAll = %v", err)
	}
}

func TestRegisterRefusesDuplicatesAndGaps(t *testing.T) {
	f := &fake{}
	withRegistry(t, map[string]Backend{"fake": f.backend()})
	for name, b := range map[string]Backend{
		"fake":    f.backend(),                                                              // twice
		"no-open": {ValidateHooks: f.backend().ValidateHooks, Cleanup: f.backend().Cleanup}, // incomplete
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", name)
				}
			}()
			Register(name, b)
		}()
	}
}

package firewall

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// Backend is what a backend package registers under its name.
type Backend struct {
	// Open builds the backend for settings that Check accepted. It may look
	// for the tools it needs but does not touch the kernel.
	Open func(s Settings, log *slog.Logger) (Firewall, error)
	// ValidateHooks checks the hook names for this backend, and what the
	// action needs of them, without I/O. It returns the hooks in the
	// backend's spelling and a *SettingError per problem.
	ValidateHooks func(hooks []Hook, action Action) ([]Hook, error)
	// Cleanup removes whatever any configuration of the backend ever put in
	// the kernel; it is idempotent, and returns nil at once when the
	// backend's tools are not installed (then nothing of it can be there).
	Cleanup func(log *slog.Logger) error
}

// Check validates s for the backend: every problem, each a *SettingError.
// It returns s with hooks and action in canonical spelling.
func (b Backend) Check(s Settings) (Settings, error) {
	s, err := s.validate()
	hooks, herr := b.ValidateHooks(s.Hooks, s.Action)
	s.Hooks = hooks
	return s, errors.Join(err, herr)
}

// registry holds the linked backends; Register runs from init functions
// only, before anything reads it, so it needs no lock.
var registry = map[string]Backend{}

// Register makes a backend available under name (the value of
// firewall.backend in the config file). It is called from the backend
// package's init and panics on a duplicate or incomplete registration.
func Register(name string, b Backend) {
	if name == "" || b.Open == nil || b.ValidateHooks == nil || b.Cleanup == nil {
		panic(fmt.Sprintf("firewall: incomplete registration of backend %q", name))
	}
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("firewall: backend %q registered twice", name))
	}
	registry[name] = b
}

// Names lists the registered backends, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ErrUnknownBackend means no backend of that name is linked into the program.
var ErrUnknownBackend = errors.New("unknown firewall backend")

// Lookup returns the backend registered under name.
func Lookup(name string) (Backend, error) {
	b, ok := registry[name]
	if !ok {
		return Backend{}, fmt.Errorf("%w %q (available: %s)", ErrUnknownBackend, name, strings.Join(Names(), ", "))
	}
	return b, nil
}

// Validate checks s for the named backend without I/O; see Backend.Check.
func Validate(name string, s Settings) (Settings, error) {
	b, err := Lookup(name)
	if err != nil {
		return s, err
	}
	return b.Check(s)
}

// Open checks s and builds the named backend; it does not touch the kernel.
func Open(name string, s Settings, log *slog.Logger) (Firewall, error) {
	b, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if s, err = b.Check(s); err != nil {
		return nil, fmt.Errorf("%s settings: %w", name, err)
	}
	fw, err := b.Open(s, log)
	if err != nil {
		return nil, fmt.Errorf("%s backend: %w", name, err)
	}
	return fw, nil
}

// CleanupAll removes the kernel objects of every registered backend,
// whichever one is configured now: a machine may have switched. Running it
// twice is fine. It tries every backend and reports each failure.
func CleanupAll(log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for _, name := range Names() {
		if err := registry[name].Cleanup(log); err != nil {
			errs = append(errs, fmt.Errorf("clean up %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// Package firewall is the seam between the daemon and the kernel backends:
// the one interface the daemon drives, the settings every backend takes,
// and a registry through which the backends (internal/nft, internal/ipset)
// make themselves available. It imports no backend, so the daemon and the
// config can depend on it without linking netlink or exec code; a program
// links the backends it offers by importing them.
package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Firewall is what the daemon needs from a backend (nftables, iptables or
// the dry run).
type Firewall interface {
	// Apply makes the kernel hold the lists, atomically. The backend
	// keeps the slices: the caller must not modify them.
	Apply(l Lists) error
	// Remove deletes everything the backend put in the kernel; idempotent.
	Remove() error
	// Intact reports whether the objects the backend installed still stand;
	// another program (`nft flush ruleset`, `iptables -F`) may remove them.
	Intact() (bool, error)
	// Counters reads what the kernel dropped (or rejected) since the rules
	// were installed.
	Counters() (Counters, error)
	// Restore puts the rules and the last applied lists back after another
	// program removed or changed them, without reading the lists back: from
	// the backend's own copy, in one transaction where the backend has
	// them. hot are the sources dropped most recently: a backend that has
	// to reload a large list may load the entries covering them first.
	// Without an earlier Apply it does nothing.
	Restore(hot []netip.Addr) error
	// Watch reports, until ctx ends, changes that other programs make to the
	// backend's objects; the backend's own changes are not reported. A
	// backend that cannot see changes as they happen returns a nil channel,
	// which leaves the daemon to its periodic Intact check. The channel is
	// closed when ctx ends or watching fails for good.
	Watch(ctx context.Context) (<-chan Change, error)
}

// Change is one change of the backend's objects made by another program,
// or the news that changes may have been missed.
type Change struct {
	// What says what changed, e.g. "table inet sikkerguard deleted".
	What string
	// PID and Comm name the process that made the change when the kernel
	// says (0 and "" when not).
	PID  int
	Comm string
	// Lost is set when events were lost (a full socket buffer): the
	// objects may have changed without a report.
	Lost bool
	// Sure is set when the change certainly altered the backend's objects
	// (a rule, chain, set or element of its own): restore without asking
	// Intact first. Without it (an event that may concern them, lost
	// events) Intact decides.
	Sure bool
}

// Who names the process of a change for a log line: "nft (pid 42)", or
// "an unknown process".
func (c Change) Who() string {
	switch {
	case c.PID > 0 && c.Comm != "":
		return fmt.Sprintf("%s (pid %d)", c.Comm, c.PID)
	case c.PID > 0:
		return fmt.Sprintf("pid %d", c.PID)
	case c.Comm != "":
		return c.Comm
	}
	return "an unknown process"
}

// Counters counts the packets the blocklist rules dropped or rejected.
type Counters struct {
	Packets4, Bytes4 uint64
	Packets6, Bytes6 uint64
	// ListenerWarnings counts the large transactions sent while another
	// program listened to the backend's kernel events (nftables: the kernel
	// then holds one notification per element until the commit ends).
	ListenerWarnings uint64
}

// Hook names where in the packet path a backend checks the blocklist; each
// backend has its own names (nftables hooks, iptables chains).
type Hook string

// Action is what happens to a blocked packet.
type Action string

// Actions every backend offers.
const (
	ActionDrop   Action = "drop"
	ActionReject Action = "reject"
)

// Settings are what a backend takes from the configuration. Validate (or
// Backend.Check) returns them in canonical spelling; a backend builds only
// checked settings.
type Settings struct {
	Hooks    []Hook
	Action   Action
	IPv6     bool          // build the IPv6 half (sets, rules)
	LogGroup uint16        // NFLOG group of dropped packets; 0 disables logging
	LogRate  uint32        // packets logged per LogPer, at least 1
	LogPer   time.Duration // time.Second, time.Minute, time.Hour or 24h
	// Monitor builds the objects of monitor feeds (Lists.Monitor).
	Monitor bool
	// Outbound builds the drop of the host's own connections to the
	// destinations of Lists.Out.
	Outbound bool
	// Scopes are the distinct scopes of scoped feeds; Lists.Scoped[i]
	// holds the sources of Scopes[i].
	Scopes []Scope
}

// SettingError is one setting a backend cannot build. Field is spelled as
// under `firewall:` in the config file: "hooks", "hooks[1]", "action",
// "log_rate".
type SettingError struct {
	Field string
	Msg   string
}

func (e *SettingError) Error() string { return e.Field + ": " + e.Msg }

// SettingErrors returns every *SettingError that err holds, in order, at
// any depth of wrapping and errors.Join: Validate reports all problems at
// once.
func SettingErrors(err error) []*SettingError {
	switch e := err.(type) {
	case *SettingError:
		return []*SettingError{e}
	case interface{ Unwrap() []error }:
		var out []*SettingError
		for _, x := range e.Unwrap() {
			out = append(out, SettingErrors(x)...)
		}
		return out
	case interface{ Unwrap() error }:
		return SettingErrors(e.Unwrap())
	}
	return nil
}

// settingErr builds the *SettingError of one problem.
func settingErr(field, format string, args ...any) error {
	return &SettingError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// validate checks what does not depend on the backend and returns s with
// the action in canonical spelling.
func (s Settings) validate() (Settings, error) {
	var errs []error
	if len(s.Hooks) == 0 {
		errs = append(errs, settingErr("hooks", "at least one hook is required"))
	}
	s.Action = Action(strings.ToLower(strings.TrimSpace(string(s.Action))))
	if s.Action != ActionDrop && s.Action != ActionReject {
		errs = append(errs, settingErr("action", "%q is not one of drop, reject", s.Action))
	}
	switch s.LogPer {
	case time.Second, time.Minute, time.Hour, 24 * time.Hour:
		if s.LogRate < 1 {
			errs = append(errs, settingErr("log_rate", "the rate must be at least 1 packet per %s", UnitName(s.LogPer)))
		}
	default:
		errs = append(errs, settingErr("log_rate", "unit %v is not one of second, minute, hour, day", s.LogPer))
	}
	return s, errors.Join(errs...)
}

// UnitName names a log rate unit the way the kernel tools write it:
// "second", "minute", "hour" or "day"; "" for any other duration.
func UnitName(per time.Duration) string {
	switch per {
	case time.Second:
		return "second"
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	}
	return ""
}

// CheckHookNames is the common part of a backend's hook check: each
// written hook must be one of known, compared ignoring case and surrounding
// space, and be listed once. It returns the hooks in known's spelling
// (unknown ones as written) and a *SettingError per bad entry, naming the
// backend so that a user who picked the other one sees why.
func CheckHookNames(backend string, written []Hook, known ...Hook) ([]Hook, error) {
	out := make([]Hook, len(written))
	names := make([]string, len(known))
	for i, k := range known {
		names[i] = string(k)
	}
	var errs []error
	seen := map[Hook]bool{}
	for i, w := range written {
		out[i] = w
		var match Hook
		for _, k := range known {
			if strings.EqualFold(strings.TrimSpace(string(w)), string(k)) {
				match = k
			}
		}
		field := fmt.Sprintf("hooks[%d]", i)
		switch {
		case match == "":
			errs = append(errs, settingErr(field, "%q is not one of %s (%s backend)", w, strings.Join(names, ", "), backend))
		case seen[match]:
			out[i] = match
			errs = append(errs, settingErr(field, "%q is listed twice", match))
		default:
			out[i] = match
			seen[match] = true
		}
	}
	return out, errors.Join(errs...)
}

package dbusapi

import (
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// D-Bus error names returned by the server.
const (
	ErrorPrefix         = Interface + ".Error."
	ErrorInvalidAddress = ErrorPrefix + "InvalidAddress"
	ErrorInvalidArgs    = ErrorPrefix + "InvalidArgs"
	ErrorAccessDenied   = ErrorPrefix + "AccessDenied"
	ErrorNotReady       = ErrorPrefix + "NotReady"
	ErrorNotFound       = ErrorPrefix + "NotFound"
	ErrorBusy           = ErrorPrefix + "Busy"
	ErrorFailed         = ErrorPrefix + "Failed"
	// ErrorInvalidConfig is a reload refused because the configuration
	// does not validate; the message holds the errors as -t prints them.
	ErrorInvalidConfig = ErrorPrefix + "InvalidConfig"
	// ErrorExists is an entry that is already there (a second whitelist
	// add of the same range).
	ErrorExists = ErrorPrefix + "Exists"
	// ErrorNotRunning never travels on the wire: the client gives it to the
	// bus's ServiceUnknown / NameHasNoOwner replies for our name.
	ErrorNotRunning = ErrorPrefix + "NotRunning"
)

// Names the bus itself (not the daemon) replies with, mapped onto ours so one
// errors.Is test covers both the bus policy and the daemon's own check.
const (
	busErrorServiceUnknown = "org.freedesktop.DBus.Error.ServiceUnknown"
	busErrorNameHasNoOwner = "org.freedesktop.DBus.Error.NameHasNoOwner"
	busErrorAccessDenied   = "org.freedesktop.DBus.Error.AccessDenied"
)

// Error is an API error: its D-Bus name and a message meant for people.
// Daemon implementations return (possibly wrapped) sentinels below to choose
// the name the caller sees; anything else becomes ErrorFailed.
type Error struct {
	Name    string
	Message string
}

// Sentinels for errors.Is; they match any *Error of the same kind whatever
// its message.
var (
	ErrInvalidAddress = &Error{Name: ErrorInvalidAddress, Message: "invalid address"}
	ErrInvalidArgs    = &Error{Name: ErrorInvalidArgs, Message: "invalid arguments"}
	ErrAccessDenied   = &Error{Name: ErrorAccessDenied, Message: "access denied: run as root"}
	ErrNotReady       = &Error{Name: ErrorNotReady, Message: "sikkerguard is not ready yet"}
	ErrNotFound       = &Error{Name: ErrorNotFound, Message: "not found"}
	ErrBusy           = &Error{Name: ErrorBusy, Message: "another operation is in progress"}
	ErrFailed         = &Error{Name: ErrorFailed, Message: "operation failed"}
	ErrInvalidConfig  = &Error{Name: ErrorInvalidConfig, Message: "invalid configuration"}
	ErrExists         = &Error{Name: ErrorExists, Message: "already there"}
	ErrNotRunning     = &Error{Name: ErrorNotRunning, Message: "sikkerguard is not running (" + BusName + " not on the bus)"}
)

var sentinels = []*Error{ErrInvalidAddress, ErrInvalidArgs, ErrAccessDenied, ErrNotReady, ErrNotFound, ErrBusy, ErrFailed,
	ErrInvalidConfig, ErrExists}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Message
}

// Is reports whether target is an *Error of the same kind; the bus's own
// AccessDenied and unknown-service errors count as ours.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && kind(e.Name) == kind(t.Name)
}

func kind(name string) string {
	switch name {
	case busErrorServiceUnknown, busErrorNameHasNoOwner:
		return ErrorNotRunning
	case busErrorAccessDenied:
		return ErrorAccessDenied
	}
	return name
}

// toDBus turns an error from the daemon (or the server) into the reply sent
// on the bus, keeping the sentinel's name and the full wrapped message.
func toDBus(err error) *dbus.Error {
	if err == nil {
		return nil
	}
	name := ErrorFailed
	var e *Error
	if errors.As(err, &e) {
		name = e.Name
	} else {
		for _, s := range sentinels {
			if errors.Is(err, s) {
				name = s.Name
				break
			}
		}
	}
	return dbus.NewError(name, []any{err.Error()})
}

// fromDBus maps a call error back to Go: D-Bus errors become *Error with
// their name kept; for the bus's own refusals the message says what to do.
func fromDBus(method string, err error) error {
	if err == nil {
		return nil
	}
	var de dbus.Error
	var dep *dbus.Error
	switch {
	case errors.As(err, &dep):
		de = *dep
	case errors.As(err, &de):
	default:
		return fmt.Errorf("%s: %w", method, err)
	}
	msg := ""
	if len(de.Body) > 0 {
		if s, ok := de.Body[0].(string); ok {
			msg = s
		}
	}
	switch kind(de.Name) {
	case ErrorNotRunning:
		msg = ErrNotRunning.Message
	case ErrorAccessDenied:
		if de.Name == busErrorAccessDenied {
			msg = fmt.Sprintf("access denied: run as root (the bus policy refused %s)", method)
		}
	}
	if msg == "" {
		msg = method + ": " + de.Name
	}
	return &Error{Name: de.Name, Message: msg}
}

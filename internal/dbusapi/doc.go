// Package dbusapi is sikkerguard's D-Bus control interface: the server object
// the daemon exports on the system bus, and the typed client sikkerctl uses.
//
// The server knows nothing of firewalls. It validates input, checks the
// caller's uid for mutating methods, and forwards to a Daemon; the daemon in
// turn pushes property changes and signals through the Server's setters.
// The client maps D-Bus errors back to *Error values that keep their D-Bus
// name, so callers test them with errors.Is against the Err* sentinels.
package dbusapi

import "github.com/godbus/dbus/v5"

// The well-known names of the API. The "1" is the interface version: an
// incompatible change gets a new name, never a changed meaning.
const (
	BusName   = "com.sikkerapi.SikkerGuard1"
	Interface = "com.sikkerapi.SikkerGuard1"
	Path      = dbus.ObjectPath("/com/sikkerapi/SikkerGuard1")
)

// Signal names (members of Interface).
const (
	SignalBlocklistUpdated = "BlocklistUpdated"
	SignalApplyFailed      = "ApplyFailed"
	SignalRolledBack       = "RolledBack"
	SignalRulesRestored    = "RulesRestored"
)

// Property names (on Interface, read through org.freedesktop.DBus.Properties).
const (
	PropVersion     = "Version"
	PropState       = "State"
	PropBackend     = "Backend"
	PropBlockedIPv4 = "BlockedIPv4"
	PropBlockedIPv6 = "BlockedIPv6"
	PropLastPull    = "LastPull"
	PropDryRun      = "DryRun"
)

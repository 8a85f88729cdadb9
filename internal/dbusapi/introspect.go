package dbusapi

import (
	"encoding/xml"
	"strings"

	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"
)

// The introspection data is written out by hand rather than derived with
// introspect.Methods, so arguments carry names and the order is stable; a
// test checks it against the exported methods and dbus/*.xml.

func arg(name, typ, dir string) introspect.Arg {
	return introspect.Arg{Name: name, Type: typ, Direction: dir}
}

func property(name, typ, emits string) introspect.Property {
	return introspect.Property{Name: name, Type: typ, Access: "read", Annotations: []introspect.Annotation{
		{Name: "org.freedesktop.DBus.Property.EmitsChangedSignal", Value: emits},
	}}
}

// InterfaceIntrospection describes com.sikkerapi.SikkerGuard1.
func InterfaceIntrospection() introspect.Interface {
	return introspect.Interface{
		Name: Interface,
		Methods: []introspect.Method{
			{Name: "Reload"},
			{Name: "Status", Args: []introspect.Arg{arg("status", "a{sv}", "out")}},
			{Name: "WhitelistAdd", Args: []introspect.Arg{arg("cidr", "s", "in")}},
			{Name: "WhitelistRemove", Args: []introspect.Arg{arg("cidr", "s", "in")}},
			{Name: "WhitelistList", Args: []introspect.Arg{arg("entries", "as", "out")}},
			{Name: "Check", Args: []introspect.Arg{
				arg("address", "s", "in"), arg("blocked", "b", "out"), arg("explanation", "s", "out")}},
			{Name: "TopBlocked", Args: []introspect.Arg{arg("n", "u", "in"), arg("entries", "a(sqssu)", "out")}},
			{Name: "Pull", Args: []introspect.Arg{arg("feed", "s", "in")}},
			{Name: "Block", Args: []introspect.Arg{arg("cidr", "s", "in"), arg("seconds", "t", "in"), arg("comment", "s", "in")}},
			{Name: "Unblock", Args: []introspect.Arg{arg("cidr", "s", "in")}},
			{Name: "HubStatus", Args: []introspect.Arg{arg("status", "a{sv}", "out")}},
			{Name: "Feeds", Args: []introspect.Arg{arg("feeds", "aa{sv}", "out")}},
		},
		Signals: []introspect.Signal{
			{Name: SignalBlocklistUpdated, Args: []introspect.Arg{arg("ipv4", "u", ""), arg("ipv6", "u", "")}},
			{Name: SignalApplyFailed, Args: []introspect.Arg{arg("reason", "s", "")}},
			{Name: SignalRolledBack, Args: []introspect.Arg{arg("reason", "s", "")}},
			{Name: SignalRulesRestored, Args: []introspect.Arg{arg("reason", "s", "")}},
		},
		Properties: []introspect.Property{
			property(PropVersion, "s", "const"),
			property(PropState, "s", "true"),
			property(PropBackend, "s", "true"),
			property(PropBlockedIPv4, "u", "true"),
			property(PropBlockedIPv6, "u", "true"),
			property(PropLastPull, "x", "true"),
			property(PropDryRun, "b", "true"),
		},
	}
}

// IntrospectNode is the whole object as exported: the API interface, the
// standard Properties, Introspectable and Peer interfaces.
func IntrospectNode() *introspect.Node {
	return &introspect.Node{Interfaces: []introspect.Interface{
		InterfaceIntrospection(),
		prop.IntrospectData,
		introspect.IntrospectData,
		introspect.PeerData,
	}}
}

// IntrospectXML renders IntrospectNode the way dbus/com.sikkerapi.SikkerGuard1.xml
// is checked in: the standard DOCTYPE and two-space indentation.
func IntrospectXML() (string, error) {
	b, err := xml.MarshalIndent(IntrospectNode(), "", "  ")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(introspect.IntrospectDeclarationString) + "\n" + string(b) + "\n", nil
}

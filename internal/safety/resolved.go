package safety

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/godbus/dbus/v5"
)

// DefaultUpstreamResolvConf is where systemd-resolved lists the servers it
// forwards to. /etc/resolv.conf then names only its stub, 127.0.0.53, and
// blocking the real servers (often public ones on a VPS) would cut name
// resolution while the stub still looks alive.
const DefaultUpstreamResolvConf = "/run/systemd/resolve/resolv.conf"

// DefaultResolvedTimeout bounds the question to systemd-resolved over D-Bus,
// connection included: a wedged bus must not hold up the start.
const DefaultResolvedTimeout = 2 * time.Second

// UpstreamSource tells which servers a local resolver forwards to.
type UpstreamSource interface {
	UpstreamDNS(ctx context.Context) ([]netip.Addr, error)
}

// NoUpstream is an UpstreamSource that knows of no servers, for hosts (and
// tests) where no resolver daemon is to be asked.
type NoUpstream struct{}

// UpstreamDNS implements UpstreamSource.
func (NoUpstream) UpstreamDNS(context.Context) ([]netip.Addr, error) { return nil, nil }

// Resolved asks systemd-resolved (org.freedesktop.resolve1) for its DNS
// property: every configured server, global and per link, including those
// that resolv.conf cannot express; when none is configured, for its
// FallbackDNS servers, which it then uses. It is best effort: no bus, or no
// resolved on it, gives no servers and no error, since the daemon may run
// on hosts without either. resolved is never started by the question.
type Resolved struct {
	Address string        // bus address; "" = the system bus
	Timeout time.Duration // default DefaultResolvedTimeout
}

const (
	resolvedName  = "org.freedesktop.resolve1"
	resolvedPath  = "/org/freedesktop/resolve1"
	resolvedIface = "org.freedesktop.resolve1.Manager"
)

// resolvedServer is one entry of the DNS property, signature a(iiay).
type resolvedServer struct {
	Ifindex int32 // 0 for a global server
	Family  int32 // AF_INET or AF_INET6
	Addr    []byte
}

// UpstreamDNS implements UpstreamSource.
func (r Resolved) UpstreamDNS(ctx context.Context) ([]netip.Addr, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultResolvedTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// WithContext closes the connection when ctx ends, which also bounds
	// the authentication handshake.
	opts := []dbus.ConnOption{dbus.WithContext(ctx)}
	var conn *dbus.Conn
	var err error
	if r.Address == "" {
		conn, err = dbus.ConnectSystemBus(opts...)
	} else {
		conn, err = dbus.Connect(r.Address, opts...)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("systemd-resolved upstream servers: %w", ctx.Err())
		}
		return nil, nil // no bus: nothing to ask
	}
	defer conn.Close()
	servers, err := resolvedProperty(ctx, conn, "DNS")
	if errors.Is(err, errNoResolved) {
		return nil, nil
	}
	if err == nil && len(servers) == 0 {
		// With no server configured resolved uses its compiled-in fallback
		// servers, which are then the ones that answer.
		servers, err = resolvedProperty(ctx, conn, "FallbackDNS")
		if errors.Is(err, errUnknownProperty) {
			servers, err = nil, nil // systemd before 246
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			// The deadline closed the connection under the call, which may
			// then fail with "use of closed network connection" first.
			err = ctx.Err()
		}
		return nil, fmt.Errorf("systemd-resolved upstream servers: %w", err)
	}
	return resolvedAddrs(servers, ifName)
}

var (
	errNoResolved      = errors.New("systemd-resolved is not on the bus")
	errUnknownProperty = errors.New("no such property")
)

// resolvedProperty reads one a(iiay) property of resolve1's Manager.
func resolvedProperty(ctx context.Context, conn *dbus.Conn, name string) ([]resolvedServer, error) {
	var v dbus.Variant
	err := conn.Object(resolvedName, resolvedPath).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get",
		dbus.FlagNoAutoStart, resolvedIface, name).Store(&v)
	var de dbus.Error
	if errors.As(err, &de) {
		switch de.Name {
		case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner":
			return nil, errNoResolved
		case "org.freedesktop.DBus.Error.UnknownProperty", "org.freedesktop.DBus.Error.InvalidArgs":
			return nil, fmt.Errorf("%s: %w", name, errUnknownProperty)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var servers []resolvedServer
	if err := v.Store(&servers); err != nil {
		return nil, fmt.Errorf("%s property of type %s: %w", name, v.Signature(), err)
	}
	return servers, nil
}

// resolvedAddrs turns the DNS property into addresses, in order and without
// duplicates. A link-local server gets its link as zone, since it cannot be
// probed without one. An entry that is not an address is reported, and the
// valid ones are still returned.
func resolvedAddrs(servers []resolvedServer, ifname func(int) string) ([]netip.Addr, error) {
	var out []netip.Addr
	var bad []error
	for i, s := range servers {
		a, ok := netip.AddrFromSlice(s.Addr)
		switch {
		case !ok || (s.Family == 2) != (len(s.Addr) == 4) || (s.Family != 2 && s.Family != 10):
			bad = append(bad, fmt.Errorf("entry %d: family %d with %d address bytes", i, s.Family, len(s.Addr)))
			continue
		case !a.Unmap().IsValid() || a.IsUnspecified():
			bad = append(bad, fmt.Errorf("entry %d: %s is not a server address", i, a))
			continue
		}
		a = a.Unmap()
		if a.Is6() && a.IsLinkLocalUnicast() && s.Ifindex > 0 {
			a = a.WithZone(ifname(int(s.Ifindex)))
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("systemd-resolved upstream servers: %w", errors.Join(bad...))
	}
	return out, nil
}

// ifName names interface index i, or gives the number itself, which the
// dialer accepts as a zone as well.
func ifName(i int) string {
	if ifi, err := net.InterfaceByIndex(i); err == nil {
		return ifi.Name
	}
	return strconv.Itoa(i)
}

package dbusapi

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/godbus/dbus/v5"
)

// Client calls the API over a bus connection. Every error it returns for a
// D-Bus reply is an *Error keeping the reply's name; test with errors.Is.
type Client struct {
	conn  *dbus.Conn
	obj   dbus.BusObject
	owned bool
}

// Dial connects to the bus at address, or to the system bus when address is
// empty (which honours DBUS_SYSTEM_BUS_ADDRESS). Close the client when done.
func Dial(address string) (*Client, error) {
	var conn *dbus.Conn
	var err error
	if address == "" {
		conn, err = dbus.ConnectSystemBus()
		address = "the system bus"
	} else {
		conn, err = dbus.Connect(address)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", address, err)
	}
	c := NewClient(conn)
	c.owned = true
	return c, nil
}

// NewClient uses an existing connection, which Close leaves open.
func NewClient(conn *dbus.Conn) *Client {
	return &Client{conn: conn, obj: conn.Object(BusName, Path)}
}

// Conn returns the underlying connection, e.g. to subscribe to signals.
func (c *Client) Conn() *dbus.Conn { return c.conn }

// Close closes the connection if Dial opened it.
func (c *Client) Close() error {
	if c.owned {
		return c.conn.Close()
	}
	return nil
}

func (c *Client) call(ctx context.Context, method string, args []any, out ...any) error {
	call := c.obj.CallWithContext(ctx, Interface+"."+method, 0, args...)
	if call.Err != nil {
		return fromDBus(method, call.Err)
	}
	if err := call.Store(out...); err != nil {
		return fmt.Errorf("%s: decode reply: %w", method, err)
	}
	return nil
}

// Reload asks the daemon to re-read its configuration and lists (root only).
func (c *Client) Reload(ctx context.Context) error {
	return c.call(ctx, "Reload", nil)
}

// Pull asks the daemon to pull feed now ("" = every feed) and waits until
// the result is applied or refused (root only).
func (c *Client) Pull(ctx context.Context, feed string) error {
	return c.call(ctx, "Pull", []any{feed})
}

// Block blocks a CIDR or address by hand for d (0: until unblocked), with
// an optional comment (root only).
func (c *Client) Block(ctx context.Context, cidr string, d time.Duration, comment string) error {
	return c.call(ctx, "Block", []any{cidr, uint64(max(d, 0) / time.Second), comment})
}

// Unblock removes an entry blocked by hand (root only).
func (c *Client) Unblock(ctx context.Context, cidr string) error {
	return c.call(ctx, "Unblock", []any{cidr})
}

// Status returns the daemon's status report.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var m map[string]dbus.Variant
	if err := c.call(ctx, "Status", nil, &m); err != nil {
		return Status{}, err
	}
	return statusFromWire(m)
}

// WhitelistAdd whitelists a CIDR or a single address (root only). The text
// is passed as given: the daemon validates it and names what is wrong.
func (c *Client) WhitelistAdd(ctx context.Context, cidr string) error {
	return c.call(ctx, "WhitelistAdd", []any{cidr})
}

// WhitelistRemove removes a runtime whitelist entry (root only).
func (c *Client) WhitelistRemove(ctx context.Context, cidr string) error {
	return c.call(ctx, "WhitelistRemove", []any{cidr})
}

// WhitelistList returns the whitelist entries in force.
func (c *Client) WhitelistList(ctx context.Context) ([]netip.Prefix, error) {
	var list []string
	if err := c.call(ctx, "WhitelistList", nil, &list); err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("WhitelistList: daemon sent %q: %w", s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Check reports whether ip is blocked, with the daemon's explanation.
func (c *Client) Check(ctx context.Context, ip string) (blocked bool, explanation string, err error) {
	err = c.call(ctx, "Check", []any{ip}, &blocked, &explanation)
	return blocked, explanation, err
}

// TopBlocked returns up to n most-dropped sources (0: the daemon's default).
func (c *Client) TopBlocked(ctx context.Context, n uint32) ([]TopEntry, error) {
	var rows []topWire
	if err := c.call(ctx, "TopBlocked", []any{n}, &rows); err != nil {
		return nil, err
	}
	out := make([]TopEntry, 0, len(rows))
	for _, r := range rows {
		a, err := netip.ParseAddr(r.Source)
		if err != nil {
			return nil, fmt.Errorf("TopBlocked: daemon sent source %q: %w", r.Source, err)
		}
		out = append(out, TopEntry{a, r.Port, r.Transport, r.Service, r.Count})
	}
	return out, nil
}

// Properties reads all properties with one GetAll call.
func (c *Client) Properties(ctx context.Context) (Properties, error) {
	var m map[string]dbus.Variant
	call := c.obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.GetAll", 0, Interface)
	if call.Err != nil {
		return Properties{}, fromDBus("GetAll", call.Err)
	}
	if err := call.Store(&m); err != nil {
		return Properties{}, fmt.Errorf("GetAll: decode reply: %w", err)
	}
	var p Properties
	var state string
	var lastPull int64
	for _, f := range []struct {
		name string
		dst  any
	}{
		{PropVersion, &p.Version}, {PropState, &state}, {PropBackend, &p.Backend},
		{PropBlockedIPv4, &p.BlockedIPv4}, {PropBlockedIPv6, &p.BlockedIPv6},
		{PropLastPull, &lastPull}, {PropDryRun, &p.DryRun},
	} {
		v, ok := m[f.name]
		if !ok {
			return Properties{}, fmt.Errorf("GetAll: property %s missing", f.name)
		}
		if err := v.Store(f.dst); err != nil {
			return Properties{}, fmt.Errorf("GetAll: property %s: %w", f.name, err)
		}
	}
	p.State, p.LastPull = State(state), timeOrZero(lastPull)
	return p, nil
}

// Property reads one property by name (Prop* constants).
func (c *Client) Property(ctx context.Context, name string) (dbus.Variant, error) {
	var v dbus.Variant
	call := c.obj.CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, Interface, name)
	if call.Err != nil {
		return v, fromDBus("Get "+name, call.Err)
	}
	if err := call.Store(&v); err != nil {
		return v, fmt.Errorf("Get %s: decode reply: %w", name, err)
	}
	return v, nil
}

package dbusapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"

	"github.com/sikkerapi/sikkerguard/internal/ledger"
	"github.com/sikkerapi/sikkerguard/internal/version"
)

// Daemon is what the server forwards to. Errors may wrap the Err* sentinels
// to pick the D-Bus error name (ErrNotReady, ErrNotFound, ErrBusy...);
// anything else is reported as ErrorFailed with the error's text.
type Daemon interface {
	// Reload re-reads the configuration, pulls the feeds whose source
	// settings changed and applies the result; a configuration that does
	// not load wraps ErrInvalidConfig. ctx is cancelled when the server
	// closes.
	Reload(ctx context.Context) error
	Status() Status
	WhitelistAdd(p netip.Prefix) error
	WhitelistRemove(p netip.Prefix) error
	WhitelistList() []netip.Prefix
	// Check says whether a is blocked and why (feed, whitelist, safety).
	Check(a netip.Addr) (blocked bool, explanation string)
	// TopBlocked returns at most n sources, most dropped first.
	TopBlocked(n int) []TopEntry
	// Pull pulls one feed ("" = every feed) now and returns once the result
	// is applied or refused.
	Pull(ctx context.Context, feed string) error
	// Block blocks p by hand until now+d (0: until unblocked).
	Block(p netip.Prefix, d time.Duration, comment string) error
	// Unblock removes an entry blocked by hand.
	Unblock(p netip.Prefix) error
	// HubStatus is the fleet hub's state; an error wrapping ErrNotFound
	// when hub.listen is off.
	HubStatus() (HubStatus, error)
	// Feeds returns the feeds' value ledger, one record per feed.
	Feeds() []ledger.Record
}

// Limits of Block: a comment is one short printable line, a duration at
// most ten years (seconds on the wire, so that a huge value cannot
// overflow a time.Duration).
const (
	MaxCommentLen = 200
	MaxBlockFor   = 10 * 365 * 24 * time.Hour
)

// Limits of TopBlocked(n): 0 asks for the default, larger values are capped
// so one call cannot build an arbitrarily large reply.
const (
	DefaultTop = 10
	MaxTop     = 1000
)

// Options configures a Server. Zero values pick the production defaults.
type Options struct {
	Logger *slog.Logger
	// Version is the Version property; default version.String().
	Version string
	// AllowUID decides who may call the mutating methods (Reload, Pull,
	// WhitelistAdd, WhitelistRemove, Block, Unblock);
	// default: only uid 0. The bus policy says the same, this is the second
	// line for buses configured more loosely.
	AllowUID func(uid uint32) bool
	// Initial property values.
	State   State
	Backend string
	DryRun  bool
}

// Server exports the API object on a connection. Its setters update the
// properties (emitting PropertiesChanged) and emit the API's signals.
type Server struct {
	conn     *dbus.Conn
	daemon   Daemon
	log      *slog.Logger
	allowUID func(uint32) bool
	version  string
	props    *prop.Properties

	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex // serialises property updates so "changed?" and "set" agree
	owned bool
}

// Export puts the API object on conn (methods, properties, introspection)
// and requests BusName. It fails if the name is already owned: two daemons
// must never fight over one firewall.
func Export(conn *dbus.Conn, d Daemon, opt Options) (*Server, error) {
	s, err := exportObject(conn, d, opt)
	if err != nil {
		return nil, err
	}
	reply, err := conn.RequestName(BusName, dbus.NameFlagDoNotQueue)
	if err != nil {
		s.unexport()
		return nil, fmt.Errorf("request bus name %s: %w", BusName, err)
	}
	if reply != dbus.RequestNameReplyPrimaryOwner {
		s.unexport()
		return nil, fmt.Errorf("request bus name %s: %s (is another sikkerguard running?)", BusName, reply)
	}
	s.owned = true
	return s, nil
}

// exportObject does everything but claim the name.
func exportObject(conn *dbus.Conn, d Daemon, opt Options) (*Server, error) {
	if d == nil {
		return nil, errors.New("dbusapi: nil Daemon")
	}
	s := &Server{conn: conn, daemon: d, log: opt.Logger, allowUID: opt.AllowUID, version: opt.Version}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.allowUID == nil {
		s.allowUID = func(uid uint32) bool { return uid == 0 }
	}
	if s.version == "" {
		s.version = version.String()
	}
	state := opt.State
	if state == "" {
		state = StateStarting
	}
	if !state.Valid() {
		return nil, fmt.Errorf("dbusapi: invalid initial state %q", state)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	props, err := prop.Export(conn, Path, propMap(s.version, state, opt.Backend, opt.DryRun))
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("export properties: %w", err)
	}
	s.props = props
	if err := conn.Export(methods{s}, Path, Interface); err != nil {
		s.unexport()
		return nil, fmt.Errorf("export %s: %w", Interface, err)
	}
	// Not introspect.NewIntrospectable: it appends Peer a second time when
	// the node already lists Introspectable first.
	xmlText, err := IntrospectXML()
	if err != nil {
		s.unexport()
		return nil, fmt.Errorf("render introspection: %w", err)
	}
	if err := conn.Export(introspect.Introspectable(xmlText), Path, "org.freedesktop.DBus.Introspectable"); err != nil {
		s.unexport()
		return nil, fmt.Errorf("export introspection: %w", err)
	}
	return s, nil
}

// propMap holds the initial property values; their Go types fix the D-Bus
// types, which a test checks against the introspection.
func propMap(version string, st State, backend string, dryRun bool) prop.Map {
	return prop.Map{Interface: {
		PropVersion:     {Value: version, Emit: prop.EmitConst},
		PropState:       {Value: string(st), Emit: prop.EmitTrue},
		PropBackend:     {Value: backend, Emit: prop.EmitTrue},
		PropBlockedIPv4: {Value: uint32(0), Emit: prop.EmitTrue},
		PropBlockedIPv6: {Value: uint32(0), Emit: prop.EmitTrue},
		PropLastPull:    {Value: int64(0), Emit: prop.EmitTrue},
		PropDryRun:      {Value: dryRun, Emit: prop.EmitTrue},
	}}
}

func (s *Server) unexport() {
	s.cancel()
	for _, iface := range []string{Interface, "org.freedesktop.DBus.Properties", "org.freedesktop.DBus.Introspectable"} {
		_ = s.conn.Export(nil, Path, iface)
	}
}

// Close releases the bus name, removes the object and cancels running
// reloads. The connection stays open; it belongs to the caller.
func (s *Server) Close() error {
	var err error
	if s.owned {
		if _, e := s.conn.ReleaseName(BusName); e != nil {
			err = fmt.Errorf("release bus name %s: %w", BusName, e)
		}
		s.owned = false
	}
	s.unexport()
	return err
}

// SetState publishes the life-cycle state.
func (s *Server) SetState(st State) error {
	if !st.Valid() {
		return fmt.Errorf("set state: invalid state %q", st)
	}
	return s.set(PropState, string(st))
}

// SetBackend publishes the firewall backend's name ("nftables", "iptables").
func (s *Server) SetBackend(name string) error { return s.set(PropBackend, name) }

// SetDryRun publishes whether the daemon only logs what it would block.
func (s *Server) SetDryRun(on bool) error { return s.set(PropDryRun, on) }

// SetLastPull publishes the time of the last successful pull (zero = never).
func (s *Server) SetLastPull(t time.Time) error { return s.set(PropLastPull, unixOrZero(t)) }

// SetBlocked publishes the blocked IPv4 addresses and IPv6 ranges without
// emitting BlocklistUpdated (e.g. when adopting rules left by a crash).
func (s *Server) SetBlocked(ipv4, ipv6 uint32) error {
	return errors.Join(s.set(PropBlockedIPv4, ipv4), s.set(PropBlockedIPv6, ipv6))
}

// BlocklistUpdated sets BlockedIPv4/BlockedIPv6 and emits the
// BlocklistUpdated signal: a new list is in the kernel.
func (s *Server) BlocklistUpdated(ipv4, ipv6 uint32) error {
	err := s.SetBlocked(ipv4, ipv6)
	return errors.Join(err, s.emit(SignalBlocklistUpdated, ipv4, ipv6))
}

// ApplyFailed emits ApplyFailed: a new list was refused or could not be
// applied, and the previous one stays.
func (s *Server) ApplyFailed(reason string) error { return s.emit(SignalApplyFailed, reason) }

// RolledBack emits RolledBack: connectivity checks failed after a change and
// the previous rules were restored.
func (s *Server) RolledBack(reason string) error { return s.emit(SignalRolledBack, reason) }

// RulesRestored emits RulesRestored: another program removed or changed
// the kernel objects and they were put back; reason says what changed and
// who changed it, when the kernel told.
func (s *Server) RulesRestored(reason string) error { return s.emit(SignalRulesRestored, reason) }

// Properties returns the current property values.
func (s *Server) Properties() Properties {
	s.mu.Lock()
	defer s.mu.Unlock()
	get := func(name string) any { return s.props.GetMust(Interface, name) }
	return Properties{
		Version:     get(PropVersion).(string),
		State:       State(get(PropState).(string)),
		Backend:     get(PropBackend).(string),
		BlockedIPv4: get(PropBlockedIPv4).(uint32),
		BlockedIPv6: get(PropBlockedIPv6).(uint32),
		LastPull:    timeOrZero(get(PropLastPull).(int64)),
		DryRun:      get(PropDryRun).(bool),
	}
}

func (s *Server) emit(signal string, args ...any) error {
	if err := s.conn.Emit(Path, Interface+"."+signal, args...); err != nil {
		return fmt.Errorf("emit %s: %w", signal, err)
	}
	return nil
}

// set stores a property and emits PropertiesChanged, only when the value
// changes so that listeners see real transitions.
func (s *Server) set(name string, v any) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.props.GetMust(Interface, name) == v {
		return nil
	}
	// prop has no error-returning setter for read-only properties: SetMust
	// panics when the signal cannot be sent (closed connection). The value
	// is stored before the emit, so only the signal is lost.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("set property %s: %v", name, r)
		}
	}()
	s.props.SetMust(Interface, name, v)
	return nil
}

// authorize asks the bus who sent a mutating call and applies AllowUID.
func (s *Server) authorize(sender dbus.Sender, method string) error {
	var uid uint32
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	err := s.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixUser", 0, string(sender)).Store(&uid)
	if err != nil {
		s.log.Warn("cannot identify caller", "method", method, "sender", string(sender), "err", err)
		return &Error{Name: ErrorAccessDenied, Message: fmt.Sprintf("access denied: cannot identify the caller of %s: %v", method, err)}
	}
	if !s.allowUID(uid) {
		s.log.Warn("access denied", "method", method, "uid", uid)
		return &Error{Name: ErrorAccessDenied, Message: fmt.Sprintf("access denied: run as root (uid %d may not call %s)", uid, method)}
	}
	s.log.Info("control call", "method", method, "uid", uid)
	return nil
}

// methods is the exported D-Bus object. It is a separate type so that only
// these methods, and none of Server's Go API, appear on the bus.
type methods struct{ s *Server }

func (m methods) Reload(sender dbus.Sender) *dbus.Error {
	if err := m.s.authorize(sender, "Reload"); err != nil {
		return toDBus(err)
	}
	if err := m.s.daemon.Reload(m.s.ctx); err != nil {
		return toDBus(fmt.Errorf("reload: %w", err))
	}
	return nil
}

func (m methods) Status() (map[string]dbus.Variant, *dbus.Error) {
	st := m.s.daemon.Status()
	st.Version = m.s.version
	return st.toWire(), nil
}

func (m methods) WhitelistAdd(sender dbus.Sender, cidr string) *dbus.Error {
	return m.whitelist(sender, "WhitelistAdd", cidr, m.s.daemon.WhitelistAdd)
}

func (m methods) WhitelistRemove(sender dbus.Sender, cidr string) *dbus.Error {
	return m.whitelist(sender, "WhitelistRemove", cidr, m.s.daemon.WhitelistRemove)
}

// whitelist validates before authorising: a typo gets the same answer for
// everyone, and the daemon never sees unparsed text.
func (m methods) whitelist(sender dbus.Sender, method, cidr string, apply func(netip.Prefix) error) *dbus.Error {
	p, err := ParsePrefix(cidr)
	if err != nil {
		return toDBus(err)
	}
	if err := m.s.authorize(sender, method); err != nil {
		return toDBus(err)
	}
	if err := apply(p); err != nil {
		return toDBus(fmt.Errorf("%s %s: %w", method, p, err))
	}
	m.s.log.Info("whitelist changed", "method", method, "prefix", p)
	return nil
}

func (m methods) WhitelistList() ([]string, *dbus.Error) {
	list := m.s.daemon.WhitelistList()
	out := make([]string, 0, len(list))
	for _, p := range list {
		out = append(out, p.String())
	}
	return out, nil
}

func (m methods) Check(ip string) (bool, string, *dbus.Error) {
	a, err := ParseAddr(ip)
	if err != nil {
		return false, "", toDBus(err)
	}
	blocked, why := m.s.daemon.Check(a)
	return blocked, why, nil
}

func (m methods) Pull(sender dbus.Sender, feed string) *dbus.Error {
	if len(feed) > 64 || strings.ContainsFunc(feed, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return toDBus(&Error{Name: ErrorInvalidArgs, Message: fmt.Sprintf("invalid feed name %q", Printable(feed))})
	}
	if err := m.s.authorize(sender, "Pull"); err != nil {
		return toDBus(err)
	}
	if err := m.s.daemon.Pull(m.s.ctx, feed); err != nil {
		return toDBus(fmt.Errorf("pull: %w", err))
	}
	return nil
}

func (m methods) Block(sender dbus.Sender, cidr string, seconds uint64, comment string) *dbus.Error {
	p, err := ParsePrefix(cidr)
	if err != nil {
		return toDBus(err)
	}
	if seconds > uint64(MaxBlockFor/time.Second) {
		return toDBus(&Error{Name: ErrorInvalidArgs, Message: fmt.Sprintf("block %s: duration of %d s is longer than %s", p, seconds, MaxBlockFor)})
	}
	if err := checkComment(comment); err != nil {
		return toDBus(err)
	}
	if err := m.s.authorize(sender, "Block"); err != nil {
		return toDBus(err)
	}
	if err := m.s.daemon.Block(p, time.Duration(seconds)*time.Second, comment); err != nil {
		return toDBus(fmt.Errorf("block %s: %w", p, err))
	}
	return nil
}

func (m methods) Unblock(sender dbus.Sender, cidr string) *dbus.Error {
	p, err := ParsePrefix(cidr)
	if err != nil {
		return toDBus(err)
	}
	if err := m.s.authorize(sender, "Unblock"); err != nil {
		return toDBus(err)
	}
	if err := m.s.daemon.Unblock(p); err != nil {
		return toDBus(fmt.Errorf("unblock %s: %w", p, err))
	}
	return nil
}

// checkComment holds a comment to one printable line: it is logged and
// shown by check.
func checkComment(c string) error {
	if len(c) > MaxCommentLen {
		return &Error{Name: ErrorInvalidArgs, Message: fmt.Sprintf("comment is longer than %d bytes", MaxCommentLen)}
	}
	if !utf8.ValidString(c) || strings.ContainsFunc(c, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return &Error{Name: ErrorInvalidArgs, Message: "comment must be one line of printable text"}
	}
	return nil
}

// Printable quotes at most 64 bytes of s for an error message.
func Printable(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.ToValidUTF8(s, "?")
}

func (m methods) TopBlocked(n uint32) ([]topWire, *dbus.Error) {
	k := int(min(n, MaxTop))
	if k == 0 {
		k = DefaultTop
	}
	rows := m.s.daemon.TopBlocked(k)
	out := make([]topWire, 0, min(len(rows), k))
	for _, r := range rows[:min(len(rows), k)] {
		out = append(out, topWire{r.Source.String(), r.Port, r.Transport, r.Service, r.Count})
	}
	return out, nil
}

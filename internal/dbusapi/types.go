package dbusapi

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// State is the daemon's life-cycle state, published as the State property.
type State string

// The states, as documented in CONTRACT.md.
const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateDegraded State = "degraded"
	StateFailed   State = "failed"
)

// Valid reports whether s is one of the four documented states.
func (s State) Valid() bool {
	switch s {
	case StateStarting, StateRunning, StateDegraded, StateFailed:
		return true
	}
	return false
}

// Status is the answer to Status(), sent as a{sv} so fields can be added
// without breaking older clients. Zero times mean "never".
type Status struct {
	Version     string // filled in by the server from Options.Version
	State       State
	Backend     string
	DryRun      bool
	BlockedIPv4 uint32 // IPv4 addresses covered by the blocklist's ranges
	BlockedIPv6 uint32 // IPv6 ranges in the blocklist, after merging
	Whitelisted uint32 // whitelist entries in force (config, runtime and safety)
	LastPull    time.Time
	NextPull    time.Time
	LastReport  time.Time
	Started     time.Time
	LastError   string // empty when the last apply succeeded
	Feeds       []FeedStatus
	// Quota is the SikkerAPI blacklist quota as last seen (headers of a
	// pull or /v1/key/status); nil when never seen.
	Quota *Quota
}

// Quota is a daily API quota. A number the API did not say is -1.
type Quota struct {
	Used, Limit, Remaining int64
	Reset                  time.Time // zero when not announced
}

// FeedStatus describes one blocklist source in Status.
type FeedStatus struct {
	Name     string
	Entries  uint32
	LastPull time.Time
	Error    string
	Dropped  uint64 // logged drops from sources this feed lists (a sample: see firewall.log_rate)
	// State is FeedOK, FeedDegraded (the last pull or list failed; the
	// last good list stays) or FeedFailed (the API refused the key: no
	// retry for hours).
	State string
}

// Feed states in FeedStatus.State.
const (
	FeedOK       = "ok"
	FeedDegraded = "degraded"
	FeedFailed   = "failed"
)

// TopEntry is one row of TopBlocked: a source and how often it was dropped.
type TopEntry struct {
	Source    netip.Addr
	Port      uint16
	Transport string // "tcp", "udp", "icmp", ...
	Service   string // "ssh", "telnet", ... or "" when unknown
	Count     uint32
}

// Keys of the Status a{sv} dictionary.
const (
	keyVersion     = "Version"
	keyState       = "State"
	keyBackend     = "Backend"
	keyDryRun      = "DryRun"
	keyBlockedIPv4 = "BlockedIPv4"
	keyBlockedIPv6 = "BlockedIPv6"
	keyWhitelisted = "Whitelisted"
	keyLastPull    = "LastPull"
	keyNextPull    = "NextPull"
	keyLastReport  = "LastReport"
	keyStarted     = "Started"
	keyLastError   = "LastError"
	keyFeeds       = "Feeds"
	keyFeedStates  = "FeedStates"
	keyQuota       = "BlacklistQuota"
)

// quotaWire is Quota on the wire: (xxxx) used, limit, remaining, reset.
type quotaWire struct {
	Used, Limit, Remaining, Reset int64
}

// feedWire is FeedStatus on the wire: (suxst).
type feedWire struct {
	Name     string
	Entries  uint32
	LastPull int64
	Error    string
	Dropped  uint64
}

// topWire is TopEntry on the wire: (sqssu).
type topWire struct {
	Source    string
	Port      uint16
	Transport string
	Service   string
	Count     uint32
}

// unixOrZero keeps "never" as 0 rather than the year-1 epoch offset.
func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func timeOrZero(sec int64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0)
}

func (s Status) toWire() map[string]dbus.Variant {
	feeds := make([]feedWire, 0, len(s.Feeds))
	for _, f := range s.Feeds {
		feeds = append(feeds, feedWire{f.Name, f.Entries, unixOrZero(f.LastPull), f.Error, f.Dropped})
	}
	// Feed states travel beside Feeds, so that its (suxst) rows keep the
	// signature older clients decode.
	states := make(map[string]string, len(s.Feeds))
	for _, f := range s.Feeds {
		states[f.Name] = f.State
	}
	m := map[string]dbus.Variant{
		keyVersion:     dbus.MakeVariant(s.Version),
		keyState:       dbus.MakeVariant(string(s.State)),
		keyBackend:     dbus.MakeVariant(s.Backend),
		keyDryRun:      dbus.MakeVariant(s.DryRun),
		keyBlockedIPv4: dbus.MakeVariant(s.BlockedIPv4),
		keyBlockedIPv6: dbus.MakeVariant(s.BlockedIPv6),
		keyWhitelisted: dbus.MakeVariant(s.Whitelisted),
		keyLastPull:    dbus.MakeVariant(unixOrZero(s.LastPull)),
		keyNextPull:    dbus.MakeVariant(unixOrZero(s.NextPull)),
		keyLastReport:  dbus.MakeVariant(unixOrZero(s.LastReport)),
		keyStarted:     dbus.MakeVariant(unixOrZero(s.Started)),
		keyLastError:   dbus.MakeVariant(s.LastError),
		keyFeeds:       dbus.MakeVariant(feeds),
		keyFeedStates:  dbus.MakeVariant(states),
	}
	if q := s.Quota; q != nil {
		m[keyQuota] = dbus.MakeVariant(quotaWire{q.Used, q.Limit, q.Remaining, unixOrZero(q.Reset)})
	}
	return m
}

// statusFromWire decodes Status; unknown keys are ignored (newer daemons may
// add some) but a known key with the wrong type is an error naming it.
func statusFromWire(m map[string]dbus.Variant) (Status, error) {
	var s Status
	var state string
	var lastPull, nextPull, lastReport, started int64
	var feeds []feedWire
	var states map[string]string
	var quota *quotaWire
	if _, ok := m[keyQuota]; ok {
		quota = &quotaWire{}
	}
	fields := []struct {
		key string
		dst any
	}{
		{keyVersion, &s.Version}, {keyState, &state}, {keyBackend, &s.Backend},
		{keyDryRun, &s.DryRun}, {keyBlockedIPv4, &s.BlockedIPv4}, {keyBlockedIPv6, &s.BlockedIPv6},
		{keyWhitelisted, &s.Whitelisted}, {keyLastPull, &lastPull}, {keyNextPull, &nextPull},
		{keyLastReport, &lastReport}, {keyStarted, &started}, {keyLastError, &s.LastError},
		{keyFeeds, &feeds}, {keyFeedStates, &states},
	}
	if quota != nil {
		fields = append(fields, struct {
			key string
			dst any
		}{keyQuota, quota})
	}
	for _, f := range fields {
		v, ok := m[f.key]
		if !ok {
			continue
		}
		if err := v.Store(f.dst); err != nil {
			return Status{}, fmt.Errorf("status field %s: %w", f.key, err)
		}
	}
	s.State = State(state)
	s.LastPull, s.NextPull = timeOrZero(lastPull), timeOrZero(nextPull)
	s.LastReport, s.Started = timeOrZero(lastReport), timeOrZero(started)
	for _, f := range feeds {
		s.Feeds = append(s.Feeds, FeedStatus{f.Name, f.Entries, timeOrZero(f.LastPull), f.Error, f.Dropped, states[f.Name]})
	}
	if quota != nil {
		s.Quota = &Quota{quota.Used, quota.Limit, quota.Remaining, timeOrZero(quota.Reset)}
	}
	return s, nil
}

// Properties holds the values of the API's D-Bus properties.
type Properties struct {
	Version     string
	State       State
	Backend     string
	BlockedIPv4 uint32
	BlockedIPv6 uint32
	LastPull    time.Time // zero = never
	DryRun      bool
}

// ParsePrefix reads a whitelist entry: a CIDR, or a bare address meaning
// /32 or /128. It is ipnet.ParsePrefix in ipnet.WhitelistMode, the mode the
// config file uses, so an entry accepted in one is accepted in the other
// and means the same range: host bits are masked, IPv4-mapped IPv6 is
// unmapped, zones and empty text are refused with a message that quotes
// the input.
func ParsePrefix(text string) (netip.Prefix, error) {
	p, err := ipnet.ParsePrefix(text, ipnet.WhitelistMode)
	if err != nil {
		return netip.Prefix{}, entryError(text, err)
	}
	return p, nil
}

// ParseAddr reads a single IP address (IPv4-mapped IPv6 is unmapped) with
// the same rules.
func ParseAddr(text string) (netip.Addr, error) {
	a, err := ipnet.ParseAddr(text)
	if err != nil {
		return netip.Addr{}, entryError(text, err)
	}
	return a, nil
}

func entryError(text string, err error) error {
	why := err.Error()
	var ee *ipnet.EntryError
	if errors.As(err, &ee) {
		why = ee.Why
	}
	return invalidAddress(text, why)
}

func invalidAddress(text, why string) error {
	return &Error{Name: ErrorInvalidAddress, Message: fmt.Sprintf("invalid address %q: %s", text, why)}
}

package dbusapi

import (
	"context"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
)

// HubStatus is a fleet hub's state, HubStatus() → a{sv}.
type HubStatus struct {
	Listen     string
	Generation time.Time // when the merged list last changed
	Entries    uint32    // lines of the merged list
	Window     time.Duration
	Active     uint32 // hosts that pulled within Window
	Requests   uint64
	NotMod     uint64 // 304 answers
	Refused    uint64 // 401 answers
	Received   uint64 // drop events taken from hosts
	Forwarded  uint64 // report rows SikkerAPI accepted (the hub's own included)
	Pending    uint64 // report rows waiting in the spool
	Hosts      []HubHost
}

// HubHost is one host of the tokens file.
type HubHost struct {
	Name       string
	Addr       string
	LastPull   time.Time
	Generation time.Time // of the merged list the host holds
	Reports    uint64
}

// hubHostWire is HubHost on the wire: (ssxxt).
type hubHostWire struct {
	Name       string
	Addr       string
	LastPull   int64
	Generation int64
	Reports    uint64
}

// Keys of the HubStatus a{sv} dictionary.
const (
	keyHubListen     = "Listen"
	keyHubGeneration = "Generation"
	keyHubEntries    = "Entries"
	keyHubWindow     = "WindowSeconds"
	keyHubActive     = "ActiveHosts"
	keyHubRequests   = "Requests"
	keyHubNotMod     = "NotModified"
	keyHubRefused    = "Refused"
	keyHubReceived   = "ReportsReceived"
	keyHubForwarded  = "ReportsForwarded"
	keyHubPending    = "ReportsPending"
	keyHubHosts      = "Hosts"
)

func (s HubStatus) toWire() map[string]dbus.Variant {
	hosts := make([]hubHostWire, 0, len(s.Hosts))
	for _, h := range s.Hosts {
		hosts = append(hosts, hubHostWire{h.Name, h.Addr, unixOrZero(h.LastPull), unixOrZero(h.Generation), h.Reports})
	}
	return map[string]dbus.Variant{
		keyHubListen:     dbus.MakeVariant(s.Listen),
		keyHubGeneration: dbus.MakeVariant(unixOrZero(s.Generation)),
		keyHubEntries:    dbus.MakeVariant(s.Entries),
		keyHubWindow:     dbus.MakeVariant(int64(s.Window / time.Second)),
		keyHubActive:     dbus.MakeVariant(s.Active),
		keyHubRequests:   dbus.MakeVariant(s.Requests),
		keyHubNotMod:     dbus.MakeVariant(s.NotMod),
		keyHubRefused:    dbus.MakeVariant(s.Refused),
		keyHubReceived:   dbus.MakeVariant(s.Received),
		keyHubForwarded:  dbus.MakeVariant(s.Forwarded),
		keyHubPending:    dbus.MakeVariant(s.Pending),
		keyHubHosts:      dbus.MakeVariant(hosts),
	}
}

// hubStatusFromWire decodes HubStatus like statusFromWire: unknown keys are
// ignored, a known key of the wrong type is an error naming it.
func hubStatusFromWire(m map[string]dbus.Variant) (HubStatus, error) {
	var (
		s           HubStatus
		gen, window int64
		hosts       []hubHostWire
	)
	fields := []struct {
		key string
		dst any
	}{
		{keyHubListen, &s.Listen}, {keyHubGeneration, &gen}, {keyHubEntries, &s.Entries},
		{keyHubWindow, &window}, {keyHubActive, &s.Active}, {keyHubRequests, &s.Requests},
		{keyHubNotMod, &s.NotMod}, {keyHubRefused, &s.Refused}, {keyHubReceived, &s.Received},
		{keyHubForwarded, &s.Forwarded}, {keyHubPending, &s.Pending}, {keyHubHosts, &hosts},
	}
	for _, f := range fields {
		v, ok := m[f.key]
		if !ok {
			continue
		}
		if err := v.Store(f.dst); err != nil {
			return HubStatus{}, fmt.Errorf("hub status field %s: %w", f.key, err)
		}
	}
	s.Generation, s.Window = timeOrZero(gen), time.Duration(window)*time.Second
	for _, h := range hosts {
		s.Hosts = append(s.Hosts, HubHost{h.Name, h.Addr, timeOrZero(h.LastPull), timeOrZero(h.Generation), h.Reports})
	}
	return s, nil
}

// HubStatus implements the D-Bus method; a daemon that is no hub answers
// ErrNotFound.
func (m methods) HubStatus() (map[string]dbus.Variant, *dbus.Error) {
	st, err := m.s.daemon.HubStatus()
	if err != nil {
		return nil, toDBus(err)
	}
	return st.toWire(), nil
}

// HubStatus asks a hub for its state.
func (c *Client) HubStatus(ctx context.Context) (HubStatus, error) {
	var m map[string]dbus.Variant
	if err := c.call(ctx, "HubStatus", nil, &m); err != nil {
		return HubStatus{}, err
	}
	return hubStatusFromWire(m)
}

package dbusapi

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/sikkerapi/sikkerguard/internal/ledger"
)

// MaxFeeds caps the records one Feeds call returns; a configuration has a
// handful of feeds, so this only guards the reply's size.
const MaxFeeds = 256

// destWire is a ledger.Destination on the wire: (sttx) address, outbound
// attempts, outbound drops, last time (unix seconds).
type destWire struct {
	Addr       string
	Outbound   uint64
	BlockedOut uint64
	Last       int64
}

// feedFields pairs each key of a Feeds record with the field it carries;
// times travel as unix seconds (0 = never) in the int64 fields given, and
// are converted by the callers. One table serves both directions, so a
// field cannot be sent and not read.
func feedFields(r *ledger.Record, t *feedTimes) []struct {
	key string
	ptr any
} {
	return []struct {
		key string
		ptr any
	}{
		{"Name", &r.Name}, {"Mode", &r.Mode}, {"Entries", &r.Entries}, {"Addresses", &r.Addresses},
		{"KernelBytes", &r.KernelBytes}, {"Drops24h", &r.Drops24h}, {"Drops7d", &r.Drops7d}, {"Drops", &r.DropsTotal},
		{"UniqueDrops7d", &r.Unique7d}, {"UniqueDrops30d", &r.Unique30d}, {"UniqueDrops", &r.UniqueTotal},
		{"HitsPer1000", &r.HitsPer1000}, {"LastHit", &t.lastHit}, {"DataChanged", &t.dataChanged},
		{"ListAge", &t.listAge}, {"LastPull", &t.lastPull}, {"PullRatio", &r.PullRatio},
		{"Outbound7d", &r.Outbound7d}, {"Outbound", &r.OutboundTotal}, {"BlockedOut7d", &r.BlockedOut7d},
		{"BlockedOut", &r.BlockedOutTotal}, {"OutboundHosts", &t.hosts}, {"Destinations", &t.dests},
		{"WouldUnsolicited", &r.WouldUnsolicited}, {"WouldReplies", &r.WouldReplies},
		{"WouldUnsolicited7d", &r.WouldUnsolicited7d}, {"WouldReplies7d", &r.WouldReplies7d},
		{"Since", &t.since}, {"Advice", &r.Advice},
	}
}

// feedTimes holds the fields whose wire type differs from the record's.
type feedTimes struct {
	lastHit, dataChanged, listAge, lastPull, since int64 // listAge in seconds
	hosts                                          uint32
	dests                                          []destWire
}

func feedToWire(r ledger.Record) map[string]dbus.Variant {
	t := feedTimes{lastHit: unixOrZero(r.LastHit), dataChanged: unixOrZero(r.DataChanged),
		listAge: int64(r.ListAge / time.Second), lastPull: unixOrZero(r.LastPull), since: unixOrZero(r.Since),
		hosts: uint32(min(r.OutboundHosts, 1<<31)), dests: make([]destWire, 0, len(r.Destinations))}
	for _, d := range r.Destinations {
		t.dests = append(t.dests, destWire{d.Addr.String(), d.Outbound, d.BlockedOut, unixOrZero(d.Last)})
	}
	m := map[string]dbus.Variant{}
	for _, f := range feedFields(&r, &t) {
		m[f.key] = dbus.MakeVariant(deref(f.ptr))
	}
	return m
}

// deref returns the value a field pointer points at, for MakeVariant.
func deref(p any) any {
	switch v := p.(type) {
	case *string:
		return *v
	case *uint64:
		return *v
	case *int64:
		return *v
	case *uint32:
		return *v
	case *float64:
		return *v
	case *[]destWire:
		return *v
	}
	panic(fmt.Sprintf("dbusapi: feed field of type %T", p))
}

// feedFromWire decodes one record; unknown keys are ignored (a newer
// daemon may add some), a known key of the wrong type is an error naming it.
func feedFromWire(m map[string]dbus.Variant) (ledger.Record, error) {
	var r ledger.Record
	var t feedTimes
	for _, f := range feedFields(&r, &t) {
		v, ok := m[f.key]
		if !ok {
			continue
		}
		if err := v.Store(f.ptr); err != nil {
			return ledger.Record{}, fmt.Errorf("feed record field %s: %w", f.key, err)
		}
	}
	r.LastHit, r.DataChanged, r.LastPull, r.Since = timeOrZero(t.lastHit), timeOrZero(t.dataChanged), timeOrZero(t.lastPull), timeOrZero(t.since)
	r.ListAge = time.Duration(t.listAge) * time.Second
	r.OutboundHosts = int(t.hosts)
	for _, d := range t.dests {
		a, err := netip.ParseAddr(d.Addr)
		if err != nil {
			return ledger.Record{}, fmt.Errorf("feed record %s: destination: %w", r.Name, err)
		}
		r.Destinations = append(r.Destinations, ledger.Destination{Addr: a, Outbound: d.Outbound, BlockedOut: d.BlockedOut, Last: timeOrZero(d.Last)})
	}
	return r, nil
}

// Feeds implements the D-Bus method: the ledger's record of every feed.
func (m methods) Feeds() ([]map[string]dbus.Variant, *dbus.Error) {
	recs := m.s.daemon.Feeds()
	out := make([]map[string]dbus.Variant, 0, min(len(recs), MaxFeeds))
	for _, r := range recs[:min(len(recs), MaxFeeds)] {
		out = append(out, feedToWire(r))
	}
	return out, nil
}

// Feeds asks for the ledger's records, in the configuration's order.
func (c *Client) Feeds(ctx context.Context) ([]ledger.Record, error) {
	var ms []map[string]dbus.Variant
	if err := c.call(ctx, "Feeds", nil, &ms); err != nil {
		return nil, err
	}
	out := make([]ledger.Record, 0, len(ms))
	for _, m := range ms {
		r, err := feedFromWire(m)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

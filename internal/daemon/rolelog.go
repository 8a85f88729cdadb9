package daemon

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/logging"
	"github.com/sikkerapi/sikkerguard/internal/nflog"
)

// Kinds of hits: what a feed's entry did to a packet. A Hit of each kind
// goes to the HitSink once per aggregation window, per address and port.
const (
	HitDrop             = "drop"              // dropped inbound (BLOCKED)
	HitWouldUnsolicited = "would_unsolicited" // a monitor feed's source, unsolicited (WOULD-BLOCK)
	HitWouldReply       = "would_reply"       // a monitor feed's source answering this host (WOULD-BLOCK … reply)
	HitOutbound         = "outbound"          // this host connecting to a listed address (OUTBOUND)
	HitBlockedOut       = "blocked_out"       // such a connection dropped by an outbound feed (BLOCKED-OUT)
)

// Hit is one address's logged packets of one kind in one window, with the
// feeds that list the address. Counts are lower bounds: the kernel logs a
// rate-limited sample (the exact totals are the nft counters).
type Hit struct {
	Kind    string
	Addr    netip.Addr // the listed end: the source, or for outbound kinds the destination
	Port    uint16     // the service port at the listed end's side of the connection
	Feeds   []string
	Packets uint64
	Time    time.Time
}

// HitSink takes hits; it runs on the monitor's goroutine and must be quick.
type HitSink func(Hit)

// FeedResolver names the feeds whose entries of kind's role list addr.
type FeedResolver func(kind string, addr netip.Addr) []string

// kindOfPrefix maps the NFLOG prefixes of the nftables rules to hit kinds.
var kindOfPrefix = map[string]string{
	firewall.LogPrefixDrop:    HitDrop,
	firewall.LogPrefixWould:   HitWouldUnsolicited,
	firewall.LogPrefixReply:   HitWouldReply,
	firewall.LogPrefixOut:     HitOutbound,
	firewall.LogPrefixOutDrop: HitBlockedOut,
}

// rolePrefixes are the prefixes besides the blocklist's.
var rolePrefixes = []string{firewall.LogPrefixWould, firewall.LogPrefixReply, firewall.LogPrefixOut, firewall.LogPrefixOutDrop}

// maxOutboundDests bounds the per-feed, per-destination outbound totals.
const maxOutboundDests = 4096

type roleKey struct {
	kind      string
	addr      netip.Addr
	port      uint16
	transport string
}

// OutboundCount is one destination's logged connection attempts from this
// host, per feed listing it.
type OutboundCount struct {
	Feed    string
	Dest    netip.Addr
	Port    uint16
	Blocked bool // dropped by an outbound feed, else only counted
	Count   uint64
}

// roleLog aggregates the role kinds (all but HitDrop, which the
// nflog.Aggregator counts) per window and writes their journal lines.
type roleLog struct {
	log      *slog.Logger
	services map[uint16]string
	feeds    FeedResolver

	mu     sync.Mutex
	window map[roleKey]uint64
	out    map[OutboundCount]uint64 // Count zero in the key
}

func newRoleLog(log *slog.Logger, services map[uint16]string, feeds FeedResolver) *roleLog {
	if feeds == nil {
		feeds = func(string, netip.Addr) []string { return nil }
	}
	return &roleLog{log: log, services: services, feeds: feeds, window: map[roleKey]uint64{}, out: map[OutboundCount]uint64{}}
}

// add counts one event of a role kind.
func (r *roleLog) add(kind string, ev nflog.Event) {
	k := roleKey{kind: kind, addr: ev.Src.Unmap(), port: ev.DstPort, transport: ev.Transport}
	switch kind {
	case HitWouldReply:
		k.port = ev.SrcPort // the remote service this host talked to
	case HitOutbound, HitBlockedOut:
		k.addr = ev.Dst.Unmap()
	}
	if k.transport != nflog.TransportTCP && k.transport != nflog.TransportUDP {
		k.port = 0
	}
	r.mu.Lock()
	r.window[k]++
	r.mu.Unlock()
}

// flush ends the window: one line per key, and the hits.
func (r *roleLog) flush(now time.Time) []Hit {
	r.mu.Lock()
	w := r.window
	r.window = map[roleKey]uint64{}
	r.mu.Unlock()
	keys := make([]roleKey, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b roleKey) int {
		if c := strings.Compare(a.kind, b.kind); c != 0 {
			return c
		}
		if c := a.addr.Compare(b.addr); c != 0 {
			return c
		}
		return int(a.port) - int(b.port)
	})
	hits := make([]Hit, 0, len(keys))
	for _, k := range keys {
		n := w[k]
		feeds := r.feeds(k.kind, k.addr)
		r.log.Info(roleLine(k, n, feeds, r.services), slog.Group(logging.FieldsOnly,
			"kind", k.kind, "addr", k.addr, "port", k.port, "proto", k.transport, "count", n, "feeds", strings.Join(feeds, ",")))
		hits = append(hits, Hit{Kind: k.kind, Addr: k.addr, Port: k.port, Feeds: feeds, Packets: n, Time: now})
		if k.kind == HitOutbound || k.kind == HitBlockedOut {
			r.countOut(k, n, feeds)
		}
	}
	return hits
}

func (r *roleLog) countOut(k roleKey, n uint64, feeds []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, f := range feeds {
		oc := OutboundCount{Feed: f, Dest: k.addr, Port: k.port, Blocked: k.kind == HitBlockedOut}
		if _, ok := r.out[oc]; !ok && len(r.out) >= maxOutboundDests {
			continue // the first destinations stay; the journal has the rest
		}
		r.out[oc] += n
	}
}

// outbound returns the outbound totals, largest first.
func (r *roleLog) outbound() []OutboundCount {
	r.mu.Lock()
	out := make([]OutboundCount, 0, len(r.out))
	for k, n := range r.out {
		k.Count = n
		out = append(out, k)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b OutboundCount) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		if c := strings.Compare(a.Feed, b.Feed); c != 0 {
			return c
		}
		return a.Dest.Compare(b.Dest)
	})
	return out
}

// roleLine renders one key as the journal shows it:
//
//	WOULD-BLOCK 185.16.39.79:23 (telnet) proto=TCP x47 feed=trial
//	WOULD-BLOCK 203.0.113.9:443 (https) proto=TCP x3 feed=trial reply
//	OUTBOUND 203.0.113.9:443 proto=TCP feed=spamhaus x3
//	BLOCKED-OUT 203.0.113.9:443 proto=TCP feed=c2 x3
func roleLine(k roleKey, n uint64, feeds []string, services map[uint16]string) string {
	where := k.addr.String()
	if k.transport == nflog.TransportTCP || k.transport == nflog.TransportUDP {
		where = netip.AddrPortFrom(k.addr, k.port).String()
	}
	feed := "feed=" + strings.Join(feeds, ",")
	if len(feeds) == 0 {
		feed = "feed=-" // no feed lists it any more: the list changed since
	}
	count := "x" + strconv.FormatUint(n, 10)
	switch k.kind {
	case HitWouldUnsolicited, HitWouldReply:
		line := fmt.Sprintf("WOULD-BLOCK %s (%s) proto=%s %s %s", where, nflog.ServiceName(services, k.port, k.transport), k.transport, count, feed)
		if k.kind == HitWouldReply {
			line += " reply"
		}
		return line
	case HitOutbound:
		return fmt.Sprintf("OUTBOUND %s proto=%s %s %s", where, k.transport, feed, count)
	}
	return fmt.Sprintf("BLOCKED-OUT %s proto=%s %s %s", where, k.transport, feed, count)
}

// add sorts one logged packet by its rule's prefix: drops to the
// aggregator (BLOCKED lines, totals, reports), the role kinds to the role
// log.
func (m *Monitor) add(ev nflog.Event) {
	kind, ok := kindOfPrefix[ev.Prefix]
	if !ok || kind == HitDrop {
		m.agg.Add(ev)
		return
	}
	m.roles.add(kind, ev)
}

// emit writes the role lines of the window that just ended and hands
// every hit, the window's drops included, to the sink.
func (m *Monitor) emit(drops []nflog.Count) {
	now := m.opt.Now()
	hits := m.roles.flush(now)
	if m.opt.Hits == nil {
		return
	}
	feeds := m.opt.Feeds
	for _, c := range drops {
		h := Hit{Kind: HitDrop, Addr: c.Src, Port: c.Port, Packets: c.Count, Time: now}
		if feeds != nil {
			h.Feeds = feeds(HitDrop, c.Src)
		}
		m.opt.Hits(h)
	}
	for _, h := range hits {
		m.opt.Hits(h)
	}
}

// Outbound returns the logged connection attempts of this host to listed
// addresses, per feed and destination, largest first (bounded; lower
// bounds like every logged count).
func (m *Monitor) Outbound() []OutboundCount { return m.roles.outbound() }

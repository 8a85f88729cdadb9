// Package nflog reads the packets the firewall drops back from an NFLOG group,
// turns each into an Event (source, destination port, transport), and
// aggregates events per source and port into the journal lines
// `BLOCKED 185.16.39.79:23 (telnet) proto=TCP x47` and into persistent
// totals behind TopBlocked.
//
// Parse and the Aggregator are pure; only the Listener talks to the kernel.
// The kernel rule rate-limits what it logs, so events are a sample bounded by
// that limit, not a full count of dropped packets.
package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Transport names carried in Event.Transport and in the journal lines.
const (
	TransportTCP    = "TCP"
	TransportUDP    = "UDP"
	TransportICMP   = "ICMP"
	TransportICMPv6 = "ICMPv6"
	TransportOther  = "other"
)

// Family tells Parse which network header a payload starts with.
type Family uint8

// Families. FamilyAuto reads the IP version nibble.
const (
	FamilyAuto Family = 0
	FamilyIPv4 Family = 4
	FamilyIPv6 Family = 6
)

// FamilyFromEtherType maps NFLOG's hardware protocol (skb->protocol) to a
// Family; anything else is FamilyAuto.
func FamilyFromEtherType(proto uint16) Family {
	switch proto {
	case 0x0800:
		return FamilyIPv4
	case 0x86dd:
		return FamilyIPv6
	}
	return FamilyAuto
}

// Event is one logged packet.
type Event struct {
	Time      time.Time
	Src       netip.Addr
	Dst       netip.Addr
	SrcPort   uint16 // like DstPort
	DstPort   uint16 // 0 for ICMP, other protocols and non-first fragments
	Transport string // TransportTCP, TransportUDP, TransportICMP, TransportICMPv6 or TransportOther
	ICMPType  uint8  // for ICMP and ICMPv6
	Prefix    string // the log prefix of the rule that logged the packet
}

// ErrTruncated is returned when a header ends before the payload does.
var ErrTruncated = errors.New("packet truncated")

// IP protocol numbers used below.
const (
	protoHopByHop = 0
	protoICMP     = 1
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoAH       = 51
	protoICMPv6   = 58
	protoDestOpts = 60
)

// Parse decodes the network and transport headers of a logged packet. It reads
// payload only during the call and keeps no reference to it; Time and Prefix
// are left for the caller to fill.
func Parse(payload []byte, fam Family) (Event, error) {
	if len(payload) == 0 {
		return Event{}, fmt.Errorf("parse packet: empty payload: %w", ErrTruncated)
	}
	ver := Family(payload[0] >> 4)
	if fam == FamilyAuto {
		fam = ver
	}
	if ver != fam {
		return Event{}, fmt.Errorf("parse packet: IP version %d in a family %d packet", ver, fam)
	}
	switch fam {
	case FamilyIPv4:
		return parse4(payload)
	case FamilyIPv6:
		return parse6(payload)
	}
	return Event{}, fmt.Errorf("parse packet: unknown IP version %d", ver)
}

func parse4(p []byte) (Event, error) {
	if len(p) < 20 {
		return Event{}, fmt.Errorf("parse IPv4 header: %d bytes, need 20: %w", len(p), ErrTruncated)
	}
	ihl := int(p[0]&0x0f) * 4
	if ihl < 20 {
		return Event{}, fmt.Errorf("parse IPv4 header: header length %d below 20", ihl)
	}
	if len(p) < ihl {
		return Event{}, fmt.Errorf("parse IPv4 header: %d bytes, header length %d: %w", len(p), ihl, ErrTruncated)
	}
	ev := Event{Src: netip.AddrFrom4([4]byte(p[12:16])), Dst: netip.AddrFrom4([4]byte(p[16:20]))}
	// Only the first fragment carries the transport header.
	first := binary.BigEndian.Uint16(p[6:8])&0x1fff == 0
	return transport(ev, p[9], p[ihl:], first, false)
}

func parse6(p []byte) (Event, error) {
	if len(p) < 40 {
		return Event{}, fmt.Errorf("parse IPv6 header: %d bytes, need 40: %w", len(p), ErrTruncated)
	}
	ev := Event{Src: netip.AddrFrom16([16]byte(p[8:24])), Dst: netip.AddrFrom16([16]byte(p[24:40]))}
	next, rest := p[6], p[40:]
	first := true
	// Each extension header advances by at least 8 bytes, so the loop ends
	// with the payload.
	for {
		var n int
		switch next {
		case protoHopByHop, protoRouting, protoDestOpts:
			if len(rest) < 2 {
				return Event{}, fmt.Errorf("parse IPv6 extension header %d: %w", next, ErrTruncated)
			}
			n = (int(rest[1]) + 1) * 8
		case protoFragment:
			if len(rest) < 8 {
				return Event{}, fmt.Errorf("parse IPv6 fragment header: %w", ErrTruncated)
			}
			if binary.BigEndian.Uint16(rest[2:4])>>3 != 0 {
				first = false
			}
			n = 8
		case protoAH:
			if len(rest) < 2 {
				return Event{}, fmt.Errorf("parse IPv6 authentication header: %w", ErrTruncated)
			}
			n = (int(rest[1]) + 2) * 4
		default:
			return transport(ev, next, rest, first, true)
		}
		if len(rest) < n {
			return Event{}, fmt.Errorf("parse IPv6 extension header %d: %d bytes, length %d: %w", next, len(rest), n, ErrTruncated)
		}
		next, rest = rest[0], rest[n:]
	}
}

// transport fills the transport fields from the header l4 of protocol proto.
func transport(ev Event, proto uint8, l4 []byte, first, v6 bool) (Event, error) {
	switch {
	case proto == protoTCP:
		ev.Transport = TransportTCP
	case proto == protoUDP:
		ev.Transport = TransportUDP
	case proto == protoICMP && !v6:
		ev.Transport = TransportICMP
	case proto == protoICMPv6 && v6:
		ev.Transport = TransportICMPv6
	default:
		ev.Transport = TransportOther
		return ev, nil
	}
	if !first {
		return ev, nil
	}
	switch ev.Transport {
	case TransportTCP, TransportUDP:
		if len(l4) < 4 {
			return Event{}, fmt.Errorf("parse %s header: %d bytes, need 4: %w", ev.Transport, len(l4), ErrTruncated)
		}
		ev.SrcPort = binary.BigEndian.Uint16(l4[0:2])
		ev.DstPort = binary.BigEndian.Uint16(l4[2:4])
	default:
		if len(l4) < 1 {
			return Event{}, fmt.Errorf("parse %s header: %w", ev.Transport, ErrTruncated)
		}
		ev.ICMPType = l4[0]
	}
	return ev, nil
}

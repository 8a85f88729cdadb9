package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/nflog"
)

// Bounds of POST /v1/reports.
const (
	MaxReportBytes  = 1 << 20
	MaxReportEvents = 10_000
	// MaxEventAge and MaxEventSkew bound an event's times: older drops are
	// not worth reporting, and a clock far ahead is a broken or lying host.
	MaxEventAge  = 7 * 24 * time.Hour
	MaxEventSkew = 10 * time.Minute
)

// Event is one host's drops from one source to one port.
type Event struct {
	Source    netip.Addr `json:"source"`
	Port      uint16     `json:"port"`
	Protocol  string     `json:"protocol"` // tcp, udp, icmp, icmpv6, other
	Count     uint64     `json:"count"`
	FirstSeen time.Time  `json:"first_seen"`
	LastSeen  time.Time  `json:"last_seen"`
}

// ReportBody is the JSON body of POST /v1/reports.
type ReportBody struct {
	Events []Event `json:"events"`
}

var protocols = map[string]string{
	"tcp": nflog.TransportTCP, "udp": nflog.TransportUDP, "icmp": nflog.TransportICMP,
	"icmpv6": nflog.TransportICMPv6, "other": nflog.TransportOther,
}

// protocolOf is the body's spelling of an NFLOG transport.
func protocolOf(transport string) string {
	for k, v := range protocols {
		if v == transport {
			return k
		}
	}
	return "other"
}

// ParseReports decodes and checks a report body: strict JSON (unknown
// fields, trailing data and more than MaxReportEvents events are errors),
// every event a global-looking unicast source with a sane count and times.
// The first bad event fails the whole body, named by its index, so a host
// with a bug sees it at once rather than losing events silently.
func ParseReports(data []byte, now time.Time) ([]Event, error) {
	if len(data) > MaxReportBytes {
		return nil, fmt.Errorf("body larger than %d bytes", MaxReportBytes)
	}
	return parseEvents(data, now, MaxReportEvents)
}

func parseEvents(data []byte, now time.Time, maxEvents int) ([]Event, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var body ReportBody
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("body: data after the JSON object")
	}
	if len(body.Events) > maxEvents {
		return nil, fmt.Errorf("%d events; at most %d", len(body.Events), maxEvents)
	}
	for i := range body.Events {
		if err := checkEvent(&body.Events[i], now); err != nil {
			return nil, fmt.Errorf("events[%d]: %w", i, err)
		}
	}
	return body.Events, nil
}

func checkEvent(e *Event, now time.Time) error {
	a := e.Source
	switch {
	case !a.IsValid():
		return errors.New("source: not an IP address")
	case a.Zone() != "":
		return errors.New("source: an address with a zone")
	case a.Is4In6():
		return errors.New("source: an IPv4-mapped IPv6 address; send the IPv4 form")
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
		return fmt.Errorf("source %s: not a unicast address", a)
	}
	e.Protocol = strings.ToLower(e.Protocol)
	tr, ok := protocols[e.Protocol]
	if !ok {
		return fmt.Errorf("protocol %q: not one of tcp, udp, icmp, icmpv6, other", e.Protocol)
	}
	if (tr == nflog.TransportTCP || tr == nflog.TransportUDP) != (e.Port != 0) {
		return fmt.Errorf("port %d: tcp and udp need a port 1..65535, other protocols 0", e.Port)
	}
	if e.Count == 0 {
		return errors.New("count: 0")
	}
	switch {
	case e.FirstSeen.IsZero() || e.LastSeen.IsZero():
		return errors.New("first_seen and last_seen are required")
	case e.LastSeen.Before(e.FirstSeen):
		return errors.New("last_seen is before first_seen")
	case e.LastSeen.After(now.Add(MaxEventSkew)):
		return fmt.Errorf("last_seen %s is in the future", e.LastSeen.UTC().Format(time.RFC3339))
	case e.LastSeen.Before(now.Add(-MaxEventAge)):
		return fmt.Errorf("last_seen %s is older than %s", e.LastSeen.UTC().Format(time.RFC3339), MaxEventAge)
	}
	return nil
}

// Counts turns events into the reporter's drop counts, naming services
// with the hub's own port map: a host's name for a port is not trusted.
func Counts(events []Event, services map[uint16]string) []nflog.Count {
	out := make([]nflog.Count, 0, len(events))
	for _, e := range events {
		tr := protocols[e.Protocol]
		out = append(out, nflog.Count{Src: e.Source, Port: e.Port, Transport: tr,
			Service: nflog.ServiceName(services, e.Port, tr), Count: e.Count})
	}
	return out
}

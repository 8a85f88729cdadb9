package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// LogRate is the rate limit on NFLOG'd drops, written "N/second", "N/minute"
// or "N/hour" in YAML.
type LogRate struct {
	N    uint32
	Unit time.Duration // time.Second, time.Minute or time.Hour
}

var rateUnits = []struct {
	name string
	d    time.Duration
}{{"second", time.Second}, {"minute", time.Minute}, {"hour", time.Hour}}

// ParseLogRate parses "N/second", "N/minute" or "N/hour" with N >= 1.
func ParseLogRate(s string) (LogRate, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return LogRate{}, fmt.Errorf("%q is not a rate; write N/second, N/minute or N/hour", s)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 32)
	if err != nil || n < 1 {
		return LogRate{}, fmt.Errorf("%q: the count must be a whole number from 1 to %d", s, uint32(1<<32-1))
	}
	unit = strings.TrimSpace(unit)
	for _, u := range rateUnits {
		if unit == u.name {
			return LogRate{N: uint32(n), Unit: u.d}, nil
		}
	}
	return LogRate{}, fmt.Errorf("%q: the unit must be second, minute or hour", s)
}

// UnitName returns "second", "minute" or "hour", or "" for any other unit.
func (r LogRate) UnitName() string {
	for _, u := range rateUnits {
		if r.Unit == u.d {
			return u.name
		}
	}
	return ""
}

// String returns the YAML form, e.g. "50/second".
func (r LogRate) String() string {
	if name := r.UnitName(); name != "" {
		return fmt.Sprintf("%d/%s", r.N, name)
	}
	return fmt.Sprintf("%d/%s", r.N, r.Unit)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *LogRate) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, errors.New("must be a string such as 50/second"))
	}
	v, err := ParseLogRate(n.Value)
	if err != nil {
		return nodeError(n, err)
	}
	*r = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (r LogRate) MarshalYAML() (any, error) { return r.String(), nil }

// ParsePrefix parses a whitelist entry: an IPv4 or IPv6 address (which becomes
// a /32 or /128) or a CIDR. It is ipnet.ParsePrefix in ipnet.WhitelistMode,
// the mode D-Bus uses too, so an entry means the same in the file, in
// SIKKER_WHITELIST and over the bus: host bits are cleared (which can only
// widen a whitelist), IPv4-mapped IPv6 is unmapped and zones are refused.
func ParsePrefix(s string) (netip.Prefix, error) {
	return ipnet.ParsePrefix(s, ipnet.WhitelistMode)
}

// UnmarshalYAML implements yaml.Unmarshaler, reporting every bad entry.
func (w *Whitelist) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return nodeError(n, errors.New("must be a list of IP addresses or CIDRs"))
	}
	out := make(Whitelist, 0, len(n.Content))
	var msgs []string
	for _, item := range n.Content {
		if item.Kind != yaml.ScalarNode {
			msgs = append(msgs, nodeMsg(item, "must be an IP address or CIDR"))
			continue
		}
		p, err := ParsePrefix(item.Value)
		if err != nil {
			msgs = append(msgs, nodeMsg(item, err.Error()))
			continue
		}
		out = append(out, p)
	}
	if len(msgs) > 0 {
		return &yaml.TypeError{Errors: msgs}
	}
	*w = out
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (w Whitelist) MarshalYAML() (any, error) {
	s := make([]string, len(w))
	for i, p := range w {
		s[i] = p.String()
	}
	return s, nil
}

// nodeMsg formats a decoding problem the way the loader parses it back into a
// FieldError: the column lets it find the exact field path of the node.
func nodeMsg(n *yaml.Node, msg string) string {
	return fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, msg)
}

func nodeError(n *yaml.Node, err error) error {
	return &yaml.TypeError{Errors: []string{nodeMsg(n, err.Error())}}
}

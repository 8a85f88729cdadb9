package nflog

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// ip4 builds an IPv4 packet from src with protocol proto, ihl 32-bit words of
// header, the fragment offset field frag (in 8-byte units) and transport l4.
func ip4(src string, proto uint8, ihl int, frag uint16, l4 []byte) []byte {
	h := make([]byte, ihl*4)
	h[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(h[2:4], uint16(len(h)+len(l4)))
	binary.BigEndian.PutUint16(h[6:8], frag)
	h[8], h[9] = 64, proto
	a := netip.MustParseAddr(src).As4()
	copy(h[12:16], a[:])
	copy(h[16:20], []byte{192, 0, 2, 1})
	return append(h, l4...)
}

// ext is one IPv6 extension header: its type and its body after the two
// leading bytes (next header, length), padded by the builder.
type ext struct {
	typ  uint8
	body []byte
}

// ip6 builds an IPv6 packet from src through the extension headers exts to a
// transport header of protocol proto.
func ip6(src string, exts []ext, proto uint8, l4 []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	h[7] = 64
	a := netip.MustParseAddr(src).As16()
	copy(h[8:24], a[:])
	h[39] = 1
	var chain []byte
	nexts := make([]uint8, 0, len(exts)+1)
	for _, e := range exts {
		nexts = append(nexts, e.typ)
	}
	nexts = append(nexts, proto)
	h[6] = nexts[0]
	for i, e := range exts {
		var b []byte
		switch e.typ {
		case protoFragment:
			b = append([]byte{nexts[i+1], 0}, e.body...)
			b = append(b, make([]byte, 8-len(b))...)
		case protoAH:
			b = append([]byte{nexts[i+1], 0}, e.body...)
			for len(b)%4 != 0 || len(b) < 12 {
				b = append(b, 0)
			}
			b[1] = byte(len(b)/4 - 2)
		default:
			b = append([]byte{nexts[i+1], 0}, e.body...)
			for len(b)%8 != 0 {
				b = append(b, 0)
			}
			b[1] = byte(len(b)/8 - 1)
		}
		chain = append(chain, b...)
	}
	binary.BigEndian.PutUint16(h[4:6], uint16(len(chain)+len(l4)))
	return append(append(h, chain...), l4...)
}

// ports builds the first bytes of a TCP or UDP header.
func ports(src, dst uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b[0:2], src)
	binary.BigEndian.PutUint16(b[2:4], dst)
	return b
}

func TestParse(t *testing.T) {
	fragOff := func(off uint16) []byte { return binary.BigEndian.AppendUint16(nil, off<<3) }
	tests := []struct {
		name    string
		payload []byte
		fam     Family
		want    Event
		wantErr string
	}{
		{name: "ipv4 tcp", payload: ip4("185.16.39.79", protoTCP, 5, 0, ports(40000, 23)), fam: FamilyIPv4,
			want: Event{Src: netip.MustParseAddr("185.16.39.79"), DstPort: 23, Transport: TransportTCP}},
		{name: "ipv4 udp auto family", payload: ip4("198.51.100.7", protoUDP, 5, 0, ports(5353, 5060)),
			want: Event{Src: netip.MustParseAddr("198.51.100.7"), DstPort: 5060, Transport: TransportUDP}},
		{name: "ipv4 options", payload: ip4("198.51.100.7", protoTCP, 8, 0, ports(1, 22)), fam: FamilyIPv4,
			want: Event{Src: netip.MustParseAddr("198.51.100.7"), DstPort: 22, Transport: TransportTCP}},
		{name: "ipv4 icmp echo", payload: ip4("198.51.100.8", protoICMP, 5, 0, []byte{8, 0, 0, 0}),
			want: Event{Src: netip.MustParseAddr("198.51.100.8"), Transport: TransportICMP, ICMPType: 8}},
		{name: "ipv4 gre", payload: ip4("198.51.100.9", 47, 5, 0, nil),
			want: Event{Src: netip.MustParseAddr("198.51.100.9"), Transport: TransportOther}},
		{name: "ipv4 later fragment has no ports", payload: ip4("198.51.100.9", protoUDP, 5, 185, []byte{1}),
			want: Event{Src: netip.MustParseAddr("198.51.100.9"), Transport: TransportUDP}},
		{name: "ipv4 first fragment", payload: ip4("198.51.100.9", protoUDP, 5, 0x2000, ports(1, 53)),
			want: Event{Src: netip.MustParseAddr("198.51.100.9"), DstPort: 53, Transport: TransportUDP}},
		{name: "ipv4 icmpv6 number is other", payload: ip4("198.51.100.9", protoICMPv6, 5, 0, []byte{128}),
			want: Event{Src: netip.MustParseAddr("198.51.100.9"), Transport: TransportOther}},

		{name: "ipv6 tcp", payload: ip6("2001:db8::1", nil, protoTCP, ports(1, 22)), fam: FamilyIPv6,
			want: Event{Src: netip.MustParseAddr("2001:db8::1"), DstPort: 22, Transport: TransportTCP}},
		{name: "ipv6 icmpv6 echo", payload: ip6("2001:db8::2", nil, protoICMPv6, []byte{128, 0}),
			want: Event{Src: netip.MustParseAddr("2001:db8::2"), Transport: TransportICMPv6, ICMPType: 128}},
		{name: "ipv6 hop-by-hop routing dest", fam: FamilyIPv6,
			payload: ip6("2001:db8::3", []ext{{protoHopByHop, make([]byte, 4)}, {protoRouting, make([]byte, 14)}, {protoDestOpts, nil}}, protoUDP, ports(1, 161)),
			want:    Event{Src: netip.MustParseAddr("2001:db8::3"), DstPort: 161, Transport: TransportUDP}},
		{name: "ipv6 first fragment", payload: ip6("2001:db8::4", []ext{{protoFragment, fragOff(0)}}, protoTCP, ports(1, 3389)),
			want: Event{Src: netip.MustParseAddr("2001:db8::4"), DstPort: 3389, Transport: TransportTCP}},
		{name: "ipv6 later fragment", payload: ip6("2001:db8::4", []ext{{protoFragment, fragOff(100)}}, protoTCP, []byte{1, 2}),
			want: Event{Src: netip.MustParseAddr("2001:db8::4"), Transport: TransportTCP}},
		{name: "ipv6 authentication header", payload: ip6("2001:db8::5", []ext{{protoAH, make([]byte, 10)}}, protoTCP, ports(1, 25)),
			want: Event{Src: netip.MustParseAddr("2001:db8::5"), DstPort: 25, Transport: TransportTCP}},
		{name: "ipv6 esp is other", payload: ip6("2001:db8::6", nil, 50, make([]byte, 16)),
			want: Event{Src: netip.MustParseAddr("2001:db8::6"), Transport: TransportOther}},
		{name: "ipv6 icmp number is other", payload: ip6("2001:db8::6", nil, protoICMP, []byte{8}),
			want: Event{Src: netip.MustParseAddr("2001:db8::6"), Transport: TransportOther}},
		{name: "ipv6 no next header", payload: ip6("2001:db8::7", nil, 59, nil),
			want: Event{Src: netip.MustParseAddr("2001:db8::7"), Transport: TransportOther}},

		{name: "empty", payload: nil, wantErr: "empty payload"},
		{name: "short ipv4", payload: ip4("198.51.100.1", protoTCP, 5, 0, nil)[:19], wantErr: "19 bytes, need 20"},
		{name: "ipv4 ihl below 5", payload: func() []byte { p := ip4("198.51.100.1", protoTCP, 5, 0, ports(1, 2)); p[0] = 0x44; return p }(), wantErr: "header length 16"},
		{name: "ipv4 options cut", payload: ip4("198.51.100.1", protoTCP, 15, 0, nil)[:30], wantErr: "header length 60"},
		{name: "ipv4 tcp cut", payload: ip4("198.51.100.1", protoTCP, 5, 0, []byte{0, 1, 0}), wantErr: "TCP header: 3 bytes"},
		{name: "ipv4 icmp cut", payload: ip4("198.51.100.1", protoICMP, 5, 0, nil), wantErr: "ICMP header"},
		{name: "family mismatch", payload: ip6("2001:db8::1", nil, protoTCP, ports(1, 2)), fam: FamilyIPv4, wantErr: "IP version 6 in a family 4"},
		{name: "unknown version", payload: []byte{0x50, 0, 0, 0}, wantErr: "unknown IP version 5"},
		{name: "short ipv6", payload: make([]byte, 39), fam: FamilyIPv6, wantErr: "IP version 0"},
		{name: "short ipv6 header", payload: append([]byte{0x60}, make([]byte, 38)...), wantErr: "need 40"},
		{name: "ipv6 extension cut", payload: ip6("2001:db8::1", []ext{{protoRouting, make([]byte, 14)}}, protoTCP, nil)[:50], wantErr: "extension header 43: 10 bytes, length 16"},
		{name: "ipv6 fragment cut", payload: ip6("2001:db8::1", []ext{{protoFragment, fragOff(0)}}, protoTCP, nil)[:44], wantErr: "fragment header"},
		{name: "ipv6 udp cut", payload: ip6("2001:db8::1", nil, protoUDP, []byte{1}), wantErr: "UDP header: 1 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.payload, tt.fam)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got.Dst, got.SrcPort = netip.Addr{}, 0 // TestParseDestination
			if got != tt.want {
				t.Errorf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestParseDestination: the destination and the source port, which name
// the remote end of the host's own connections (OUTBOUND, BLOCKED-OUT) and
// of replies (WOULD-BLOCK … reply).
func TestParseDestination(t *testing.T) {
	got, err := Parse(ip4("198.51.100.1", protoTCP, 5, 0, ports(443, 40000)), FamilyAuto)
	if err != nil {
		t.Fatal(err)
	}
	if got.Dst != netip.MustParseAddr("192.0.2.1") || got.SrcPort != 443 || got.DstPort != 40000 {
		t.Errorf("Parse = %+v, want dst 192.0.2.1, ports 443 → 40000", got)
	}
	got, err = Parse(ip6("2001:db8::1", nil, protoUDP, ports(53, 5353)), FamilyAuto)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Dst.Is6() || got.SrcPort != 53 || got.DstPort != 5353 {
		t.Errorf("Parse = %+v, want an IPv6 destination, ports 53 → 5353", got)
	}
}

func TestParseTruncatedIsErrTruncated(t *testing.T) {
	full := ip6("2001:db8::1", []ext{{protoHopByHop, make([]byte, 6)}}, protoTCP, ports(1, 22))
	for n := range 40 + 8 + 4 { // the TCP ports end at byte 52
		_, err := Parse(full[:n], FamilyIPv6)
		if n == 0 || n >= 40 {
			if !errors.Is(err, ErrTruncated) {
				t.Errorf("Parse(%d of %d bytes) = %v, want ErrTruncated", n, len(full), err)
			}
		} else if err == nil {
			t.Errorf("Parse(%d of %d bytes) succeeded", n, len(full))
		}
	}
	if _, err := Parse(full, FamilyIPv6); err != nil {
		t.Fatalf("Parse(full) = %v", err)
	}
}

func TestFamilyFromEtherType(t *testing.T) {
	for proto, want := range map[uint16]Family{0x0800: FamilyIPv4, 0x86dd: FamilyIPv6, 0x0806: FamilyAuto, 0: FamilyAuto} {
		if got := FamilyFromEtherType(proto); got != want {
			t.Errorf("FamilyFromEtherType(%#x) = %d, want %d", proto, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(ip4("185.16.39.79", protoTCP, 5, 0, ports(40000, 23)), uint8(4))
	f.Add(ip4("198.51.100.7", protoICMP, 6, 0, []byte{8, 0}), uint8(0))
	f.Add(ip4("198.51.100.7", protoUDP, 5, 77, nil), uint8(4))
	f.Add(ip6("2001:db8::3", []ext{{protoHopByHop, make([]byte, 4)}, {protoRouting, make([]byte, 14)}, {protoDestOpts, nil}}, protoUDP, ports(1, 161)), uint8(6))
	f.Add(ip6("2001:db8::4", []ext{{protoFragment, []byte{0, 8}}}, protoTCP, nil), uint8(0))
	f.Add(ip6("2001:db8::5", []ext{{protoAH, make([]byte, 10)}}, protoICMPv6, []byte{128}), uint8(6))
	f.Add([]byte{0x60}, uint8(6))
	f.Fuzz(func(t *testing.T, payload []byte, fam uint8) {
		orig := append([]byte(nil), payload...)
		ev, err := Parse(payload, Family(fam))
		if string(orig) != string(payload) {
			t.Fatal("Parse modified its input")
		}
		if err != nil {
			if ev != (Event{}) {
				t.Fatalf("Parse returned %+v with error %v", ev, err)
			}
			return
		}
		switch {
		case ev.Src.Is4() && payload[0]>>4 == 4, ev.Src.Is6() && payload[0]>>4 == 6:
		default:
			t.Fatalf("source %v from a version %d packet", ev.Src, payload[0]>>4)
		}
		switch ev.Transport {
		case TransportTCP, TransportUDP:
			if ev.ICMPType != 0 {
				t.Fatalf("ICMP type on %s", ev.Transport)
			}
		case TransportICMP, TransportICMPv6, TransportOther:
			if ev.DstPort != 0 {
				t.Fatalf("port %d on %s", ev.DstPort, ev.Transport)
			}
		default:
			t.Fatalf("transport %q", ev.Transport)
		}
	})
}

package nft

import (
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

func TestMovedSingles(t *testing.T) {
	for _, tc := range []struct {
		name       string
		old, next  ipnet.Set
		want, kept ipnet.Set // kept: old without want
	}{
		{"single into range", set("192.0.2.10/32", "10.0.0.1/32"), set("192.0.2.0/24", "10.0.0.1/32"),
			set("192.0.2.10/32"), set("10.0.0.1/32")},
		{"range into single", set("192.0.2.0/24"), set("192.0.2.10/32"), ipnet.Set{}, set("192.0.2.0/24")},
		{"single stays single", set("192.0.2.10/32"), set("192.0.2.10/32", "192.0.2.12/31"), ipnet.Set{}, set("192.0.2.10/32")},
		{"single leaves", set("192.0.2.10/32"), set("192.0.2.0/29", "192.0.2.11/32"), ipnet.Set{}, set("192.0.2.10/32")},
		{"range edges and several per range", set("192.0.2.0/32", "192.0.2.7/32", "192.0.2.9/32", "198.51.100.255/32"),
			set("192.0.2.0/29", "192.0.2.8/31", "198.51.100.0/24"),
			set("192.0.2.0/32", "192.0.2.7/32", "192.0.2.9/32", "198.51.100.255/32"), ipnet.Set{}},
		{"old range is not moved", set("192.0.2.0/30"), set("192.0.2.0/24"), ipnet.Set{}, set("192.0.2.0/30")},
		{"IPv6", set("2001:db8::1/128", "2001:db8:1::1/128", "2001:db8:2::/64"), set("2001:db8::/64", "2001:db8:1::1/128", "2001:db8:2::/48"),
			set("2001:db8::1/128"), set("2001:db8:1::1/128", "2001:db8:2::/64")},
		{"IPv6 top of the space", set("ffff::1/128"), set("ffff::/16"), set("ffff::1/128"), ipnet.Set{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := movedSingles(tc.old, tc.next)
			if !got.Equal(tc.want) {
				t.Errorf("movedSingles = %v, want %v", got, tc.want)
			}
			if kept := without(tc.old, got); !kept.Equal(tc.kept) {
				t.Errorf("without = %v, want %v", kept, tc.kept)
			}
		})
	}
}

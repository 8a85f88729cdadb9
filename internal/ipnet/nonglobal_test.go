package ipnet

import (
	"net/netip"
	"testing"
)

func TestNonGlobal(t *testing.T) {
	never := []string{
		"0.0.0.0", "0.255.255.255", "10.0.0.1", "100.64.0.1", "100.127.255.255", "127.0.0.1",
		"169.254.1.1", "172.16.0.1", "172.31.255.255", "192.0.0.1", "192.0.0.8", "192.0.0.11", "192.0.2.1",
		"192.88.99.1", "192.168.1.1", "198.18.0.1", "198.19.255.255", "198.51.100.1", "203.0.113.1",
		"224.0.0.1", "239.255.255.255", "240.0.0.1", "255.255.255.255",
		"::", "::1", "::ffff:0:1", "64:ff9b::1", "64:ff9b:1::1", "100::1", "2001::1", "2001:0:1::1",
		"2001:1::3", "2001:2::1", "2001:10::1", "2001:1ff::1", "2001:db8::1", "2002:c000:201::1",
		"3fff::1", "4000::1", "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1", "ff02::1",
		"1::1", "1fff::1", "8000::1",
	}
	global := []string{
		"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.0", "100.63.255.255", "100.128.0.0",
		"126.255.255.255", "128.0.0.0", "169.253.255.255", "172.15.255.255", "172.32.0.0",
		"192.0.0.9", "192.0.0.10", "192.0.1.255", "192.0.3.0", "192.167.255.255", "192.169.0.0",
		"198.17.255.255", "198.20.0.0", "223.255.255.255",
		"2000::1", "2001:1::1", "2001:1::2", "2001:3::1", "2001:4:112::1", "2001:20::1", "2001:2f::1",
		"2001:30::1", "2001:200::1", "2001:db7:ffff::1", "2001:db9::1", "2003::1", "2606:4700::1",
		"2a00:1450::1", "3ffe::1", "3fff:1000::1",
	}
	ng := NonGlobal()
	if !ng.IsMerged() {
		t.Fatal("NonGlobal not merged")
	}
	for _, s := range never {
		a := netip.MustParseAddr(s)
		if !ng.Contains(a) || IsGlobal(a) {
			t.Errorf("%s should be non-global", s)
		}
	}
	for _, s := range global {
		a := netip.MustParseAddr(s)
		if ng.Contains(a) || !IsGlobal(a) {
			r, _ := ng.Lookup(a)
			t.Errorf("%s should be global, is in %s", s, r)
		}
	}
	// NonGlobal hands out copies.
	ng.V4[0].Hi = 0
	if NonGlobal().V4[0].Hi == 0 {
		t.Error("NonGlobal returned shared memory")
	}
}

// Every table entry is a masked prefix, and carve-outs sit inside a listed block.
func TestNonGlobalTable(t *testing.T) {
	var in Set
	for _, e := range nonGlobalTable {
		if e.prefix != e.prefix.Masked() {
			t.Errorf("%s is not masked", e.prefix)
		}
		if e.ref == "" {
			t.Errorf("%s has no reference", e.prefix)
		}
		switch {
		case e.global:
		case e.prefix.Addr().Is4():
			in.AddPrefix(e.prefix)
		default:
			in.V6 = append(in.V6, prefix6(e.prefix))
		}
	}
	in.Merge()
	for _, e := range nonGlobalTable {
		if e.global && !in.Contains(e.prefix.Addr()) {
			t.Errorf("exception %s is not inside a listed block", e.prefix)
		}
	}
}

func TestStripNonGlobal(t *testing.T) {
	s := mk(t, "1.1.1.1", "10.0.0.0/8", "9.0.0.0-11.0.0.0", "192.168.1.1", "2001:db8::1", "2606:4700::/32", "::/0")
	kept, removed := StripNonGlobal(s)
	// Merged s: 1.1.1.1, 9.0.0.0-11.0.0.0, 192.168.1.1, ::/0; all but the first lose addresses.
	if removed != 3 {
		t.Errorf("removed = %d, want 3", removed)
	}
	if !kept.Contains(netip.MustParseAddr("1.1.1.1")) || !kept.Contains(netip.MustParseAddr("9.1.2.3")) ||
		!kept.Contains(netip.MustParseAddr("11.0.0.0")) || kept.Contains(netip.MustParseAddr("10.0.0.1")) ||
		kept.Contains(netip.MustParseAddr("192.168.1.1")) || !kept.Contains(netip.MustParseAddr("2606:4700::1")) ||
		kept.Contains(netip.MustParseAddr("2001:db8::1")) || !kept.Contains(netip.MustParseAddr("2001:1::1")) {
		t.Errorf("kept = %v", strs(kept))
	}
	if !Intersect(kept, NonGlobal()).IsEmpty() {
		t.Error("kept overlaps NonGlobal")
	}
	if k, n := StripNonGlobal(Set{}); !k.IsEmpty() || n != 0 {
		t.Errorf("empty: %v %d", k, n)
	}
}

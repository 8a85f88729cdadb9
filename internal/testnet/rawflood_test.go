package testnet

import (
	"net/netip"
	"testing"
	"time"
)

// TestLabRawFlood: frames from 256 sources that the peer does not own reach
// the host's firewall and are counted there, one by one; frames to another
// link-layer address never reach it; frames from an unlisted source arrive.
func TestLabRawFlood(t *testing.T) {
	l := newTestLab(t)
	l.Host.MustRun("nft", "add table inet sikkerguard { counter dropped4 {}; chain pre { type filter hook prerouting priority -300; "+
		"ip saddr 198.51.100.0/24 counter name dropped4 drop; }; }")
	var srcs []netip.Addr
	for a, i := netip.MustParseAddr("198.51.100.0"), 0; i < 256; a, i = a.Next(), i+1 {
		srcs = append(srcs, a)
	}
	dst := netip.AddrPortFrom(labHost4, SinkPort)

	before, lost0 := l.Drops(t).V4, backlogDrops()
	r, err := l.RawFlood(0, nil, srcs, dst, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent == 0 || r.CPU <= 0 || r.Elapsed < 200*time.Millisecond {
		t.Fatalf("flood %+v: nothing sent or measured", r)
	}
	var dropped uint64
	if !waitFor(time.Second, func() bool { dropped = l.Drops(t).V4 - before; return dropped+backlogDrops()-lost0 >= uint64(r.Sent) }) {
		t.Errorf("%d frames sent, the drop counter rose by %d", r.Sent, dropped)
	}

	before = l.Drops(t).V4
	other, err := l.RawFlood(0, []byte{0x02, 0, 0x5e, 0, 0x53, 0x77}, srcs, dst, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if d := l.Drops(t).V4 - before; other.Sent == 0 || d != 0 {
		t.Errorf("%d frames sent to another host, the drop counter rose by %d, want 0", other.Sent, d)
	}

	sink := l.Sink(labGood4)
	got0 := sink.CountFrom(labGood4)
	good, err := l.RawFlood(0, nil, []netip.Addr{labGood4}, dst, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Second, func() bool { return sink.CountFrom(labGood4) > got0 }) {
		t.Errorf("none of %d frames from unlisted %v arrived", good.Sent, labGood4)
	}
}

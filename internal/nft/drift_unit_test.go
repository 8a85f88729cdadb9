package nft

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestHasSingle(t *testing.T) {
	s := set("192.0.2.7/32", "192.0.2.16/28", "2001:db8::1/128", "2001:db8:1::/64")
	for a, want := range map[string]bool{
		"192.0.2.7": true, "192.0.2.16": false, "192.0.2.20": false, "192.0.2.8": false,
		"2001:db8::1": true, "2001:db8:1::": false, "2001:db8::2": false,
	} {
		if got := hasSingle(s, netip.MustParseAddr(a)); got != want {
			t.Errorf("hasSingle(%s) = %v, want %v", a, got, want)
		}
	}
}

func TestNoteDrift(t *testing.T) {
	b := &Backend{}
	k := func(a string) []byte { return netip.MustParseAddr(a).AsSlice() }
	b.noteDrift([]TableEvent{
		{Msg: unix.NFT_MSG_DELSETELEM, Name: SetHosts4, Keys: [][]byte{k("192.0.2.7"), k("192.0.2.8")}},
		{Msg: unix.NFT_MSG_NEWSETELEM, Name: SetHosts4, Keys: [][]byte{k("192.0.2.8")}},
	}, false)
	d := b.takeDrift()
	if d.other || len(d.last) != 2 || d.last[netip.MustParseAddr("192.0.2.7")] || !d.last[netip.MustParseAddr("192.0.2.8")] {
		t.Fatalf("drift %+v: want 192.0.2.7 deleted and 192.0.2.8 added last", d)
	}
	if d := b.takeDrift(); d.other || len(d.last) != 0 {
		t.Fatalf("takeDrift did not start a new record: %+v", d)
	}
	for name, evs := range map[string][]TableEvent{
		"an interval set's elements":  {{Msg: unix.NFT_MSG_DELSETELEM, Name: SetBlock4, Keys: [][]byte{k("192.0.2.0")}, Interval: true}},
		"a rule":                      {{Msg: unix.NFT_MSG_DELRULE, Name: "prerouting"}},
		"an IPv6 key in the IPv4 set": {{Msg: unix.NFT_MSG_DELSETELEM, Name: SetHosts4, Keys: [][]byte{k("2001:db8::1")}}},
	} {
		b.noteDrift(evs, false)
		if d := b.takeDrift(); !d.other {
			t.Errorf("%s: not sent down the full path", name)
		}
	}
	b.noteDrift(nil, true)
	if d := b.takeDrift(); !d.other {
		t.Error("lost events: not sent down the full path")
	}
}

func TestTableEventString(t *testing.T) {
	for _, tc := range []struct {
		e    TableEvent
		want string
	}{
		{TableEvent{Family: unix.NFPROTO_INET, Table: TableName, Msg: unix.NFT_MSG_DELTABLE}, "table inet sikkerguard deleted"},
		{TableEvent{Family: unix.NFPROTO_IPV4, Table: "filter", Msg: unix.NFT_MSG_DELRULE, Name: "INPUT"}, "rule deleted from chain INPUT of ip filter"},
		{TableEvent{Family: unix.NFPROTO_INET, Table: TableName, Msg: unix.NFT_MSG_NEWSETELEM, Name: SetHosts4}, "elements added to set blockhost4 of inet sikkerguard"},
		{TableEvent{Family: unix.NFPROTO_IPV6, Table: "filter", Msg: 99}, "message 99 for ip6 filter"},
	} {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
}

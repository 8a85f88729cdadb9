package nft

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

var rolesConfig = testConfig{IPv6: true, LogGroup: 7, Monitor: true, Outbound: true,
	Scopes: []firewall.Scope{{Protocols: []uint8{6}, Ports: []firewall.PortRange{{Lo: 22, Hi: 22}, {Lo: 6000, Hi: 6010}}}}}

var rolesLists = firewall.Lists{
	Block: set("192.0.2.48/28"), Monitor: set("192.0.2.70/32", "198.51.100.0/24", "2001:db8:5::/48"),
	Out: set("192.0.2.73/32"), Scoped: []ipnet.Set{set("192.0.2.74/32", "2001:db8:6::1/128")},
}

// TestRolesAdoptAndUpdate: a table with every role object is adopted by
// a new process with its objects kept (handles unchanged), a role list
// update replaces only that list, and a table of the layout without roles
// is adopted into the one with roles.
func TestRolesAdoptAndUpdate(t *testing.T) {
	l := newLab(t)
	plain := l.backend(t, testConfig{IPv6: true, LogGroup: 7})
	if err := plain.Apply(firewall.Lists{Block: set("192.0.2.48/28")}); err != nil {
		t.Fatal(err)
	}
	b := l.backend(t, rolesConfig)
	if err := b.Apply(rolesLists); err != nil {
		t.Fatalf("adopting a table without roles: %v", err)
	}
	listed := l.Host.MustRun("nft", "list", "table", "inet", TableName)
	for _, want := range []string{"set monitor4", "set outblock6", "set scope0_4", "chain watch", "chain blockout4",
		"counter would_reply6", "tcp dport 22 ip saddr @scope0_4 goto block4", "tcp dport 6000-6010 ip6 saddr @scope0_6 goto block6",
		"192.0.2.70", "2001:db8:6::1"} {
		if !strings.Contains(listed, want) {
			t.Errorf("table lacks %q:\n%s", want, listed)
		}
	}
	before := handles(t, l.Host)
	b2 := l.backend(t, rolesConfig)
	if err := b2.Apply(rolesLists); err != nil {
		t.Fatal(err)
	}
	if after := handles(t, l.Host); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("handles changed by adoption:\n%v\nwant\n%v", after, before)
	}
	next := rolesLists
	next.Monitor = set("192.0.2.80/32")
	if err := b2.Apply(next); err != nil {
		t.Fatal(err)
	}
	out := l.Host.MustRun("nft", "list", "set", "inet", TableName, SetMonitor4)
	if !strings.Contains(out, "192.0.2.80") || strings.Contains(out, "192.0.2.70") {
		t.Errorf("monitor4 after the update:\n%s", out)
	}
	if ok, err := b2.Intact(); !ok || err != nil {
		t.Errorf("Intact = %v, %v after role updates", ok, err)
	}
}

// TestRolesRefusedWithoutObjects: role lists for a table built without
// their objects are an error, not a silent drop of the entries.
func TestRolesRefusedWithoutObjects(t *testing.T) {
	b, err := New(testConfig{}.settings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(firewall.Lists{Monitor: set("192.0.2.70/32")}); err == nil || !strings.Contains(err.Error(), "monitor") {
		t.Errorf("Apply = %v, want the monitor list refused", err)
	}
}

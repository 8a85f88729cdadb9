package config

import (
	"testing"
)

// TestRolesAndSettings: the feeds' roles, the distinct scopes in order of
// first use, and the objects the backend must build for them.
func TestRolesAndSettings(t *testing.T) {
	cfg, err := Parse([]byte(`
api: {mode: monitor}
feeds:
  - {name: drop, file: /etc/sikkerguard/drop.txt}
  - {name: c2, file: /etc/sikkerguard/c2.txt, direction: Outbound}
  - {name: ssh, file: /etc/sikkerguard/ssh.txt, ports: [22], protocols: [TCP]}
  - {name: x11, file: /etc/sikkerguard/x11.txt, ports: ["6000-6010", 22]}
  - {name: ssh2, file: /etc/sikkerguard/ssh2.txt, protocols: [tcp], ports: ["22"]}
`), "test.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.FirewallSettings()
	if !s.Monitor || !s.Outbound || len(s.Scopes) != 2 {
		t.Fatalf("settings %+v: want monitor, outbound and two scopes", s)
	}
	if got := s.Scopes[0].String() + " " + s.Scopes[1].String(); got != "22/tcp 22,6000-6010/tcp,udp" {
		t.Errorf("scopes %q", got)
	}
	roles := cfg.Roles()
	for name, want := range map[string]string{
		ReservedFeedName: "monitor, inbound", "drop": "enforce, inbound", "c2": "enforce, outbound",
		"ssh": "enforce, inbound, 22/tcp only", "x11": "enforce, inbound, 22,6000-6010/tcp,udp only", "ssh2": "enforce, inbound, 22/tcp only",
	} {
		if got := roles[name].String(); got != want {
			t.Errorf("role of %s = %q, want %q", name, got, want)
		}
	}
	if roles["ssh2"].Scope != roles["ssh"].Scope || roles["x11"].Scope != 1 || roles["drop"].Scope != -1 {
		t.Errorf("scope indexes %+v", roles)
	}
	if !roles["c2"].Outbound() || roles["c2"].Inbound() || !roles["drop"].Inbound() {
		t.Errorf("directions %+v", roles)
	}
	if plain := Default().FirewallSettings(); plain.Monitor || plain.Outbound || plain.Scopes != nil {
		t.Errorf("default settings %+v: want no role objects", plain)
	}
}

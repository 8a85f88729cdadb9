package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/config"
)

// -t checks hook names with the chosen backend, which this binary must
// link; the messages are those of internal/config's fixtures.
func TestCheckConfigAsksTheChosenBackend(t *testing.T) {
	env := config.MapEnv(map[string]string{"SIKKER_API_KEY": "sk_test_check_0000000000"})
	for _, tc := range []struct {
		name, yaml string
		code       int
		out        string
	}{
		{"defaults", "", exitOK, "config OK"},
		{"iptables chains any case", "firewall: {backend: iptables, hooks: [docker-user, Input], action: reject}\n", exitOK, "config OK"},
		{"nftables hook on iptables", "firewall: {backend: iptables, hooks: [prerouting]}\n", exitUsage,
			`:1: firewall.hooks[0]: "prerouting" is not one of INPUT, FORWARD, DOCKER-USER (iptables backend)`},
		{"iptables chain on nftables", "firewall:\n  hooks: [input, DOCKER-USER]\n", exitUsage,
			`:2: firewall.hooks[1]: "DOCKER-USER" is not one of prerouting, input, forward (nftables backend)`},
		{"reject in prerouting", "firewall:\n  hooks: [prerouting]\n  action: reject\n", exitUsage,
			`:3: firewall.action: reject cannot be used with the prerouting hook`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sikkerguard.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"-t", "-c", path}, env, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String()+stderr.String(), tc.out) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout.String(), stderr.String(), tc.code, tc.out)
			}
		})
	}
}

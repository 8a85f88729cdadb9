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

// Without a key, -t says whether the service can start: with no extra feed
// there is nothing to block and it exits 2, as the start itself does; with
// feeds it starts and says from what.
func TestCheckConfigWithoutKey(t *testing.T) {
	dir := t.TempDir()
	noKey := "api:\n  key_file: " + filepath.Join(dir, "api.key") + "\n"
	feedFile := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(feedFile, []byte("203.0.113.7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml string
		args       []string
		code       int
		stdout     []string
		stderr     []string
	}{
		{"no feeds", noKey, []string{"-t"}, exitUsage, nil,
			[]string{"sikkerguard: cannot start: no SikkerAPI key configured", "no extra feeds are configured, so there is nothing to block"}},
		{"no feeds, daemon refuses the same way", noKey, nil, exitUsage, nil,
			[]string{"cannot start:", "nothing to block"}},
		{"no feeds, --once refuses the same way", noKey, []string{"--once", "--dry-run"}, exitUsage, nil,
			[]string{"cannot start:", "nothing to block"}},
		{"one feed", noKey + "feeds:\n  - {name: custom, file: " + feedFile + "}\n", []string{"-t"}, exitOK,
			[]string{"config OK\n", "The service can start without a key: it blocks from 1 extra feed (custom) only", "sikkerguard(8)"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sikkerguard.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append(tc.args, "-c", path), config.MapEnv(nil), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stdout %q, stderr %q", code, tc.code, stdout.String(), stderr.String())
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout %q lacks %q", stdout.String(), w)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q lacks %q", stderr.String(), w)
				}
			}
			if tc.code != exitOK && strings.Contains(stdout.String(), "config OK") {
				t.Errorf("printed config OK but exits %d", code)
			}
		})
	}
}

// --help shows one line per flag, long names with two dashes and the short
// alias beside them (`-c, --config PATH`), as sikkerguard(8) writes them.
func TestHelpText(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, config.MapEnv(nil), &stdout, &stderr); code != exitOK {
		t.Fatalf("--help exit %d", code)
	}
	help := stderr.String()
	for _, want := range []string{
		"\n  -c, --config PATH ",
		"\n  -t, --check-config ",
		"\n      --once ",
		"\n      --dry-run ",
		"\n      --cleanup ",
		"\n      --version ",
		"\n  -h, --help ",
	} {
		if n := strings.Count(help, want); n != 1 {
			t.Errorf("help has %q %d times, want once:\n%s", want, n, help)
		}
	}
	for _, line := range strings.Split(help, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "-") && !strings.HasPrefix(f[0], "--") && len(f[0]) > 3 {
			t.Errorf("a long flag with one dash: %q", line)
		}
	}
	if strings.Contains(help, `"/etc/`) {
		t.Errorf("default shown Go-quoted:\n%s", help)
	}
}

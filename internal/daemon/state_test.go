package daemon

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The runtime whitelist file opens the firewall: entries read back from it
// obey the rules of WhitelistAdd, whoever wrote the file.
func TestRuntimeWhitelistFileIsValidatedOnLoad(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	body := `{"prefixes":["0.0.0.0/0","::/0","::ffff:0.0.0.0/96","10.0.0.0/7","2001:db8::/31","192.0.2.7/24","198.51.100.9/32","2001:db8::1/128"]}`
	if err := os.WriteFile(filepath.Join(dir, runtimeWhitelistFile), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got := loadRuntimeWhitelist(dir, log)
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.9/32"), netip.MustParsePrefix("2001:db8::1/128")}
	if len(got) != len(want) {
		t.Fatalf("loaded %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("loaded %v, want %v", got, want)
		}
	}
	for _, w := range []string{"0.0.0.0/0 is wider than /8", "::/0 is wider than /32", "::ffff:0.0.0.0/96", "10.0.0.0/7 is wider than /8", "2001:db8::/31 is wider than /32"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log lacks %q:\n%s", w, logs.String())
		}
	}
}

func TestStateDirectoryOthersCanWriteIsRefused(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	dir := filepath.Join(t.TempDir(), "state")
	if err := ensureStateDir(dir, log); err != nil {
		t.Fatalf("a new state directory: %v", err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o750 {
		t.Errorf("new state directory mode %v, want 0750", fi.Mode().Perm())
	}
	for _, mode := range []os.FileMode{0o777, 0o770, 0o1777} {
		os.Chmod(dir, mode)
		err := ensureStateDir(dir, log)
		if err == nil || !strings.Contains(err.Error(), "writable by other users") || !strings.Contains(err.Error(), "chmod go-w") {
			t.Errorf("mode %v: err = %v, want a refusal naming the fix", mode, err)
		}
	}
	os.Chmod(dir, 0o755)
	if err := ensureStateDir(dir, log); err != nil {
		t.Errorf("mode 0755: %v", err)
	}
	// Owned by another, unprivileged user.
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		err := checkStateDir(dir, 0, log)
		if err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
			t.Errorf("foreign owner: err = %v", err)
		}
		if err := checkStateDir(dir, 4242, log); err != nil {
			t.Errorf("the owner itself: %v", err)
		}
	}
}

func FuzzRuntimeWhitelistFile(f *testing.F) {
	f.Add([]byte(`{"prefixes":["192.0.2.0/24","2001:db8::1/128"]}`))
	f.Add([]byte(`{"prefixes":["0.0.0.0/0"]}`))
	f.Add([]byte(`{"prefixes":["::ffff:0.0.0.0/96"]}`))
	f.Add([]byte(`{"prefixes":[]} {}`))
	f.Add([]byte(`{"prefixes":null,"x":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, runtimeWhitelistFile), body, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, p := range loadRuntimeWhitelist(dir, slog.New(slog.DiscardHandler)) {
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Bits() < minWhitelistBits(p) {
				t.Fatalf("loaded %v from %q", p, body)
			}
		}
	})
}

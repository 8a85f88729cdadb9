package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAptMirror(t *testing.T) {
	td := func(n string) string { return filepath.Join("testdata", n) }
	tests := []struct {
		name    string
		files   []string
		suite   string
		want    string
		wantErr string
	}{
		{"one-line with options", []string{td("sources.list")}, "bookworm", "http://mirror.example.org/debian", ""},
		{"deb822 skips deb-src", []string{td("debian.sources")}, "bookworm", "http://deb.example.org/debian", ""},
		{"first file that serves the suite", []string{td("other.sources"), td("debian.sources"), td("sources.list")}, "bookworm", "http://deb.example.org/debian", ""},
		{"missing file ignored", []string{td("absent.list"), td("sources.list")}, "bookworm", "http://mirror.example.org/debian", ""},
		{"suite not served", []string{td("other.sources"), td("sources.list")}, "trixie", "", `no apt source for suite "trixie"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := aptMirror(tt.files, tt.suite)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestHostSuite(t *testing.T) {
	if got, err := hostSuite("testdata/os-release"); err != nil || got != "bookworm" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := hostSuite("testdata/os-release-nocodename"); err == nil || !strings.Contains(err.Error(), "VERSION_CODENAME") {
		t.Errorf("err = %v", err)
	}
}

func TestRootfsKey(t *testing.T) {
	base := rootfsSpec{Suite: "bookworm", Variant: "minbase", Packages: []string{"systemd", "dbus"}}
	same := rootfsSpec{Suite: "bookworm", Variant: "minbase", Packages: []string{"systemd", "dbus"}}
	if base.Key() != same.Key() || len(base.Key()) != 12 {
		t.Fatalf("key not stable: %q %q", base.Key(), same.Key())
	}
	for _, other := range []rootfsSpec{
		{Suite: "trixie", Variant: "minbase", Packages: base.Packages},
		{Suite: "bookworm", Variant: "buildd", Packages: base.Packages},
		{Suite: "bookworm", Variant: "minbase", Packages: []string{"systemd", "dbus", "nftables"}},
	} {
		if other.Key() == base.Key() {
			t.Errorf("%+v shares the key of %+v", other, base)
		}
	}
	if got := base.Tarball(); !strings.HasPrefix(got, CacheDir+"/rootfs-bookworm-") || !strings.HasSuffix(got, ".tar") {
		t.Errorf("tarball %q", got)
	}
}

func TestSetElements(t *testing.T) {
	b, err := os.ReadFile("testdata/nft-table.txt")
	if err != nil {
		t.Fatal(err)
	}
	// 3 single hosts + 1 range; the allow set does not count.
	if got := setElements(string(b)); got != 4 {
		t.Errorf("setElements = %d, want 4", got)
	}
	if got := setElements("table inet sikkerguard {\n}\n"); got != 0 {
		t.Errorf("empty table: %d", got)
	}
}

func TestCallerCgroups(t *testing.T) {
	got, err := callerCgroups("testdata/cgroup-hybrid")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/sys/fs/cgroup/systemd/user.slice/session-1.scope/payload",
		"/sys/fs/cgroup/systemd/user.slice/session-1.scope/supervisor",
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("missing %s in %v", w, got)
		}
	}
	if len(got) != 4 {
		t.Errorf("want the unified and the named hierarchy, got %v", got)
	}
	for _, d := range got {
		if strings.Contains(d, "memory") || strings.Contains(d, "process_api") {
			t.Errorf("a controller hierarchy slipped in: %s", d)
		}
	}
}

func TestRemoveEmptyDirs(t *testing.T) {
	top := t.TempDir()
	for _, d := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(top, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(top, "c", "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	removeEmptyDirs(top, true)
	if _, err := os.Stat(filepath.Join(top, "a")); !os.IsNotExist(err) {
		t.Errorf("empty a/b not removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(top, "c", "keep")); err != nil {
		t.Errorf("non-empty c removed: %v", err)
	}
	if _, err := os.Stat(top); err != nil {
		t.Errorf("top removed despite keepTop: %v", err)
	}
}

func TestHasMount(t *testing.T) {
	info := "336 315 254:0 /x/etc/sikkerguard /etc/sikkerguard ro,nosuid,relatime shared:124 - ext4 /dev/vda rw\n" +
		"355 315 254:0 /x/var/lib/sikkerguard /var/lib/sikkerguard rw,nosuid,relatime shared:128 - ext4 /dev/vda rw\n"
	tests := []struct {
		path, opt string
		want      bool
	}{
		{"/etc/sikkerguard", "ro,", true},
		{"/etc/sikkerguard", "rw,", false},
		{"/var/lib/sikkerguard", "rw,", true},
		{"/usr", "ro,", false},
	}
	for _, tt := range tests {
		if got := hasMount(info, tt.path, tt.opt); got != tt.want {
			t.Errorf("hasMount(%s, %s) = %v", tt.path, tt.opt, got)
		}
	}
}

// TestUnitExposure keeps the unit's systemd-analyze rating at 2.0 or
// better, so a new directive cannot quietly widen the sandbox.
func TestUnitExposure(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed")
	}
	out, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", "../../systemd/sikkerguard.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for sikkerguard.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure in:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	if score > 2.0 {
		t.Errorf("exposure %.1f > 2.0:\n%s", score, out)
	}
	t.Logf("exposure %.1f", score)
}

// A fresh machine has no cache folder: taking the lock creates it.
func TestLockFileCreatesFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache", "sub", "run.lock")
	unlock, err := lockFile(path, time.Second)
	if err != nil {
		t.Fatalf("lockFile on a missing folder: %v", err)
	}
	defer unlock()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	// A second holder waits, then gives up with an error naming the lock.
	if _, err := lockFile(path, 600*time.Millisecond); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("second lock: %v, want a timeout naming %s", err, path)
	}
}

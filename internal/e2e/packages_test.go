package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// projectMaintainer is the Makefile's MAINTAINER, which both packages name.
const projectMaintainer = "SikkerGuard Maintainers <maintainers@sikkerapi.com>"

// TestPackagesInstallTheSameFiles builds the .deb and the .rpm and checks
// that they install the same files with the same modes and owners
// (systemd/compare-packages.sh), and that both name the project as their
// maintainer and recommend bash-completion. Without rpmbuild (Debian
// package rpm, installed by make deps) it skips, unless make check asked for
// every test.
func TestPackagesInstallTheSameFiles(t *testing.T) {
	if os.Getenv(envRequire) != "1" && os.Getenv(envRun) != "1" {
		t.Skipf("package comparison builds both packages: set %s=1 (sudo make check does)", envRun)
	}
	// make deps installs rpm; make deb and make rpm link with gcc.
	testnet.RequireTools(t, "rpmbuild", "rpm", "dpkg-deb", "make", "gcc")
	repo := repoRoot(t)
	deb := buildDeb(t, repo)
	rpm := buildPackage(t, repo, "rpm", ".rpm")

	cmp := exec.Command("bash", "systemd/compare-packages.sh", deb, rpm)
	cmp.Dir = repo
	out, err := cmp.CombinedOutput()
	if err != nil {
		t.Fatalf("compare-packages: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))

	fields := func(name string, args ...string) string {
		t.Helper()
		b, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		return strings.TrimSpace(string(b))
	}
	if got := fields("dpkg-deb", "-f", deb, "Maintainer"); got != projectMaintainer {
		t.Errorf(".deb Maintainer = %q, want %q", got, projectMaintainer)
	}
	if got := fields("dpkg-deb", "-f", deb, "Recommends"); !strings.Contains(got, "bash-completion") {
		t.Errorf(".deb Recommends = %q, want bash-completion in it", got)
	}
	if got := fields("rpm", "-qp", "--qf", "%{PACKAGER}", rpm); got != projectMaintainer {
		t.Errorf(".rpm Packager = %q, want %q", got, projectMaintainer)
	}
	if got := fields("rpm", "-qp", "--recommends", rpm); !strings.Contains(got, "bash-completion") {
		t.Errorf(".rpm Recommends = %q, want bash-completion in it", got)
	}
	// The standard systemd scriptlets are in the package, expanded.
	scripts := fields("rpm", "-qp", "--scripts", rpm)
	for _, want := range []string{"systemctl --no-reload preset sikkerguard.service", "systemctl --no-reload disable --now sikkerguard.service", "systemctl try-restart sikkerguard.service"} {
		if !strings.Contains(scripts, want) {
			t.Errorf(".rpm scriptlets lack %q:\n%s", want, scripts)
		}
	}
}

// buildPackage runs make TARGET and returns the path of the package it
// printed last.
func buildPackage(t *testing.T, repo, target, suffix string, makeArgs ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"--no-print-directory", target}, makeArgs...)...)
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", target, err, tail(out, 3000))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasSuffix(l, suffix) && !strings.Contains(l, " ") {
			return filepath.Join(repo, l)
		}
	}
	t.Fatalf("make %s printed no package path:\n%s", target, tail(out, 2000))
	return ""
}

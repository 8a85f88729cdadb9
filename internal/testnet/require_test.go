package testnet

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestMissingTools(t *testing.T) {
	present := map[string]bool{"ip": true, "nft": true}
	look := func(n string) (string, error) {
		if present[n] {
			return "/usr/sbin/" + n, nil
		}
		return "", errors.New("not found")
	}
	got := missingTools(look, "ip", "ping", "nft", "busctl", "frobnicate")
	want := []string{"ping (Debian package iputils-ping)", "busctl (Debian package systemd)", "frobnicate"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("missingTools = %q, want %q", got, want)
	}
	if got := missingTools(look, "ip", "nft"); got != nil {
		t.Errorf("nothing missing, got %q", got)
	}
}

func TestRequireFailsUnderMakeCheck(t *testing.T) {
	missing := []string{"ping (Debian package iputils-ping)"}

	t.Setenv(EnvRequire, "")
	r := &recorder{TB: t}
	require(r, "network namespace test", missing)
	if r.fatal != "" || !strings.Contains(r.skip, "ping (Debian package iputils-ping)") {
		t.Errorf("by hand: fatal %q, skip %q; want a skip naming ping and its package", r.fatal, r.skip)
	}

	t.Setenv(EnvRequire, "1")
	r = &recorder{TB: t}
	require(r, "network namespace test", missing)
	if r.skip != "" || !strings.Contains(r.fatal, "needs ping (Debian package iputils-ping)") || !strings.Contains(r.fatal, "make deps") {
		t.Errorf("under make check: fatal %q, skip %q; want a failure naming ping, its package and make deps", r.fatal, r.skip)
	}

	r = &recorder{TB: t}
	require(r, "test", nil)
	if r.fatal != "" || r.skip != "" {
		t.Errorf("nothing missing, yet fatal %q, skip %q", r.fatal, r.skip)
	}
}

// Every program a kernel test checks for has a package to name.
func TestKernelToolsHavePackages(t *testing.T) {
	for _, n := range kernelTools {
		if debianPackage[n] == "" {
			t.Errorf("kernel tool %s has no Debian package in debianPackage", n)
		}
	}
}

// make deps must install every package whose programs the tests run, or a
// fresh machine fails make check.
func TestMakeDepsInstallsEveryPackage(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^DEB_DEPS :=((?:[^\n]*\\\n)*[^\n]*)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no DEB_DEPS := line in the Makefile")
	}
	installed := map[string]string{} // package → command make deps looks for
	cmds := map[string]string{}      // command → package
	for _, pair := range strings.Fields(strings.ReplaceAll(string(m[1]), "\\\n", " ")) {
		cmd, pkg, ok := strings.Cut(pair, ":")
		if !ok {
			t.Fatalf("DEB_DEPS entry %q is not command:package", pair)
		}
		installed[pkg] = cmd
		cmds[cmd] = pkg
	}
	for tool, pkg := range debianPackage {
		if _, ok := installed[pkg]; !ok {
			t.Errorf("tests run %s from package %s, which make deps does not install (add %s:%s to DEB_DEPS)", tool, pkg, tool, pkg)
		}
		if p, ok := cmds[tool]; ok && p != pkg {
			t.Errorf("DEB_DEPS takes %s from %s, debianPackage from %s", tool, p, pkg)
		}
	}
}

package testnet

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// EnvRequire names the variable that turns a missing prerequisite into a
// failure (make check sets it) instead of a skip.
const EnvRequire = "SIKKER_NETNS_TESTS"

// debianPackage names the Debian package of each program the tests run.
// `make deps` installs the same packages: a test keeps the Makefile's
// DEB_DEPS in step with this table.
var debianPackage = map[string]string{
	"ip":             "iproute2",
	"nft":            "nftables",
	"ping":           "iputils-ping",
	"sysctl":         "procps",
	"iptables":       "iptables",
	"ip6tables":      "iptables",
	"iptables-save":  "iptables",
	"ip6tables-save": "iptables",
	"ipset":          "ipset",
	"dbus-daemon":    "dbus",
	"busctl":         "systemd",
	"setpriv":        "util-linux",
	"gcc":            "gcc",
	"rpmbuild":       "rpm", // the .rpm beside the .deb (make rpm)
	"rpm":            "rpm",
}

// kernelTools is what the namespace tests run: ip and sysctl build the
// labs, ping warms their links up (WaitLink), nft, iptables and ipset drive
// and snapshot the firewalls.
var kernelTools = []string{"ip", "sysctl", "nft", "ping", "iptables", "ip6tables", "iptables-save", "ip6tables-save", "ipset"}

// RequireRoot skips t unless the process may create namespaces and has
// every program the kernel tests run; with SIKKER_NETNS_TESTS=1 it fails
// instead, naming what is missing and the Debian package that ships it.
func RequireRoot(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	missing = append(missing, missingTools(exec.LookPath, kernelTools...)...)
	require(t, "network namespace test", missing)
}

// RequireTools skips t unless every named program is on PATH; with
// SIKKER_NETNS_TESTS=1 it fails instead, naming each missing program and
// its Debian package.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	require(t, "test", missingTools(exec.LookPath, names...))
}

// missingTools describes each name that lookPath cannot find, with the
// package to install.
func missingTools(lookPath func(string) (string, error), names ...string) []string {
	var missing []string
	for _, n := range names {
		if _, err := lookPath(n); err == nil {
			continue
		}
		if pkg, ok := debianPackage[n]; ok {
			n += " (Debian package " + pkg + ")"
		}
		missing = append(missing, n)
	}
	return missing
}

// require skips or, under make check, fails t when anything is missing.
func require(t testing.TB, what string, missing []string) {
	t.Helper()
	if len(missing) == 0 {
		return
	}
	msg := what + " needs " + strings.Join(missing, ", ")
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg + "; sudo make deps installs the programs (" + EnvRequire + "=1 turns this skip into a failure)")
		return
	}
	t.Skip(msg)
}

// Package e2e tests the installed product under a real systemd: it builds
// the Debian package, installs it into a throwaway Debian root file system,
// boots that with systemd-nspawn in its own network namespace, and drives
// sikkerguard.service there against the mock SikkerAPI — readiness,
// D-Bus name, journal, reload, watchdog restart, stop and removal.
//
// The test runs as root under `sudo make check` (SIKKER_NETNS_TESTS=1) or
// with SIKKER_E2E=1, and skips otherwise. This file is the one recipe for
// the cached Debian root file systems: the test boots one, and
// `make check-fresh` (through ./internal/e2e/mkrootfs) runs `make check` in
// another. Both are built once with debootstrap and cached under CacheDir.
package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// CacheDir keeps the root file systems between runs; it is the only place
// outside the per-run temporary directories that the harness writes to.
const CacheDir = "/var/cache/sikkerguard-e2e"

// Variant is debootstrap's smallest: essential packages and apt only.
const Variant = "minbase"

// fallbackMirror serves every Debian suite; it is used when the machine's
// apt sources do not name the suite asked for.
const fallbackMirror = "http://deb.debian.org/debian"

// rootfsPackages is what the nspawn container needs on top of debootstrap's
// minbase: a booting systemd, the system bus, and the firewall tools
// the backends and the checks use.
var rootfsPackages = []string{"systemd", "systemd-sysv", "dbus", "nftables", "iptables", "ipset", "iproute2", "procps"}

// rootfsSpec names one cached root file system.
type rootfsSpec struct {
	Suite    string
	Variant  string
	Packages []string
}

// Key changes whenever anything that goes into the tarball changes, so a
// stale cache is never reused; the mirror is left out on purpose, since
// any mirror of a suite serves the same packages.
func (s rootfsSpec) Key() string {
	h := sha256.New()
	fmt.Fprintf(h, "suite=%s\nvariant=%s\ninclude=%s\n", s.Suite, s.Variant, strings.Join(s.Packages, ","))
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Tarball is where the cached root file system lives.
func (s rootfsSpec) Tarball() string {
	return filepath.Join(CacheDir, fmt.Sprintf("rootfs-%s-%s.tar", s.Suite, s.Key()))
}

// hostSuite reads the machine's Debian code name from os-release.
func hostSuite(osRelease string) (string, error) {
	b, err := os.ReadFile(osRelease)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", osRelease, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok {
			if v = strings.Trim(v, `"'`); v != "" {
				return v, nil
			}
		}
	}
	return "", fmt.Errorf("%s has no VERSION_CODENAME", osRelease)
}

// aptMirror finds the archive URI serving suite in the machine's apt
// sources (one-line .list and deb822 .sources files), so debootstrap uses
// whatever mirror or proxy the machine is already set up for.
func aptMirror(files []string, suite string) (string, error) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return "", fmt.Errorf("read %s: %w", f, err)
		}
		var uri string
		if strings.HasSuffix(f, ".sources") {
			uri = mirrorDeb822(string(b), suite)
		} else {
			uri = mirrorOneLine(string(b), suite)
		}
		if uri != "" {
			return uri, nil
		}
	}
	return "", fmt.Errorf("no apt source for suite %q in %s", suite, strings.Join(files, ", "))
}

// mirrorOneLine parses "deb [opts] URI SUITE COMPONENTS..." lines.
func mirrorOneLine(text, suite string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(strings.TrimSpace(sc.Text()))
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) == 0 {
				continue
			}
			f = f[1:]
		}
		if len(f) >= 2 && f[1] == suite {
			return f[0]
		}
	}
	return ""
}

// mirrorDeb822 parses paragraphs of "Types: deb", "URIs:", "Suites:".
func mirrorDeb822(text, suite string) string {
	for _, para := range strings.Split(text, "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(para, "\n") {
			if strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if ok && !strings.HasPrefix(k, " ") {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !containsWord(fields["types"], "deb") || !containsWord(fields["suites"], suite) {
			continue
		}
		if uris := strings.Fields(fields["uris"]); len(uris) > 0 {
			return uris[0]
		}
	}
	return ""
}

func containsWord(list, w string) bool {
	for _, f := range strings.Fields(list) {
		if f == w {
			return true
		}
	}
	return false
}

// Rootfs returns the cached tarball of a minbase root file system of
// suite with packages added, and builds it with debootstrap when it is
// missing, from the machine's apt mirror for suite. A lock keeps two runs
// from building at once. The tarball is never changed once written: every
// user extracts a throwaway copy.
func Rootfs(suite string, packages []string, logf func(format string, args ...any)) (string, error) {
	spec := rootfsSpec{Suite: suite, Variant: Variant, Packages: packages}
	tarball := spec.Tarball()
	if _, err := os.Stat(tarball); err == nil {
		return tarball, nil
	}
	unlock, err := lockFile(filepath.Join(CacheDir, "build.lock"), 10*time.Minute)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(tarball); err == nil {
		return tarball, nil // built by another run while this one waited
	}
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	mirror, err := aptMirror(append([]string{"/etc/apt/sources.list"}, files...), suite)
	if err != nil {
		logf("%v: using %s", err, fallbackMirror)
		mirror = fallbackMirror
	}
	build := filepath.Join(CacheDir, "build-"+spec.Key())
	os.RemoveAll(build)
	defer os.RemoveAll(build)
	start := time.Now()
	args := []string{"--variant=" + spec.Variant}
	if len(spec.Packages) > 0 {
		args = append(args, "--include="+strings.Join(spec.Packages, ","))
	}
	args = append(args, spec.Suite, build, mirror)
	if out, err := exec.Command("debootstrap", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("debootstrap %s: %w\n%s", strings.Join(args, " "), err, tail(out, 2000))
	}
	tmp := tarball + ".tmp"
	if out, err := exec.Command("tar", "--numeric-owner", "-C", build, "-cf", tmp, ".").CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("tar root file system: %w\n%s", err, out)
	}
	if err := os.Rename(tmp, tarball); err != nil {
		return "", fmt.Errorf("store root file system: %w", err)
	}
	logf("built %s from %s in %s", tarball, mirror, time.Since(start).Round(time.Second))
	return tarball, nil
}

// lockFile takes an exclusive flock, waiting at most wait; it creates the
// lock's folder, which a fresh machine does not have.
func lockFile(path string, wait time.Duration) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w (another run holds it?)", path, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// extract unpacks the tarball into a fresh directory, with the owners'
// numeric ids: the host's user database may map names differently.
func extract(tarball, dir string) error {
	if out, err := exec.Command("tar", "--numeric-owner", "-C", dir, "-xf", tarball).CombinedOutput(); err != nil {
		return fmt.Errorf("extract %s: %w: %s", tarball, err, tail(out, 500))
	}
	return nil
}

// tail keeps the end of long command output for error messages.
func tail(b []byte, n int) string {
	if len(b) > n {
		return "…" + string(b[len(b)-n:])
	}
	return string(b)
}

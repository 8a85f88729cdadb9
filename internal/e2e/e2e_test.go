package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

const (
	envRequire = "SIKKER_NETNS_TESTS" // set by make check: skipping becomes failing
	envRun     = "SIKKER_E2E"         // run without make check
	envFresh   = "SIKKER_CHECK_FRESH" // set inside make check-fresh's container

	mockAddr = "127.0.0.1:8580"
	mockKey  = "sk_test_e2e_0123456789abcdef"
	busName  = "com.sikkerapi.SikkerGuard1"
)

// requireE2E skips unless the end-to-end run was asked for, and installs
// systemd-nspawn and debootstrap when they are missing. Under make check a
// missing prerequisite fails instead of skipping.
func requireE2E(t *testing.T) {
	t.Helper()
	if os.Getenv(envFresh) == "1" {
		// Booting systemd needs a container manager of its own; the chroot
		// of make check-fresh is none. .ci/run runs this test on the host.
		t.Skipf("end-to-end test under systemd-nspawn does not run inside make check-fresh (%s=1): run it on the host with make check-host", envFresh)
	}
	required := os.Getenv(envRequire) == "1"
	if !required && os.Getenv(envRun) != "1" {
		t.Skipf("end-to-end test under systemd-nspawn: set %s=1 (sudo make check does)", envRun)
	}
	fail := t.Skipf
	if required {
		fail = t.Fatalf
	}
	if os.Geteuid() != 0 {
		fail("end-to-end test needs root")
	}
	want := map[string]string{"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap"}
	var missing []string
	for bin, pkg := range want {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		// --no-install-recommends: the recommended libnss-mymachines would
		// edit the machine's nsswitch.conf.
		cmd := exec.Command("sh", "-c", "apt-get update -qq && apt-get install -y -qq --no-install-recommends "+strings.Join(missing, " "))
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			fail("installing %v failed: %v\n%s", missing, err, tail(out, 2000))
		}
	}
	// make deb links externally, with gcc (Debian's hardening flags).
	for _, need := range [][2]string{{"nsenter", "util-linux"}, {"dpkg-deb", "dpkg"}, {"make", "make"}, {"tar", "tar"}, {"gcc", "gcc"},
		{"systemd-nspawn", "systemd-container"}, {"debootstrap", "debootstrap"}} {
		if _, err := exec.LookPath(need[0]); err != nil {
			fail("end-to-end test needs %s (Debian package %s)", need[0], need[1])
		}
	}
}

// timings records how long each step took, printed at the end.
type timings struct {
	t     *testing.T
	names []string
	took  []time.Duration
}

func (tm *timings) step(name string, f func()) {
	tm.t.Helper()
	start := time.Now()
	defer func() {
		tm.names = append(tm.names, name)
		tm.took = append(tm.took, time.Since(start))
	}()
	f()
}

func (tm *timings) report() {
	var b strings.Builder
	for i, n := range tm.names {
		fmt.Fprintf(&b, "  %-40s %8s\n", n, tm.took[i].Round(time.Millisecond))
	}
	tm.t.Logf("timings:\n%s", b.String())
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "systemd", "sikkerguard.service")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	return root
}

// buildDeb runs make deb and returns the package's path.
func buildDeb(t *testing.T, repo string, makeArgs ...string) string {
	t.Helper()
	return buildPackage(t, repo, "deb", ".deb", makeArgs...)
}

// goBuild builds one command of the repository into dir.
func goBuild(t *testing.T, repo, pkg, out string) {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(gobin, "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// hasDBusServer reports whether the daemon binary links the D-Bus server,
// so the bus checks run as soon as the daemon offers the API.
func hasDBusServer(t *testing.T, repo string) bool {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(gobin, "list", "-deps", "./cmd/sikkerguard")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Contains(string(out), "/internal/dbusapi\n")
}

const mockUnit = `[Unit]
Description=mock SikkerAPI for the end-to-end test
Before=sikkerguard.service

[Service]
ExecStart=/usr/local/bin/sikkerapi-mock -listen ` + mockAddr + ` -key-file /etc/sikkerapi-mock.key -generate 3000 -seed 7
`

// The mock serves generated global addresses, so the private-range strip
// stays on as in production. Reports every minute exercise the spool.
const guardConfig = `api:
  url: http://` + mockAddr + `
  pull_interval: 1h
report:
  interval: 1m
`

// floodConfig adds the flood lab's listed source as a file feed; the lab
// uses documentation addresses, which are otherwise stripped.
const floodConfig = `safety:
  strip_private: false
feeds:
  - {name: lab, file: /etc/sikkerguard/lab-blocklist.txt}
`

// mockRequests counts the blacklist requests the mock has answered.
func mockRequests(c *container) (int, error) {
	client := &http.Client{Transport: &http.Transport{DialContext: c.dial}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + mockAddr + "/_mock/requests")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("mock: %s: %s", resp.Status, body)
	}
	var reqs []struct {
		Path   string `json:"path"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(body, &reqs); err != nil {
		return 0, fmt.Errorf("mock requests: %w", err)
	}
	n := 0
	for _, r := range reqs {
		if r.Path == "/v1/key/blacklist" && r.Status == http.StatusOK {
			n++
		}
	}
	return n, nil
}

// setElements counts the elements of the table's block sets in `nft list
// table` output.
func setElements(nftOut string) int {
	n := 0
	for _, block := range regexp.MustCompile(`(?s)set (block\w+) \{.*?\n\t\}`).FindAllString(nftOut, -1) {
		if i := strings.Index(block, "elements = {"); i >= 0 {
			body := block[i+len("elements = {"):]
			if j := strings.Index(body, "}"); j >= 0 {
				body = body[:j]
			}
			for _, e := range strings.Split(body, ",") {
				if strings.TrimSpace(e) != "" {
					n++
				}
			}
		}
	}
	return n
}

// hasMount reports whether mountinfo has a mount point at path whose
// per-mount options start with opt.
func hasMount(mountinfo, path, opt string) bool {
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == path && strings.HasPrefix(f[5]+",", opt) {
			return true
		}
	}
	return false
}

// restart restarts sikkerguard. The unit allows five starts in two
// minutes (a broken config is not retried forever); the test restarts
// more often than that on purpose, so it resets the counter first.
func restart(c *container) {
	c.t.Helper()
	c.run("systemctl", "reset-failed", "sikkerguard")
	if out, err := c.run("systemctl", "restart", "sikkerguard"); err != nil {
		j, _ := c.run("journalctl", "-u", "sikkerguard", "--no-pager", "-n", "30", "-o", "cat")
		c.t.Fatalf("%v\n%s\n%s", err, out, j)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSystemd(t *testing.T) {
	requireE2E(t)
	tm := &timings{t: t}
	defer tm.report()
	repo := repoRoot(t)
	unlock, err := lockFile(filepath.Join(CacheDir, "run.lock"), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)

	var tarball, deb string
	work := t.TempDir()
	tm.step("root file system (cached or debootstrap)", func() {
		suite, err := hostSuite("/etc/os-release")
		if err != nil {
			t.Fatal(err)
		}
		if tarball, err = Rootfs(suite, rootfsPackages, t.Logf); err != nil {
			t.Fatal(err)
		}
	})
	tm.step("make deb", func() { deb = buildDeb(t, repo) })
	// A newer version of the same tree, for the upgrade under a flood.
	var newerDeb string
	tm.step("make deb (a newer version)", func() {
		out, err := exec.Command("sh", filepath.Join(repo, "systemd/debian/version.sh")).Output()
		if err != nil {
			t.Fatalf("version.sh: %v", err)
		}
		newerDeb = buildDeb(t, repo, "DEB_VERSION="+strings.TrimSpace(string(out))+"+e2eupgrade")
	})
	tm.step("build sikkerapi-mock", func() { goBuild(t, repo, "./cmd/sikkerapi-mock", filepath.Join(work, "sikkerapi-mock")) })
	dbusServer := hasDBusServer(t, repo)

	// The root file system lives on disk, not in the test's /tmp: nspawn
	// needs a real directory tree, and /var/tmp survives a full /tmp.
	root, err := os.MkdirTemp("/var/tmp", "sikkerguard-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) }) // registered first, so it runs after the shutdown
	tm.step("extract root file system", func() {
		if err := extract(tarball, root); err != nil {
			t.Fatal(err)
		}
	})
	// Everything the bus or systemd reads at boot goes in before boot.
	mockBin, err := os.ReadFile(filepath.Join(work, "sikkerapi-mock"))
	if err != nil {
		t.Fatal(err)
	}
	debBytes, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	pre := &container{t: t, root: root}
	pre.writeFile("/usr/local/bin/sikkerapi-mock", string(mockBin), 0o755)
	pre.writeFile("/etc/systemd/system/sikkerapi-mock.service", mockUnit, 0o644)
	pre.writeFile("/etc/sikkerapi-mock.key", mockKey+"\n", 0o600)
	pre.writeFile("/root/sikkerguard.deb", string(debBytes), 0o644)
	newerBytes, err := os.ReadFile(newerDeb)
	if err != nil {
		t.Fatal(err)
	}
	pre.writeFile("/root/sikkerguard-newer.deb", string(newerBytes), 0o644)

	var c *container
	tm.step("boot container", func() { c = boot(t, root, filepath.Join(work, "console.log")) })

	tm.step("dpkg -i (postinst with systemd and dbus running)", func() {
		out := c.must("dpkg", "-i", "/root/sikkerguard.deb")
		if !strings.Contains(out, "not enabled") {
			t.Errorf("postinst printed no hint about the key:\n%s", out)
		}
		if st, _ := c.run("systemctl", "is-enabled", "sikkerguard"); st != "disabled" {
			t.Errorf("after install sikkerguard is %q, want disabled", st)
		}
		if st, _ := c.run("systemctl", "is-active", "sikkerguard"); st != "inactive" {
			t.Errorf("after install sikkerguard is %q, want inactive", st)
		}
	})

	tm.step("start without a key is refused", func() { startWithoutKey(t, c) })

	c.writeFile("/etc/sikkerguard/api.key", mockKey+"\n", 0o600)
	c.writeFile("/etc/sikkerguard/sikkerguard.yaml", guardConfig, 0o644)
	tm.step("start with a broken config fails once", func() { startWithBrokenConfig(t, c) })
	tm.step("start mock", func() {
		c.must("systemctl", "daemon-reload")
		c.must("systemctl", "start", "sikkerapi-mock")
		if !waitFor(10*time.Second, func() bool { _, err := mockRequests(c); return err == nil }) {
			_, err := mockRequests(c)
			t.Fatalf("mock not answering: %v\n%s", err, c.must("journalctl", "-u", "sikkerapi-mock", "--no-pager"))
		}
	})

	var loaded int
	tm.step("systemctl enable --now sikkerguard", func() {
		if out, err := c.run("systemctl", "enable", "--now", "sikkerguard"); err != nil {
			j, _ := c.run("journalctl", "-u", "sikkerguard", "--no-pager", "-n", "50")
			t.Fatalf("%v\n%s\n%s", err, out, j)
		}
		// enable --now returns after READY=1, so the list must be in already.
		out, err := c.run("nft", "list", "table", "inet", "sikkerguard")
		if err != nil {
			t.Fatalf("no table right after start: %v\n%s", err, out)
		}
		if loaded = setElements(out); loaded == 0 {
			t.Fatalf("table has no blocked elements right after start:\n%s", tail([]byte(out), 2000))
		}
		t.Logf("%d elements in the kernel when systemctl returned", loaded)
		if dbusServer {
			// READY=1 also promises the bus name.
			if out, err := c.run("busctl", "status", busName); err != nil {
				t.Errorf("bus name not owned when systemctl returned: %v\n%s", err, out)
			}
		}
	})

	t.Run("active", func(t *testing.T) {
		if st, _ := c.run("systemctl", "is-active", "sikkerguard"); st != "active" {
			t.Errorf("is-active = %q", st)
		}
		show := c.must("systemctl", "show", "-p", "StatusText", "-p", "Type", "-p", "WatchdogUSec", "sikkerguard")
		// Each number with its unit: addresses and ranges (see README, The numbers).
		if !regexp.MustCompile(`StatusText=running: blocking \d+ IPv4 addresses in \d+ ranges and \d+ IPv6 ranges`).MatchString(show) {
			t.Errorf("STATUS= does not name its units:\n%s", show)
		}
		if !strings.Contains(show, "Type=notify") || !strings.Contains(show, "StatusText=") {
			t.Errorf("unexpected unit state:\n%s", show)
		}
		t.Logf("%s", show)
	})

	t.Run("sandbox", func(t *testing.T) {
		pid := c.must("systemctl", "show", "-p", "MainPID", "--value", "sikkerguard")
		status := c.must("cat", "/proc/"+pid+"/status")
		// CAP_NET_ADMIN (12) and CAP_NET_RAW (13), nothing else.
		if !strings.Contains(status, "CapBnd:\t0000000000003000") {
			t.Errorf("bounding set is not CAP_NET_ADMIN+CAP_NET_RAW:\n%s", status)
		}
		if !strings.Contains(status, "NoNewPrivs:\t1") || !strings.Contains(status, "Seccomp:\t2") {
			t.Errorf("no_new_privs or seccomp filter missing:\n%s", status)
		}
		mounts := c.must("cat", "/proc/"+pid+"/mountinfo")
		for _, m := range []struct{ path, opt string }{
			{"/", "ro,"}, {"/etc/sikkerguard", "ro,"}, {"/var/lib/sikkerguard", "rw,"},
		} {
			if !hasMount(mounts, m.path, m.opt) {
				t.Errorf("%s is not mounted %s for the daemon", m.path, strings.TrimSuffix(m.opt, ","))
			}
		}
	})

	t.Run("dbus", func(t *testing.T) {
		if !dbusServer {
			t.Skip("the daemon does not link internal/dbusapi yet: bus name and sikkerctl checks not run")
		}
		out, err := c.run("busctl", "status", busName)
		if err != nil || !strings.Contains(out, "Unit=sikkerguard.service") {
			t.Errorf("busctl status %s: %v\n%s", busName, err, out)
		}
		out, err = c.run("sikkerctl", "status")
		if err != nil || !regexp.MustCompile(`State:\s+running`).MatchString(out) {
			t.Errorf("sikkerctl status: %v\n%s", err, out)
		}
	})

	t.Run("journal", func(t *testing.T) {
		j := c.must("journalctl", "-u", "sikkerguard", "--no-pager", "-o", "cat")
		for _, want := range []string{"Score threshold:", "Safety whitelist:", "Firewall ready", "Blocking ", " addresses_ipv4=", " ranges_ipv4=", "feed pulled feed=sikkerapi entries="} {
			if !strings.Contains(j, want) {
				t.Errorf("journal lacks %q:\n%s", want, tail([]byte(j), 2000))
			}
		}
	})

	tm.step("reloads and five restarts pull at most once; sikkerctl pull pulls", func() {
		before, err := mockRequests(c)
		if err != nil {
			t.Fatal(err)
		}
		// An unchanged configuration: nothing to pull. Five restarts with a
		// last good list younger than pull_interval: nothing to pull either.
		c.must("systemctl", "reload", "sikkerguard")
		for range 5 {
			restart(c)
		}
		after, err := mockRequests(c)
		if err != nil || after > before+1 {
			t.Errorf("a reload and five restarts made %d blacklist requests (%v), want at most 1", after-before, err)
		}
		t.Logf("a reload and five restarts: %d blacklist requests", after-before)
		if out, err := c.run("nft", "list", "table", "inet", "sikkerguard"); err != nil || setElements(out) == 0 {
			t.Errorf("no blocklist after the restarts: %v", err)
		}
		if !dbusServer {
			return
		}
		// sikkerctl pull returns once the pulled list is applied.
		before = after
		if out, err := c.run("sikkerctl", "pull"); err != nil {
			t.Errorf("sikkerctl pull: %v\n%s", err, out)
		}
		if after, err := mockRequests(c); err != nil || after != before+1 {
			t.Errorf("sikkerctl pull made %d requests (%v), want 1", after-before, err)
		}
	})

	tm.step("a reload with a broken config fails visibly", func() {
		if !dbusServer {
			return // nothing to drive it with
		}
		broken := strings.Replace(guardConfig, "  pull_interval: 1h\n", "  pull_interval: 1h\n  score_min: 500\n", 1)
		c.writeFile("/etc/sikkerguard/sikkerguard.yaml", broken, 0o644)
		if out, err := c.run("systemctl", "reload", "sikkerguard"); err == nil {
			t.Errorf("systemctl reload of a broken config succeeded:\n%s", out)
		} else {
			t.Logf("systemctl reload: %v\n%s", err, out)
		}
		out, err := c.run("sikkerctl", "reload")
		if err == nil || !strings.Contains(out, "sikkerguard.yaml:4") || !strings.Contains(out, "api.score_min") || strings.Contains(out, "reloaded") {
			t.Errorf("sikkerctl reload of a broken config: %v\n%s", err, out)
		}
		show := c.must("systemctl", "show", "-p", "ActiveState", "-p", "StatusText", "sikkerguard")
		if !strings.Contains(show, "ActiveState=active") || !strings.Contains(show, "reload failed: ") {
			t.Errorf("after the failed reload:\n%s", show)
		}
		t.Logf("%s", show)
		if st := c.must("systemctl", "status", "--no-pager", "-n", "5", "sikkerguard"); !strings.Contains(st, "reload failed") {
			t.Errorf("systemctl status does not show the failed reload:\n%s", st)
		}
		c.writeFile("/etc/sikkerguard/sikkerguard.yaml", guardConfig, 0o644)
		if out, err := c.run("systemctl", "reload", "sikkerguard"); err != nil {
			t.Errorf("reload of the fixed config: %v\n%s", err, out)
		}
		if show := c.must("systemctl", "show", "-p", "StatusText", "--value", "sikkerguard"); strings.Contains(show, "reload failed") {
			t.Errorf("the failure outlived a good reload: %s", show)
		}
	})

	tm.step("a manual block is in the table, shown by check and kept across a restart", func() {
		if !dbusServer {
			return // nothing to drive it with
		}
		const manual = "45.55.66.77" // a global address the mock does not list
		if out, err := c.run("sikkerctl", "block", manual, "--comment", "e2e"); err != nil {
			t.Fatalf("sikkerctl block: %v\n%s", err, out)
		}
		inTable := func() bool {
			out, err := c.run("nft", "list", "table", "inet", "sikkerguard")
			return err == nil && strings.Contains(out, manual)
		}
		if !inTable() {
			t.Errorf("%s not in the table after sikkerctl block", manual)
		}
		out, err := c.run("sikkerctl", "check", manual)
		if err == nil || !strings.HasPrefix(out, manual+": BLOCKED — blocked by hand") || strings.Contains(out, manual+" is ") {
			t.Errorf("sikkerctl check %s: %v (want exit 1)\n%s", manual, err, out)
		}
		restart(c)
		if !inTable() {
			t.Errorf("the manual block did not survive a restart")
		}
		c.must("sikkerctl", "unblock", manual)
		if inTable() {
			t.Errorf("%s still in the table after unblock", manual)
		}
		if out, err := c.run("sikkerctl", "check", manual); err != nil {
			t.Errorf("sikkerctl check after unblock: %v (want exit 0)\n%s", err, out)
		}
	})

	tm.step("a wrong key shows in systemctl status", func() {
		c.writeFile("/etc/sikkerguard/api.key", "sk_test_wrong_key_000000000000\n", 0o600)
		restart(c)
		if !waitFor(30*time.Second, func() bool {
			st, _ := c.run("systemctl", "show", "-p", "StatusText", "--value", "sikkerguard")
			return strings.Contains(st, "refused the key")
		}) {
			st, _ := c.run("systemctl", "status", "--no-pager", "sikkerguard")
			t.Errorf("STATUS= does not name the refused key:\n%s", st)
		}
		st, _ := c.run("systemctl", "status", "--no-pager", "-n", "3", "sikkerguard")
		if !strings.Contains(st, "degraded") || !strings.Contains(st, "feed sikkerapi failed") || !strings.Contains(st, "active (running)") {
			t.Errorf("systemctl status after a wrong key:\n%s", st)
		}
		t.Logf("systemctl status with a wrong key:\n%s", st)
		if dbusServer {
			out, err := c.run("sikkerctl", "status")
			if err == nil || !strings.HasPrefix(out, "sikkerguard is degraded") {
				t.Errorf("sikkerctl status with a wrong key: %v (want exit 3)\n%s", err, out)
			}
		}
		if out, err := c.run("nft", "list", "table", "inet", "sikkerguard"); err != nil || setElements(out) == 0 {
			t.Errorf("the last good list is gone with a wrong key: %v", err)
		}
		c.writeFile("/etc/sikkerguard/api.key", mockKey+"\n", 0o600)
		restart(c)
		if !waitFor(30*time.Second, func() bool {
			st, _ := c.run("systemctl", "show", "-p", "StatusText", "--value", "sikkerguard")
			return strings.HasPrefix(st, "running")
		}) {
			t.Errorf("not running again with the right key")
		}
	})

	tm.step("reboot: last good list before network-pre.target, API down", func() {
		// The mock is not enabled, so after the reboot the API is gone and
		// the daemon must start from its state directory alone.
		c.shutdown()
		c = boot(t, root, filepath.Join(work, "console-2.log"))
		if !waitFor(30*time.Second, func() bool {
			st, _ := c.run("systemctl", "is-active", "sikkerguard")
			return st == "active"
		}) {
			j, _ := c.run("journalctl", "-b", "-u", "sikkerguard", "--no-pager", "-o", "cat")
			t.Fatalf("sikkerguard not active after reboot:\n%s", j)
		}
		out, err := c.run("nft", "list", "table", "inet", "sikkerguard")
		if n := setElements(out); err != nil || n == 0 {
			t.Errorf("no blocklist after reboot (%d elements): %v", n, err)
		}
		guard := c.must("systemctl", "show", "-p", "ActiveEnterTimestampMonotonic", "--value", "sikkerguard")
		pre := c.must("systemctl", "show", "-p", "ActiveEnterTimestampMonotonic", "--value", "network-pre.target")
		g, _ := strconv.ParseUint(guard, 10, 64)
		p, _ := strconv.ParseUint(pre, 10, 64)
		if g == 0 || p == 0 || g > p {
			t.Errorf("sikkerguard ready at %s µs, network-pre.target reached at %s µs: want the firewall first", guard, pre)
		}
		t.Logf("after boot: sikkerguard ready at %.3f s, network-pre.target at %.3f s", float64(g)/1e6, float64(p)/1e6)
		if j := c.must("journalctl", "-b", "--no-pager", "-o", "cat"); strings.Contains(j, "ordering cycle") {
			t.Errorf("ordering cycle at boot:\n%s", tail([]byte(j), 3000))
		}
		c.must("systemctl", "start", "sikkerapi-mock")
		if !waitFor(10*time.Second, func() bool { _, err := mockRequests(c); return err == nil }) {
			t.Fatalf("mock not answering after reboot")
		}
	})

	tm.step("watchdog restarts a frozen daemon", func() {
		c.writeFile("/etc/systemd/system/sikkerguard.service.d/e2e-watchdog.conf", "[Service]\nWatchdogSec=3s\n", 0o644)
		c.must("systemctl", "daemon-reload")
		c.must("systemctl", "restart", "sikkerguard")
		pid := c.must("systemctl", "show", "-p", "MainPID", "--value", "sikkerguard")
		c.must("systemctl", "kill", "--kill-who=main", "-s", "SIGSTOP", "sikkerguard")
		start := time.Now()
		ok := waitFor(40*time.Second, func() bool {
			show, _ := c.run("systemctl", "show", "-p", "MainPID", "-p", "ActiveState", "-p", "NRestarts", "sikkerguard")
			return strings.Contains(show, "ActiveState=active") && !strings.Contains(show, "MainPID="+pid+"\n") &&
				!strings.Contains(show, "NRestarts=0")
		})
		show, _ := c.run("systemctl", "show", "-p", "MainPID", "-p", "ActiveState", "-p", "NRestarts", "-p", "Result", "sikkerguard")
		if !ok {
			t.Fatalf("frozen daemon (pid %s) was not restarted:\n%s", pid, show)
		}
		t.Logf("restarted %s after the freeze:\n%s", time.Since(start).Round(time.Millisecond), show)
		j := c.must("journalctl", "-u", "sikkerguard", "--no-pager", "-o", "cat")
		if !strings.Contains(j, "Watchdog timeout") {
			t.Errorf("journal does not show the watchdog timeout")
		}
		out, err := c.run("nft", "list", "table", "inet", "sikkerguard")
		if err != nil || setElements(out) == 0 {
			t.Errorf("no blocklist after the watchdog restart: %v", err)
		}
		os.Remove(c.path("/etc/systemd/system/sikkerguard.service.d/e2e-watchdog.conf"))
		c.must("systemctl", "daemon-reload")
	})

	// A peer namespace joined to the container by a veth pair floods from a
	// listed address while the service restarts and upgrades: a restart
	// keeps the table and the new process adopts it, so nothing gets in.
	var flood func(what string, during func()) (through int64)
	tm.step("flood lab: a peer namespace and a listed source", func() {
		fwAddr, good, bad := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.77")
		cns := testnet.Attach(t, "e2ec", c.leader)
		peer := testnet.New(t, "e2ep")
		testnet.Veth(t, cns, "lab0", []netip.Prefix{netip.PrefixFrom(fwAddr, 24)},
			peer, "pe0", []netip.Prefix{netip.PrefixFrom(good, 24), netip.PrefixFrom(bad, 24)})
		peer.WaitReach(t, good, netip.AddrPortFrom(fwAddr, 9))
		c.writeFile("/etc/sikkerguard/lab-blocklist.txt", bad.String()+"\n", 0o644)
		c.writeFile("/etc/sikkerguard/sikkerguard.yaml", guardConfig+floodConfig, 0o644)
		c.must("systemctl", "restart", "sikkerguard")
		sink := cns.ListenUDP(netip.AddrPortFrom(fwAddr, 5000))
		passes := func(src netip.Addr) bool {
			s := peer.DialUDP(src, sink.Addr())
			before := sink.CountFrom(src)
			for range 3 {
				s.Send([]byte("probe"))
			}
			return waitFor(500*time.Millisecond, func() bool { return sink.CountFrom(src) > before })
		}
		if !passes(good) {
			t.Fatal("the unlisted source does not get through")
		}
		// A feed new to the configuration has no cached list: it is pulled
		// right after READY=1, so give that pull a moment.
		if !waitFor(10*time.Second, func() bool { return !passes(bad) }) {
			t.Fatal("the listed source gets through before the flood")
		}
		flood = func(what string, during func()) int64 {
			before := sink.CountFrom(bad)
			stop := testnet.Flood(peer.DialUDP(bad, sink.Addr()))
			time.Sleep(200 * time.Millisecond)
			start := time.Now()
			during()
			took := time.Since(start)
			time.Sleep(300 * time.Millisecond)
			sent := stop()
			through := sink.CountFrom(bad) - before
			t.Logf("%s under a flood (%v): %d of %d probes from the listed source got through", what, took.Round(time.Millisecond), through, sent)
			if !passes(good) {
				t.Errorf("%s: the unlisted source no longer gets through", what)
			}
			return through
		}
	})

	tm.step("systemctl restart under a flood lets no probe through", func() {
		for i := range 3 {
			what := fmt.Sprintf("systemctl restart #%d", i+1)
			if n := flood(what, func() { c.must("systemctl", "restart", "sikkerguard") }); n != 0 {
				t.Errorf("%s: %d probes from the listed source got through", what, n)
			}
		}
	})

	tm.step("nft flush ruleset is undone by the sandboxed daemon", func() {
		var back time.Duration
		flood("nft flush ruleset", func() {
			start := time.Now()
			c.must("nft", "flush", "ruleset")
			if !waitFor(2*time.Second, func() bool {
				_, err := c.run("nft", "list", "set", "inet", "sikkerguard", "blockhost4")
				return err == nil
			}) {
				t.Fatal("the table is not back 2 s after nft flush ruleset")
			}
			back = time.Since(start)
		})
		t.Logf("table back %v after nft flush ruleset started (polled through nsenter)", back.Round(time.Millisecond))
		j := c.must("journalctl", "-u", "sikkerguard", "--no-pager", "-o", "cat", "-n", "50")
		if !regexp.MustCompile(`RulesRestored.*by="?nft \(pid \d+\)`).MatchString(j) {
			t.Errorf("the journal does not name nft as the cause of the restore:\n%s", tail([]byte(j), 2000))
		}
	})

	tm.step("upgrade to a newer .deb under a flood lets no probe through", func() {
		if n := flood("dpkg -i (upgrade)", func() { c.must("dpkg", "-i", "/root/sikkerguard-newer.deb") }); n != 0 {
			t.Errorf("upgrade: %d probes from the listed source got through", n)
		}
		if st, _ := c.run("systemctl", "is-active", "sikkerguard"); st != "active" {
			t.Errorf("after the upgrade sikkerguard is %q", st)
		}
		if out := c.must("dpkg-query", "-W", "-f", "${Version}", "sikkerguard"); !strings.HasSuffix(out, "+e2eupgrade") {
			t.Errorf("installed version %q is not the newer one", out)
		}
		c.writeFile("/etc/sikkerguard/sikkerguard.yaml", guardConfig, 0o644)
		c.must("systemctl", "restart", "sikkerguard")
	})

	tm.step("iptables backend under the same sandbox", func() {
		c.writeFile("/etc/sikkerguard/sikkerguard.yaml", guardConfig+"firewall:\n  backend: iptables\n", 0o644)
		if out, err := c.run("systemctl", "restart", "sikkerguard"); err != nil {
			j, _ := c.run("journalctl", "-u", "sikkerguard", "--no-pager", "-n", "20", "-o", "cat")
			t.Fatalf("%v\n%s\n%s", err, out, j)
		}
		if out := c.must("iptables", "-S", "INPUT"); !strings.Contains(out, "-j SIKKERGUARD") {
			t.Errorf("no SIKKERGUARD jump in INPUT:\n%s", out)
		}
		if out := c.must("ipset", "list", "-n"); !strings.Contains(out, "sikkerguard4") {
			t.Errorf("no sikkerguard4 set:\n%s", out)
		}
		// The unit is enabled, so a stop keeps the rules for the next start;
		// --cleanup removes them.
		c.must("systemctl", "stop", "sikkerguard")
		if out := c.must("iptables", "-S", "INPUT"); !strings.Contains(out, "-j SIKKERGUARD") {
			t.Errorf("the stop of an enabled unit removed the jump:\n%s", out)
		}
		c.must("sikkerguard", "--cleanup")
		if out := c.must("iptables", "-S"); strings.Contains(out, "SIKKERGUARD") {
			t.Errorf("iptables rules left after --cleanup:\n%s", out)
		}
		if out := c.must("ipset", "list", "-n"); out != "" {
			t.Errorf("ipset sets left after --cleanup:\n%s", out)
		}
		c.writeFile("/etc/sikkerguard/sikkerguard.yaml", guardConfig, 0o644)
		c.must("systemctl", "start", "sikkerguard")
	})

	tm.step("systemctl stop keeps the table of an enabled unit; disable --now removes it", func() {
		c.must("systemctl", "stop", "sikkerguard")
		if _, err := c.run("nft", "list", "table", "inet", "sikkerguard"); err != nil {
			t.Errorf("the stop of an enabled unit removed the table: %v", err)
		}
		c.must("systemctl", "start", "sikkerguard")
		c.must("systemctl", "disable", "--now", "sikkerguard")
		if out, err := c.run("nft", "list", "table", "inet", "sikkerguard"); err == nil {
			t.Errorf("table still there after disable --now:\n%s", tail([]byte(out), 500))
		}
		c.must("systemctl", "enable", "sikkerguard")
		j := c.must("journalctl", "-u", "sikkerguard", "--no-pager", "-n", "20")
		if strings.Contains(j, "Failed with result") && !strings.Contains(j, "Stopped") {
			t.Errorf("unclean stop:\n%s", j)
		}
	})

	tm.step("dpkg -r removes unit, policy and table", func() {
		c.must("systemctl", "start", "sikkerguard")
		if _, err := c.run("nft", "list", "table", "inet", "sikkerguard"); err != nil {
			t.Fatalf("no table before removal: %v", err)
		}
		c.must("dpkg", "-r", "sikkerguard")
		for _, p := range []string{
			"/lib/systemd/system/sikkerguard.service",
			"/usr/lib/systemd/system/sikkerguard.service",
			"/etc/systemd/system/multi-user.target.wants/sikkerguard.service",
			"/usr/share/dbus-1/system.d/com.sikkerapi.SikkerGuard1.conf",
			"/usr/sbin/sikkerguard",
		} {
			if _, err := os.Lstat(c.path(p)); err == nil {
				t.Errorf("%s left behind", p)
			}
		}
		if out, err := c.run("nft", "list", "table", "inet", "sikkerguard"); err == nil {
			t.Errorf("table left behind:\n%s", tail([]byte(out), 500))
		}
		if out, _ := c.run("systemctl", "list-unit-files", "--no-legend", "sikkerguard.service"); out != "" {
			t.Errorf("systemd still knows the unit: %s", out)
		}
		if out, err := c.run("busctl", "status", busName); err == nil {
			t.Errorf("bus name still owned:\n%s", out)
		}
		// The state and the key survive a remove, and go with purge.
		if _, err := os.Stat(c.path("/var/lib/sikkerguard")); err != nil {
			t.Errorf("state dir gone before purge: %v", err)
		}
		c.must("dpkg", "-P", "sikkerguard")
		for _, p := range []string{"/var/lib/sikkerguard", "/etc/sikkerguard/api.key", "/etc/sikkerguard/sikkerguard.yaml"} {
			if _, err := os.Lstat(c.path(p)); err == nil {
				t.Errorf("%s left behind by purge", p)
			}
		}
	})

	tm.step("power off", func() {
		c.shutdown() // the clean-up call then finds it stopped
	})
}

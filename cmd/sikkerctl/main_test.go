package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
	"github.com/sikkerapi/sikkerguard/internal/version"
)

var (
	fixedNow = time.Date(2023, 11, 15, 1, 13, 20, 0, time.UTC)
	status   = dbusapi.Status{
		State: dbusapi.StateRunning, Backend: "nftables", BlockedIPv4: 1234567, BlockedIPv6: 20, Whitelisted: 3,
		LastPull: fixedNow.Add(-3 * time.Hour), NextPull: fixedNow.Add(21 * time.Hour), Started: fixedNow.Add(-48 * time.Hour),
		LastError: "feed spamhaus-drop: HTTP 503",
		Feeds: []dbusapi.FeedStatus{
			{Name: "sikkerapi", Entries: 1234500, LastPull: fixedNow.Add(-3 * time.Hour), Dropped: 48213},
			{Name: "spamhaus-drop", Entries: 87, Error: "HTTP 503"},
		},
	}
	top = []dbusapi.TopEntry{
		{Source: netip.MustParseAddr("198.51.100.7"), Port: 23, Transport: "tcp", Service: "telnet", Count: 47},
		{Source: netip.MustParseAddr("2001:db8::66"), Port: 2222, Transport: "tcp", Count: 12},
	}
)

type result struct {
	code           int
	stdout, stderr string
}

func sikkerctl(t *testing.T, environ map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, env{
		getenv: func(k string) string { return environ[k] },
		stdout: &out, stderr: &errb, now: func() time.Time { return fixedNow }, loc: time.UTC,
	})
	return result{code, out.String(), errb.String()}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, exitUsage, "missing command"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"--bogus", "status"}, exitUsage, "flag provided but not defined: -bogus"},
		{[]string{"status", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"check"}, exitUsage, "exactly one IP"},
		{[]string{"check", "192.0.2.1", "192.0.2.2"}, exitUsage, "exactly one IP"},
		{[]string{"whitelist"}, exitUsage, "want add, remove or list"},
		{[]string{"whitelist", "flush"}, exitUsage, `unknown subcommand "flush"`},
		{[]string{"whitelist", "add"}, exitUsage, "at least one"},
		{[]string{"top", "-n", "0"}, exitUsage, "-n must be between 1 and 1000"},
		{[]string{"top", "-n", "x"}, exitUsage, "invalid value"},
		{[]string{"--timeout", "soon", "status"}, exitUsage, "invalid value"},
		{[]string{"help"}, exitOK, ""},
		{[]string{"-h"}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := sikkerctl(t, nil, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.msg) {
				t.Errorf("code %d stderr %q; want %d containing %q", r.code, r.stderr, tt.code, tt.msg)
			}
			if tt.code == exitOK && !strings.Contains(r.stdout, "usage: sikkerctl") {
				t.Errorf("help printed %q", r.stdout)
			}
		})
	}
}

type rig struct {
	bus    *dbustest.Bus
	fake   *dbustest.Fake
	server *dbusapi.Server
}

func startDaemon(t *testing.T, p dbustest.Policy) *rig {
	t.Helper()
	bus := dbustest.StartBus(t, p)
	fake := dbustest.NewFake(status, map[netip.Addr]string{
		netip.MustParseAddr("198.51.100.7"): "listed by feed sikkerapi (198.51.100.0/24)",
	}, top)
	srv, err := dbusapi.Export(bus.Connect(t), fake, dbusapi.Options{Version: "1.2.3-test", Backend: "nftables"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &rig{bus, fake, srv}
}

func TestCommands(t *testing.T) {
	r := startDaemon(t, dbustest.Shipped)
	addr := []string{"--address", r.bus.Address}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // exact, unless contains is set
		stderr string // substring
	}{
		{"status", []string{"status"}, 0, `sikkerguard is running

State:        running
Version:      1.2.3-test
Backend:      nftables
Dry run:      no
Blocked:      1,234,567 IPv4 addresses, 20 IPv6 ranges
Whitelisted:  3 entries
Last pull:    2023-11-14 22:13:20 UTC (3h0m0s ago)
Next pull:    2023-11-15 22:13:20 UTC (in 21h0m0s)
Last report:  never
Started:      2023-11-13 01:13:20 UTC (48h0m0s ago)
Last error:   feed spamhaus-drop: HTTP 503

FEED           STATE  RANGES     DROPPED  LAST PULL                             ERROR
sikkerapi      -      1,234,500  48,213   2023-11-14 22:13:20 UTC (3h0m0s ago)  -
spamhaus-drop  -      87         0        never                                 HTTP 503
`, ""},
		{"add", []string{"whitelist", "add", "192.0.2.0/24", "2001:db8::1"}, 0, "added 192.0.2.0/24\nadded 2001:db8::1\n", ""},
		{"list", []string{"whitelist", "list"}, 0, "192.0.2.0/24\n2001:db8::1/128\n", ""},
		{"list json", []string{"whitelist", "list", "--json"}, 0, "[\n  \"192.0.2.0/24\",\n  \"2001:db8::1/128\"\n]\n", ""},
		{"remove", []string{"whitelist", "remove", "2001:db8::1"}, 0, "removed 2001:db8::1\n", ""},
		{"remove missing", []string{"whitelist", "remove", "203.0.113.9"}, 1, "", "203.0.113.9/32 is not on the runtime whitelist"},
		{"add bad", []string{"whitelist", "add", "300.1.1.1", "198.51.100.0/24"}, 1, "added 198.51.100.0/24\n", `invalid address "300.1.1.1"`},
		{"add again", []string{"whitelist", "add", "192.0.2.0/24"}, 0, "192.0.2.0/24 already whitelisted\n", ""},
		{"check blocked", []string{"check", "198.51.100.7"}, 1, "198.51.100.7: BLOCKED — listed by feed sikkerapi (198.51.100.0/24)\n", ""},
		{"check clean json", []string{"check", "--json", "192.0.2.1"}, 0,
			"{\n  \"address\": \"192.0.2.1\",\n  \"blocked\": false,\n  \"explanation\": \"not on any blocklist\"\n}\n", ""},
		{"check empty", []string{"check", ""}, 2, "", `invalid address "": is empty`},
		{"block", []string{"block", "192.0.2.9", "--for", "2h", "--comment", "ssh scanner"}, 0, "blocked 192.0.2.9 until 2023-11-15 03:13:20 UTC\n", ""},
		{"block again", []string{"block", "--comment", "ssh scanner", "192.0.2.9", "--for=2h"}, 1, "", "already blocked by hand"},
		{"block bad for", []string{"block", "192.0.2.9", "--for", "soon"}, 2, "", `--for "soon": want a positive duration`},
		{"block days", []string{"block", "192.0.2.10", "--for", "7d"}, 0, "blocked 192.0.2.10 until 2023-11-22 01:13:20 UTC\n", ""},
		{"unblock", []string{"unblock", "192.0.2.9", "192.0.2.11"}, 1, "unblocked 192.0.2.9\n", "192.0.2.11/32 is not blocked by hand"},
		{"pull", []string{"pull"}, 0, "pulled every feed\n", ""},
		{"pull feed", []string{"pull", "sikkerapi"}, 0, "pulled sikkerapi\n", ""},
		{"pull two", []string{"pull", "a", "b"}, 2, "", "at most one feed"},
		{"top", []string{"top", "-n", "5"}, 0, "SOURCE        PORT  PROTO  SERVICE  COUNT\n198.51.100.7  23    tcp    telnet   47\n2001:db8::66  2222  tcp    -        12\n", ""},
		{"top json", []string{"top", "-n", "1", "--json"}, 0,
			"[\n  {\n    \"source\": \"198.51.100.7\",\n    \"port\": 23,\n    \"transport\": \"tcp\",\n    \"service\": \"telnet\",\n    \"count\": 47\n  }\n]\n", ""},
		{"reload", []string{"reload"}, 0, "reloaded\n", ""},
		{"version", []string{"version"}, 0, "sikkerctl " + version.String() + "\nsikkerguard 1.2.3-test\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := sikkerctl(t, nil, append(addr, tt.args...)...)
			if res.code != tt.code || !strings.Contains(res.stderr, tt.stderr) || (tt.code == 0 && res.stderr != "") {
				t.Errorf("exit %d, stderr %q; want %d with %q", res.code, res.stderr, tt.code, tt.stderr)
			}
			if d := cmp.Diff(tt.stdout, res.stdout); d != "" {
				t.Errorf("stdout (-want +got):\n%s", d)
			}
		})
	}
	want := []string{"Status", "WhitelistAdd 192.0.2.0/24", "WhitelistAdd 2001:db8::1/128", "WhitelistList", "WhitelistList",
		"WhitelistRemove 2001:db8::1/128", "WhitelistRemove 203.0.113.9/32", "WhitelistAdd 198.51.100.0/24",
		"WhitelistAdd 192.0.2.0/24", "Check 198.51.100.7", "Check 192.0.2.1",
		`Block 192.0.2.9/32 2h0m0s "ssh scanner"`, `Block 192.0.2.9/32 2h0m0s "ssh scanner"`, `Block 192.0.2.10/32 168h0m0s ""`,
		"Unblock 192.0.2.9/32", "Unblock 192.0.2.11/32", "Pull ", "Pull sikkerapi",
		"TopBlocked 5", "TopBlocked 1", "Reload"}
	if d := cmp.Diff(want, r.fake.Calls()); d != "" {
		t.Errorf("daemon calls (-want +got):\n%s", d)
	}
}

// Degraded and failed states are the first line and the exit code; a
// reload the daemon refuses prints its errors and exits 1.
func TestStatusExitCodesAndFailedReload(t *testing.T) {
	r := startDaemon(t, dbustest.Shipped)
	addr := []string{"--address", r.bus.Address}
	st := status
	st.State, st.LastError = dbusapi.StateDegraded, "sikkerapi: the API refused the key: 401"
	st.Feeds = []dbusapi.FeedStatus{{Name: "sikkerapi", State: dbusapi.FeedFailed, Error: "the API refused the key: 401"}}
	st.Quota = &dbusapi.Quota{Used: 4605, Limit: 5000, Remaining: 395, Reset: fixedNow.Add(2 * time.Hour)}
	r.fake.SetStatus(st)
	res := sikkerctl(t, nil, append(addr, "status")...)
	first, _, _ := strings.Cut(res.stdout, "\n")
	if res.code != exitDegraded || first != "sikkerguard is degraded: sikkerapi: the API refused the key: 401 (feed sikkerapi failed: the API refuses its key; fix it and run sikkerctl pull sikkerapi)" {
		t.Errorf("degraded: exit %d, first line %q", res.code, first)
	}
	if !strings.Contains(res.stdout, "Quota:        4,605 of 5,000 blacklist entries used today, 395 left, resets 2023-11-15 03:13:20 UTC (in 2h0m0s)") ||
		!strings.Contains(res.stdout, "sikkerapi  failed") {
		t.Errorf("status:\n%s", res.stdout)
	}
	if res := sikkerctl(t, nil, append(addr, "status", "--json")...); res.code != exitDegraded || !strings.Contains(res.stdout, `"remaining": 395`) {
		t.Errorf("status --json: exit %d\n%s", res.code, res.stdout)
	}
	st.State = dbusapi.StateFailed
	r.fake.SetStatus(st)
	if res := sikkerctl(t, nil, append(addr, "status")...); res.code != exitNotActive {
		t.Errorf("failed: exit %d", res.code)
	}

	r.fake.SetReloadErr(fmt.Errorf("configuration refused; keeping the running one:\n/etc/sikkerguard/sikkerguard.yaml:3: api.score_min: 500 is out of range: %w", dbusapi.ErrInvalidConfig))
	res = sikkerctl(t, nil, append(addr, "reload")...)
	if res.code != exitError || res.stdout != "" || !strings.Contains(res.stderr, "sikkerguard.yaml:3: api.score_min") {
		t.Errorf("failed reload: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
}

func TestStatusJSON(t *testing.T) {
	r := startDaemon(t, dbustest.Shipped)
	// The bus comes from the environment this time.
	res := sikkerctl(t, map[string]string{"DBUS_SYSTEM_BUS_ADDRESS": r.bus.Address}, "status", "--json")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("%v in %s", err, res.stdout)
	}
	want := map[string]any{
		"version": "1.2.3-test", "state": "running", "backend": "nftables", "dryRun": false,
		"blockedIPv4": 1234567.0, "blockedIPv6": 20.0, "blockedIps": 1234587.0, "whitelisted": 3.0,
		"lastPull": "2023-11-14T22:13:20Z", "nextPull": "2023-11-15T22:13:20Z", "lastReport": nil,
		"started": "2023-11-13T01:13:20Z", "uptimeSeconds": 172800.0, "lastError": "feed spamhaus-drop: HTTP 503",
		"feeds": []any{
			map[string]any{"name": "sikkerapi", "entries": 1234500.0, "lastPull": "2023-11-14T22:13:20Z", "dropped": 48213.0},
			map[string]any{"name": "spamhaus-drop", "entries": 87.0, "lastPull": nil, "error": "HTTP 503", "dropped": 0.0},
		},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("status --json (-want +got):\n%s", d)
	}
}

func TestNotRunning(t *testing.T) {
	bus := dbustest.StartBus(t, dbustest.Shipped)
	for _, args := range [][]string{{"status"}, {"reload"}, {"check", "192.0.2.1"}} {
		res := sikkerctl(t, nil, append([]string{"--address", bus.Address}, args...)...)
		want := 1
		if args[0] == "check" {
			want = exitCheckError // 1 would read as "blocked"
		}
		if res.code != want || res.stderr != "sikkerctl: sikkerguard is not running (com.sikkerapi.SikkerGuard1 not on the bus)\n" {
			t.Errorf("%v: exit %d stderr %q", args, res.code, res.stderr)
		}
	}
	res := sikkerctl(t, nil, "--address", bus.Address, "version")
	if res.code != 0 || !strings.Contains(res.stdout, "sikkerguard: unknown (sikkerguard is not running") {
		t.Errorf("version without daemon: %+v", res)
	}
	dead := "unix:path=" + filepath.Join(t.TempDir(), "nothing")
	res = sikkerctl(t, nil, "--address", dead, "status")
	if res.code != 1 || !strings.Contains(res.stderr, "connect to "+dead) {
		t.Errorf("no bus: %+v", res)
	}
}

// buildBinary builds sikkerctl where uid 65534 can run it.
func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dbustest.WorldDir(t, "sikkerctl-"), "sikkerctl")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func asNobody(t *testing.T, bin, address string, args ...string) result {
	t.Helper()
	testnet.RequireTools(t, "setpriv")
	cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin, "--address", address}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// As uid 65534, mutating commands fail with "access denied: run as root",
// whether the bus policy (Shipped) or the daemon's own check (Open) refuses.
func TestUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to uid 65534")
	}
	dbustest.SkipWithoutDaemon(t)
	bin := buildBinary(t)
	for name, p := range map[string]dbustest.Policy{"shipped policy": dbustest.Shipped, "open bus": dbustest.Open} {
		t.Run(name, func(t *testing.T) {
			r := startDaemon(t, p)
			for _, args := range [][]string{{"reload"}, {"whitelist", "add", "192.0.2.1"}, {"whitelist", "remove", "192.0.2.1"},
				{"pull"}, {"block", "192.0.2.1"}, {"unblock", "192.0.2.1"}} {
				res := asNobody(t, bin, r.bus.Address, args...)
				if res.code != 1 || !strings.HasPrefix(res.stderr, "sikkerctl: access denied: run as root") {
					t.Errorf("%v: exit %d stderr %q", args, res.code, res.stderr)
				}
			}
			for _, args := range [][]string{{"status"}, {"check", "192.0.2.1"}, {"whitelist", "list"}, {"top"}, {"feeds"}, {"version"}} {
				if res := asNobody(t, bin, r.bus.Address, args...); res.code != 0 || res.stderr != "" {
					t.Errorf("%v: exit %d stderr %q", args, res.code, res.stderr)
				}
			}
			for _, c := range r.fake.Calls() {
				if c == "Reload" || strings.HasPrefix(c, "WhitelistAdd") || strings.HasPrefix(c, "WhitelistRemove") ||
					strings.HasPrefix(c, "Pull") || strings.HasPrefix(c, "Block") || strings.HasPrefix(c, "Unblock") {
					t.Errorf("refused call reached the daemon: %s", c)
				}
			}
		})
	}
}

// sikkerctl talks D-Bus only; netlink and nftables must not be linked in.
func TestNoKernelDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/godbus/dbus/v5") {
		t.Fatalf("go list output looks wrong: %v", deps)
	}
	for _, d := range deps {
		for _, banned := range []string{"github.com/google/nftables", "github.com/mdlayher/netlink", "github.com/florianl/go-nflog"} {
			if strings.HasPrefix(d, banned) {
				t.Errorf("sikkerctl links %s", d)
			}
		}
	}
}

// --help shows each global flag once, with two dashes and its argument, as
// sikkerctl(8) writes them; a flag added to globals must be added there.
func TestHelpShowsEachFlagOnce(t *testing.T) {
	fs := newFlags("sikkerctl", &globals{})
	fs.VisitAll(func(f *flag.Flag) {
		arg, _ := flag.UnquoteUsage(f)
		want := "\n  --" + f.Name + " " + arg + " "
		if n := strings.Count(usage, want); n != 1 {
			t.Errorf("help has %d lines starting %q, want one", n, want)
		}
	})
	if strings.Contains(usage, "\n  -address") || strings.Contains(usage, "\n  -timeout") {
		t.Error("help spells a long flag with one dash")
	}
}

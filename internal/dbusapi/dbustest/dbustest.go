// Package dbustest runs a private dbus-daemon for tests and provides a fake
// Daemon to put behind the dbusapi server.
package dbustest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/ledger"
)

// Policy selects the bus configuration.
type Policy int

const (
	// Shipped mirrors Debian's system bus default policy and includes the
	// shipped dbus/com.sikkerapi.SikkerGuard1.conf, as installed.
	Shipped Policy = iota
	// Open lets anyone own any name and call anything, so tests can reach
	// the server's own uid check behind a permissive bus.
	Open
)

// The defaults of /usr/share/dbus-1/system.conf that matter for calls.
const systemDefault = `
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
`

const openPolicy = `
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
`

// PolicyFile is the absolute path of the shipped policy file.
func PolicyFile() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "dbus", dbusapi.BusName+".conf")
}

// Bus is a running private dbus-daemon.
type Bus struct {
	Address string // unix:path=...
	Dir     string // world-searchable directory holding the socket
}

// SkipWithoutDaemon skips t when dbus-daemon is missing, unless
// SIKKER_NETNS_TESTS=1 says the full suite must run.
func SkipWithoutDaemon(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("dbus-daemon")
	if err != nil {
		if os.Getenv("SIKKER_NETNS_TESTS") == "1" {
			t.Fatalf("dbus-daemon not found (apt-get install dbus): %v", err)
		}
		t.Skipf("dbus-daemon not found: %v", err)
	}
	return path
}

// StartBus starts a dbus-daemon of type system on a socket in a fresh
// directory; it is stopped and removed when t ends.
func StartBus(t testing.TB, p Policy) *Bus {
	t.Helper()
	SkipWithoutDaemon(t)
	b, stop, err := Launch(WorldDir(t, "sikkerbus-"), p, PolicyFile())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return b
}

// Launch starts a dbus-daemon of type system listening on dir/bus, with the
// shipped policy read from policyFile when p is Shipped, and returns once
// it accepts connections. stop kills it. Tests use StartBus; Launch serves
// programs without a testing.TB, such as the benchmark.
func Launch(dir string, p Policy, policyFile string) (b *Bus, stop func(), err error) {
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		return nil, nil, fmt.Errorf("dbus-daemon not found (apt-get install dbus): %w", err)
	}
	socket := filepath.Join(dir, "bus")
	body := openPolicy
	if p == Shipped {
		body = systemDefault + fmt.Sprintf("  <include>%s</include>\n", policyFile)
	}
	conf := fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
%s</busconfig>
`, socket, body)
	confFile := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(daemon, "--config-file="+confFile, "--print-address", "--nofork")
	// dbus-daemon speaks sd_notify when it finds NOTIFY_SOCKET; a test bus
	// must not answer for the service under test.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start dbus-daemon: %w", err)
	}
	stop = func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	// The address is printed once the socket listens; EOF means it died.
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Wait()
		return nil, nil, fmt.Errorf("dbus-daemon did not start: %w: %s", err, stderr.String())
	}
	return &Bus{Address: strings.TrimSpace(line), Dir: dir}, stop, nil
}

// WorldDir makes a temporary directory that uid 65534 can enter and read,
// unlike t.TempDir (mode 0700); it is removed when t ends.
func WorldDir(t testing.TB, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Connect opens a connection to the bus, closed when t ends.
func (b *Bus) Connect(t testing.TB) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(b.Address)
	if err != nil {
		t.Fatalf("connect to %s: %v", b.Address, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Fake is an in-memory Daemon that records every call it receives.
type Fake struct {
	mu        sync.Mutex
	calls     []string
	status    dbusapi.Status
	whitelist []netip.Prefix
	blocked   map[netip.Addr]string
	top       []dbusapi.TopEntry
	reloadErr error
	manual    map[netip.Prefix]bool
	// hub, when set, makes the fake a fleet hub with this status.
	hub   *dbusapi.HubStatus
	feeds []ledger.Record
}

// NewFake returns a Fake with the given status, blocked addresses (address →
// explanation) and top list.
func NewFake(st dbusapi.Status, blocked map[netip.Addr]string, top []dbusapi.TopEntry) *Fake {
	return &Fake{status: st, blocked: blocked, top: top}
}

// Calls returns the calls seen so far, e.g. "WhitelistAdd 192.0.2.0/24".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// SetStatus replaces the status the fake reports.
func (f *Fake) SetStatus(st dbusapi.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = st
}

// SetReloadErr makes the next Reload calls fail with err.
func (f *Fake) SetReloadErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloadErr = err
}

func (f *Fake) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

// Reload implements dbusapi.Daemon.
func (f *Fake) Reload(context.Context) error {
	f.record("Reload")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloadErr
}

// Status implements dbusapi.Daemon.
func (f *Fake) Status() dbusapi.Status {
	f.record("Status")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

// WhitelistAdd implements dbusapi.Daemon; adding an entry twice is
// ErrExists, as in the daemon.
func (f *Fake) WhitelistAdd(p netip.Prefix) error {
	f.record("WhitelistAdd " + p.String())
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Contains(f.whitelist, p) {
		return fmt.Errorf("%s is already whitelisted: %w", p, dbusapi.ErrExists)
	}
	f.whitelist = append(f.whitelist, p)
	return nil
}

// WhitelistRemove implements dbusapi.Daemon; a missing entry is ErrNotFound.
func (f *Fake) WhitelistRemove(p netip.Prefix) error {
	f.record("WhitelistRemove " + p.String())
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.Index(f.whitelist, p)
	if i < 0 {
		return fmt.Errorf("%s is not on the runtime whitelist: %w", p, dbusapi.ErrNotFound)
	}
	f.whitelist = slices.Delete(f.whitelist, i, i+1)
	return nil
}

// WhitelistList implements dbusapi.Daemon.
func (f *Fake) WhitelistList() []netip.Prefix {
	f.record("WhitelistList")
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.whitelist)
}

// Check implements dbusapi.Daemon.
func (f *Fake) Check(a netip.Addr) (bool, string) {
	f.record("Check " + a.String())
	f.mu.Lock()
	defer f.mu.Unlock()
	if why, ok := f.blocked[a]; ok {
		return true, why
	}
	return false, "not on any blocklist"
}

// Pull implements dbusapi.Daemon; it records the call.
func (f *Fake) Pull(_ context.Context, feed string) error {
	f.record("Pull " + feed)
	return nil
}

// Block implements dbusapi.Daemon; a second block of the same range is
// ErrExists.
func (f *Fake) Block(p netip.Prefix, d time.Duration, comment string) error {
	f.record(fmt.Sprintf("Block %s %s %q", p, d, comment))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.manual == nil {
		f.manual = map[netip.Prefix]bool{}
	}
	if f.manual[p] {
		return fmt.Errorf("%s is already blocked by hand: %w", p, dbusapi.ErrExists)
	}
	f.manual[p] = true
	return nil
}

// Unblock implements dbusapi.Daemon; a missing entry is ErrNotFound.
func (f *Fake) Unblock(p netip.Prefix) error {
	f.record("Unblock " + p.String())
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.manual[p] {
		return fmt.Errorf("%s is not blocked by hand: %w", p, dbusapi.ErrNotFound)
	}
	delete(f.manual, p)
	return nil
}

// TopBlocked implements dbusapi.Daemon.
func (f *Fake) TopBlocked(n int) []dbusapi.TopEntry {
	f.record(fmt.Sprintf("TopBlocked %d", n))
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.top[:min(n, len(f.top))])
}

// SetHub makes the fake a fleet hub with status h (nil: not a hub). The bus
// serves the fake from its own goroutines, hence the lock.
func (f *Fake) SetHub(h *dbusapi.HubStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hub = h
}

// SetFeeds sets what Feeds answers.
func (f *Fake) SetFeeds(recs []ledger.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.feeds = slices.Clone(recs)
}

// Feeds implements dbusapi.Daemon.
func (f *Fake) Feeds() []ledger.Record {
	f.record("Feeds")
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.feeds)
}

// HubStatus implements dbusapi.Daemon: SetHub makes it answer as a hub.
func (f *Fake) HubStatus() (dbusapi.HubStatus, error) {
	f.record("HubStatus")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hub == nil {
		return dbusapi.HubStatus{}, fmt.Errorf("hub status: %w", dbusapi.ErrNotFound)
	}
	return *f.hub, nil
}

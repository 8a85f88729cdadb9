package dbusapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// A deadline for waits that only fail when something is broken.
const patience = 20 * time.Second

var fixtureStatus = dbusapi.Status{
	State: dbusapi.StateRunning, Backend: "nftables", BlockedIPv4: 1000, BlockedIPv6: 20, Whitelisted: 3,
	LastPull: time.Unix(1700000000, 0), Started: time.Unix(1699990000, 0),
	Feeds: []dbusapi.FeedStatus{{Name: "sikkerapi", Entries: 1020, LastPull: time.Unix(1700000000, 0), Dropped: 5}},
}

var fixtureTop = []dbusapi.TopEntry{
	{Source: netip.MustParseAddr("198.51.100.7"), Port: 23, Transport: "tcp", Service: "telnet", Count: 47},
	{Source: netip.MustParseAddr("2001:db8::66"), Port: 22, Transport: "tcp", Service: "ssh", Count: 12},
	{Source: netip.MustParseAddr("192.0.2.200"), Port: 53, Transport: "udp", Service: "dns", Count: 3},
}

type env struct {
	bus    *dbustest.Bus
	fake   *dbustest.Fake
	server *dbusapi.Server
	client *dbusapi.Client
}

func setup(t *testing.T, p dbustest.Policy, opt dbusapi.Options) *env {
	t.Helper()
	bus := dbustest.StartBus(t, p)
	fake := dbustest.NewFake(fixtureStatus, map[netip.Addr]string{
		netip.MustParseAddr("198.51.100.7"): "listed by feed sikkerapi (198.51.100.0/24)",
	}, fixtureTop)
	if opt.Version == "" {
		opt.Version = "1.2.3-test"
	}
	srv, err := dbusapi.Export(bus.Connect(t), fake, opt)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return &env{bus: bus, fake: fake, server: srv, client: dbusapi.NewClient(bus.Connect(t))}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return c
}

func TestClientMethods(t *testing.T) {
	e := setup(t, dbustest.Shipped, dbusapi.Options{})
	c := ctx(t)

	st, err := e.client.Status(c)
	if err != nil {
		t.Fatal(err)
	}
	want := fixtureStatus
	want.Version = "1.2.3-test"
	if d := cmp.Diff(want, st); d != "" {
		t.Errorf("Status (-want +got):\n%s", d)
	}

	for _, in := range []string{"192.0.2.1", "2001:db8::/48", "198.51.100.0/24"} {
		if err := e.client.WhitelistAdd(c, in); err != nil {
			t.Fatalf("WhitelistAdd(%s): %v", in, err)
		}
	}
	if err := e.client.WhitelistRemove(c, "2001:db8::/48"); err != nil {
		t.Fatal(err)
	}
	err = e.client.WhitelistRemove(c, "203.0.113.0/24")
	if !errors.Is(err, dbusapi.ErrNotFound) || !strings.Contains(err.Error(), "203.0.113.0/24") {
		t.Errorf("removing a missing entry: %v, want NotFound naming it", err)
	}
	list, err := e.client.WhitelistList(c)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("198.51.100.0/24")}, list,
		cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("WhitelistList (-want +got):\n%s", d)
	}

	blocked, why, err := e.client.Check(c, "198.51.100.7")
	if err != nil || !blocked || why != "listed by feed sikkerapi (198.51.100.0/24)" {
		t.Errorf("Check(blocked) = %v, %q, %v", blocked, why, err)
	}
	blocked, why, err = e.client.Check(c, "::ffff:192.0.2.99")
	if err != nil || blocked || why != "not on any blocklist" {
		t.Errorf("Check(clean) = %v, %q, %v", blocked, why, err)
	}

	top, err := e.client.TopBlocked(c, 2)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(fixtureTop[:2], top, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("TopBlocked(2) (-want +got):\n%s", d)
	}
	if _, err := e.client.TopBlocked(c, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.TopBlocked(c, 1<<31); err != nil {
		t.Fatal(err)
	}

	if err := e.client.Reload(c); err != nil {
		t.Fatal(err)
	}
	e.fake.SetReloadErr(fmt.Errorf("first pull pending: %w", dbusapi.ErrNotReady))
	err = e.client.Reload(c)
	var de *dbusapi.Error
	if !errors.As(err, &de) || de.Name != dbusapi.ErrorNotReady || de.Message != "reload: first pull pending: sikkerguard is not ready yet" {
		t.Errorf("Reload when not ready: %#v", err)
	}
	e.fake.SetReloadErr(errors.New("feed sikkerapi: HTTP 500"))
	if err := e.client.Reload(c); !errors.Is(err, dbusapi.ErrFailed) || !strings.Contains(err.Error(), "HTTP 500") {
		t.Errorf("Reload failure: %v, want Failed with the cause", err)
	}

	wantCalls := []string{"Status", "WhitelistAdd 192.0.2.1/32", "WhitelistAdd 2001:db8::/48", "WhitelistAdd 198.51.100.0/24",
		"WhitelistRemove 2001:db8::/48", "WhitelistRemove 203.0.113.0/24", "WhitelistList",
		"Check 198.51.100.7", "Check 192.0.2.99", "TopBlocked 2", "TopBlocked 10", "TopBlocked 1000",
		"Reload", "Reload", "Reload"}
	if d := cmp.Diff(wantCalls, e.fake.Calls()); d != "" {
		t.Errorf("calls reaching the daemon (-want +got):\n%s", d)
	}
}

func TestBadInputNeverReachesDaemon(t *testing.T) {
	e := setup(t, dbustest.Shipped, dbusapi.Options{})
	c := ctx(t)
	tests := []struct {
		name string
		call func() error
		text string
	}{
		{"WhitelistAdd 300.1.1.1", func() error { return e.client.WhitelistAdd(c, "300.1.1.1") }, `invalid address "300.1.1.1"`},
		{"WhitelistAdd empty", func() error { return e.client.WhitelistAdd(c, "") }, `invalid address ""`},
		{"WhitelistRemove garbage", func() error { return e.client.WhitelistRemove(c, "not-an-ip") }, `invalid address "not-an-ip"`},
		{"WhitelistAdd zone", func() error { return e.client.WhitelistAdd(c, "fe80::1%eth0") }, "has an interface zone"},
		{"Check empty", func() error { _, _, err := e.client.Check(c, ""); return err }, `invalid address ""`},
		{"Check CIDR", func() error { _, _, err := e.client.Check(c, "192.0.2.0/24"); return err }, "single IP address"},
		{"Block garbage", func() error { return e.client.Block(c, "192.0.2.0/33", 0, "") }, `invalid address "192.0.2.0/33"`},
		{"Unblock empty", func() error { return e.client.Unblock(c, "") }, `invalid address ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var de *dbusapi.Error
			if !errors.As(err, &de) || de.Name != dbusapi.ErrorInvalidAddress || !strings.Contains(de.Message, tt.text) {
				t.Errorf("got %#v, want %s containing %q", err, dbusapi.ErrorInvalidAddress, tt.text)
			}
		})
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Errorf("the daemon saw %v", calls)
	}
}

func TestAllowUIDIsConsulted(t *testing.T) {
	// AllowUID runs on the bus connection's goroutines; the reply reaching
	// the client orders nothing the race detector can see.
	var mu sync.Mutex
	var asked []uint32
	e := setup(t, dbustest.Shipped, dbusapi.Options{AllowUID: func(uid uint32) bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, uid)
		return false
	}})
	c := ctx(t)
	for name, call := range map[string]func() error{
		"Reload":          func() error { return e.client.Reload(c) },
		"WhitelistAdd":    func() error { return e.client.WhitelistAdd(c, "192.0.2.1") },
		"WhitelistRemove": func() error { return e.client.WhitelistRemove(c, "192.0.2.1") },
		"Pull":            func() error { return e.client.Pull(c, "") },
		"Block":           func() error { return e.client.Block(c, "192.0.2.1", time.Hour, "x") },
		"Unblock":         func() error { return e.client.Unblock(c, "192.0.2.1") },
	} {
		err := call()
		var de *dbusapi.Error
		if !errors.As(err, &de) || de.Name != dbusapi.ErrorAccessDenied || !strings.Contains(de.Message, "uid 0 may not call "+name) {
			t.Errorf("%s: %#v, want AccessDenied", name, err)
		}
	}
	if _, err := e.client.Status(c); err != nil {
		t.Errorf("Status must not need authorisation: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(asked, []uint32{0, 0, 0, 0, 0, 0}) {
		t.Errorf("AllowUID saw %v, want the caller's uid 0 six times", asked)
	}
	if calls := e.fake.Calls(); !slices.Equal(calls, []string{"Status"}) {
		t.Errorf("denied calls reached the daemon: %v", calls)
	}
}

func TestProperties(t *testing.T) {
	e := setup(t, dbustest.Shipped, dbusapi.Options{Backend: "nftables", DryRun: true})
	c := ctx(t)
	got, err := e.client.Properties(c)
	if err != nil {
		t.Fatal(err)
	}
	want := dbusapi.Properties{Version: "1.2.3-test", State: dbusapi.StateStarting, Backend: "nftables", DryRun: true}
	if got != want {
		t.Errorf("initial properties = %+v, want %+v", got, want)
	}
	if err := e.server.SetState(dbusapi.StateRunning); err != nil {
		t.Fatal(err)
	}
	if err := e.server.SetState("bogus"); err == nil {
		t.Error("SetState accepted an undocumented state")
	}
	must(t, e.server.SetBlocked(5, 6))
	must(t, e.server.SetLastPull(time.Unix(1700000000, 0)))
	must(t, e.server.SetBackend("iptables"))
	must(t, e.server.SetDryRun(false))
	want = dbusapi.Properties{Version: "1.2.3-test", State: dbusapi.StateRunning, Backend: "iptables",
		BlockedIPv4: 5, BlockedIPv6: 6, LastPull: time.Unix(1700000000, 0)}
	if got, err = e.client.Properties(c); err != nil || got != want {
		t.Errorf("after updates = %+v, %v; want %+v", got, err, want)
	}
	if local := e.server.Properties(); local != want {
		t.Errorf("Server.Properties = %+v, want %+v", local, want)
	}
	v, err := e.client.Property(c, dbusapi.PropLastPull)
	if err != nil || v.Value() != int64(1700000000) {
		t.Errorf("Get LastPull = %v, %v", v, err)
	}
	if _, err := e.client.Property(c, "Nope"); err == nil || !strings.Contains(err.Error(), "PropertyNotFound") {
		t.Errorf("Get Nope: %v, want PropertyNotFound", err)
	}
	// Properties are read-only to peers.
	call := e.client.Conn().Object(dbusapi.BusName, dbusapi.Path).CallWithContext(c,
		"org.freedesktop.DBus.Properties.Set", 0, dbusapi.Interface, dbusapi.PropState, dbus.MakeVariant("failed"))
	if call.Err == nil {
		t.Error("Set State succeeded")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSignals(t *testing.T) {
	e := setup(t, dbustest.Shipped, dbusapi.Options{})
	conn := e.client.Conn()
	must(t, conn.AddMatchSignal(dbus.WithMatchObjectPath(dbusapi.Path), dbus.WithMatchInterface(dbusapi.Interface)))
	must(t, conn.AddMatchSignal(dbus.WithMatchObjectPath(dbusapi.Path), dbus.WithMatchInterface("org.freedesktop.DBus.Properties"),
		dbus.WithMatchMember("PropertiesChanged")))
	ch := make(chan *dbus.Signal, 32)
	conn.Signal(ch)
	defer conn.RemoveSignal(ch)

	must(t, e.server.SetState(dbusapi.StateRunning))
	must(t, e.server.SetState(dbusapi.StateRunning)) // unchanged: no signal
	must(t, e.server.BlocklistUpdated(1000, 20))
	must(t, e.server.ApplyFailed("list grew 3.1x, limit 2.0x"))
	must(t, e.server.RolledBack("gateway 192.0.2.1 unreachable"))
	must(t, e.server.RulesRestored("table inet sikkerguard deleted by nft (pid 42)"))

	want := []string{
		"PropertiesChanged State=running",
		"PropertiesChanged BlockedIPv4=1000",
		"PropertiesChanged BlockedIPv6=20",
		"BlocklistUpdated [1000 20]",
		"ApplyFailed [list grew 3.1x, limit 2.0x]",
		"RolledBack [gateway 192.0.2.1 unreachable]",
		"RulesRestored [table inet sikkerguard deleted by nft (pid 42)]",
	}
	var got []string
	timeout := time.After(patience)
	for len(got) < len(want) {
		select {
		case s := <-ch:
			if s.Path != dbusapi.Path {
				continue
			}
			member := s.Name[strings.LastIndex(s.Name, ".")+1:]
			if member == "PropertiesChanged" {
				changed := s.Body[1].(map[string]dbus.Variant)
				for k, v := range changed {
					got = append(got, fmt.Sprintf("PropertiesChanged %s=%v", k, v.Value()))
				}
				continue
			}
			got = append(got, fmt.Sprintf("%s %v", member, s.Body))
		case <-timeout:
			t.Fatalf("signals so far %q, want %q", got, want)
		}
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("signals (-want +got):\n%s", d)
	}
}

func TestNotRunning(t *testing.T) {
	bus := dbustest.StartBus(t, dbustest.Shipped)
	client := dbusapi.NewClient(bus.Connect(t))
	_, err := client.Status(ctx(t))
	if !errors.Is(err, dbusapi.ErrNotRunning) || err.Error() != "sikkerguard is not running (com.sikkerapi.SikkerGuard1 not on the bus)" {
		t.Errorf("Status without a daemon: %v", err)
	}
}

func TestNameIsExclusive(t *testing.T) {
	e := setup(t, dbustest.Shipped, dbusapi.Options{})
	_, err := dbusapi.Export(e.bus.Connect(t), e.fake, dbusapi.Options{})
	if err == nil || !strings.Contains(err.Error(), "another sikkerguard") {
		t.Fatalf("second Export: %v, want a refusal", err)
	}
	// After Close the name is free again.
	must(t, e.server.Close())
	srv, err := dbusapi.Export(e.bus.Connect(t), e.fake, dbusapi.Options{})
	if err != nil {
		t.Fatalf("Export after Close: %v", err)
	}
	must(t, srv.Close())
}

func TestIntrospectionOnTheBus(t *testing.T) {
	e := setup(t, dbustest.Shipped, dbusapi.Options{})
	var live string
	call := e.client.Conn().Object(dbusapi.BusName, dbusapi.Path).CallWithContext(ctx(t), "org.freedesktop.DBus.Introspectable.Introspect", 0)
	must(t, call.Store(&live))
	file, err := os.ReadFile(filepath.Join("..", "..", "dbus", dbusapi.BusName+".xml"))
	must(t, err)
	if d := cmp.Diff(string(file), live); d != "" {
		t.Errorf("exported introspection differs from dbus/%s.xml (-file +bus):\n%s", dbusapi.BusName, d)
	}
}

// busctl runs busctl against the bus, optionally as uid 65534 via setpriv.
func busctl(t *testing.T, bus *dbustest.Bus, nobody bool, args ...string) (string, error) {
	t.Helper()
	testnet.RequireTools(t, "busctl")
	argv := append([]string{"busctl", "--address=" + bus.Address, "--json=short"}, args...)
	if nobody {
		testnet.RequireTools(t, "setpriv")
		argv = append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, argv...)
	}
	cmd := exec.CommandContext(ctx(t), argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func call(args ...string) []string {
	return append([]string{"call", dbusapi.BusName, string(dbusapi.Path), dbusapi.Interface}, args...)
}

func TestBusctl(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the API's mutating methods are root-only")
	}
	e := setup(t, dbustest.Shipped, dbusapi.Options{Backend: "nftables"})
	tests := []struct {
		args []string
		want string // JSON reply, or a substring of the error
		fail bool
	}{
		{call("Check", "s", "198.51.100.7"), `{"type":"bs","data":[true,"listed by feed sikkerapi (198.51.100.0/24)"]}`, false},
		{call("WhitelistAdd", "s", "192.0.2.0/24"), ``, false},
		{call("WhitelistList"), `{"type":"as","data":[["192.0.2.0/24"]]}`, false},
		{call("WhitelistRemove", "s", "192.0.2.0/24"), ``, false},
		{call("TopBlocked", "u", "1"), `{"type":"a(sqssu)","data":[[["198.51.100.7",23,"tcp","telnet",47]]]}`, false},
		{call("Reload"), ``, false},
		{call("WhitelistAdd", "s", "300.1.1.1"), `invalid address "300.1.1.1"`, true},
		{call("Check", "s", ""), `invalid address ""`, true},
		{[]string{"get-property", dbusapi.BusName, string(dbusapi.Path), dbusapi.Interface, "Backend"}, `{"type":"s","data":"nftables"}`, false},
		{[]string{"get-property", dbusapi.BusName, string(dbusapi.Path), dbusapi.Interface, "LastPull"}, `{"type":"x","data":0}`, false},
		{[]string{"get-property", dbusapi.BusName, string(dbusapi.Path), dbusapi.Interface, "State"}, `{"type":"s","data":"starting"}`, false},
		{[]string{"get-property", dbusapi.BusName, string(dbusapi.Path), dbusapi.Interface, "Version"}, `{"type":"s","data":"1.2.3-test"}`, false},
		{[]string{"get-property", dbusapi.BusName, string(dbusapi.Path), dbusapi.Interface, "BlockedIPv4"}, `{"type":"u","data":0}`, false},
		{[]string{"get-property", dbusapi.BusName, string(dbusapi.Path), dbusapi.Interface, "BlockedIPv6"}, `{"type":"u","data":0}`, false},
		{[]string{"get-property", dbusapi.BusName, string(dbusapi.Path), dbusapi.Interface, "DryRun"}, `{"type":"b","data":false}`, false},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[min(len(tt.args), 4)-1:], " "), func(t *testing.T) {
			out, err := busctl(t, e.bus, false, tt.args...)
			if tt.fail {
				if err == nil || !strings.Contains(out, tt.want) {
					t.Errorf("busctl %v = %q, %v; want failure containing %q", tt.args, out, err, tt.want)
				}
				return
			}
			if err != nil || out != tt.want {
				t.Errorf("busctl %v = %q, %v; want %q", tt.args, out, err, tt.want)
			}
		})
	}

	out, err := busctl(t, e.bus, false, call("Status")...)
	must(t, err)
	var reply struct {
		Type string
		Data []map[string]struct {
			Type string
			Data any
		}
	}
	must(t, json.Unmarshal([]byte(out), &reply))
	if reply.Type != "a{sv}" || len(reply.Data) != 1 || reply.Data[0]["State"].Data != "running" ||
		reply.Data[0]["BlockedIPv4"].Type != "u" || reply.Data[0]["LastPull"].Type != "x" || reply.Data[0]["Feeds"].Type != "a(suxst)" {
		t.Errorf("busctl Status = %s", out)
	}

	// busctl introspect parses the XML; every member must be listed.
	raw, err := exec.CommandContext(ctx(t), "busctl", "--address="+e.bus.Address, "introspect", dbusapi.BusName, string(dbusapi.Path), dbusapi.Interface).CombinedOutput()
	must(t, err)
	out = string(raw)
	for _, m := range []string{".Reload", ".Status", ".WhitelistAdd", ".WhitelistRemove", ".WhitelistList", ".Check", ".TopBlocked",
		".BlocklistUpdated", ".ApplyFailed", ".RolledBack", ".RulesRestored", ".Version", ".State", ".Backend", ".BlockedIPv4", ".BlockedIPv6", ".LastPull", ".DryRun"} {
		if !strings.Contains(out, m+" ") {
			t.Errorf("busctl introspect lacks %s:\n%s", m, out)
		}
	}
}

// As uid 65534 the shipped policy lets reads through and makes the bus
// refuse the mutating methods before they reach the daemon.
func TestUnprivilegedCallerShippedPolicy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to uid 65534")
	}
	e := setup(t, dbustest.Shipped, dbusapi.Options{})
	for _, args := range [][]string{call("Reload"), call("WhitelistAdd", "s", "192.0.2.1"), call("WhitelistRemove", "s", "192.0.2.1"),
		call("Pull", "s", ""), call("Block", "sts", "192.0.2.1", "0", ""), call("Unblock", "s", "192.0.2.1"),
		{"call", dbusapi.BusName, string(dbusapi.Path), "org.freedesktop.DBus.Properties", "Set", "ssv", dbusapi.Interface, "DryRun", "b", "true"}} {
		out, err := busctl(t, e.bus, true, args...)
		if err == nil || !strings.Contains(out, "Access denied") && !strings.Contains(out, "denied") {
			t.Errorf("nobody: busctl %v = %q, %v; want access denied", args, out, err)
		}
	}
	for _, args := range [][]string{call("Status"), call("Check", "s", "192.0.2.1"), call("WhitelistList"), call("TopBlocked", "u", "3"), call("Feeds"),
		{"get-property", dbusapi.BusName, string(dbusapi.Path), dbusapi.Interface, "State"},
		{"call", dbusapi.BusName, string(dbusapi.Path), "org.freedesktop.DBus.Peer", "Ping"},
		{"introspect", dbusapi.BusName, string(dbusapi.Path)}} {
		if out, err := busctl(t, e.bus, true, args...); err != nil {
			t.Errorf("nobody: busctl %v = %q, %v; want success", args, out, err)
		}
	}
	// HubStatus is a read too; without a hub the daemon answers NotFound,
	// which must come from the daemon and not from the bus policy.
	if out, _ := busctl(t, e.bus, true, call("HubStatus")...); strings.Contains(out, "denied") {
		t.Errorf("nobody: busctl HubStatus = %q; the policy must let it through", out)
	}
	for _, c := range e.fake.Calls() {
		if strings.HasPrefix(c, "Reload") || strings.HasPrefix(c, "Pull") || strings.HasPrefix(c, "Block") ||
			strings.HasPrefix(c, "Unblock") || strings.HasPrefix(c, "Whitelist") && c != "WhitelistList" {
			t.Errorf("a refused call reached the daemon: %s", c)
		}
	}
}

// Block checks its duration and comment before asking who calls; a second
// block and a second whitelist add of one range are ErrExists.
func TestBlockArguments(t *testing.T) {
	e := setup(t, dbustest.Shipped, dbusapi.Options{})
	c := ctx(t)
	for _, tc := range []struct {
		d       time.Duration
		comment string
		want    string
	}{
		{11 * 365 * 24 * time.Hour, "", "longer than"},
		{0, strings.Repeat("x", dbusapi.MaxCommentLen+1), "longer than 200 bytes"},
		{0, "two\nlines", "one line of printable text"},
	} {
		err := e.client.Block(c, "192.0.2.1", tc.d, tc.comment)
		if !errors.Is(err, dbusapi.ErrInvalidArgs) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Block(%v, %q) = %v, want InvalidArgs %q", tc.d, tc.comment, err, tc.want)
		}
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("bad arguments reached the daemon: %v", calls)
	}
	must(t, e.client.Block(c, "192.0.2.9/32", 90*time.Minute, "scanner"))
	if err := e.client.Block(c, "192.0.2.9", 0, ""); !errors.Is(err, dbusapi.ErrExists) {
		t.Errorf("second Block = %v, want Exists", err)
	}
	must(t, e.client.WhitelistAdd(c, "198.51.100.0/24"))
	if err := e.client.WhitelistAdd(c, "198.51.100.0/24"); !errors.Is(err, dbusapi.ErrExists) {
		t.Errorf("second WhitelistAdd = %v, want Exists", err)
	}
	must(t, e.client.Unblock(c, "192.0.2.9"))
	if err := e.client.Unblock(c, "192.0.2.9"); !errors.Is(err, dbusapi.ErrNotFound) {
		t.Errorf("second Unblock = %v, want NotFound", err)
	}
	must(t, e.client.Pull(c, "sikkerapi"))
	if calls := e.fake.Calls(); !slices.Contains(calls, `Block 192.0.2.9/32 1h30m0s "scanner"`) || !slices.Contains(calls, "Pull sikkerapi") {
		t.Errorf("calls %v", calls)
	}
}

// Behind a permissive bus the server's own uid check still refuses.
func TestUnprivilegedCallerOpenBus(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to uid 65534")
	}
	e := setup(t, dbustest.Open, dbusapi.Options{})
	for _, args := range [][]string{call("Reload"), call("WhitelistAdd", "s", "192.0.2.1"), call("WhitelistRemove", "s", "192.0.2.1")} {
		out, err := busctl(t, e.bus, true, args...)
		if err == nil || !strings.Contains(out, "access denied: run as root (uid 65534 may not call "+args[4]+")") {
			t.Errorf("nobody: busctl %v = %q, %v; want the server's AccessDenied", args, out, err)
		}
	}
	if out, err := busctl(t, e.bus, true, call("Check", "s", "198.51.100.7")...); err != nil || !strings.Contains(out, "true") {
		t.Errorf("nobody Check = %q, %v", out, err)
	}
	if calls := e.fake.Calls(); !slices.Equal(calls, []string{"Check 198.51.100.7"}) {
		t.Errorf("daemon saw %v", calls)
	}
}

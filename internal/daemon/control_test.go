package daemon

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/mock"
	"github.com/sikkerapi/sikkerguard/internal/safety"
)

// The control API end to end over a private system-type bus with the
// shipped policy: the daemon owns the name and the typed client calls it.

func startWithBus(t *testing.T, l *lab) (*Daemon, *dbusapi.Client, func() error) {
	t.Helper()
	bus := dbustest.StartBus(t, dbustest.Shipped)
	d, stop := l.start(func(o *Options) { o.Bus = bus.Connect(t) })
	l.note.waitCount(t, "READY=1", 1)
	c := dbusapi.NewClient(bus.Connect(t))
	return d, c, stop
}

func TestControlStatusAndCheck(t *testing.T) {
	l := newLab(t, "203.0.113.0/24\n198.51.100.7\n")
	l.cfg.Whitelist = append(l.cfg.Whitelist, netip.MustParsePrefix("203.0.113.200/32"))
	l.never = safety.NeverBlock{Gateways: []netip.Addr{netip.MustParseAddr("198.51.100.1")}}
	_, c, _ := startWithBus(t, l)
	ctx := context.Background()

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("%v\n%s", err, l.logs.String())
	}
	if st.State != dbusapi.StateRunning || st.Backend != "nftables" || st.BlockedIPv4 != 256 || st.LastPull.IsZero() {
		t.Errorf("status = %+v", st)
	}
	if len(st.Feeds) != 1 || st.Feeds[0].Name != "sikkerapi" || st.Feeds[0].Entries != 2 {
		t.Errorf("feeds = %+v", st.Feeds)
	}
	props, err := c.Properties(ctx)
	if err != nil || props.State != dbusapi.StateRunning || props.BlockedIPv4 != 256 {
		t.Errorf("properties = %+v, %v", props, err)
	}

	for _, tc := range []struct {
		ip      string
		blocked bool
		want    string
	}{
		{"203.0.113.9", true, "listed by sikkerapi (203.0.113.0/24, enforce); sikkerctl whitelist add 203.0.113.9 lets it through"},
		{"203.0.113.200", false, "whitelist entry 203.0.113.200/32 in the config file"},
		{"198.51.100.1", false, "it is a default gateway (safety whitelist)"},
		{"192.0.2.5", false, "not listed by any feed"},
		{"127.0.0.1", false, "loopback"},
	} {
		blocked, why, err := c.Check(ctx, tc.ip)
		// The caller names the address; the explanation does not repeat it.
		if err != nil || blocked != tc.blocked || !strings.Contains(why, tc.want) || strings.HasPrefix(why, tc.ip) {
			t.Errorf("Check(%s) = %v, %q, %v; want %v and %q", tc.ip, blocked, why, err, tc.blocked, tc.want)
		}
	}
	if _, _, err := c.Check(ctx, ""); !errors.Is(err, dbusapi.ErrInvalidAddress) {
		t.Errorf("Check(\"\") = %v, want InvalidAddress", err)
	}
}

func TestControlWhitelistOpensAtOnceAndPersists(t *testing.T) {
	l := newLab(t, "203.0.113.0/24\n")
	_, c, stop := startWithBus(t, l)
	ctx := context.Background()

	sigs := make(chan *dbus.Signal, 16)
	sc := dbusapi.NewClient(c.Conn())
	sc.Conn().Signal(sigs)
	if err := sc.Conn().AddMatchSignal(dbus.WithMatchInterface(dbusapi.Interface)); err != nil {
		t.Fatal(err)
	}

	if !l.fw.blocks("203.0.113.9") {
		t.Fatal("not blocked before the whitelist change")
	}
	if err := c.WhitelistAdd(ctx, "203.0.113.9"); err != nil {
		t.Fatal(err)
	}
	if err := c.WhitelistAdd(ctx, "203.0.113.9/32"); !errors.Is(err, dbusapi.ErrExists) || !strings.Contains(err.Error(), "already whitelisted") {
		t.Errorf("second WhitelistAdd = %v, want Exists", err)
	}
	// The call returns once the change is in the firewall.
	if l.fw.blocks("203.0.113.9") || !l.fw.blocks("203.0.113.10") {
		t.Error("WhitelistAdd did not open exactly that address at once")
	}
	if got, _ := c.WhitelistList(ctx); len(got) != 1 || got[0].String() != "203.0.113.9/32" {
		t.Errorf("WhitelistList = %v", got)
	}
	timeout := time.After(5 * time.Second)
	for got := false; !got; {
		select {
		case s := <-sigs:
			got = s.Name == dbusapi.Interface+"."+dbusapi.SignalBlocklistUpdated
		case <-timeout:
			t.Fatal("no BlocklistUpdated signal after a whitelist change")
		}
	}

	for _, bad := range []string{"300.1.1.1", "0.0.0.0/1", "2000::/3", "nonsense"} {
		if err := c.WhitelistAdd(ctx, bad); !errors.Is(err, dbusapi.ErrInvalidAddress) {
			t.Errorf("WhitelistAdd(%q) = %v, want InvalidAddress", bad, err)
		}
	}
	if err := c.WhitelistRemove(ctx, "192.0.2.1"); !errors.Is(err, dbusapi.ErrNotFound) {
		t.Errorf("WhitelistRemove(unknown) = %v, want NotFound", err)
	}
	if got, _ := c.WhitelistList(ctx); len(got) != 1 {
		t.Errorf("bad input changed the whitelist: %v", got)
	}

	// A restart keeps the run-time whitelist.
	stop()
	l.fw = &fakeFirewall{}
	l.note = listenNotify(t)
	_, c2, _ := startWithBus(t, l)
	if l.fw.blocks("203.0.113.9") || !l.fw.blocks("203.0.113.10") {
		t.Error("the run-time whitelist did not survive a restart")
	}
	if err := c2.WhitelistRemove(ctx, "203.0.113.9"); err != nil {
		t.Fatal(err)
	}
	if !l.fw.blocks("203.0.113.9") {
		t.Error("WhitelistRemove did not block the address again")
	}
}

func TestControlReloadReturnsWhenApplied(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	_, c, _ := startWithBus(t, l)
	es, _ := mock.ParseList(strings.NewReader("203.0.113.7\n203.0.113.8\n"))
	l.srv.SetEntries(es)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A reload of an unchanged configuration pulls nothing: the list the
	// API holds now is not the daemon's yet.
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if l.fw.blocks("203.0.113.8") || l.srv.RequestCount("/v1/key/blacklist") != 1 {
		t.Errorf("a reload without changes pulled (%d requests)", l.srv.RequestCount("/v1/key/blacklist"))
	}
	if err := c.Pull(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if !l.fw.blocks("203.0.113.8") {
		t.Error("Pull returned before the new list was applied")
	}
	if err := c.Pull(ctx, "nosuchfeed"); !errors.Is(err, dbusapi.ErrNotFound) || !strings.Contains(err.Error(), "feeds: sikkerapi") {
		t.Errorf("Pull of an unknown feed = %v", err)
	}

	// A pull that fails says so; the last good list stays.
	l.srv.SetFault(mock.Fault{Mode: mock.Fault500})
	if err := c.Pull(ctx, "sikkerapi"); !errors.Is(err, dbusapi.ErrFailed) || !strings.Contains(err.Error(), "500") {
		t.Errorf("Pull with a failing feed = %v", err)
	}
	st, _ := c.Status(ctx)
	if st.State != dbusapi.StateDegraded || !strings.Contains(st.LastError, "500") {
		t.Errorf("status after a failed reload = %s %q", st.State, st.LastError)
	}
}

func TestSecondDaemonCannotTakeTheBusName(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	bus := dbustest.StartBus(t, dbustest.Shipped)
	l.start(func(o *Options) { o.Bus = bus.Connect(t) })
	l.note.waitCount(t, "READY=1", 1)

	l2 := newLab(t, "203.0.113.7\n")
	d2, err := New(Options{Config: l2.cfg, Key: config.NewSecret(key),
		NewFirewall: func(config.Config) (firewall.Firewall, error) { return l2.fw, nil },
		Discover:    func(context.Context, config.Config) (safety.NeverBlock, error) { return safety.NeverBlock{}, nil },
		Bus:         bus.Connect(t), Notify: func(string) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d2.Run(ctx); err == nil || !strings.Contains(err.Error(), "d-bus") {
		t.Errorf("second daemon: %v, want a d-bus error", err)
	}
}

// awaitSignal waits for the named API signal and returns its body.
func awaitSignal(t *testing.T, sigs chan *dbus.Signal, name string) []any {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case s := <-sigs:
			if s.Name == dbusapi.Interface+"."+name {
				return s.Body
			}
		case <-timeout:
			t.Fatalf("no %s signal", name)
		}
	}
}

func TestControlSignalsOnFailureAndRollback(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	l.cfg.Safety.VerifyConnectivity = true
	l.cfg.Safety.AutoWhitelist = false
	l.never = safety.NeverBlock{API: []netip.Addr{netip.MustParseAddr("203.0.113.50")}, APIPort: 443}
	bus := dbustest.StartBus(t, dbustest.Shipped)
	l.start(func(o *Options) {
		o.Bus = bus.Connect(t)
		o.Prober = &safety.Prober{Dialer: firewallDialer{l.fw}, Timeout: 50 * time.Millisecond}
	})
	l.note.waitCount(t, "READY=1", 1)
	c := dbusapi.NewClient(bus.Connect(t))
	sigs := make(chan *dbus.Signal, 64)
	c.Conn().Signal(sigs)
	if err := c.Conn().AddMatchSignal(dbus.WithMatchInterface(dbusapi.Interface)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// A list that cuts the host off the API: RolledBack.
	es, _ := mock.ParseList(strings.NewReader("203.0.113.7\n203.0.113.50\n"))
	l.srv.SetEntries(es)
	if err := c.Pull(ctx, ""); err == nil {
		t.Error("Pull of a list that was rolled back reported success")
	}
	if body := awaitSignal(t, sigs, dbusapi.SignalRolledBack); len(body) != 1 || !strings.Contains(body[0].(string), "rolled back") {
		t.Errorf("RolledBack body = %v", body)
	}

	// The kernel refusing a change: ApplyFailed.
	l.fw.mu.Lock()
	l.fw.fail = errors.New("netlink: operation not permitted")
	l.fw.mu.Unlock()
	es, _ = mock.ParseList(strings.NewReader("203.0.113.7\n203.0.113.8\n"))
	l.srv.SetEntries(es)
	c.Pull(ctx, "")
	if body := awaitSignal(t, sigs, dbusapi.SignalApplyFailed); len(body) != 1 || !strings.Contains(body[0].(string), "not permitted") {
		t.Errorf("ApplyFailed body = %v", body)
	}

	// And a good change: BlocklistUpdated with the new counts.
	l.fw.mu.Lock()
	l.fw.fail = nil
	l.fw.mu.Unlock()
	if err := c.Pull(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if body := awaitSignal(t, sigs, dbusapi.SignalBlocklistUpdated); len(body) != 2 || body[0] != uint32(2) {
		t.Errorf("BlocklistUpdated body = %v, want [2 0]", body)
	}
}

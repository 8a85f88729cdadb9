package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/mock"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// Fleet mode end to end: a hub and three hosts, each a real sikkerguard in
// its own namespace, joined through a router namespace that also holds the
// mock SikkerAPI and the attacker.

var (
	fleetAttacker = netip.MustParseAddr("198.51.100.66")
	fleetAPI      = netip.MustParseAddr("198.51.100.80")
)

// fleetNode is one daemon's namespace: its address and the router's on
// their /28.
type fleetNode struct {
	ns      *testnet.NS
	addr    netip.Addr
	gateway netip.Addr
	dir     string
	cfgPath string
}

type fleetLab struct {
	t      *testing.T
	bin    string
	router *testnet.NS
	srv    *mock.Server
	hub    fleetNode
	hosts  []fleetNode
	dir    string
}

const fleetToken = "0123456789abcdef0123456789abcde"

func hostToken(i int) string { return fmt.Sprintf("%s%d", fleetToken, i) }

func newFleetLab(t *testing.T) *fleetLab {
	testnet.RequireRoot(t)
	l := &fleetLab{t: t, bin: buildBinary(t), dir: t.TempDir(), router: testnet.New(t, "fr")}
	l.router.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
	l.router.AddAddr("lo", netip.PrefixFrom(fleetAttacker, 32), netip.PrefixFrom(fleetAPI, 32))
	node := func(i int, name string) fleetNode {
		gw := netip.AddrFrom4([4]byte{192, 0, 2, byte(16*i + 1)})
		a := gw.Next()
		n := fleetNode{ns: testnet.New(t, name), addr: a, gateway: gw, dir: filepath.Join(l.dir, name)}
		testnet.Veth(t, l.router, fmt.Sprintf("r%d", i), []netip.Prefix{netip.PrefixFrom(gw, 28)},
			n.ns, "eth0", []netip.Prefix{netip.PrefixFrom(a, 28)})
		n.ns.MustRun("ip", "route", "add", "default", "via", gw.String())
		n.ns.WaitReach(t, a, netip.AddrPortFrom(gw, 9))
		if err := os.MkdirAll(n.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		etc := filepath.Join("/etc/netns", n.ns.Name)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(etc) })
		// No resolver: the fleet works on addresses alone.
		if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		n.cfgPath = filepath.Join(n.dir, "sikkerguard.yaml")
		return n
	}
	l.hub = node(0, "fh")
	for i := 1; i <= 3; i++ {
		l.hosts = append(l.hosts, node(i, fmt.Sprintf("f%d", i)))
	}

	entries, err := mock.ParseList(strings.NewReader(fleetAttacker.String() + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	l.srv, err = mock.New(mock.Options{Key: testKey, Entries: entries, BlacklistQuota: -1, LabAddresses: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.router.Do(func() error { return l.srv.Start(netip.AddrPortFrom(fleetAPI, 8580).String()) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.srv.Close() })

	hubURL := "http://" + netip.AddrPortFrom(l.hub.addr, 9548).String()
	l.writeHubList("203.0.113.7")
	l.writeTokens(1, 2, 3)
	l.write(l.hub.cfgPath, "api:\n  url: http://"+fleetAPI.String()+":8580\n  key_file: "+filepath.Join(l.dir, "absent.key")+"\n"+
		"feeds:\n  - {name: local, file: "+filepath.Join(l.hub.dir, "list.txt")+", interval: 1m}\n"+
		"safety:\n  strip_private: false\n"+
		"report:\n  interval: 1m\n"+
		"health:\n  listen: 127.0.0.1:9547\n"+
		"hub:\n  listen: "+netip.AddrPortFrom(l.hub.addr, 9548).String()+"\n  tokens_file: "+filepath.Join(l.hub.dir, "hub-tokens")+"\n"+
		"state_dir: "+filepath.Join(l.hub.dir, "state")+"\n", 0o644)
	for i, h := range l.hosts {
		tok := filepath.Join(h.dir, "hub.token")
		l.write(tok, hostToken(i+1)+"\n", 0o600)
		// No SikkerAPI key at all: the hub is the host's only source.
		l.write(h.cfgPath, "api:\n  url: http://"+fleetAPI.String()+":8580\n  key_file: "+filepath.Join(l.dir, "absent.key")+"\n"+
			"feeds:\n  - {name: hub, url: "+hubURL+"/v1/blocklist, token_file: "+tok+", interval: 1m}\n"+
			"safety:\n  strip_private: false\n"+
			"report:\n  interval: 1m\n  hub: "+hubURL+"/v1/reports\n"+
			"state_dir: "+filepath.Join(h.dir, "state")+"\n", 0o644)
	}
	return l
}

func (l *fleetLab) write(path, text string, mode os.FileMode) {
	l.t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		l.t.Fatal(err)
	}
}

func (l *fleetLab) writeHubList(entries ...string) {
	l.write(filepath.Join(l.hub.dir, "list.txt"), strings.Join(entries, "\n")+"\n", 0o644)
}

func (l *fleetLab) writeTokens(hosts ...int) {
	var b strings.Builder
	b.WriteString("# NAME TOKEN\n")
	for _, i := range hosts {
		fmt.Fprintf(&b, "host%d %s\n", i, hostToken(i))
	}
	l.write(filepath.Join(l.hub.dir, "hub-tokens"), b.String(), 0o600)
}

// start runs a daemon in n's namespace, on a bus of its own (a pull on
// request goes through D-Bus); withKey gives it the SikkerAPI key.
func (l *fleetLab) start(n fleetNode, withKey bool) (*service, *dbusapi.Client) {
	l.t.Helper()
	sl := &svcLab{probes: probes{t: l.t}, bin: l.bin, host: n.ns, cfgPath: n.cfgPath}
	c := sl.withBus()
	if !withKey {
		// An empty SIKKER_API_KEY set after the lab's own means no key.
		sl.env = append(sl.env, "SIKKER_API_KEY=")
	}
	s := sl.start()
	s.await(l.t, "READY=1")
	return s, c
}

func (s *service) reload(t *testing.T) {
	t.Helper()
	s.signal(t, syscall.SIGHUP)
	s.await(t, "RELOADING=1")
	s.await(t, "READY=1")
}

func (s *service) stopNow(t *testing.T) {
	t.Helper()
	s.signal(t, syscall.SIGTERM)
	if err := s.wait(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.stderr.String())
	}
}

// awaitNFLOG waits until the daemon in n's namespace has bound the NFLOG
// group (drops logged before that are lost) and, with drained, until the
// kernel holds no message for it.
func (n fleetNode) awaitNFLOG(t *testing.T, group int, drained bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := n.ns.Run("cat", "/proc/net/netfilter/nfnetlink_log")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[0] == strconv.Itoa(group) && (!drained || f[2] == "0") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("NFLOG group %d not bound in %s:\n%s", group, n.ns.Name, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n fleetNode) table() string {
	out, _ := n.ns.Run("nft", "list", "table", "inet", "sikkerguard")
	return out
}

// nsGet sends one GET from inside ns, with a bearer token when one is
// given, and returns the status and body.
func nsGet(t *testing.T, ns *testnet.NS, at netip.AddrPort, path, token string) (int, string) {
	t.Helper()
	var conn net.Conn
	err := ns.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", at.String(), 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + at.String() + "\r\nConnection: close\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	fmt.Fprint(conn, req+"\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// hubGet asks the hub for its list from the router namespace.
func (l *fleetLab) hubGet(token string) int {
	l.t.Helper()
	code, _ := nsGet(l.t, l.router, netip.AddrPortFrom(l.hub.addr, 9548), "/v1/blocklist", token)
	return code
}

func TestFleetHubAndThreeHosts(t *testing.T) {
	l := newFleetLab(t)
	hub, hubBus := l.start(l.hub, true)
	hosts := make([]*service, len(l.hosts))
	buses := make([]*dbusapi.Client, len(l.hosts))
	for i, h := range l.hosts {
		hosts[i], buses[i] = l.start(h, false)
	}

	// The hosts block what the hub's feeds list: SikkerAPI's attacker and
	// the hub's local file.
	for i, h := range l.hosts {
		tab := h.table()
		if !strings.Contains(tab, fleetAttacker.String()) || !strings.Contains(tab, "203.0.113.7") {
			t.Fatalf("host%d does not block the hub's list:\n%s\n%s", i+1, tab, hosts[i].stderr.String())
		}
	}

	// The attacker hits every host, once each host reads its drop log;
	// the drops go to the hub as events.
	for _, h := range l.hosts {
		h.awaitNFLOG(t, 7, false)
		snd := l.router.DialUDP(fleetAttacker, netip.AddrPortFrom(h.addr, 23))
		for range 10 {
			if err := snd.Send([]byte("knock")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The kernel batches log messages for up to a second.
	for _, h := range l.hosts {
		h.awaitNFLOG(t, 7, true)
	}
	// A change at the hub reaches every host on its next pull.
	l.writeHubList("203.0.113.7", "203.0.113.8")
	if err := pull(t, hubBus); err != nil {
		t.Fatal(err)
	}
	for i, h := range l.hosts {
		if err := pull(t, buses[i]); err != nil {
			t.Fatalf("host%d: %v", i+1, err)
		}
		if !strings.Contains(h.table(), "203.0.113.8") {
			t.Fatalf("host%d did not take the hub's new list:\n%s", i+1, hosts[i].stderr.String())
		}
	}

	// host3 stops (its drop events go to the hub on the way out) and is
	// revoked; back up, it gets 401 and keeps its last good list.
	hosts[2].stopNow(t)
	first3 := hosts[2]
	if code := l.hubGet(hostToken(3)); code != http.StatusOK {
		t.Fatalf("host3's token before revocation: %d", code)
	}
	l.writeTokens(1, 2)
	l.writeHubList("203.0.113.7", "203.0.113.8", "203.0.113.9")
	hub.reload(t)
	if code := l.hubGet(hostToken(3)); code != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d, want 401", code)
	}
	if code := l.hubGet(""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", code)
	}
	if err := pull(t, hubBus); err != nil {
		t.Fatal(err)
	}
	hosts[2], buses[2] = l.start(l.hosts[2], false)
	if err := pull(t, buses[2]); err == nil || !strings.Contains(err.Error()+hosts[2].stderr.String(), "401") {
		t.Fatalf("revoked host3 pulled: err %v\n%s", err, hosts[2].stderr.String())
	}
	tab := l.hosts[2].table()
	if !strings.Contains(tab, "203.0.113.8") || !strings.Contains(tab, fleetAttacker.String()) || strings.Contains(tab, "203.0.113.9") {
		t.Fatalf("revoked host3 did not keep its last good list:\n%s", tab)
	}
	if err := pull(t, buses[0]); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(l.hosts[0].table(), "203.0.113.9") {
		t.Fatal("host1 did not take the list after host3's revocation")
	}

	// Stopping flushes: hosts to the hub, the hub to SikkerAPI. The
	// attacker hit three hosts and is reported once.
	hosts[0].stopNow(t)
	hosts[1].stopNow(t)
	hosts[2].stopNow(t)
	_, metrics := nsGet(t, l.hub.ns, netip.MustParseAddrPort("127.0.0.1:9547"), "/metrics", "")
	for _, want := range []string{"sikkerguard_hub_reports_received_total 3\n", "sikkerguard_hub_active_hosts 2\n", // host3 is revoked
		"sikkerguard_hub_refused_total 3\n", `sikkerguard_hub_host_reports_total{host="host1"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("hub /metrics lacks %q:\n%s\nhost3's first run:\n%s", want, metrics, first3.stderr.String())
		}
	}
	hub.stopNow(t)
	n := 0
	for _, r := range l.srv.Reports() {
		if r.IP == fleetAttacker {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the attacker was reported %d times, want 1: %+v\nhub log:\n%s\nhost1 log:\n%s", n, l.srv.Reports(), hub.stderr.String(), hosts[0].stderr.String())
	}
}

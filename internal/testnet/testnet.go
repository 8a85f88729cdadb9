// Package testnet creates throwaway network namespaces for kernel tests:
// namespaces named sgt*, veth pairs with documentation addresses, and probes
// (UDP, TCP, ping) that run inside a namespace from a goroutine locked to a
// thread that has entered it. Everything is removed in t.Cleanup.
//
// Lab is the one lab every kernel suite uses: a host namespace and peers
// joined by veth pairs, warmed up before use. Its delivery check retries a
// probe where a packet is expected through; AssertBlocked and
// AssertFloodBlocked call a packet blocked only when sikkerguard's drop
// counters in the host counted it, and Flood is the one flood loop.
package testnet

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NS is a network namespace created by New.
type NS struct {
	Name string
	t    testing.TB
	fd   int
}

// New creates the namespace sgt<prefix><random> with loopback up; it is
// deleted in t.Cleanup. prefix keeps names readable in `ip netns list`.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	ns := named(t, prefix, "add")
	ns.MustRun("ip", "link", "set", "lo", "up")
	return ns
}

// Attach names the network namespace of a running process (a container's
// init) so that the helpers of NS work in it; in t.Cleanup only the name
// goes, the namespace lives as long as its processes.
func Attach(t testing.TB, prefix string, pid int) *NS {
	t.Helper()
	return named(t, prefix, "attach", fmt.Sprint(pid))
}

// named runs `ip netns VERB sgt<prefix><random> ARGS…` and removes the
// name in t.Cleanup.
func named(t testing.TB, prefix, verb string, args ...string) *NS {
	t.Helper()
	var r [4]byte
	_, _ = rand.Read(r[:])
	name := "sgt" + prefix + hex.EncodeToString(r[:])
	if len(name) > 32 {
		t.Fatalf("namespace name %q too long", name)
	}
	if out, err := exec.Command("ip", append([]string{"netns", verb, name}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip netns %s %s: %v: %s", verb, name, err, out)
	}
	ns := &NS{Name: name, t: t, fd: -1}
	t.Cleanup(func() {
		if ns.fd >= 0 {
			unix.Close(ns.fd)
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return ns
}

// FD returns an open fd of the namespace (for nftables.WithNetNSFd and
// nft.WithNetNSFd); it is closed in t.Cleanup.
func (ns *NS) FD() int {
	ns.t.Helper()
	if ns.fd < 0 {
		fd, err := unix.Open("/run/netns/"+ns.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ns.t.Fatalf("open netns %s: %v", ns.Name, err)
		}
		ns.fd = fd
	}
	return ns.fd
}

// Run runs a command inside the namespace and returns its combined output.
func (ns *NS) Run(name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), ns.Name, err, out)
	}
	return string(out), nil
}

// MustRun is Run that fails the test on error.
func (ns *NS) MustRun(name string, args ...string) string {
	ns.t.Helper()
	out, err := ns.Run(name, args...)
	if err != nil {
		ns.t.Fatal(err)
	}
	return out
}

// Veth connects a and b with a veth pair named ifA (in a) and ifB (in b),
// brings both ends up and assigns the given prefixes (IPv6 with nodad, so
// they are usable at once).
func Veth(t testing.TB, a *NS, ifA string, addrA []netip.Prefix, b *NS, ifB string, addrB []netip.Prefix) {
	t.Helper()
	a.MustRun("ip", "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b.Name)
	for _, side := range []struct {
		ns    *NS
		ifc   string
		addrs []netip.Prefix
	}{{a, ifA, addrA}, {b, ifB, addrB}} {
		side.ns.AddAddr(side.ifc, side.addrs...)
		side.ns.MustRun("ip", "link", "set", side.ifc, "up")
	}
}

// AddAddr assigns extra addresses to an interface of the namespace.
func (ns *NS) AddAddr(ifc string, addrs ...netip.Prefix) {
	ns.t.Helper()
	for _, p := range addrs {
		args := []string{"addr", "add", p.String(), "dev", ifc}
		if p.Addr().Is6() {
			args = []string{"-6", "addr", "add", p.String(), "dev", ifc, "nodad"}
		}
		ns.MustRun("ip", args...)
	}
}

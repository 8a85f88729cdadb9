package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The lab: a host namespace, where sikkerguard and the seed's tools run,
// and a peer namespace behind a veth pair holding its gateway, resolver and
// the mock SikkerAPI, so that a pull crosses a link and the daemon's
// connectivity checks find what they find on a server. Addresses are from
// 192.0.2.0/24; nothing is created outside the two namespaces except
// /etc/netns/HOST (the host's resolv.conf, which `ip netns exec` binds).
const (
	labHostAddr = "192.0.2.1"
	labGateway  = "192.0.2.254"
	labDNS      = "192.0.2.53"
	labAPI      = "192.0.2.80"
	labPort     = "8580"
	labKey      = "sk_free_bench0000000000000000000"
)

// binaries are the programs under test.
type binaries struct{ guard, ctl, mock string }

func findBinaries(dir string) (binaries, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return binaries{}, err
	}
	b := binaries{filepath.Join(dir, "sikkerguard"), filepath.Join(dir, "sikkerctl"), filepath.Join(dir, "sikkerapi-mock")}
	for _, p := range []string{b.guard, b.ctl, b.mock} {
		if _, err := os.Stat(p); err != nil {
			return b, fmt.Errorf("%w (build them with make build, or give -bin DIR)", err)
		}
	}
	return b, nil
}

type lab struct {
	host, peer string
	dir        string // scratch directory, mode 0755
	bin        binaries
	mock       *exec.Cmd
	mockDone   chan struct{}
}

// nsName is a namespace name of this run: sgwbench<role><pid>.
func nsName(role string) string { return fmt.Sprintf("sgwbench%s%d", role, os.Getpid()) }

// ipNetns creates or deletes a namespace.
func ipNetns(verb, name string) error {
	if out, err := exec.Command("ip", "netns", verb, name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns %s %s: %v: %s", verb, name, err, out)
	}
	return nil
}

// inNS runs a command in a namespace and returns its combined output.
func inNS(ns string, name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %v: %.400s", name, strings.Join(args, " "), ns, err, out)
	}
	return string(out), nil
}

// newLab builds the two namespaces and starts the mock serving list.
func newLab(bin binaries, dir, list string) (l *lab, err error) {
	l = &lab{host: nsName("h"), peer: nsName("p"), dir: dir, bin: bin}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	for _, ns := range []string{l.host, l.peer} {
		if err := ipNetns("add", ns); err != nil {
			return l, err
		}
	}
	steps := [][]string{
		{"ip", "link", "add", "sgw0", "netns", l.host, "type", "veth", "peer", "name", "sgw1", "netns", l.peer},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			return l, fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	for _, s := range [][]string{
		{l.host, "ip", "link", "set", "lo", "up"},
		{l.host, "ip", "addr", "add", labHostAddr + "/24", "dev", "sgw0"},
		{l.host, "ip", "link", "set", "sgw0", "up"},
		{l.host, "ip", "route", "add", "default", "via", labGateway},
		{l.peer, "ip", "link", "set", "lo", "up"},
		{l.peer, "ip", "addr", "add", labGateway + "/24", "dev", "sgw1"},
		{l.peer, "ip", "addr", "add", labDNS + "/24", "dev", "sgw1"},
		{l.peer, "ip", "addr", "add", labAPI + "/24", "dev", "sgw1"},
		{l.peer, "ip", "link", "set", "sgw1", "up"},
	} {
		if _, err := inNS(s[0], s[1], s[2:]...); err != nil {
			return l, err
		}
	}
	etc := filepath.Join("/etc/netns", l.host)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return l, err
	}
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+labDNS+"\n"), 0o644); err != nil {
		return l, err
	}
	if err := l.startMock(list); err != nil {
		return l, err
	}
	// A fresh veth carries packets once the kernel has turned its carrier on.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := inNS(l.host, "curl", "-sf", "-o", "/dev/null", "-H", "Authorization: Bearer "+labKey, l.url()+"/v1/key/status")
		if err == nil {
			return l, nil
		}
		if time.Now().After(deadline) {
			return l, fmt.Errorf("the host namespace does not reach the mock: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (l *lab) url() string { return "http://" + labAPI + ":" + labPort }

// startMock runs cmd/sikkerapi-mock in the peer namespace with no quota.
func (l *lab) startMock(list string) error {
	cmd := exec.Command("ip", "netns", "exec", l.peer, l.bin.mock, "-listen", labAPI+":"+labPort, "-key", labKey,
		"-list", list, "-tier-limit", "100000000", "-quota", "-1", "-report-quota", "-1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		return err
	}
	l.mock, l.mockDone = cmd, make(chan struct{})
	line, err := bufio.NewReader(out).ReadString('\n')
	go func() {
		_ = cmd.Wait()
		close(l.mockDone)
	}()
	if err != nil || !strings.HasPrefix(line, "listening on") {
		return fmt.Errorf("sikkerapi-mock did not start: %q %v", line, err)
	}
	// The mock's first answer of a list takes it about a second longer than
	// the next ones (measured with 1 M entries); one request from its own
	// namespace, untimed, keeps that out of whichever run comes first.
	if _, err := seedFetch(l.peer, l.url(), "/dev/null"); err != nil {
		return fmt.Errorf("sikkerapi-mock does not serve the list: %w", err)
	}
	return nil
}

// setList makes the mock serve the list in file. The mock is restarted
// rather than sent the list (POST /_mock/list), which would hold the old
// and the new list at once: with 1 M entries that is some 2 GB more.
func (l *lab) setList(file string) error {
	l.stopMock()
	return l.startMock(file)
}

func (l *lab) stopMock() {
	if l.mock != nil && l.mock.Process != nil {
		_ = l.mock.Process.Kill()
		<-l.mockDone
	}
	l.mock = nil
}

// explain adds to a failed step's error that the mock is gone, when it
// is: the OOM killer takes it first, being the largest process of a run.
func (l *lab) explain(err error) error {
	if err == nil || l.mock == nil {
		return err
	}
	select {
	case <-l.mockDone:
		return fmt.Errorf("%w (sikkerapi-mock had exited: %v; killed by the OOM killer? see dmesg)", err, l.mock.ProcessState)
	default:
		return err
	}
}

// emptyHost removes every firewall object from the host namespace and the
// daemon's state: the namespace of a machine that never ran either.
func (l *lab) emptyHost(state string) error {
	if _, err := inNS(l.host, "nft", "flush", "ruleset"); err != nil {
		return err
	}
	if _, err := inNS(l.host, "ipset", "destroy"); err != nil {
		return err
	}
	if err := os.RemoveAll(state); err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // RCU frees the old sets
	return nil
}

func (l *lab) close() {
	l.stopMock()
	var errs []error
	for _, ns := range []string{l.host, l.peer} {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			errs = append(errs, ipNetns("del", ns))
		}
	}
	_ = os.RemoveAll(filepath.Join("/etc/netns", l.host))
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "sikkerbench:", err)
	}
}

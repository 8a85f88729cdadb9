package nft

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The fixture is a namespace's table with `nft monitor` running (port
// 23813, groups 7 and 9), plus sockets made up for the cases around it:
// another NETLINK_NETFILTER member of group 7 alone, one of group 9 alone
// (trace events), and an rtnetlink socket in its group 7.
func TestEventListenersFromProcNetNetlink(t *testing.T) {
	f, err := os.Open("testdata/proc-net-netlink-monitor.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	socks, err := parseNetlink(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 12 {
		t.Fatalf("parsed %d sockets, want 12", len(socks))
	}
	want := []netlinkSock{
		{Proto: unix.NETLINK_NETFILTER, Port: 23813, Groups: 0x140, Inode: 648259},
		{Proto: unix.NETLINK_NETFILTER, Port: 3046192731, Groups: 0x40, Inode: 650001},
	}
	if got := eventListeners(socks, 0); !reflect.DeepEqual(got, want) {
		t.Errorf("listeners %+v, want %+v", got, want)
	}
	// Our watcher's socket is left out by its inode.
	if got := eventListeners(socks, 650001); !reflect.DeepEqual(got, want[:1]) {
		t.Errorf("listeners without inode 650001: %+v, want %+v", got, want[:1])
	}
}

func TestParseNetlinkRejectsOtherText(t *testing.T) {
	for name, text := range map[string]string{
		"empty":       "",
		"header":      "sk Eth Pid Groups\n",
		"short line":  "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n0000 12 1 00000040 0\n",
		"groups":      "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n0000 12 1 0000zz40 0 0 0 2 0 5\n",
		"inode":       "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n0000 12 1 00000040 0 0 0 2 0 -5\n",
		"port number": "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode\n0000 12 x 00000040 0 0 0 2 0 5\n",
	} {
		if socks, err := parseNetlink(strings.NewReader(text)); err == nil {
			t.Errorf("%s: parsed %+v, want an error", name, socks)
		}
	}
}

// socketOwners finds a socket's holders from the fd links of a /proc tree.
func TestSocketOwnersFromFdLinks(t *testing.T) {
	root := t.TempDir()
	proc := func(pid, comm string, links ...string) {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if comm != "" {
			if err := os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for i, l := range links {
			if err := os.Symlink(l, filepath.Join(dir, "fd", string(rune('3'+i)))); err != nil {
				t.Fatal(err)
			}
		}
	}
	proc("42", "nft", "/dev/null", "socket:[648259]")
	proc("43", "firewalld", "socket:[650001]", "socket:[1]")
	proc("44", "", "socket:[650001]") // gone before its comm was read
	proc("45", "other", "socket:[77]")
	got := socketOwners(root, []uint64{648259, 650001, 999})
	want := map[uint64][]string{648259: {"nft (pid 42)"}, 650001: {"firewalld (pid 43)", "44"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("owners %v, want %v", got, want)
	}
}

func TestListenerNamesFallBackToThePort(t *testing.T) {
	ls := []netlinkSock{{Port: 23813, Inode: 1}, {Port: 4242, Inode: 2}}
	got := listenerNames(ls, map[uint64][]string{2: {"firewalld (pid 4242)"}})
	want := []string{"netlink port 23813 (process not visible; often its pid)", "firewalld (pid 4242)"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("names %q, want %q", got, want)
	}
}

// A transaction announces every element it writes and every element of
// the sets it flushes, which the backend's copy tells.
func TestAnnouncedElements(t *testing.T) {
	b, err := New(testConfig{IPv6: true}.settings(), nil)
	if err != nil {
		t.Fatal(err)
	}
	b.block = set("192.0.2.1/32", "192.0.2.3/32", "198.51.100.0/24", "2001:db8::1/128")
	bt := b.newBatch()
	if n := b.announced(bt); n != 0 {
		t.Errorf("empty batch announces %d elements", n)
	}
	// writeFull flushes every blocklist set, holding 2 IPv4 singles, one
	// IPv4 range (2 elements) and 1 IPv6 single, and writes the new list:
	// one range (2 elements), which the single inside it joins.
	b.writeFull(bt, set("203.0.113.0/24", "203.0.113.7/32"))
	if n := b.announced(bt); n != 5+2 {
		t.Errorf("replace announces %d elements, want 7", n)
	}
	if bt.elems != 2 {
		t.Errorf("replace wrote %d elements, want 2", bt.elems)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{8 << 10: "8 KiB", 800 << 20: "800 MiB", 1610612736: "1.5 GiB", 8 << 30: "8.0 GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

package nft

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/logging"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
	"golang.org/x/sys/unix"
)

// randomList returns about n IPv4 entries plus extra (see
// testnet.RandomList).
func randomList(seed uint64, n int, extra ...string) ipnet.Set {
	return testnet.RandomList(seed, n, 0, extra...)
}

// TestAtomicReplacement probes from an address listed in every list while
// 100 replacements (full and delta alternating, 1k and 20k entries) run: not
// one datagram may pass.
func TestAtomicReplacement(t *testing.T) {
	l := newLab(t)
	b := l.backend(t, testConfig{})
	if err := b.Apply(firewall.Lists{Block: randomList(0, 1000, "192.0.2.48/28"), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	stop := l.Flood(badAddr4)
	for i := range 100 {
		size := 1000
		if i%2 == 1 {
			size = 20_000
		}
		next := randomList(uint64(i+1), size, "192.0.2.48/28")
		var err error
		if i%4 < 2 {
			err = b.ReplaceAll(next)
		} else {
			err = b.Update(next)
		}
		if err != nil {
			stop()
			t.Fatalf("replacement %d: %v", i, err)
		}
	}
	l.AssertFloodBlocked(t, stop(), "100 replacements")
	if !l.Delivers(t, l.UDP(goodAddr4)) {
		t.Error("control: unlisted source dropped")
	}
	// An address only in the new list is blocked as soon as Apply returns.
	if !l.Delivers(t, l.UDP(newAddr4)) {
		t.Fatal("control: 192.0.2.77 dropped before it was listed")
	}
	if err := b.Apply(firewall.Lists{Block: randomList(7, 20_000, "192.0.2.48/28", "192.0.2.77/32"), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	l.AssertBlocked(t, l.UDP(newAddr4))
}

// TestAdoptWithoutGap: a table left by an earlier process is taken over by
// a new one, ten times, while a listed source floods: not one datagram may
// pass. The new process lists the source in a different list each time, and
// the configuration either stays or changes (hooks, IPv6, log group).
func TestAdoptWithoutGap(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func(i int) testConfig
		// presume: each adoption is told the previous list, so it knows
		// the content and sends the difference (seal.go).
		presume bool
	}{
		{"same config", func(int) testConfig { return testConfig{IPv6: true, LogGroup: 5} }, false},
		{"same config, content known", func(int) testConfig { return testConfig{IPv6: true, LogGroup: 5} }, true},
		{"prerouting to prerouting+input", func(i int) testConfig {
			hooks := []firewall.Hook{HookPrerouting}
			if i%2 == 0 {
				hooks = append(hooks, HookInput)
			}
			return testConfig{Hooks: hooks, IPv6: i%3 != 0, LogGroup: uint16(i)}
		}, false},
		{"input to prerouting", func(i int) testConfig {
			hooks := []firewall.Hook{HookInput}
			if i%2 == 0 {
				hooks = []firewall.Hook{HookPrerouting}
			}
			return testConfig{Hooks: hooks, IPv6: true}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			prev := randomList(1, 20_000, "192.0.2.48/28")
			if err := l.backend(t, tc.cfg(-1)).Apply(firewall.Lists{Block: prev, Allow: ipnet.Set{}}); err != nil {
				t.Fatal(err)
			}
			ops := recordOps(t)
			stop := l.Flood(badAddr4)
			for i := range 10 {
				// Alternate where the flooding source is listed: a
				// range in one list, a single address in the next.
				src := []string{"192.0.2.48/28", "192.0.2.64/28"}
				if i%2 == 0 {
					src = []string{"192.0.2.50/32", "192.0.2.64/28"}
				}
				b, next := l.backend(t, tc.cfg(i)), randomList(uint64(i+2), 20_000, src...)
				if tc.presume {
					b.Presume(prev, ipnet.Set{})
				}
				if err := b.Apply(firewall.Lists{Block: next, Allow: ipnet.Set{}}); err != nil {
					stop()
					t.Fatalf("adopt %d: %v", i, err)
				}
				prev = next
			}
			l.AssertFloodBlocked(t, stop(), "10 adoptions")
			if known := slices.Contains(*ops, "adopt (content known)"); known != tc.presume {
				t.Errorf("transactions %q: content known %v, want %v", *ops, known, tc.presume)
			}
			if !hasElement(t, l.Host, SetBlock4, "192.0.2.70") {
				t.Error("adopted table lacks the new list")
			}
		})
	}
}

// handles returns the kernel handles of the table's chains and sets by name.
func handles(t *testing.T, ns *testnet.NS) map[string]string {
	t.Helper()
	out := ns.MustRun("nft", "-a", "list", "table", "inet", TableName)
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && (f[0] == "chain" || f[0] == "set") && f[4] == "handle" {
			m[f[0]+" "+f[1]] = f[5]
		}
	}
	return m
}

// TestAdoptKeepsObjects: adopting with the same configuration keeps the
// base chain, the sets and the counters (same kernel handles, counters not
// reset) and leaves the table exactly as a fresh build would.
func TestAdoptKeepsObjects(t *testing.T) {
	l := newLab(t)
	cfg := testConfig{IPv6: true, LogGroup: 7, LogRate: 20, LogPer: time.Minute}
	if err := l.backend(t, cfg).Apply(firewall.Lists{Block: set("192.0.2.0/24", "2001:db8::1/128"), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	l.AssertBlocked(t, l.UDP(badAddr4)) // count a few drops
	before := handles(t, l.Host)
	b := l.backend(t, cfg)
	if err := b.Apply(firewall.Lists{Block: set("192.0.2.48/28", "255.255.255.255/32", "2001:db8:1::/48", "2001:db8::bad/128"), Allow: set("192.0.2.55/32", "2001:db8:1::55/128")}); err != nil {
		t.Fatal(err)
	}
	if after := handles(t, l.Host); fmt.Sprint(after) != fmt.Sprint(before) || len(after) != 13 {
		t.Errorf("handles changed by adoption:\n%v\nwant\n%v", after, before)
	}
	if d, err := b.Counters(); err != nil || d.Packets4 == 0 {
		t.Errorf("counters after adoption %+v, %v: want the earlier drops kept", d, err)
	}
	got := normalRecords(counterRE.ReplaceAllString(l.Host.MustRun("nft", "list", "table", "inet", TableName), "packets 0 bytes 0"))
	want, err := os.ReadFile("testdata/table.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("adopted table differs from testdata/table.golden:\n%s", got)
	}
}

var counterRE = regexp.MustCompile(`packets \d+ bytes \d+`)

// legacyTable is a table as another version might have left it: the
// prerouting chain at another priority, an interval set where a hash set is
// wanted, comments that differ, a counter with another comment, an extra set
// and chain.
const legacyTable = `table inet sikkerguard {
	comment "sikkerguard: legacy layout"
	counter dropped4 { comment "old counter" }
	set blocklist4 { type ipv4_addr; flags interval; comment "old"; elements = { 192.0.2.48/28 } }
	set blockhost4 { type ipv4_addr; flags interval; elements = { 10.1.1.1 } }
	set legacy { type ipv4_addr; flags interval; elements = { 10.0.0.0/8 } }
	chain olddrop { counter name "dropped4" drop; }
	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		ip saddr @legacy accept
		ip saddr @blocklist4 goto olddrop
	}
	chain forward { type filter hook forward priority 0; policy accept; ip saddr @blocklist4 drop; }
}
`

// TestAdoptLegacyTable adopts a table of another layout ten times under a
// flood: the prerouting chain has to move to another priority (a new chain
// is hooked before the old one is removed, in the same batch), a hash set
// replaces an interval set. No probe may pass, and the result is the table a
// fresh build makes.
func TestAdoptLegacyTable(t *testing.T) {
	l := newLab(t)
	file := t.TempDir() + "/legacy.nft"
	if err := os.WriteFile(file, []byte(legacyTable), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig{IPv6: true, LogGroup: 7, LogRate: 20, LogPer: time.Minute}
	for i := range 10 {
		_, _ = l.Host.Run("nft", "delete", "table", "inet", TableName)
		l.Host.MustRun("nft", "-f", file)
		// The legacy table counts its drops in dropped4 too.
		l.AssertBlocked(t, l.UDP(badAddr4))
		stop := l.Flood(badAddr4)
		err := l.backend(t, cfg).Apply(firewall.Lists{Block: set("192.0.2.48/28", "255.255.255.255/32", "2001:db8:1::/48", "2001:db8::bad/128"), Allow: set("192.0.2.55/32", "2001:db8:1::55/128")})
		r := stop()
		if err != nil {
			t.Fatalf("adopt %d: %v", i, err)
		}
		// The legacy counter's comment differs, so the adoption replaces
		// the counter: count from the new one.
		if testnet.AssertNonePassed(t, r, fmt.Sprintf("legacy adoption %d", i+1)) {
			l.AssertBlocked(t, l.UDP(badAddr4))
		}
	}
	out := normalRecords(counterRE.ReplaceAllString(l.Host.MustRun("nft", "list", "table", "inet", TableName), "packets 0 bytes 0"))
	// The table's and a kept set's comments cannot be changed in place,
	// and the new chain had to take another name; everything else is the
	// fresh layout.
	out = strings.Replace(out, `"sikkerguard: legacy layout"`, `"`+tableComment+`"`, 1)
	out = strings.Replace(out, `comment "old"`, `comment "`+newLayout(cfg.settings()).set(SetBlock4).comment+`"`, 1)
	out = strings.Replace(out, "chain prerouting_1 {", "chain prerouting {", 1)
	want, err := os.ReadFile("testdata/table.golden")
	if err != nil {
		t.Fatal(err)
	}
	// nft lists kept objects before new ones: compare the lines, not their order.
	if sortedLines(out) != sortedLines(string(want)) {
		t.Errorf("adopted legacy table differs from testdata/table.golden:\n%s", out)
	}
}

func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestReplaceForeignTable: a table under our name without our comment is
// replaced (the name is sikkerguard's by contract), not adopted.
func TestReplaceForeignTable(t *testing.T) {
	l := newLab(t)
	l.Host.MustRun("nft", "add table inet sikkerguard { chain prerouting { type filter hook prerouting priority 0; policy drop; }; }")
	var logs strings.Builder
	b, err := New(testConfig{}.settings(), slog.New(logging.Check(slog.NewTextHandler(&logs, nil), t.Errorf)), WithNetNSFd(l.Host.FD()))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(firewall.Lists{Block: set("192.0.2.48/28"), Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "did not create") {
		t.Errorf("no warning about the foreign table in %q", logs.String())
	}
	out := l.Host.MustRun("nft", "list", "table", "inet", TableName)
	if !strings.Contains(out, tableComment) || strings.Contains(out, "policy drop") {
		t.Errorf("foreign table not replaced:\n%s", out)
	}
}

const killEnv = "SIKKER_NFT_KILL_NETNS"

// TestKillHelper is the child of TestKilledMidBatch: it loads a big list
// into the namespace named by the environment and is killed while doing so.
// It reports its progress on stdout: "generated", then "sending OP" and
// "sent OP" around every transaction.
func TestKillHelper(t *testing.T) {
	name := os.Getenv(killEnv)
	if name == "" {
		t.Skip("helper process only")
	}
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(testConfig{}.settings(), nil, WithNetNSFd(fd))
	if err != nil {
		t.Fatal(err)
	}
	list := randomList(99, 150_000, "1.0.0.1/32", "192.0.2.64/28", "223.255.255.1/32")
	os.Stdout.WriteString("generated\n")
	sendHook = func(op string, sent bool) {
		if sent {
			os.Stdout.WriteString("sent " + op + "\n")
		} else {
			os.Stdout.WriteString("sending " + op + "\n")
		}
	}
	if err := b.Apply(firewall.Lists{Block: list, Allow: ipnet.Set{}}); err != nil {
		t.Fatal(err)
	}
}

// TestKilledMidBatch SIGKILLs a process while it adopts the table and loads
// a big list: the kernel must hold the old list or the new one, nothing in
// between. One kill lands before the batch is sent, three while the kernel
// processes it (asserted from the child's progress lines), and one run
// completes.
func TestKilledMidBatch(t *testing.T) {
	l := newLab(t)
	counts := map[string]int{}
	for _, run := range []struct {
		at    string        // kill after this progress line; "" = never
		delay time.Duration // and this long after it
	}{{"generated", 0}, {"sending adopt", 0}, {"sending adopt", 10 * time.Millisecond}, {"sending adopt", 40 * time.Millisecond}, {"", 0}} {
		// A fresh backend each time: it adopts whatever the last child
		// left and loads the old list in full.
		if err := l.backend(t, testConfig{}).Apply(firewall.Lists{Block: randomList(5, 1000, "192.0.2.48/28"), Allow: ipnet.Set{}}); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$")
		cmd.Env = append(os.Environ(), killEnv+"="+l.Host.Name)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		var seen []string
		for run.at != "" && lines.Scan() {
			seen = append(seen, lines.Text())
			if lines.Text() == run.at {
				time.Sleep(run.delay)
				_ = cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		for lines.Scan() {
			seen = append(seen, lines.Text())
		}
		_ = cmd.Wait()
		switch {
		case run.at == "generated" && slices.Contains(seen, "sending adopt"):
			t.Fatalf("kill at %q landed after the batch was sent: %q", run.at, seen)
		case run.at == "sending adopt" && slices.Contains(seen, "sent adopt"):
			t.Fatalf("kill at %q +%v landed after the kernel answered, not mid-batch: %q", run.at, run.delay, seen)
		case run.at == "" && !slices.Contains(seen, "sent trim hash sets"):
			t.Fatalf("unkilled child did not finish: %q", seen)
		}
		oldState := hasElement(t, l.Host, SetBlock4, "192.0.2.50") && !hasElement(t, l.Host, SetBlock4, "192.0.2.70") && !hasElement(t, l.Host, SetHosts4, "1.0.0.1")
		newState := !hasElement(t, l.Host, SetBlock4, "192.0.2.50") && hasElement(t, l.Host, SetBlock4, "192.0.2.70") &&
			hasElement(t, l.Host, SetHosts4, "1.0.0.1") && hasElement(t, l.Host, SetHosts4, "223.255.255.1")
		switch {
		case oldState && !newState:
			counts["old"]++
		case newState && !oldState:
			counts["new"]++
		default:
			t.Fatalf("after SIGKILL at %q +%v the kernel holds neither the old nor the new list", run.at, run.delay)
		}
	}
	t.Logf("outcomes: %v", counts)
	if counts["old"] == 0 || counts["new"] == 0 {
		t.Error("the runs did not end in both states; the test did not exercise both sides")
	}
}

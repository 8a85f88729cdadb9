package ipset

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

var set = testnet.Set

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func fullText(t *testing.T, p fullPlan) (string, caps) {
	t.Helper()
	var buf bytes.Buffer
	c, err := p.write(bufio.NewWriter(&buf))
	if err != nil {
		t.Fatal(err)
	}
	return buf.String(), c
}

// A range 198.51.100.0-198.51.100.2 becomes a /31 in the net set and a
// single address in the host set.
var smallBlock = func() ipnet.Set {
	s := set("192.0.2.1/32", "192.0.2.8/30", "198.51.100.0/31", "198.51.100.2/32", "198.51.100.5/32", "2001:db8::1/128", "2001:db8:1::/48")
	return s
}()

func TestFullScriptGolden(t *testing.T) {
	fresh, c := fullText(t, fullPlan{families: []family{fam4, fam6}, block: smallBlock, allow: set("192.0.2.9/32", "2001:db8:1::55/128")})
	golden(t, "full-fresh.txt", fresh)
	if c[SetHosts4] != 65536 || len(c) != 6 {
		t.Errorf("caps = %v", c)
	}
	exists := map[string]bool{}
	for _, n := range []string{SetHosts4, SetNets4, SetAllow4, SetNets4 + TempSuffix} {
		exists[n] = true
	}
	// 198.51.100.5 was inside a listed range and is now a single entry.
	replace, _ := fullText(t, fullPlan{families: []family{fam4}, block: smallBlock, exists: exists,
		old: set("198.51.100.4/30", "192.0.2.1/32"), oldKnown: true})
	golden(t, "full-replace.txt", replace)
	// With room in the live host set it is added there instead.
	replace, _ = fullText(t, fullPlan{families: []family{fam4}, block: smallBlock, exists: exists,
		old: set("198.51.100.4/30", "192.0.2.1/32"), oldKnown: true, room: caps{SetHosts4: 1}})
	golden(t, "full-replace-room.txt", replace)
	adopt, _ := fullText(t, fullPlan{families: []family{fam4}, block: smallBlock, exists: exists})
	golden(t, "full-adopt.txt", adopt)
}

func TestDeltaGolden(t *testing.T) {
	old := set("192.0.2.1/32", "192.0.2.8/30", "198.51.100.0/24", "2001:db8::1/128")
	next := set("192.0.2.2/32", "192.0.2.8/30", "198.51.100.0/25", "198.51.100.128/26", "2001:db8::2/128")
	d := planDelta(old, next, []family{fam4, fam6})
	var buf bytes.Buffer
	if _, err := writeDelta(bufio.NewWriter(&buf), d, set("192.0.2.9/32"), true, []family{fam4}); err != nil {
		t.Fatal(err)
	}
	golden(t, "delta.txt", buf.String())
}

func TestRulesGolden(t *testing.T) {
	golden(t, "rules4.txt", rulesScript(testConfig{LogGroup: 7}.settings(), fam4))
	golden(t, "rules6-reject.txt", rulesScript(testConfig{Action: firewall.ActionReject, LogRate: 10, LogPer: time.Minute}.settings(), fam6))
}

func TestEachPrefixSplitsZeroLength(t *testing.T) {
	var got []string
	for _, v6 := range []bool{false, true} {
		eachPrefix(set("0.0.0.0/0", "::/0"), v6, func(p netip.Prefix) { got = append(got, p.String()) })
	}
	want := []string{"0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestSizing(t *testing.T) {
	for _, tc := range []struct{ n, hash, max int }{
		{0, 64, 65536},
		{100, 64, 65536},
		{32768, 16384, 65536},
		{65537, 32768, 262144},
		{100_000, 65536, 262144},
		{5_000_000, 4194304, 16777216},
	} {
		h, m := sizing(tc.n)
		if h != tc.hash || m != tc.max {
			t.Errorf("sizing(%d) = %d, %d; want %d, %d", tc.n, h, m, tc.hash, tc.max)
		}
	}
}

func TestCheckSettings(t *testing.T) {
	for _, tc := range []struct {
		cfg testConfig
		err string
	}{
		{testConfig{}, ""},
		{testConfig{Hooks: []firewall.Hook{HookInput, HookForward, HookDockerUser}, Action: firewall.ActionReject, LogPer: 24 * time.Hour}, ""},
		{testConfig{Hooks: []firewall.Hook{"docker-user", " input"}}, ""},
		{testConfig{Hooks: []firewall.Hook{"prerouting"}}, `hooks[0]: "prerouting" is not one of INPUT, FORWARD, DOCKER-USER (iptables backend)`},
		{testConfig{Hooks: []firewall.Hook{HookInput, "input"}}, `hooks[1]: "INPUT" is listed twice`},
		{testConfig{Action: "tarpit"}, `action: "tarpit" is not one of drop, reject`},
		{testConfig{LogPer: 2 * time.Second}, "log_rate: unit 2s is not one of second, minute, hour, day"},
	} {
		s, err := backend.Check(tc.cfg.settings())
		if got := fmt.Sprint(err); (err == nil) != (tc.err == "") || err != nil && got != tc.err {
			t.Errorf("Check(%+v) = %v, want %q", tc.cfg, err, tc.err)
		}
		if err == nil && !slices.ContainsFunc(s.Hooks, func(h firewall.Hook) bool { return h == HookInput || h == HookForward || h == HookDockerUser }) {
			t.Errorf("Check(%+v) hooks = %v, not in the backend's spelling", tc.cfg, s.Hooks)
		}
	}
}

// TestVerdictCounters parses the rule listing Counters reads.
func TestVerdictCounters(t *testing.T) {
	const listing = `Chain SIKKERGUARD-BLOCK (3 references)
    pkts      bytes target     prot opt in     out     source               destination
      12      720 NFLOG      0    --  *      *       0.0.0.0/0            0.0.0.0/0            limit: avg 50/sec burst 5 nflog-prefix "sikkerguard: " nflog-group 7
   98765 12345678 DROP       0    --  *      *       0.0.0.0/0            0.0.0.0/0
`
	p, b, err := verdictCounters(listing)
	if err != nil || p != 98765 || b != 12345678 {
		t.Errorf("verdictCounters = %d, %d, %v; want 98765, 12345678", p, b, err)
	}
	reject := strings.Replace(listing, "DROP      ", "REJECT    ", 1)
	if p, _, err := verdictCounters(reject); err != nil || p != 98765 {
		t.Errorf("REJECT rule: %d, %v", p, err)
	}
	for name, bad := range map[string]string{
		"no verdict": strings.Split(listing, "\n   98765")[0],
		"two":        listing + "       1       60 DROP       0    --  *      *       ::/0                 ::/0\n",
		"garbage":    strings.Replace(listing, "98765", "9x", 1),
	} {
		if _, _, err := verdictCounters(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// model is a tiny ipset interpreter: enough of create/add/del/swap/destroy
// to replay a script and look at the live sets after every line.
type model map[string]map[netip.Prefix]bool

func (m model) exec(t *testing.T, line string) {
	t.Helper()
	w := strings.Fields(line)
	switch w[0] {
	case "create":
		if m[w[1]] != nil {
			t.Fatalf("%q: set exists", line)
		}
		m[w[1]] = map[netip.Prefix]bool{}
	case "destroy":
		if m[w[1]] == nil {
			t.Fatalf("%q: no such set", line)
		}
		delete(m, w[1])
	case "swap":
		a, b := m[w[1]], m[w[2]]
		if a == nil || b == nil {
			t.Fatalf("%q: no such set", line)
		}
		m[w[1]], m[w[2]] = b, a
	case "add", "del":
		p, err := netip.ParsePrefix(w[2])
		if err != nil {
			a := netip.MustParseAddr(w[2])
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if m[w[1]] == nil {
			t.Fatalf("%q: no such set", line)
		}
		// As ipset restore without -exist: no duplicate add, no stray del.
		if m[w[1]][p] == (w[0] == "add") {
			t.Fatalf("%q: element already in the set, or not in it", line)
		}
		if w[0] == "add" {
			m[w[1]][p] = true
		} else {
			delete(m[w[1]], p)
		}
	default:
		t.Fatalf("unknown command %q", line)
	}
}

func (m model) blocks(a netip.Addr) bool {
	for _, f := range []family{fam4, fam6} {
		if m[f.hosts][netip.PrefixFrom(a, a.BitLen())] {
			return true
		}
		for p := range m[f.nets] {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

func (m model) elements(names ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range names {
		for p := range m[n] {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

func wantElements(s ipnet.Set) []netip.Prefix {
	var out []netip.Prefix
	for _, v6 := range []bool{false, true} {
		eachPrefix(s, v6, func(p netip.Prefix) { out = append(out, p) })
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

// randomSmall returns a merged list of single addresses and short ranges
// in 192.0.2.0/24, where old and new lists overlap a lot.
func randomSmall(r *rand.Rand) ipnet.Set {
	var s ipnet.Set
	for range 40 {
		lo := 0xc0000200 | r.Uint32N(256)
		hi := min(lo+r.Uint32N(3)*r.Uint32N(3), 0xc00002ff)
		s.V4 = append(s.V4, ipnet.Range4{Lo: lo, Hi: hi})
	}
	s.Merge()
	return s
}

// TestScriptsNeverUnblockStayingAddresses replays full and delta scripts on
// the model: afterwards the sets hold exactly the new list, and after every
// line every address listed in both lists is blocked.
func TestScriptsNeverUnblockStayingAddresses(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fams := []family{fam4}
	for i := range 400 {
		old, next := randomSmall(r), randomSmall(r)
		m := model{}
		// Load old from scratch, then go to next by the plan under test.
		var buf bytes.Buffer
		if _, err := (fullPlan{families: fams, block: old}).write(bufio.NewWriter(&buf)); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			m.exec(t, l)
		}
		buf.Reset()
		exists := map[string]bool{}
		for n := range m {
			exists[n] = true
		}
		var err error
		switch i % 4 {
		case 0:
			_, err = writeDelta(bufio.NewWriter(&buf), planDelta(old, next, fams), ipnet.Set{}, false, fams)
		case 1: // no room in the live host set: moving addresses ride in the new net set
			_, err = fullPlan{families: fams, block: next, exists: exists, old: old, oldKnown: true}.write(bufio.NewWriter(&buf))
		case 3: // room: they ride in the old host set
			_, err = fullPlan{families: fams, block: next, exists: exists, old: old, oldKnown: true,
				room: caps{SetHosts4: 1000}}.write(bufio.NewWriter(&buf))
		case 2: // adopting: the old list is not known
			_, err = fullPlan{families: fams, block: next, exists: exists}.write(bufio.NewWriter(&buf))
		}
		if err != nil {
			t.Fatal(err)
		}
		both := ipnet.Intersect(old, next)
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			m.exec(t, l)
			for rg := range both.Ranges() {
				for a := rg.Lo; rg.Hi.Compare(a) >= 0; a = a.Next() {
					if !m.blocks(a) {
						t.Fatalf("case %d: %v (in both lists) unblocked after %q", i, a, l)
					}
				}
			}
		}
		delete(m[SetNets4], sentinel(fam4))
		if got, want := m.elements(SetHosts4, SetNets4), wantElements(next); !slices.Equal(got, want) {
			t.Fatalf("case %d: sets hold %v, want %v", i, got, want)
		}
		if len(m) != 3 {
			t.Fatalf("case %d: %d sets left, want 3: %v", i, len(m), m)
		}
	}
}

// fakeTools puts shell scripts named like the tools in a directory that
// becomes the whole PATH; iptables prints version.
func fakeTools(t *testing.T, version string, names ...string) {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		script := "#!/bin/sh\necho '" + version + "'\n"
		if err := os.WriteFile(filepath.Join(dir, n), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
}

func TestNewFindsTools(t *testing.T) {
	all := []string{"ipset", "iptables", "iptables-restore", "ip6tables", "ip6tables-restore"}
	t.Run("missing ipset", func(t *testing.T) {
		fakeTools(t, "iptables v1.8.9 (nf_tables)", all[1:]...)
		_, err := New(testConfig{}.settings(), nil)
		if err == nil || err.Error() != "iptables backend: ipset not found in PATH (install the ipset package)" {
			t.Errorf("New = %v", err)
		}
	})
	t.Run("missing ip6tables with IPv6", func(t *testing.T) {
		fakeTools(t, "iptables v1.8.9 (nf_tables)", all[:3]...)
		if _, err := New(testConfig{}.settings(), nil); err != nil {
			t.Errorf("IPv4 only: %v", err)
		}
		_, err := New(testConfig{IPv6: true}.settings(), nil)
		if err == nil || !strings.Contains(err.Error(), "ip6tables not found in PATH") {
			t.Errorf("New = %v", err)
		}
	})
	t.Run("legacy", func(t *testing.T) {
		fakeTools(t, "iptables v1.8.9 (legacy)", all...)
		_, err := New(testConfig{}.settings(), nil)
		if !errors.Is(err, ErrLegacy) || !strings.Contains(err.Error(), "update-alternatives --set iptables /usr/sbin/iptables-nft") {
			t.Errorf("New = %v", err)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		fakeTools(t, "iptables v1.8.9 (nf_tables)", all...)
		_, err := New(testConfig{Action: "accept"}.settings(), nil)
		if err == nil || !strings.Contains(err.Error(), `action: "accept" is not one of drop, reject`) {
			t.Errorf("New = %v", err)
		}
	})
}

func TestFewChanges(t *testing.T) {
	base := []string{"192.0.2.1/32", "192.0.2.8/30", "198.51.100.0/24", "2001:db8::1/128", "2001:db8:1::/48"}
	for _, tc := range []struct {
		name      string
		next      []string
		unshared  int
		fewChange bool
	}{
		{"same list", base, 0, true},
		{"one single added", append(slices.Clone(base), "203.0.113.7/32"), 1, true},
		{"a range grew", []string{"192.0.2.1/32", "192.0.2.8/29", "198.51.100.0/24", "2001:db8::1/128", "2001:db8:1::/48"}, 2, true},
		{"an IPv6 range replaced", []string{"192.0.2.1/32", "192.0.2.8/30", "198.51.100.0/24", "2001:db8::1/128", "2001:db8:2::/48"}, 2, true},
		{"unrelated lists", []string{"203.0.113.0/25", "2001:db8:9::/64"}, 7, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, next := set(base...), set(tc.next...)
			cmp4 := func(a, b ipnet.Range4) int { return cmp.Or(cmp.Compare(a.Lo, b.Lo), cmp.Compare(a.Hi, b.Hi)) }
			cmp6 := func(a, b ipnet.Range6) int { return cmp.Or(a.Lo.Cmp(b.Lo), a.Hi.Cmp(b.Hi)) }
			if got := unshared(old.V4, next.V4, cmp4) + unshared(old.V6, next.V6, cmp6); got != tc.unshared {
				t.Errorf("unshared = %d, want %d", got, tc.unshared)
			}
			if got := fewChanges(old, next); got != tc.fewChange {
				t.Errorf("fewChanges = %v, want %v", got, tc.fewChange)
			}
		})
	}
}

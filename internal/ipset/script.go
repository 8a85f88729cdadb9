package ipset

import (
	"bufio"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// family names the three sets of one address family.
type family struct {
	v6                 bool
	hosts, nets, allow string
	inet               string // ipset's family keyword
	bits               int    // prefix length of a single address
}

var (
	fam4 = family{v6: false, hosts: SetHosts4, nets: SetNets4, allow: SetAllow4, inet: "inet", bits: 32}
	fam6 = family{v6: true, hosts: SetHosts6, nets: SetNets6, allow: SetAllow6, inet: "inet6", bits: 128}
)

// allSets lists every set name the backend may create, temporaries included,
// so that Remove finds what any earlier configuration left.
func allSets() []string {
	var names []string
	for _, f := range []family{fam4, fam6} {
		for _, n := range []string{f.hosts, f.nets, f.allow} {
			names = append(names, n, n+TempSuffix)
		}
	}
	return names
}

// eachPrefix calls fn for every element the family's half of s becomes: a
// single address as a full-length prefix, any other range as its minimal
// CIDR cover. hash:net refuses /0, so a /0 is sent as its two halves.
func eachPrefix(s ipnet.Set, v6 bool, fn func(netip.Prefix)) {
	var buf []netip.Prefix
	emit := func(p netip.Prefix) {
		if p.Bits() == 0 {
			lo := p.Addr()
			hi := ipnet.AddrFrom4(1 << 31)
			if v6 {
				hi = ipnet.AddrFrom6(ipnet.U128{Hi: 1 << 63})
			}
			fn(netip.PrefixFrom(lo, 1))
			fn(netip.PrefixFrom(hi, 1))
			return
		}
		fn(p)
	}
	if !v6 {
		for _, r := range s.V4 {
			if r.Lo == r.Hi {
				fn(netip.PrefixFrom(ipnet.AddrFrom4(r.Lo), 32))
				continue
			}
			buf = r.Prefixes(buf[:0])
			for _, p := range buf {
				emit(p)
			}
		}
		return
	}
	for _, r := range s.V6 {
		if r.Lo == r.Hi {
			fn(netip.PrefixFrom(ipnet.AddrFrom6(r.Lo), 128))
			continue
		}
		buf = r.Prefixes(buf[:0])
		for _, p := range buf {
			emit(p)
		}
	}
}

// isHost reports whether p is a single address, which goes to the hash:ip set.
func isHost(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }

// counts returns how many elements the hash:ip and hash:net sets of one
// family need for s.
func counts(s ipnet.Set, v6 bool) (hosts, nets int) {
	c := census(s, v6)
	return c.hosts, c.nets
}

// shape counts a family's elements and records which prefix lengths the
// hash:net set uses.
type shape struct {
	hosts, nets int
	lens        [3]uint64 // bit n: some element is a /n
}

func census(s ipnet.Set, v6 bool) shape {
	var c shape
	eachPrefix(s, v6, func(p netip.Prefix) {
		if isHost(p) {
			c.hosts++
			return
		}
		c.nets++
		c.lens[p.Bits()/64] |= 1 << (p.Bits() % 64)
	})
	return c
}

// sentinel is an element every hash:net set of ours holds, a source address
// no valid packet carries (the limited broadcast address, and the last
// multicast address). The kernel keeps a hash:net set's prefix lengths in a
// small array that it shifts in place, without RCU, when the first element
// of a length is added or the last one removed; a lookup racing with the
// shift can skip a length and let a listed packet through (measured: about
// one in 10^5 probes while single addresses came and went as /32s). The
// sentinel keeps the full-length entry permanently in use, and a delta that
// would change the lengths in use is sent as a swap instead.
func sentinel(f family) netip.Prefix {
	if f.v6 {
		return netip.PrefixFrom(ipnet.AddrFrom6(ipnet.MaxU128), 128)
	}
	return netip.PrefixFrom(ipnet.AddrFrom4(^uint32(0)), 32)
}

// sizing returns the creation parameters for a set of n elements. maxelem is
// a hard limit (ipset's default of 65,536 silently refuses the rest of a big
// list), so it gets twice the count for later deltas; it costs no memory.
// hashsize is the initial bucket count: about two elements a bucket keeps the
// kernel from resizing the table while a restore fills it.
func sizing(n int) (hashsize, maxelem int) {
	hashsize = 64
	for hashsize < n/2 && hashsize < 1<<30 {
		hashsize *= 2
	}
	maxelem = 65536
	for maxelem < 2*n && maxelem < 1<<31 {
		maxelem *= 2
	}
	return hashsize, maxelem
}

// scriptWriter writes `ipset restore` lines; the first write error sticks.
type scriptWriter struct {
	w   *bufio.Writer
	buf []byte
	err error
}

func (s *scriptWriter) line(words ...string) {
	if s.err != nil {
		return
	}
	s.buf = s.buf[:0]
	for i, w := range words {
		if i > 0 {
			s.buf = append(s.buf, ' ')
		}
		s.buf = append(s.buf, w...)
	}
	s.buf = append(s.buf, '\n')
	_, s.err = s.w.Write(s.buf)
}

// elem writes "op set element", a single address without its length.
func (s *scriptWriter) elem(op, set string, p netip.Prefix) {
	if s.err != nil {
		return
	}
	s.buf = append(s.buf[:0], op...)
	s.buf = append(s.buf, ' ')
	s.buf = append(s.buf, set...)
	s.buf = append(s.buf, ' ')
	s.buf = p.Addr().AppendTo(s.buf)
	if !isHost(p) {
		s.buf = append(s.buf, '/')
		s.buf = strconv.AppendInt(s.buf, int64(p.Bits()), 10)
	}
	s.buf = append(s.buf, '\n')
	_, s.err = s.w.Write(s.buf)
}

func (s *scriptWriter) create(name, typ string, f family, n int) {
	hs, me := sizing(n)
	s.line("create", name, typ, "family", f.inet, "hashsize", strconv.Itoa(hs), "maxelem", strconv.Itoa(me))
}

// fullPlan replaces every set of the given families by a swap.
type fullPlan struct {
	families []family
	block    ipnet.Set
	allow    ipnet.Set
	// exists names the sets already in the kernel: live sets that are missing
	// are created empty (swap needs both), temporaries left by an interrupted
	// run are destroyed first.
	exists map[string]bool
	// old is the list the live sets hold, when known. The net sets are
	// swapped before the host sets; in between, an address that moves from a
	// range in the old list to a single entry in the new one would be in
	// neither live set, so such addresses ride along in the new net set as
	// /32 (/128) elements until the host swap is done. With old unknown
	// (adopting a set left by a crash) every new single address does.
	old      ipnet.Set
	oldKnown bool
	// room is how many elements each live host set can still take. When
	// the moving addresses fit, they are added to the live (old) host set
	// instead: it is swapped out after the net set, and destroyed rather
	// than trimmed, which saves a hash:net add and delete per address.
	room caps
}

// caps holds the maxelem of each live set after a plan ran.
type caps map[string]int

// write streams the script to w and returns the maxelem the live sets have
// afterwards.
func (p fullPlan) write(w *bufio.Writer) (caps, error) {
	s := &scriptWriter{w: w}
	for _, f := range p.families {
		for _, n := range []string{f.allow, f.nets, f.hosts} {
			if p.exists[n+TempSuffix] {
				s.line("destroy", n+TempSuffix)
			}
			if !p.exists[n] {
				s.line("create", n, typeOf(f, n), "family", f.inet)
			}
		}
	}
	c := caps{}
	extras := map[family][]netip.Prefix{}     // ride in the new net set
	hostExtras := map[family][]netip.Prefix{} // ride in the old host set
	for _, f := range p.families {
		hosts, nets := counts(p.block, f.v6)
		var oldNets ipnet.Set
		if p.oldKnown {
			eachPrefix(p.old, f.v6, func(q netip.Prefix) {
				if !isHost(q) {
					oldNets.AddPrefix(q)
				}
			})
			oldNets.Merge()
		}
		eachPrefix(p.block, f.v6, func(q netip.Prefix) {
			if isHost(q) && (p.oldKnown && oldNets.Contains(q.Addr()) || !p.oldKnown && p.exists[f.nets]) {
				extras[f] = append(extras[f], q)
			}
		})
		// Only with the old list known: an address in an old range is then
		// not in the old host set, so adding it cannot collide.
		if p.oldKnown && len(extras[f]) <= p.room[f.hosts] {
			hostExtras[f], extras[f] = extras[f], nil
		}
		allowH, allowN := counts(p.allow, f.v6)
		allowN += allowH

		s.create(f.allow+TempSuffix, "hash:net", f, allowN)
		eachPrefix(p.allow, f.v6, func(q netip.Prefix) { s.elem("add", f.allow+TempSuffix, q) })
		s.create(f.nets+TempSuffix, "hash:net", f, nets+1+len(extras[f]))
		s.elem("add", f.nets+TempSuffix, sentinel(f))
		eachPrefix(p.block, f.v6, func(q netip.Prefix) {
			if !isHost(q) {
				s.elem("add", f.nets+TempSuffix, q)
			}
		})
		for _, q := range extras[f] {
			s.elem("add", f.nets+TempSuffix, q)
		}
		s.create(f.hosts+TempSuffix, "hash:ip", f, hosts)
		eachPrefix(p.block, f.v6, func(q netip.Prefix) {
			if isHost(q) {
				s.elem("add", f.hosts+TempSuffix, q)
			}
		})
		_, c[f.allow] = sizing(allowN)
		_, c[f.nets] = sizing(nets + 1 + len(extras[f]))
		_, c[f.hosts] = sizing(hosts)
	}
	for _, f := range p.families {
		for _, q := range hostExtras[f] {
			s.elem("add", f.hosts, q)
		}
	}
	for _, f := range p.families {
		for _, n := range []string{f.allow, f.nets, f.hosts} {
			s.line("swap", n+TempSuffix, n)
		}
	}
	for _, f := range p.families {
		for _, n := range []string{f.allow, f.nets, f.hosts} {
			s.line("destroy", n+TempSuffix)
		}
	}
	for _, f := range p.families {
		for _, q := range extras[f] {
			s.elem("del", f.nets, q)
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	return c, s.w.Flush()
}

func typeOf(f family, name string) string {
	if name == f.hosts {
		return "hash:ip"
	}
	return "hash:net"
}

// delta is the element-level change from one list to the next.
type delta struct {
	add, del []netip.Prefix // per family, IPv4 first; sorted
}

// size is the number of restore lines the delta needs.
func (d delta) size() int { return len(d.add) + len(d.del) }

// planDelta compares two merged lists element by element. Ranges are
// compared with ipnet.Diff first, so only changed ranges are expanded into
// prefixes; a prefix both removed and added (a range that changed around an
// unchanged CIDR) is left alone.
func planDelta(old, next ipnet.Set, families []family) delta {
	added, removed := ipnet.Diff(old, next)
	var d delta
	for _, f := range families {
		gone := map[netip.Prefix]bool{}
		eachPrefix(removed, f.v6, func(p netip.Prefix) { gone[p] = true })
		eachPrefix(added, f.v6, func(p netip.Prefix) {
			if gone[p] {
				delete(gone, p)
				return
			}
			d.add = append(d.add, p)
		})
		start := len(d.del)
		for p := range gone {
			d.del = append(d.del, p)
		}
		slices.SortFunc(d.del[start:], comparePrefix)
	}
	return d
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// writeDelta streams a delta: every addition before any deletion, so an
// address listed before and after is never absent from both of its sets.
// The allow sets are replaced by a swap first when allowChanged.
func writeDelta(w *bufio.Writer, d delta, allow ipnet.Set, allowChanged bool, families []family) (caps, error) {
	s := &scriptWriter{w: w}
	c := caps{}
	if allowChanged {
		for _, f := range families {
			h, n := counts(allow, f.v6)
			s.create(f.allow+TempSuffix, "hash:net", f, h+n)
			eachPrefix(allow, f.v6, func(q netip.Prefix) { s.elem("add", f.allow+TempSuffix, q) })
			s.line("swap", f.allow+TempSuffix, f.allow)
			s.line("destroy", f.allow+TempSuffix)
			_, c[f.allow] = sizing(h + n)
		}
	}
	for _, p := range d.add {
		s.elem("add", setFor(p), p)
	}
	for _, p := range d.del {
		s.elem("del", setFor(p), p)
	}
	if s.err != nil {
		return nil, s.err
	}
	return c, s.w.Flush()
}

// setFor names the block set an element belongs to.
func setFor(p netip.Prefix) string {
	f := fam4
	if p.Addr().Is6() {
		f = fam6
	}
	if isHost(p) {
		return f.hosts
	}
	return f.nets
}

// rulesScript is the iptables-restore --noflush input that defines both
// chains. Declaring a chain flushes it, so re-running it replaces the rules
// in one nftables transaction and never duplicates them.
func rulesScript(cfg firewall.Settings, f family) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*filter\n:%s - [0:0]\n:%s - [0:0]\n", Chain, ChainBlock)
	// RETURN, not ACCEPT: a whitelisted source is exempt from the blocklist,
	// not from the host's own rules further down the built-in chain.
	fmt.Fprintf(&b, "-A %s -m set --match-set %s src -j RETURN\n", Chain, f.allow)
	fmt.Fprintf(&b, "-A %s -m set --match-set %s src -j %s\n", Chain, f.hosts, ChainBlock)
	fmt.Fprintf(&b, "-A %s -m set --match-set %s src -j %s\n", Chain, f.nets, ChainBlock)
	if cfg.LogGroup != 0 {
		// One limit for both sets: the block chain is shared.
		fmt.Fprintf(&b, "-A %s -m limit --limit %d/%s -j NFLOG --nflog-group %d --nflog-prefix %q\n",
			ChainBlock, cfg.LogRate, firewall.UnitName(cfg.LogPer), cfg.LogGroup, LogPrefix)
	}
	verdict := "DROP"
	if cfg.Action == firewall.ActionReject {
		verdict = "REJECT"
	}
	fmt.Fprintf(&b, "-A %s -j %s\nCOMMIT\n", ChainBlock, verdict)
	return b.String()
}

// jumpSpec is the rule inserted at the top of each hooked built-in chain.
func jumpSpec() []string { return []string{"-m", "comment", "--comment", Comment, "-j", Chain} }

// verdictCounters finds the DROP or REJECT rule in the listing of the block
// chain (`iptables -L CHAIN -v -x -n`: a chain line, a header, then one line
// per rule starting with its packets, bytes and target) and returns its
// counters.
func verdictCounters(listing string) (packets, bytes uint64, err error) {
	found := false
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != "DROP" && f[2] != "REJECT" {
			continue
		}
		p, perr := strconv.ParseUint(f[0], 10, 64)
		by, berr := strconv.ParseUint(f[1], 10, 64)
		if perr != nil || berr != nil {
			return 0, 0, fmt.Errorf("unexpected rule listing of %s: %q", ChainBlock, line)
		}
		if found {
			return 0, 0, fmt.Errorf("more than one DROP or REJECT rule in %s", ChainBlock)
		}
		packets, bytes, found = p, by, true
	}
	if !found {
		return 0, 0, fmt.Errorf("no DROP or REJECT rule in %s", ChainBlock)
	}
	return packets, bytes, nil
}

package nft

import (
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"golang.org/x/sys/unix"
)

// Names of the kernel objects; CONTRACT.md fixes the table and the four
// interval sets, the rest is ours.
const (
	TableName  = "sikkerguard"
	SetBlock4  = "blocklist4"
	SetBlock6  = "blocklist6"
	SetHosts4  = "blockhost4"
	SetHosts6  = "blockhost6"
	SetAllow4  = "allow4"
	SetAllow6  = "allow6"
	Counter4   = "dropped4"
	Counter6   = "dropped6"
	chainDrop4 = "block4"
	chainDrop6 = "block6"
	logPrefix  = firewall.LogPrefixDrop
)

// Attribute numbers google/nftables does not export (linux nf_tables.h).
const (
	nftaTableUserdata = 6
	nftaChainUserdata = 12
	nftaObjUserdata   = 8
	udataComment      = 0 // NFTNL_UDATA_{TABLE,CHAIN,RULE,OBJ}_COMMENT
)

// Hook priorities. Prerouting runs at raw (-300): before conntrack (-200),
// so a flood from listed sources creates no conntrack entries, and before
// the routing decision, so traffic forwarded to containers and VMs is covered
// too. input and forward run at filter-10, ahead of the usual filter chains
// (firewalld, docker, ufw at 0) whose accept would not stop us anyway but
// whose logging would see packets we drop.
var hookPrio = map[string]struct {
	num  uint32
	prio int32
}{
	string(HookPrerouting): {unix.NF_INET_PRE_ROUTING, -300},
	string(HookInput):      {unix.NF_INET_LOCAL_IN, -10},
	string(HookForward):    {unix.NF_INET_FORWARD, -10},
	// The base chains of feed roles (roles.go), keyed like hooks.
	baseWatch:  {unix.NF_INET_PRE_ROUTING, -150},
	baseOutput: {unix.NF_INET_LOCAL_OUT, -10},
}

// setDef describes one set of the table.
type setDef struct {
	name     string
	id       uint32 // transaction-local id
	v6       bool
	interval bool
	part     part     // which ranges of a list the set holds
	list     roleList // for partList: which list
	scope    int      // for roleScoped: the index in Settings.Scopes
	comment  string
	// size is the element limit a new hash set is declared with (0: none),
	// need the number of elements it must take (sized.go).
	size, need uint32
}

type part uint8

const (
	partAll     part = iota // every range (allow sets)
	partSingles             // ranges of one address (hash sets)
	partWide                // ranges of two or more addresses (blocklist interval sets)
	partList                // every range of one of the role lists (roles.go)
)

func (p part) takes(single bool) bool {
	return p == partAll || p == partList || (p == partSingles) == single
}

// blocks reports whether the set holds part of the blocklist.
func (p part) blocks() bool { return p == partSingles || p == partWide }

// layout is the set of objects a Settings value produces.
type layout struct {
	cfg  firewall.Settings
	sets []setDef
}

func newLayout(cfg firewall.Settings) layout {
	l := layout{cfg: cfg}
	add := func(name string, v6 bool, p part, comment string) {
		l.sets = append(l.sets, setDef{name: name, id: uint32(len(l.sets) + 1), v6: v6, interval: p != partSingles, part: p, comment: comment})
	}
	add(SetAllow4, false, partAll, "sikkerguard: IPv4 sources never blocked (safety and user whitelist)")
	add(SetHosts4, false, partSingles, "sikkerguard: blocked single IPv4 addresses (hash: one element each)")
	add(SetBlock4, false, partWide, "sikkerguard: blocked IPv4 ranges of two or more addresses")
	if cfg.IPv6 {
		add(SetAllow6, true, partAll, "sikkerguard: IPv6 sources never blocked (safety and user whitelist)")
		add(SetHosts6, true, partSingles, "sikkerguard: blocked single IPv6 addresses (hash: one element each)")
		add(SetBlock6, true, partWide, "sikkerguard: blocked IPv6 ranges of two or more addresses")
	}
	l.addRoleSets()
	return l
}

func (l layout) set(name string) setDef {
	for _, s := range l.sets {
		if s.name == name {
			return s
		}
	}
	panic("nft: unknown set " + name)
}

func comment(typ uint8, s string) []byte {
	return userdata.AppendString(nil, userdata.Type(typ), s)
}

// deleteTable appends the removal of the table (and everything in it).
func deleteTable(b *batch) {
	b.nft(unix.NFT_MSG_DELTABLE, 0, "delete table inet "+TableName)
	b.str(unix.NFTA_TABLE_NAME, TableName)
	b.end()
}

// Comments of the table's objects. tableMarker starts the table comment of
// every sikkerguard version: a table without it was made by something else.
const (
	tableMarker  = "sikkerguard:"
	tableComment = tableMarker + " blocklist firewall, managed by sikkerguard; edits are overwritten"
)

func counterComment(v6 bool) string {
	if v6 {
		return "sikkerguard: IPv6 packets dropped from listed sources"
	}
	return "sikkerguard: IPv4 packets dropped from listed sources"
}

func verdictComment(cfg firewall.Settings, v6 bool) string {
	fam := "IPv4"
	if v6 {
		fam = "IPv6"
	}
	return "sikkerguard: " + string(cfg.Action) + " listed " + fam + " sources, logging a rate-limited sample"
}

func baseComment(hook string) string {
	if c, ok := roleBaseComments[hook]; ok {
		return c
	}
	return fmt.Sprintf("sikkerguard: filter sources at %s, priority %d", hook, hookPrio[hook].prio)
}

// objDef is a named counter of the layout.
type objDef struct{ name, comment string }

// chainDef is a regular chain of the layout and how its rules are written.
type chainDef struct {
	name, comment string
	rules         func(b *batch, chain string) error
}

// counters and verdictChains list the named objects and regular chains of
// the layout, IPv4 first, the roles' after the blocklist's.
func (l layout) counters() []objDef {
	out := []objDef{{Counter4, counterComment(false)}}
	if l.cfg.IPv6 {
		out = append(out, objDef{Counter6, counterComment(true)})
	}
	return append(out, l.roleCounters()...)
}

func (l layout) verdictChains() []chainDef {
	drop := func(counter string) func(*batch, string) error {
		return func(b *batch, chain string) error { return addVerdictRules(b, l.cfg, chain, counter) }
	}
	out := []chainDef{{chainDrop4, verdictComment(l.cfg, false), drop(Counter4)}}
	if l.cfg.IPv6 {
		out = append(out, chainDef{chainDrop6, verdictComment(l.cfg, true), drop(Counter6)})
	}
	return append(out, l.roleChains()...)
}

// bases lists the keys of the base chains: the configured hooks, then
// the roles' (roles.go). A key names its hook and priority (hookPrio) and
// the chain of a freshly built table.
func (l layout) bases() []string { return append(l.hooks(), l.roleBases()...) }

// hooks returns the configured hooks, which also name the base chains.
func (l layout) hooks() []string {
	hs := make([]string, len(l.cfg.Hooks))
	for i, h := range l.cfg.Hooks {
		hs[i] = string(h)
	}
	return hs
}

// hookNames maps every configured hook to a base chain of the same name, the
// names of a freshly created table.
func (l layout) hookNames() map[string]string {
	m := map[string]string{}
	for _, h := range l.bases() {
		m[h] = h
	}
	return m
}

// buildTable appends the creation of the whole table without elements. With
// replace, a table left by something else is deleted first in the same
// batch: "add table" (a no-op when it exists) makes the delete always valid.
// Deleting a table unregisters its hooks before the new ones take over, so
// replace is only for a table that is not ours; ours is adopted in place
// (writeAdoption).
func buildTable(b *batch, l layout, replace bool) error {
	if replace {
		b.nft(unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE, "add table inet "+TableName)
		b.str(unix.NFTA_TABLE_NAME, TableName)
		b.end()
		deleteTable(b)
	}
	b.nft(unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, "create table inet "+TableName)
	b.str(unix.NFTA_TABLE_NAME, TableName)
	b.u32(unix.NFTA_TABLE_FLAGS, 0)
	b.attr(nftaTableUserdata, comment(udataComment, tableComment))
	b.end()

	for _, s := range l.sets {
		addSet(b, s)
	}
	addContentSet(b)
	for _, o := range l.counters() {
		addCounter(b, o.name, o.comment)
	}
	// Verdict chains first: base chains jump to them.
	for _, c := range l.verdictChains() {
		addChain(b, c.name, "", c.comment)
		if err := c.rules(b, c.name); err != nil {
			return err
		}
	}
	for _, h := range l.bases() {
		addChain(b, h, h, baseComment(h))
		if err := addBaseRules(b, l, h, h); err != nil {
			return err
		}
	}
	return nil
}

func setFlags(s setDef) uint32 {
	if s.interval {
		return unix.NFT_SET_INTERVAL
	}
	return 0
}

func setKeyType(s setDef) nftables.SetDatatype {
	if s.v6 {
		return nftables.TypeIP6Addr
	}
	return nftables.TypeIPAddr
}

// setUserdata is what nft records for an address set: key byte order 2
// (big endian) and the comment.
func setUserdata(s setDef) []byte {
	ud := userdata.AppendUint32(nil, userdata.NFTNL_UDATA_SET_KEYBYTEORDER, 2)
	return userdata.AppendString(ud, userdata.NFTNL_UDATA_SET_COMMENT, s.comment)
}

func addSet(b *batch, s setDef) {
	b.nft(unix.NFT_MSG_NEWSET, unix.NLM_F_CREATE|unix.NLM_F_EXCL, "add set "+s.name)
	b.str(unix.NFTA_SET_TABLE, TableName)
	b.str(unix.NFTA_SET_NAME, s.name)
	b.u32(unix.NFTA_SET_FLAGS, setFlags(s))
	kt := setKeyType(s)
	b.u32(unix.NFTA_SET_KEY_TYPE, kt.GetNFTMagic())
	b.u32(unix.NFTA_SET_KEY_LEN, kt.Bytes)
	b.u32(unix.NFTA_SET_ID, s.id)
	if s.size != 0 {
		d := b.nest(unix.NFTA_SET_DESC)
		b.u32(unix.NFTA_SET_DESC_SIZE, s.size)
		b.close(d)
	}
	b.attr(unix.NFTA_SET_USERDATA, setUserdata(s))
	b.end()
}

func addCounter(b *batch, name, text string) {
	b.nft(unix.NFT_MSG_NEWOBJ, unix.NLM_F_CREATE|unix.NLM_F_EXCL, "add counter "+name)
	b.str(unix.NFTA_OBJ_TABLE, TableName)
	b.str(unix.NFTA_OBJ_NAME, name)
	b.u32(unix.NFTA_OBJ_TYPE, unix.NFT_OBJECT_COUNTER)
	d := b.nest(unix.NFTA_OBJ_DATA)
	b.close(d)
	b.attr(nftaObjUserdata, comment(udataComment, text))
	b.end()
}

func addChain(b *batch, name string, hook string, text string) {
	b.nft(unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE|unix.NLM_F_EXCL, "add chain "+name)
	b.str(unix.NFTA_CHAIN_TABLE, TableName)
	b.str(unix.NFTA_CHAIN_NAME, name)
	if hook != "" {
		hp := hookPrio[hook]
		n := b.nest(unix.NFTA_CHAIN_HOOK)
		b.u32(unix.NFTA_HOOK_HOOKNUM, hp.num)
		b.u32(unix.NFTA_HOOK_PRIORITY, uint32(hp.prio))
		b.close(n)
		b.u32(unix.NFTA_CHAIN_POLICY, 1) // NF_ACCEPT
		b.str(unix.NFTA_CHAIN_TYPE, "filter")
	}
	b.attr(nftaChainUserdata, comment(udataComment, text))
	b.end()
}

func addRule(b *batch, chain, text string, exprs ...expr.Any) error {
	b.nft(unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_APPEND, "add rule to "+chain)
	b.str(unix.NFTA_RULE_TABLE, TableName)
	b.str(unix.NFTA_RULE_CHAIN, chain)
	list := b.nest(unix.NFTA_RULE_EXPRESSIONS)
	for _, e := range exprs {
		data, err := expr.Marshal(unix.NFPROTO_INET, e)
		if err != nil {
			return fmt.Errorf("encode rule in %s: %w", chain, err)
		}
		n := b.nest(unix.NFTA_LIST_ELEM)
		b.cur = append(b.cur, data...)
		b.pad()
		b.close(n)
	}
	b.close(list)
	b.attr(unix.NFTA_RULE_USERDATA, comment(udataComment, text))
	b.end()
	return nil
}

var logUnits = map[time.Duration]expr.LimitTime{
	time.Second: expr.LimitTimeSecond, time.Minute: expr.LimitTimeMinute,
	time.Hour: expr.LimitTimeHour, 24 * time.Hour: expr.LimitTimeDay,
}

// addVerdictRules fills the regular chain a listed packet jumps to: a rate
// limited NFLOG copy, the named counter and the verdict. Keeping these here
// means the base chain does one lookup per set and nothing else per packet.
func addVerdictRules(b *batch, cfg firewall.Settings, chain, counter string) error {
	if cfg.LogGroup != 0 {
		per := firewall.UnitName(cfg.LogPer)
		err := addRule(b, chain, fmt.Sprintf("sikkerguard: copy at most %d packets per %s to NFLOG group %d", cfg.LogRate, per, cfg.LogGroup),
			&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(cfg.LogRate), Unit: logUnits[cfg.LogPer], Burst: 5},
			&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: cfg.LogGroup, Data: []byte(logPrefix)},
		)
		if err != nil {
			return err
		}
	}
	count := &expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: counter}
	if cfg.Action == firewall.ActionReject {
		// TCP gets a reset so that clients fail fast; everything else an
		// ICMP(v6) administratively-prohibited.
		if err := addRule(b, chain, "sikkerguard: reject TCP from listed sources with a reset",
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			count,
			&expr.Reject{Type: unix.NFT_REJECT_TCP_RST},
		); err != nil {
			return err
		}
		return addRule(b, chain, "sikkerguard: reject other traffic from listed sources",
			count,
			&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED},
		)
	}
	return addRule(b, chain, "sikkerguard: count and drop traffic from listed sources",
		count, &expr.Verdict{Kind: expr.VerdictDrop})
}

func matchFamily(v6 bool) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if v6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

func matchSaddr(v6 bool, s setDef) []expr.Any { return matchAddr(v6, false, s) }

// matchAddr looks the source (or with dst the destination) address up in s.
func matchAddr(v6, dst bool, s setDef) []expr.Any {
	off, n := uint32(12), uint32(4)
	if v6 {
		off, n = 8, 16
	}
	if dst {
		off += n
	}
	return append(matchFamily(v6),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Lookup{SourceRegister: 1, SetName: s.name, SetID: s.id},
	)
}

// addBaseRules fills the base chain named chain, which sits at the hook or
// role base of key hook.
func addBaseRules(b *batch, l layout, hook, chain string) error {
	if isRoleBase(hook) {
		return addRoleBaseRules(b, l, hook, chain)
	}
	if l.cfg.IPv6 {
		// Router and neighbour solicitation/advertisement (ICMPv6 133-136)
		// always pass: blocking a prefix that contains a neighbour or the
		// router would otherwise cut the host off the link.
		err := addRule(b, chain, "sikkerguard: accept IPv6 neighbour discovery",
			append(matchFamily(true),
				&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
				&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{133}, ToData: []byte{136}},
				&expr.Verdict{Kind: expr.VerdictAccept},
			)...)
		if err != nil {
			return err
		}
	}
	type step struct {
		v6      bool
		set     string
		verdict *expr.Verdict
		text    string
	}
	steps := []step{
		{false, SetAllow4, &expr.Verdict{Kind: expr.VerdictAccept}, "sikkerguard: accept whitelisted IPv4 sources"},
		{false, SetHosts4, &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainDrop4}, "sikkerguard: listed IPv4 addresses"},
		{false, SetBlock4, &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainDrop4}, "sikkerguard: listed IPv4 ranges"},
	}
	if l.cfg.IPv6 {
		steps = append(steps,
			step{true, SetAllow6, &expr.Verdict{Kind: expr.VerdictAccept}, "sikkerguard: accept whitelisted IPv6 sources"},
			step{true, SetHosts6, &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainDrop6}, "sikkerguard: listed IPv6 addresses"},
			step{true, SetBlock6, &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainDrop6}, "sikkerguard: listed IPv6 ranges"},
		)
	}
	for _, s := range steps {
		if err := addRule(b, chain, s.text, append(matchSaddr(s.v6, l.set(s.set)), s.verdict)...); err != nil {
			return err
		}
	}
	return addScopedRules(b, l, chain)
}

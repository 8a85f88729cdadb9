package nft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// Feed roles beyond "drop traffic from the entries" (firewall.Lists):
//
//   - Monitor feeds: sets monitor4/monitor6 (interval, singles included, so
//     that an unlisted packet pays one lookup per family), looked up in the
//     base chain "watch" at prerouting priority -150, after conntrack
//     (-200): only there does a packet know whether it starts or belongs to
//     a connection (ct direction original: unsolicited) or answers one this
//     host opened (ct direction reply: what the feed would break). Listed
//     sources jump to would4/would6, which count each kind in its own named
//     counter and copy a rate-limited sample to NFLOG with its own prefix.
//     Never a drop. The blocklist's raw-priority chain has dropped the
//     enforced sources before; the daemon leaves them out of the monitor
//     sets anyway.
//   - The base chain "output" (output hook, priority -10) sees the host's
//     own new connections (ct state new; every other packet leaves after
//     one conntrack test): a destination of an outbound feed (sets
//     outblock4/outblock6) goes to blockout4/6 (counted, logged with its
//     own prefix, dropped); one on any inbound list (enforced or monitored)
//     goes to outbound4/6 (counted, logged, accepted): those are the
//     connections whose replies a list drops.
//   - Scoped feeds: one interval set per scope and family (scope0_4, …),
//     looked up in the blocklist's base chains after the protocol and
//     port compares of the scope, so only the traffic a scope applies to
//     pays its lookup. A hit goes to the blocklist's verdict chain.
//
// The daemon names the feed of a logged packet from its own per-feed lists;
// the kernel keeps one set per role, not per feed.

// Names of the role objects.
const (
	SetMonitor4     = "monitor4"
	SetMonitor6     = "monitor6"
	SetOutBlock4    = "outblock4"
	SetOutBlock6    = "outblock6"
	CounterNew4     = "would_new4"
	CounterNew6     = "would_new6"
	CounterReply4   = "would_reply4"
	CounterReply6   = "would_reply6"
	CounterOut4     = "outbound4"
	CounterOut6     = "outbound6"
	CounterOutDrop4 = "dropped_out4"
	CounterOutDrop6 = "dropped_out6"
	chainWould4     = "would4"
	chainWould6     = "would6"
	chainOut4       = "outbound4"
	chainOut6       = "outbound6"
	chainOutDrop4   = "blockout4"
	chainOutDrop6   = "blockout6"
	baseWatch       = "watch"
	baseOutput      = "output"
)

// NFLOG prefixes of the role rules (firewall.LogPrefix*).
const (
	LogPrefixWould   = firewall.LogPrefixWould
	LogPrefixReply   = firewall.LogPrefixReply
	LogPrefixOut     = firewall.LogPrefixOut
	LogPrefixOutDrop = firewall.LogPrefixOutDrop
)

// roleList names the list of firewall.Lists a partList set holds.
type roleList uint8

const (
	roleMonitor roleList = iota + 1
	roleOut
	roleScoped
)

var roleBaseComments = map[string]string{
	baseWatch:  "sikkerguard: count traffic from monitored sources after conntrack, priority -150; never drops",
	baseOutput: "sikkerguard: the host's own new connections to listed addresses, priority -10",
}

func isRoleBase(key string) bool { _, ok := roleBaseComments[key]; return ok }

// ScopeSetName names the set of scope i of one family.
func ScopeSetName(i int, v6 bool) string {
	if v6 {
		return fmt.Sprintf("scope%d_6", i)
	}
	return fmt.Sprintf("scope%d_4", i)
}

func (l layout) families() []bool {
	if l.cfg.IPv6 {
		return []bool{false, true}
	}
	return []bool{false}
}

func famName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

func pick46(v6 bool, a, b string) string {
	if v6 {
		return b
	}
	return a
}

func (l *layout) addRoleSets() {
	add := func(name string, v6 bool, list roleList, scope int, comment string) {
		l.sets = append(l.sets, setDef{name: name, id: uint32(len(l.sets) + 1), v6: v6, interval: true,
			part: partList, list: list, scope: scope, comment: comment})
	}
	for _, v6 := range l.families() {
		if l.cfg.Monitor {
			add(pick46(v6, SetMonitor4, SetMonitor6), v6, roleMonitor, 0, "sikkerguard: "+famName(v6)+" sources of monitor feeds: counted and logged, never dropped")
		}
		if l.cfg.Outbound {
			add(pick46(v6, SetOutBlock4, SetOutBlock6), v6, roleOut, 0, "sikkerguard: "+famName(v6)+" destinations this host may not connect to (outbound feeds)")
		}
		for i, sc := range l.cfg.Scopes {
			add(ScopeSetName(i, v6), v6, roleScoped, i, "sikkerguard: "+famName(v6)+" sources blocked for "+sc.String()+" only")
		}
	}
}

func (l layout) roleCounters() []objDef {
	var out []objDef
	for _, v6 := range l.families() {
		f := famName(v6)
		if l.cfg.Monitor {
			out = append(out,
				objDef{pick46(v6, CounterNew4, CounterNew6), "sikkerguard: unsolicited " + f + " packets from monitored sources"},
				objDef{pick46(v6, CounterReply4, CounterReply6), "sikkerguard: " + f + " replies from monitored sources to connections this host opened"})
		}
		out = append(out, objDef{pick46(v6, CounterOut4, CounterOut6), "sikkerguard: new " + f + " connections of this host to listed addresses"})
		if l.cfg.Outbound {
			out = append(out, objDef{pick46(v6, CounterOutDrop4, CounterOutDrop6), "sikkerguard: new " + f + " connections of this host dropped (outbound feeds)"})
		}
	}
	return out
}

func (l layout) roleChains() []chainDef {
	var out []chainDef
	for _, v6 := range l.families() {
		f := famName(v6)
		if l.cfg.Monitor {
			out = append(out, chainDef{pick46(v6, chainWould4, chainWould6), "sikkerguard: count and log " + f + " traffic a monitor feed would drop",
				func(b *batch, chain string) error { return addWouldRules(b, l.cfg, chain, v6) }})
		}
		out = append(out, chainDef{pick46(v6, chainOut4, chainOut6), "sikkerguard: count and log new " + f + " connections to listed addresses",
			func(b *batch, chain string) error {
				return addCountLog(b, l.cfg, chain, pick46(v6, CounterOut4, CounterOut6), LogPrefixOut, nil)
			}})
		if l.cfg.Outbound {
			out = append(out, chainDef{pick46(v6, chainOutDrop4, chainOutDrop6), "sikkerguard: count, log and drop new " + f + " connections to outbound feeds' destinations",
				func(b *batch, chain string) error {
					return addCountLog(b, l.cfg, chain, pick46(v6, CounterOutDrop4, CounterOutDrop6), LogPrefixOutDrop, &expr.Verdict{Kind: expr.VerdictDrop})
				}})
		}
	}
	return out
}

func (l layout) roleBases() []string {
	if l.cfg.Monitor {
		return []string{baseWatch, baseOutput}
	}
	return []string{baseOutput}
}

// logExprs is the rate-limited NFLOG copy with prefix; nil when logging
// is off.
func logExprs(cfg firewall.Settings, prefix string) []expr.Any {
	if cfg.LogGroup == 0 {
		return nil
	}
	return []expr.Any{
		&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(cfg.LogRate), Unit: logUnits[cfg.LogPer], Burst: 5},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: cfg.LogGroup, Data: []byte(prefix)},
	}
}

// addCountLog writes one rule: count, then the rate-limited log (the
// limit ends the rule, not the chain), and then the verdict in a rule of
// its own so that packets over the log rate get it too.
func addCountLog(b *batch, cfg firewall.Settings, chain, counter, prefix string, verdict *expr.Verdict) error {
	ex := append([]expr.Any{&expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: counter}}, logExprs(cfg, prefix)...)
	if err := addRule(b, chain, "sikkerguard: count in "+counter+", log a rate-limited sample", ex...); err != nil {
		return err
	}
	if verdict == nil {
		return nil
	}
	return addRule(b, chain, "sikkerguard: drop", verdict)
}

// ctDirection matches the conntrack direction: 0 original, 1 reply.
func ctDirection(dir byte) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeyDIRECTION, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{dir}},
	}
}

func addWouldRules(b *batch, cfg firewall.Settings, chain string, v6 bool) error {
	kinds := []struct {
		dir             byte
		counter, prefix string
		text            string
	}{
		{0, pick46(v6, CounterNew4, CounterNew6), LogPrefixWould, "sikkerguard: unsolicited traffic (ct direction original): count, log a sample"},
		{1, pick46(v6, CounterReply4, CounterReply6), LogPrefixReply, "sikkerguard: replies to this host's connections (ct direction reply): count, log a sample"},
	}
	for _, k := range kinds {
		ex := append(ctDirection(k.dir), &expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: k.counter})
		if err := addRule(b, chain, k.text, append(ex, logExprs(cfg, k.prefix)...)...); err != nil {
			return err
		}
	}
	return nil
}

// addRoleBaseRules fills the role base chains.
func addRoleBaseRules(b *batch, l layout, key, chain string) error {
	if key == baseWatch {
		for _, v6 := range l.families() {
			if err := addRule(b, chain, "sikkerguard: "+famName(v6)+" sources of monitor feeds",
				append(matchSaddr(v6, l.set(pick46(v6, SetMonitor4, SetMonitor6))), &expr.Verdict{Kind: expr.VerdictGoto, Chain: pick46(v6, chainWould4, chainWould6)})...); err != nil {
				return err
			}
		}
		return nil
	}
	// Packets of known connections leave after one conntrack test.
	mask := binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW)
	if err := addRule(b, chain, "sikkerguard: only new connections are looked up",
		&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	); err != nil {
		return err
	}
	for _, v6 := range l.families() {
		type step struct{ set, chain, text string }
		var steps []step
		if l.cfg.Outbound {
			steps = append(steps, step{pick46(v6, SetOutBlock4, SetOutBlock6), pick46(v6, chainOutDrop4, chainOutDrop6), "destinations of outbound feeds"})
		}
		steps = append(steps,
			step{pick46(v6, SetHosts4, SetHosts6), pick46(v6, chainOut4, chainOut6), "blocked addresses"},
			step{pick46(v6, SetBlock4, SetBlock6), pick46(v6, chainOut4, chainOut6), "blocked ranges"})
		if l.cfg.Monitor {
			steps = append(steps, step{pick46(v6, SetMonitor4, SetMonitor6), pick46(v6, chainOut4, chainOut6), "monitored addresses"})
		}
		for _, s := range steps {
			if err := addRule(b, chain, "sikkerguard: new connections to "+famName(v6)+" "+s.text,
				append(matchAddr(v6, true, l.set(s.set)), &expr.Verdict{Kind: expr.VerdictGoto, Chain: s.chain})...); err != nil {
				return err
			}
		}
	}
	return nil
}

// addScopedRules appends to a blocklist base chain one rule per scope,
// family, protocol and port range: the compares first, then the lookup.
func addScopedRules(b *batch, l layout, chain string) error {
	for i, sc := range l.cfg.Scopes {
		for _, v6 := range l.families() {
			set := l.set(ScopeSetName(i, v6))
			for _, proto := range sc.Protocols {
				if (proto == unix.IPPROTO_ICMP && v6) || (proto == unix.IPPROTO_ICMPV6 && !v6) {
					continue
				}
				head := append(matchFamily(v6),
					&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}})
				ports := sc.Ports
				if !hasPorts(proto) {
					ports = nil
				}
				if len(ports) == 0 {
					ports = []firewall.PortRange{{}}
				}
				for _, pr := range ports {
					ex := append([]expr.Any(nil), head...)
					if pr.Hi != 0 {
						ex = append(ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
						if pr.Lo == pr.Hi {
							ex = append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(pr.Lo)})
						} else {
							ex = append(ex, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be16(pr.Lo), ToData: be16(pr.Hi)})
						}
					}
					off, n := uint32(12), uint32(4)
					if v6 {
						off, n = 8, 16
					}
					ex = append(ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
						&expr.Lookup{SourceRegister: 1, SetName: set.name, SetID: set.id},
						&expr.Verdict{Kind: expr.VerdictGoto, Chain: pick46(v6, chainDrop4, chainDrop6)})
					text := fmt.Sprintf("sikkerguard: %s sources of scoped feeds, %s %s", famName(v6), firewall.ProtocolName(proto), portText(pr))
					if err := addRule(b, chain, text, ex...); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func hasPorts(proto uint8) bool {
	for _, p := range firewall.PortProtocols {
		if p == proto {
			return true
		}
	}
	return false
}

func portText(pr firewall.PortRange) string {
	if pr.Hi == 0 {
		return "all ports"
	}
	return "port " + pr.String()
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// pickList returns the role list a partList set is filled from.
func pickList(s setDef, l firewall.Lists) ipnet.Set {
	switch s.list {
	case roleMonitor:
		return l.Monitor
	case roleOut:
		return l.Out
	case roleScoped:
		if s.scope < len(l.Scoped) {
			return l.Scoped[s.scope]
		}
	}
	return ipnet.Set{}
}

// checkRoles refuses role lists without the objects to hold them.
func (b *Backend) checkRoles(l firewall.Lists) error {
	switch {
	case !b.cfg.Monitor && !l.Monitor.IsEmpty():
		return errors.New("nftables apply: monitor entries, but the table was built without monitor sets")
	case !b.cfg.Outbound && !l.Out.IsEmpty():
		return errors.New("nftables apply: outbound entries, but the table was built without outbound sets")
	case len(l.Scoped) > len(b.cfg.Scopes):
		return fmt.Errorf("nftables apply: %d scoped lists for %d scopes", len(l.Scoped), len(b.cfg.Scopes))
	}
	return nil
}

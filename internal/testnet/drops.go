package testnet

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// Drops is what sikkerguard's objects in a namespace counted as dropped
// (or rejected), per family.
type Drops struct{ V4, V6 uint64 }

// Total is the packets of both families.
func (d Drops) Total() uint64 { return d.V4 + d.V6 }

// The names the backends give their drop counters. They are spelled out
// here because the backends' own tests use this package, which therefore
// cannot import them: internal/nft's Counter4 and Counter6 in table inet
// sikkerguard, internal/ipset's ChainBlock in iptables-nft's filter tables.
const (
	nftTable      = "sikkerguard"
	nftCounter4   = "dropped4"
	nftCounter6   = "dropped6"
	iptChainBlock = "SIKKERGUARD-BLOCK"
)

// Drops reads the drop counters of the host: the named counters of table
// inet sikkerguard (nftables backend) and the counters of the DROP and
// REJECT rules of the SIKKERGUARD-BLOCK chains (iptables backend; iptables-nft
// keeps them in nftables), whichever exist. It reads what the kernel holds,
// as an administrator would, so it works for a firewall that another
// process loaded too.
func (l *Lab) Drops(t testing.TB) Drops {
	t.Helper()
	// Terse: the sets' elements, maybe 100,000s, are not listed.
	out, err := l.Host.runNet("nft", "-j", "-t", "list", "ruleset")
	if err != nil {
		t.Fatalf("lab: read drop counters: %v", err)
	}
	d, err := parseDrops(out)
	if err != nil {
		t.Fatalf("lab: read drop counters: %v", err)
	}
	return d
}

// Counter reads one named counter of table inet sikkerguard (the nftables
// backend's role counters: would_new4, would_reply4, outbound4,
// dropped_out4, …); 0 when the table has no such counter.
func (l *Lab) Counter(t testing.TB, name string) uint64 {
	t.Helper()
	out, err := l.Host.runNet("nft", "-j", "list", "counter", "inet", nftTable, name)
	if err != nil {
		t.Fatalf("lab: read counter %s: %v", name, err)
	}
	var doc struct {
		Nftables []map[string]nftItem `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("lab: read counter %s: %v", name, err)
	}
	for _, o := range doc.Nftables {
		if c, ok := o["counter"]; ok && c.Name == name {
			return c.Packets
		}
	}
	return 0
}

// runNet runs a program that needs only the namespace's network, such as
// nft, from a thread inside it: the child inherits the thread's network
// namespace. It skips the mount namespace that `ip netns exec` builds,
// which costs ten times as much; tests poll the counters through it.
func (ns *NS) runNet(name string, args ...string) (string, error) {
	var out []byte
	err := ns.Do(func() (err error) {
		out, err = exec.Command(name, args...).CombinedOutput()
		return err
	})
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), ns.Name, err, out)
	}
	return string(out), nil
}

// nftItem is the part of an `nft -j` counter or rule this package reads.
type nftItem struct {
	Family, Table, Name, Chain string
	Packets                    uint64
	Expr                       []map[string]json.RawMessage
}

// parseDrops sums the drop counters in the output of nft -j list ruleset.
func parseDrops(js string) (Drops, error) {
	var doc struct {
		Nftables []map[string]nftItem `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		return Drops{}, fmt.Errorf("parse nft -j output: %w", err)
	}
	var d Drops
	for _, o := range doc.Nftables {
		if c, ok := o["counter"]; ok && c.Family == "inet" && c.Table == nftTable {
			switch c.Name {
			case nftCounter4:
				d.V4 += c.Packets
			case nftCounter6:
				d.V6 += c.Packets
			}
		}
		r, ok := o["rule"]
		if !ok || r.Table != "filter" || r.Chain != iptChainBlock || (r.Family != "ip" && r.Family != "ip6") {
			continue
		}
		n, err := blockRule(r.Expr)
		if err != nil {
			return d, fmt.Errorf("rule of %s %s: %w", r.Family, iptChainBlock, err)
		}
		if r.Family == "ip" {
			d.V4 += n
		} else {
			d.V6 += n
		}
	}
	return d, nil
}

// blockRule returns the packet counter of a rule that drops or rejects
// (iptables-nft writes -j DROP as a native verdict and -j REJECT as an xt
// target), and 0 for any other rule, such as the NFLOG one.
func blockRule(exprs []map[string]json.RawMessage) (uint64, error) {
	var packets uint64
	blocks := false
	for _, e := range exprs {
		if raw, ok := e["counter"]; ok {
			var c struct{ Packets uint64 }
			if err := json.Unmarshal(raw, &c); err != nil {
				return 0, fmt.Errorf("counter %s: %w", raw, err)
			}
			packets = c.Packets
		}
		if _, ok := e["drop"]; ok {
			blocks = true
		}
		if _, ok := e["reject"]; ok {
			blocks = true
		}
		if raw, ok := e["xt"]; ok {
			var x struct{ Type, Name string }
			if json.Unmarshal(raw, &x) == nil && x.Type == "target" && x.Name == "REJECT" {
				blocks = true
			}
		}
	}
	if !blocks {
		return 0, nil
	}
	return packets, nil
}

package testnet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strconv"
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
// sikkerguard, internal/ipset's ChainBlock in iptables and ip6tables.
const (
	nftTable      = "sikkerguard"
	nftCounter4   = "dropped4"
	nftCounter6   = "dropped6"
	iptChainBlock = "SIKKERGUARD-BLOCK"
)

// Drops reads the drop counters of the host: the named counters of table
// inet sikkerguard (nftables backend) and the DROP and REJECT rules of the
// SIKKERGUARD-BLOCK chains (iptables backend), whichever exist. It reads
// the kernel through nft and iptables-save, as an administrator would, so
// it works for a firewall run by another process too.
func (l *Lab) Drops(t testing.TB) Drops {
	t.Helper()
	d, err := readDrops(l.Host)
	if err != nil {
		t.Fatalf("lab: read drop counters: %v", err)
	}
	return d
}

// readDrops is Lab.Drops for any namespace.
func readDrops(ns *NS) (Drops, error) {
	out, err := ns.Run("nft", "-j", "list", "tables")
	if err != nil {
		return Drops{}, err
	}
	tables, err := nftObjects(out, "table")
	if err != nil {
		return Drops{}, err
	}
	var d Drops
	for _, tb := range tables {
		switch {
		case tb.Family == "inet" && tb.Name == nftTable:
			out, err := ns.Run("nft", "-j", "list", "counters", "table", "inet", nftTable)
			if err != nil {
				return d, err
			}
			counters, err := nftObjects(out, "counter")
			if err != nil {
				return d, err
			}
			for _, c := range counters {
				switch c.Name {
				case nftCounter4:
					d.V4 += c.Packets
				case nftCounter6:
					d.V6 += c.Packets
				}
			}
		case tb.Name == "filter" && (tb.Family == "ip" || tb.Family == "ip6"):
			// iptables-nft keeps its filter table in nftables.
			save, per := "iptables-save", &d.V4
			if tb.Family == "ip6" {
				save, per = "ip6tables-save", &d.V6
			}
			out, err := ns.Run(save, "-c", "-t", "filter")
			if err != nil {
				return d, err
			}
			n, err := blockCounted(out)
			if err != nil {
				return d, fmt.Errorf("%s: %w", save, err)
			}
			*per += n
		}
	}
	return d, nil
}

// nftObject is the part of an nft -j object this package reads.
type nftObject struct {
	Family, Name string
	Packets      uint64
}

// nftObjects returns the objects of one kind in nft -j output.
func nftObjects(js, kind string) ([]nftObject, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		return nil, fmt.Errorf("parse nft -j output: %w", err)
	}
	var objs []nftObject
	for _, o := range doc.Nftables {
		raw, ok := o[kind]
		if !ok {
			continue
		}
		var obj nftObject
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("parse nft %s: %w", kind, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// blockCounted sums the packet counters of the DROP and REJECT rules of
// the block chain in iptables-save -c output ("[packets:bytes] -A …").
func blockCounted(save string) (uint64, error) {
	var n uint64
	sc := bufio.NewScanner(strings.NewReader(save))
	for sc.Scan() {
		cnt, rule, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(cnt, "[") || !strings.HasPrefix(rule, "-A "+iptChainBlock+" ") ||
			!(strings.Contains(rule, " -j DROP") || strings.Contains(rule, " -j REJECT")) {
			continue
		}
		pkts, _, _ := strings.Cut(strings.Trim(cnt, "[]"), ":")
		v, err := strconv.ParseUint(pkts, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("counter %q: %w", cnt, err)
		}
		n += v
	}
	return n, sc.Err()
}

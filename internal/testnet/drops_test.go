package testnet

import "testing"

// dropsJSON is `nft -j -t list ruleset` with both backends' objects loaded
// (iptables-nft 1.8.9, nft 1.0.6), counters filled in.
const dropsJSON = `{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
{"table": {"family": "ip", "name": "filter", "handle": 1}},
{"chain": {"family": "ip", "table": "filter", "name": "SIKKERGUARD", "handle": 1}},
{"chain": {"family": "ip", "table": "filter", "name": "SIKKERGUARD-BLOCK", "handle": 2}},
{"rule": {"family": "ip", "table": "filter", "chain": "SIKKERGUARD", "handle": 3, "expr": [{"xt": {"type": "match", "name": "set"}}, {"counter": {"packets": 40, "bytes": 2400}}, {"jump": {"target": "SIKKERGUARD-BLOCK"}}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "SIKKERGUARD-BLOCK", "handle": 4, "expr": [{"limit": {"rate": 50, "burst": 5, "per": "second"}}, {"counter": {"packets": 5, "bytes": 300}}, {"log": {"prefix": "sikkerguard: ", "group": 7}}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "SIKKERGUARD-BLOCK", "handle": 5, "expr": [{"counter": {"packets": 40, "bytes": 2400}}, {"drop": null}]}},
{"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 6, "expr": [{"counter": {"packets": 99, "bytes": 5940}}, {"drop": null}]}},
{"table": {"family": "ip6", "name": "filter", "handle": 2}},
{"chain": {"family": "ip6", "table": "filter", "name": "SIKKERGUARD-BLOCK", "handle": 1}},
{"rule": {"family": "ip6", "table": "filter", "chain": "SIKKERGUARD-BLOCK", "handle": 2, "expr": [{"counter": {"packets": 7, "bytes": 420}}, {"xt": {"type": "target", "name": "REJECT"}}]}},
{"table": {"family": "inet", "name": "sikkerguard", "handle": 3}},
{"counter": {"family": "inet", "name": "dropped4", "table": "sikkerguard", "handle": 1, "packets": 1000, "bytes": 60000}},
{"counter": {"family": "inet", "name": "dropped6", "table": "sikkerguard", "handle": 2, "packets": 300, "bytes": 18000}},
{"counter": {"family": "inet", "name": "dropped4", "table": "admin", "handle": 1, "packets": 5000, "bytes": 1}},
{"set": {"family": "inet", "name": "blockhost4", "table": "sikkerguard", "type": "ipv4_addr", "handle": 4}}]}`

func TestParseDrops(t *testing.T) {
	d, err := parseDrops(dropsJSON)
	// IPv4: dropped4 1000 + the DROP rule 40; not the NFLOG rule, not the
	// jump into the chain, not another chain's or another table's drops.
	if want := (Drops{V4: 1040, V6: 307}); err != nil || d != want {
		t.Errorf("parseDrops = %+v, %v; want %+v", d, err, want)
	}
	if d, err := parseDrops(`{"nftables": [{"metainfo": {"version": "1.0.6"}}]}`); err != nil || d != (Drops{}) {
		t.Errorf("empty ruleset: %+v, %v", d, err)
	}
	for _, bad := range []string{"Error: Could not process rule", `{"nftables": [{"counter": {"packets": -1}}]}`} {
		if _, err := parseDrops(bad); err == nil {
			t.Errorf("parseDrops(%q) accepted it", bad)
		}
	}
}

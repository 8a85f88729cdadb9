package main

import (
	"log/slog"
	"net/netip"
	"os"
	"slices"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/firewall/firewalltest"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/nft"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// pktLab makes a lab of the packet benchmark: the host (the firewall
// under test) and one peer, over the veth pair pktHost – pktPeer.
func pktLab(tb *benchTB, name string) (*testnet.Lab, error) {
	lab := testnet.NewLab(tb, name, testnet.Link{HostIf: pktHostIf, Host: []netip.Prefix{pktHost}, Peer: []netip.Prefix{pktPeer}})
	// The host answers unlisted floods (ICMP, TCP) over the peer.
	lab.Host.MustRun("ip", "route", "add", "default", "via", pktPeer.Addr().String())
	// A host firewall that uses conntrack, as most do: without one, the
	// namespace would track nothing and the conntrack figure could not fail.
	err := nftScript(lab, "table inet sgpktct {\n chain input { type filter hook input priority 0; ct state established,related accept; }\n}\n")
	return lab, err
}

// pktBackend is the product's nftables backend at prerouting in the lab's
// host.
func pktBackend(lab *testnet.Lab, s firewall.Settings) (*nft.Backend, error) {
	return nft.New(firewalltest.Settings(s, nft.HookPrerouting), slog.New(slog.DiscardHandler), nft.WithNetNSFd(lab.Host.FD()))
}

// pktLoad fills b's table with list and the role lists of roles:
// transactions of at most pktChunk ranges, since the kernel holds a whole
// transaction in memory, gigabytes at a million elements. The role lists
// go first, then singles (list's single addresses), then the ranges.
func pktLoad(b *nft.Backend, list, singles ipnet.Set, roles firewall.Lists) error {
	if roles.Extra() {
		if err := b.Apply(roles); err != nil {
			return err
		}
	}
	roles.Block = singles
	if err := b.Apply(roles); err != nil {
		return err
	}
	for _, part := range pktChunks(list) {
		if err := b.Update(part); err != nil {
			return err
		}
	}
	return nil
}

// pktChunks returns growing prefixes of list's ranges of two or more
// addresses, on top of all its single addresses, pktChunk more each.
func pktChunks(list ipnet.Set) []ipnet.Set {
	var out []ipnet.Set
	cur, wide := ipnet.Set{}, 0
	for _, r := range list.V4 {
		cur.V4 = append(cur.V4, r)
		if r.Lo != r.Hi {
			if wide++; wide%pktChunk == 0 {
				out = append(out, ipnet.Set{V4: slices.Clone(cur.V4)})
			}
		}
	}
	return append(out, cur)
}

// nftScript runs nft -f with the script in the host namespace.
func nftScript(lab *testnet.Lab, script string) error {
	f, err := os.CreateTemp("", "sikkerbench-packet-*.nft")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(script); err != nil {
		return err
	}
	f.Close()
	_, err = lab.Host.Run("nft", "-f", f.Name())
	return err
}

package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// dryRunFirewall is the --dry-run backend of the daemon and of `--once`:
// it logs what it would do and never touches the kernel.
type dryRunFirewall struct{ log *slog.Logger }

func (f dryRunFirewall) Apply(l firewall.Lists) error {
	logDryRun(f.log, Plan{Lists: l})
	return nil
}

func (dryRunFirewall) Remove() error { return nil }

// Intact is true: the dry run has nothing in the kernel to lose.
func (dryRunFirewall) Intact() (bool, error) { return true, nil }

// Restore does nothing: the dry run put nothing in the kernel.
func (dryRunFirewall) Restore([]netip.Addr) error { return nil }

// Watch reports nothing: no other program can change what is not there.
func (dryRunFirewall) Watch(context.Context) (<-chan firewall.Change, error) { return nil, nil }

// Counters are zero: the dry run drops nothing.
func (dryRunFirewall) Counters() (firewall.Counters, error) { return firewall.Counters{}, nil }

// logDryRun shows what would be blocked, with a few sample entries.
func logDryRun(log *slog.Logger, p Plan) {
	log.Info(fmt.Sprintf("Dry run: would block %d IPs", BlockedCount(p.Block, true)), CountBlocked(p.Block).Attrs()...)
	n := 0
	for r := range p.Block.Ranges() {
		if n == 5 {
			break
		}
		log.Info("Dry run: would block", "range", r.String())
		n++
	}
	w4, w6 := p.Allow.Len()
	log.Info("Dry run: would always accept", "ranges_ipv4", w4, "ranges_ipv6", w6)
	if p.Extra() {
		m4, m6 := p.Monitor.Len()
		o4, o6 := p.Out.Len()
		sc := 0
		for _, s := range p.Scoped {
			v4, v6 := s.Len()
			sc += v4 + v6
		}
		log.Info("Dry run: would watch and block by role", "monitor_ranges", m4+m6, "outbound_ranges", o4+o6, "scoped_ranges", sc)
	}
}

// logBlocking writes the contract's "Blocking N IPs" line for the list in
// force, in the daemon and in `--once` alike.
func logBlocking(log *slog.Logger, block ipnet.Set, ipv6 bool) {
	log.Info(fmt.Sprintf("Blocking %d IPs", BlockedCount(block, ipv6)), CountBlocked(block).Attrs()...)
}

// BlockCounts are a blocklist's numbers in the words shared by the journal,
// STATUS=, sikkerctl, the bus and the docs: ranges after merging, per
// family, and the IPv4 addresses they cover. IPv6 addresses are not counted:
// one /64 alone holds 2^64. (A feed's entries, as listed before merging, are
// logged when it is pulled.)
type BlockCounts struct {
	AddressesIPv4 uint64
	RangesIPv4    int
	RangesIPv6    int
}

// CountBlocked counts s.
func CountBlocked(s ipnet.Set) BlockCounts {
	a4, _ := s.Addresses()
	v4, v6 := s.Len()
	return BlockCounts{AddressesIPv4: a4, RangesIPv4: v4, RangesIPv6: v6}
}

// String is the STATUS= wording: "blocking 197849 IPv4 addresses in 1354
// ranges and 181 IPv6 ranges".
func (c BlockCounts) String() string {
	return fmt.Sprintf("blocking %d IPv4 addresses in %d ranges and %d IPv6 ranges", c.AddressesIPv4, c.RangesIPv4, c.RangesIPv6)
}

// Attrs are the journal attributes of a "Blocking N IPs" line, each named
// with its unit.
func (c BlockCounts) Attrs() []any {
	return []any{"addresses_ipv4", c.AddressesIPv4, "ranges_ipv4", c.RangesIPv4, "ranges_ipv6", c.RangesIPv6}
}

// BlockedCount is the "N" of "Blocking N IPs": IPv4 addresses, plus IPv6
// ranges counted once each, since one /64 would otherwise add 2^64.
func BlockedCount(s ipnet.Set, ipv6 bool) uint64 {
	a4, _ := s.Addresses()
	if ipv6 {
		_, v6 := s.Len()
		a4 += uint64(v6)
	}
	return a4
}

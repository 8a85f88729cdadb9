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

func (f dryRunFirewall) Apply(block, allow ipnet.Set) error {
	logDryRun(f.log, Plan{Block: block, Allow: allow})
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
	v4, v6 := p.Block.Len()
	log.Info(fmt.Sprintf("Dry run: would block %d IPs", BlockedCount(p.Block, true)), "ranges4", v4, "ranges6", v6)
	n := 0
	for r := range p.Block.Ranges() {
		if n == 5 {
			break
		}
		log.Info("Dry run: would block", "range", r.String())
		n++
	}
	w4, w6 := p.Allow.Len()
	log.Info("Dry run: would always accept", "ranges4", w4, "ranges6", w6)
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

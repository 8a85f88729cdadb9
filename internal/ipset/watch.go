package ipset

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/nft"
)

// Watching: iptables-nft keeps the rules in the nftables tables ip filter
// and ip6 filter, so the nftables events show `iptables -F INPUT`, a
// deleted jump or chain (nft.WatchTables). ipset has no events; a flushed
// set is found by counting the sets' elements every poll interval, which
// `ipset list -t` does without listing them.

// Watch reports deletions in the chains the backend uses and sets whose
// element count no longer matches the backend's copy.
func (b *Backend) Watch(ctx context.Context) (<-chan firewall.Change, error) {
	nsFD := 0
	if b.netns != "" {
		fd, err := unix.Open("/run/netns/"+b.netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("iptables watch: open netns %s: %w", b.netns, err)
		}
		nsFD = fd
	}
	hooks := map[string]bool{Chain: true, ChainBlock: true}
	for _, h := range b.cfg.Hooks {
		hooks[string(h)] = true
	}
	events, err := nft.WatchTables(ctx, nsFD, b.log, func(e nft.TableEvent) bool {
		if (e.Family != unix.NFPROTO_IPV4 && e.Family != unix.NFPROTO_IPV6) || e.Table != "filter" || !e.Delete() {
			return false
		}
		return e.Msg == unix.NFT_MSG_DELTABLE || hooks[e.Name]
	})
	if nsFD > 0 {
		unix.Close(nsFD) // the socket stays in the namespace
	}
	if err != nil {
		return nil, fmt.Errorf("iptables watch: %w", err)
	}
	out := make(chan firewall.Change, 1)
	go func() {
		defer close(out)
		t := time.NewTicker(b.poll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case c, ok := <-events:
				if !ok {
					events = nil // only the polling is left
					continue
				}
				send(ctx, out, c)
			case <-t.C:
				if what := b.countDrift(); what != "" {
					send(ctx, out, firewall.Change{What: what, Content: true})
				}
			}
		}
	}()
	return out, nil
}

func send(ctx context.Context, out chan<- firewall.Change, c firewall.Change) {
	select {
	case out <- c:
	case <-ctx.Done():
	}
}

// countDrift compares the element counts of the blocklist sets with the
// copy; "" when they match or the backend holds nothing yet. A failed
// listing is no drift: the rules check (Intact) covers missing sets.
func (b *Backend) countDrift() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.synced {
		return ""
	}
	out, err := b.run(nil, "ipset", "list", "-t")
	if err != nil {
		b.log.Debug("ipset: cannot count the sets' elements", "err", err)
		return ""
	}
	have := parseCounts(out)
	for _, f := range b.families() {
		hosts, nets := counts(b.block, f.v6)
		for name, want := range map[string]int{f.hosts: hosts, f.nets: nets + 1} { // +1: the sentinel
			if got, ok := have[name]; ok && got != want {
				return fmt.Sprintf("set %s holds %d entries, %d expected", name, got, want)
			}
		}
	}
	return ""
}

// parseCounts reads the "Name:" and "Number of entries:" lines of
// `ipset list -t`.
func parseCounts(listing string) map[string]int {
	out := map[string]int{}
	name := ""
	for _, l := range strings.Split(listing, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Name":
			name = v
		case "Number of entries":
			if n, err := strconv.Atoi(v); err == nil && name != "" {
				out[name] = n
			}
		}
	}
	return out
}

// Restore puts the sets and rules back from the backend's copy: a full
// refresh (temporary sets swapped in) and the chains and jumps, each added
// only where missing. hot is not needed: a flushed set keeps its rules, and
// the rules reference the sets, so no rule stands without its set.
func (b *Backend) Restore([]netip.Addr) error {
	b.mu.Lock()
	if b.block.IsEmpty() && b.allow.IsEmpty() && !b.rules {
		b.mu.Unlock()
		return nil
	}
	block, allow := b.block, b.allow
	b.synced, b.rules = false, false
	b.mu.Unlock()
	return b.Apply(block, allow)
}

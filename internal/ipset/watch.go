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
	events, err := nft.WatchTables(ctx, nsFD, b.log, func(e nft.TableEvent) nft.Verdict {
		if (e.Family != unix.NFPROTO_IPV4 && e.Family != unix.NFPROTO_IPV6) || e.Table != "filter" || !e.Delete() {
			return nft.Ignore
		}
		switch {
		case e.Msg == unix.NFT_MSG_DELTABLE || e.Name == Chain || e.Name == ChainBlock:
			return nft.Sure
		case !hooks[e.Name]:
			return nft.Ignore // another program's chain
		case e.Comment == Comment:
			return nft.Sure // our jump
		case e.Comment == "":
			return nft.Maybe // a hooked chain deleted, or a rule without a comment
		}
		return nft.Ignore // another program's commented rule
	}, nft.WatchOptions{Ours: b.ranRecently})
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
					send(ctx, out, firewall.Change{What: what, Sure: true})
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
	return b.countDriftLocked()
}

func (b *Backend) countDriftLocked() string {
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

// Restore puts the sets and rules back from the backend's copy. Sets whose
// element counts still match are kept and only the chains and jumps are
// rewritten (one iptables-restore per family, jumps added where missing);
// otherwise the sets get a full refresh (temporary sets swapped in) first.
// hot is not needed: the rules reference the sets, so no rule stands
// without its set.
func (b *Backend) Restore([]netip.Addr) error {
	b.mu.Lock()
	if b.block.IsEmpty() && b.allow.IsEmpty() && !b.rules {
		b.mu.Unlock()
		return nil
	}
	block, allow := b.block, b.allow
	if b.countDriftLocked() == "" {
		defer b.mu.Unlock()
		if err := b.installRules(); err != nil {
			b.rules = false
			return err
		}
		b.rules = true
		return nil
	}
	b.synced, b.rules = false, false
	b.mu.Unlock()
	return b.Apply(firewall.Lists{Block: block, Allow: allow})
}

// helperMemory is how long the pid of a command the backend ran is
// remembered: its nftables events may be read after it exited.
const helperMemory = time.Minute

// noteHelper remembers the pid of a command the backend started.
func (b *Backend) noteHelper(pid int) {
	b.helpersMu.Lock()
	defer b.helpersMu.Unlock()
	now := time.Now()
	if b.helpers == nil {
		b.helpers = map[int]time.Time{}
	}
	for p, at := range b.helpers {
		if now.Sub(at) > helperMemory {
			delete(b.helpers, p)
		}
	}
	b.helpers[pid] = now
}

// ranRecently reports whether pid is a command the backend ran: iptables
// commits its own transactions, which are not another program's changes.
func (b *Backend) ranRecently(pid int) bool {
	b.helpersMu.Lock()
	defer b.helpersMu.Unlock()
	at, ok := b.helpers[pid]
	return ok && time.Since(at) <= helperMemory
}

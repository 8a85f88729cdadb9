// Package ipset is sikkerguard's iptables compatibility backend: ipset sets
// filled by `ipset restore` and swapped into place, referenced from a
// SIKKERGUARD chain that iptables-nft hooks into INPUT, FORWARD or
// DOCKER-USER.
//
// Layout per family: hash:ip sets sikkerguard4/sikkerguard6 hold single
// addresses (the layout of the sikkerapi-ipset-update script this replaces),
// hash:net sets sikkerguard4-net/sikkerguard6-net the CIDR cover of every
// range of two or more addresses, and hash:net sets sikkerguard4-allow and
// sikkerguard6-allow the whitelist. ipset's comment extension is per element,
// so the sets carry no comment; their names say whose they are.
//
// A full refresh fills temporary sets sized from the list and swaps them in,
// all in one `ipset restore` fed through a pipe as it is generated. ipset has
// no transactions, so a swap is atomic per set: the net set is swapped before
// the host set, and an address moving from a range to a single entry is
// added to the old host set (or the new net set) so that it stays covered
// until the host swap is done (see fullPlan). A small change
// is sent as additions then deletions computed from the backend's own copy
// of the list; no address listed before and after is ever unblocked, but
// addresses only in the new list are blocked one by one as the restore runs.
//
// Each hash:net set also holds a sentinel element that no packet matches,
// which works around a race in the kernel's hash:net (see sentinel).
//
// The rules are written with iptables-restore --noflush, one nftables
// transaction for both chains; only the jump rules are inserted one command
// at a time, after a -C check so that a re-run never duplicates them.
package ipset

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// Backend manages the sets and chains. It is safe for concurrent use;
// operations are serialised.
type Backend struct {
	log    *slog.Logger
	cfg    firewall.Settings
	prefix []string // runs every command inside a namespace, e.g. ip netns exec NAME
	netns  string   // that namespace's name, for the event watcher
	// poll is how often Watch compares the sets' element counts with the
	// copy (ipset has no events).
	poll time.Duration
	bins map[string]string

	mu     sync.Mutex
	synced bool // block, allow and caps describe the kernel
	rules  bool // this Backend installed (or re-asserted) the rules
	block  ipnet.Set
	allow  ipnet.Set
	caps   caps
	stats  struct{ full, delta int } // refreshes sent, for tests and logs

	helpersMu sync.Mutex
	helpers   map[int]time.Time // pids of commands run, when (see ranRecently)
}

// Option tunes New.
type Option func(*Backend)

// WithNetNS runs every command inside the named network namespace (with
// `ip netns exec`), for tests and benchmarks.
func WithNetNS(name string) Option {
	return func(b *Backend) { b.prefix, b.netns = []string{"ip", "netns", "exec", name}, name }
}

// WithPollInterval sets how often Watch counts the sets' elements
// (default 5 s).
func WithPollInterval(d time.Duration) Option { return func(b *Backend) { b.poll = d } }

// ErrLegacy is returned by New when iptables is the legacy (x_tables)
// build: its rules would live beside, not in, the nftables ruleset.
var ErrLegacy = errors.New("iptables is the legacy build; sikkerguard needs iptables-nft " +
	"(run: update-alternatives --set iptables /usr/sbin/iptables-nft && update-alternatives --set ip6tables /usr/sbin/ip6tables-nft)")

// New checks s, finds the ipset and iptables-nft binaries and refuses
// legacy iptables. It does not touch the kernel.
func New(s firewall.Settings, log *slog.Logger, opts ...Option) (*Backend, error) {
	cfg, err := backend.Check(s)
	if err != nil {
		return nil, fmt.Errorf("iptables settings: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Backend{log: log, cfg: cfg, bins: map[string]string{}, poll: 5 * time.Second}
	for _, o := range opts {
		o(b)
	}
	need := []string{"ipset", "iptables", "iptables-restore"}
	if cfg.IPv6 {
		need = append(need, "ip6tables", "ip6tables-restore")
	}
	if len(b.prefix) > 0 {
		need = append(need, b.prefix[0])
	}
	for _, name := range append(need, "ip6tables", "ip6tables-restore") {
		path, err := exec.LookPath(name)
		if err != nil {
			if slices.Contains(need, name) {
				return nil, fmt.Errorf("iptables backend: %s not found in PATH (install the %s package)", name, pkgOf(name))
			}
			continue // only used by Remove, to clean up an earlier IPv6 setup
		}
		b.bins[name] = path
	}
	for _, name := range []string{"iptables", "ip6tables"} {
		if b.bins[name] == "" {
			continue
		}
		out, err := exec.Command(b.bins[name], "--version").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("iptables backend: %s --version: %w: %s", name, err, bytes.TrimSpace(out))
		}
		if bytes.Contains(out, []byte("(legacy)")) {
			return nil, fmt.Errorf("iptables backend: %s: %w", bytes.TrimSpace(out), ErrLegacy)
		}
	}
	return b, nil
}

func pkgOf(bin string) string {
	if bin == "ipset" {
		return "ipset"
	}
	if bin == "ip" {
		return "iproute2"
	}
	return "iptables"
}

func (b *Backend) families() []family {
	if b.cfg.IPv6 {
		return []family{fam4, fam6}
	}
	return []family{fam4}
}

// CommandError is a command that failed; Stderr holds its message.
type CommandError struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		return fmt.Sprintf("%s: %v", strings.Join(e.Args, " "), e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Args, " "), e.Err, msg)
}

func (e *CommandError) Unwrap() error { return e.Err }

// exitCode returns the exit status of a failed command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// run runs a tool (by its short name) with stdin produced by gen (nil for
// none), streaming gen's output through a pipe as it is written.
func (b *Backend) run(gen func(*bufio.Writer) error, tool string, args ...string) (string, error) {
	path := b.bins[tool]
	if path == "" {
		return "", fmt.Errorf("%s not found in PATH", tool)
	}
	argv := append(append(slices.Clone(b.prefix), path), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var stdin io.WriteCloser
	if gen != nil {
		var err error
		if stdin, err = cmd.StdinPipe(); err != nil {
			return "", fmt.Errorf("%s: %w", tool, err)
		}
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("%s: %w", tool, err)
	}
	// `ip netns exec` execs the tool, so the pid is the tool's.
	b.noteHelper(cmd.Process.Pid)
	var genErr error
	if gen != nil {
		genErr = gen(bufio.NewWriterSize(stdin, 64<<10))
		stdin.Close()
	}
	err := cmd.Wait()
	if err == nil && genErr != nil {
		err = genErr
	}
	if err != nil {
		// A write error is usually the tool having quit on a bad line; its
		// exit status and message say why.
		return stdout.String(), &CommandError{Args: append([]string{tool}, args...), Stderr: stderr.String(), Err: err}
	}
	return stdout.String(), nil
}

// Apply makes the kernel hold block and allow (both merged). The first call
// replaces whatever an earlier process left by swapping (adopting the sets
// and chains without a gap) and installs the rules; later calls send the
// cheaper of a delta and a full swap. The backend keeps the slices: the
// caller must not modify them afterwards. It builds no feed roles (monitor,
// outbound, scoped: the config refuses them with this backend), so lists
// for them are an error.
func (b *Backend) Apply(l firewall.Lists) error {
	if l.Extra() {
		return errors.New("ipset apply: monitor, outbound and scoped feeds need the nftables backend")
	}
	block, allow := l.Block, l.Allow
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.cfg.IPv6 {
		block.V6, allow.V6 = nil, nil
	}
	if err := b.applySets(block, allow); err != nil {
		return err
	}
	// The sets exist now, so rules may reference them.
	if !b.rules {
		if err := b.installRules(); err != nil {
			return err
		}
		b.rules = true
	}
	return nil
}

func (b *Backend) applySets(block, allow ipnet.Set) error {
	fams := b.families()
	if b.synced && fewChanges(b.block, block) {
		d := planDelta(b.block, block, fams)
		ok, reason := b.deltaFits(d, block, fams)
		if ok {
			return b.applyDelta(d, block, allow, fams)
		}
		b.log.Debug("ipset full replace", "reason", reason)
	}
	return b.applyFull(block, allow, fams)
}

// fewChanges compares ranges before a delta is expanded into prefixes:
// most lists from a feed share little with the last one, and expanding a
// delta that is bound to lose costs more than the comparison. It walks both
// sorted lists without allocating: an ipnet.Diff of two unrelated
// million-range lists would allocate some 50 MB just to be counted.
func fewChanges(old, next ipnet.Set) bool {
	n := unshared(old.V4, next.V4, func(a, b ipnet.Range4) int {
		return cmp.Or(cmp.Compare(a.Lo, b.Lo), cmp.Compare(a.Hi, b.Hi))
	}) + unshared(old.V6, next.V6, func(a, b ipnet.Range6) int {
		return cmp.Or(a.Lo.Cmp(b.Lo), a.Hi.Cmp(b.Hi))
	})
	return n < len(next.V4)+len(next.V6)
}

// unshared counts the ranges that are in only one of two sorted lists; a
// range that grew counts twice (old and new), as a delete and an add would.
func unshared[R any](a, b []R, compare func(R, R) int) int {
	i, j, n := 0, 0, 0
	for i < len(a) && j < len(b) {
		switch c := compare(a[i], b[j]); {
		case c == 0:
			i, j = i+1, j+1
		case c < 0:
			i, n = i+1, n+1
		default:
			j, n = j+1, n+1
		}
	}
	return n + len(a) - i + len(b) - j
}

// deltaFits reports whether a delta is cheaper than a swap and leaves every
// set within its maxelem.
func (b *Backend) deltaFits(d delta, block ipnet.Set, fams []family) (bool, string) {
	full := 0
	for _, f := range fams {
		c := census(block, f.v6)
		if c.hosts > b.caps[f.hosts] || c.nets+1 > b.caps[f.nets] {
			return false, "maxelem"
		}
		if c.lens != census(b.block, f.v6).lens {
			return false, "prefix lengths change" // see sentinel
		}
		full += c.hosts + c.nets
	}
	if d.size() >= full {
		return false, "delta not smaller"
	}
	return true, ""
}

func (b *Backend) applyDelta(d delta, block, allow ipnet.Set, fams []family) error {
	allowChanged := !allow.Equal(b.allow)
	var c caps
	_, err := b.run(func(w *bufio.Writer) error {
		var err error
		c, err = writeDelta(w, d, allow, allowChanged, fams)
		return err
	}, "ipset", "-exist", "restore")
	if err != nil {
		b.synced = false // part of the delta may be in; the next Apply swaps
		b.dropTemps()
		return fmt.Errorf("ipset delta: %w", err)
	}
	for k, v := range c {
		b.caps[k] = v
	}
	b.stats.delta++
	b.block, b.allow = block, allow
	b.log.Info("ipset sets updated", "op", "update", "added", len(d.add), "removed", len(d.del),
		"ranges_ipv4", len(block.V4), "ranges_ipv6", len(block.V6))
	return nil
}

func (b *Backend) applyFull(block, allow ipnet.Set, fams []family) error {
	names, err := b.listSets()
	if err != nil {
		return err
	}
	p := fullPlan{families: fams, block: block, allow: allow, exists: names, old: b.block, oldKnown: b.synced, room: caps{}}
	if b.synced {
		for _, f := range fams {
			p.room[f.hosts] = b.caps[f.hosts] - census(b.block, f.v6).hosts
		}
	}
	var c caps
	_, err = b.run(func(w *bufio.Writer) error {
		var err error
		c, err = p.write(w)
		return err
	}, "ipset", "restore")
	if err != nil {
		b.synced = false
		b.dropTemps()
		return fmt.Errorf("ipset replace: %w%s", err, hint(err))
	}
	b.synced, b.block, b.allow, b.caps = true, block, allow, c
	b.stats.full++
	b.log.Info("ipset sets replaced", "op", "replace", "ranges_ipv4", len(block.V4), "ranges_ipv6", len(block.V6),
		"allow_ranges_ipv4", len(allow.V4), "allow_ranges_ipv6", len(allow.V6))
	return nil
}

// hint explains the ipset errors whose cause is not obvious.
func hint(err error) string {
	var ce *CommandError
	if errors.As(err, &ce) && strings.Contains(ce.Stderr, "cannot be swapped") {
		return " (a set of that name exists with another type or family; remove it with `sikkerguard --cleanup`)"
	}
	return ""
}

// dropTemps destroys temporaries a failed restore left, best effort: the
// next full replace destroys any that remain.
func (b *Backend) dropTemps() {
	for _, f := range []family{fam4, fam6} {
		for _, n := range []string{f.hosts, f.nets, f.allow} {
			_, _ = b.run(nil, "ipset", "destroy", n+TempSuffix)
		}
	}
}

// listSets returns the names of all ipset sets in the kernel.
func (b *Backend) listSets() (map[string]bool, error) {
	out, err := b.run(nil, "ipset", "list", "-n")
	if err != nil {
		return nil, fmt.Errorf("ipset list: %w", err)
	}
	names := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names[l] = true
		}
	}
	return names, nil
}

func tools(f family) (iptables, restore string) {
	if f.v6 {
		return "ip6tables", "ip6tables-restore"
	}
	return "iptables", "iptables-restore"
}

// installRules writes both chains in one iptables-restore per family, then
// inserts each missing jump at the top of its built-in chain.
func (b *Backend) installRules() error {
	for _, f := range b.families() {
		ipt, restore := tools(f)
		text := rulesScript(b.cfg, f)
		if _, err := b.run(func(w *bufio.Writer) error {
			if _, err := w.WriteString(text); err != nil {
				return err
			}
			return w.Flush()
		}, restore, "--noflush"); err != nil {
			return fmt.Errorf("install %s chains: %w", ipt, err)
		}
		for _, h := range b.cfg.Hooks {
			hook := string(h)
			if h == HookDockerUser && !b.chainExists(ipt, hook) {
				if f.v6 {
					b.log.Warn("DOCKER-USER chain missing in ip6tables; IPv6 not hooked there", "chain", hook)
					continue
				}
				return fmt.Errorf("hook %s: chain not found in the iptables filter table (Docker creates it when it starts)", hook)
			}
			present, err := b.jumpPresent(ipt, hook)
			if err != nil {
				return err
			}
			if present {
				continue
			}
			if _, err := b.run(nil, ipt, append([]string{"-t", "filter", "-I", hook, "1"}, jumpSpec()...)...); err != nil {
				return fmt.Errorf("hook %s: %w", hook, err)
			}
		}
	}
	hooks := make([]string, len(b.cfg.Hooks))
	for i, h := range b.cfg.Hooks {
		hooks[i] = string(h)
	}
	b.log.Info("iptables rules installed", "chain", Chain, "hooks", strings.Join(hooks, ","), "action", b.cfg.Action, "ipv6", b.cfg.IPv6)
	return nil
}

// jumpPresent checks for the jump rule with -C: status 1 means absent.
func (b *Backend) jumpPresent(ipt, hook string) (bool, error) {
	_, err := b.run(nil, ipt, append([]string{"-t", "filter", "-C", hook}, jumpSpec()...)...)
	switch {
	case err == nil:
		return true, nil
	case exitCode(err) == 1:
		return false, nil
	}
	return false, fmt.Errorf("check jump from %s: %w", hook, err)
}

func (b *Backend) chainExists(ipt, chain string) bool {
	_, err := b.run(nil, ipt, "-t", "filter", "-S", chain)
	return err == nil
}

// Intact reports whether the rules this backend installed still stand:
// both chains with all their rules and every jump into them, per family,
// and whether the blocklist sets hold as many elements as the copy says.
// `iptables -F` or a firewall manager rebuilding the built-in chains
// removes the jumps and with them all protection; the sets cannot vanish
// while the chains reference them, but `ipset flush` empties them.
func (b *Backend) Intact() (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range b.families() {
		ipt, _ := tools(f)
		want := rulesScript(b.cfg, f)
		for _, c := range []string{Chain, ChainBlock} {
			n, ok := b.chainRules(ipt, c)
			if !ok || n != strings.Count(want, "\n-A "+c+" ") {
				return false, nil
			}
		}
		for _, h := range b.cfg.Hooks {
			hook := string(h)
			if h == HookDockerUser && f.v6 && !b.chainExists(ipt, hook) {
				continue // never hooked there, see installRules
			}
			ok, err := b.jumpPresent(ipt, hook)
			if err != nil || !ok {
				return false, err
			}
		}
	}
	return b.countDriftLocked() == "", nil
}

// chainRules counts the rules of a chain; false when it does not exist.
func (b *Backend) chainRules(ipt, chain string) (int, bool) {
	out, err := b.run(nil, ipt, "-t", "filter", "-S", chain)
	if err != nil {
		return 0, false
	}
	return strings.Count("\n"+out, "\n-A "+chain+" "), true
}

// Counters reads the counters of the verdict rule of the block chain,
// which every blocked packet of every hook reaches, in each family. It does
// not wait for an Apply in progress: it only reads.
func (b *Backend) Counters() (firewall.Counters, error) {
	var c firewall.Counters
	for _, f := range b.families() {
		ipt, _ := tools(f)
		out, err := b.run(nil, ipt, "-t", "filter", "-L", ChainBlock, "-v", "-x", "-n")
		if err != nil {
			return firewall.Counters{}, fmt.Errorf("read %s counters: %w", ipt, err)
		}
		p, by, err := verdictCounters(out)
		if err != nil {
			return firewall.Counters{}, fmt.Errorf("read %s counters: %w", ipt, err)
		}
		if f.v6 {
			c.Packets6, c.Bytes6 = p, by
		} else {
			c.Packets4, c.Bytes4 = p, by
		}
	}
	return c, nil
}

// Exists reports whether any rule chain or set of the backend is in the
// kernel (left by any process).
func (b *Backend) Exists() (bool, error) {
	names, err := b.listSets()
	if err != nil {
		return false, err
	}
	for _, n := range allSets() {
		if names[n] {
			return true, nil
		}
	}
	for _, f := range []family{fam4, fam6} {
		ipt, _ := tools(f)
		if b.bins[ipt] != "" && (b.chainExists(ipt, Chain) || b.chainExists(ipt, ChainBlock)) {
			return true, nil
		}
	}
	return false, nil
}

// Remove deletes the jump rules from every hook any configuration may have
// used, both chains and all sets, in both families. It is idempotent.
func (b *Backend) Remove() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, f := range []family{fam4, fam6} {
		ipt, restore := tools(f)
		if b.bins[ipt] == "" {
			continue
		}
		// Without the chain no rule can jump to it (iptables -C then fails
		// with status 2, not 1).
		hooks := []string{string(HookInput), string(HookForward), string(HookDockerUser)}
		if !b.chainExists(ipt, Chain) {
			hooks = nil
		}
		for _, hook := range hooks {
			if hook == string(HookDockerUser) && !b.chainExists(ipt, hook) {
				continue
			}
			for range 100 { // a rule added twice by hand is removed too
				present, err := b.jumpPresent(ipt, hook)
				if err != nil {
					return err
				}
				if !present {
					break
				}
				if _, err := b.run(nil, ipt, append([]string{"-t", "filter", "-D", hook}, jumpSpec()...)...); err != nil {
					return fmt.Errorf("remove jump from %s: %w", hook, err)
				}
			}
		}
		var flush, del strings.Builder
		for _, c := range []string{Chain, ChainBlock} {
			if b.chainExists(ipt, c) {
				fmt.Fprintf(&flush, "-F %s\n", c)
				fmt.Fprintf(&del, "-X %s\n", c)
			}
		}
		if flush.Len() > 0 {
			text := "*filter\n" + flush.String() + del.String() + "COMMIT\n"
			if _, err := b.run(func(w *bufio.Writer) error {
				if _, err := w.WriteString(text); err != nil {
					return err
				}
				return w.Flush()
			}, restore, "--noflush"); err != nil {
				return fmt.Errorf("remove %s chains: %w", ipt, err)
			}
		}
	}
	names, err := b.listSets()
	if err != nil {
		return err
	}
	var doomed []string
	for _, n := range allSets() {
		if names[n] {
			doomed = append(doomed, n)
		}
	}
	if len(doomed) > 0 {
		if _, err := b.run(func(w *bufio.Writer) error {
			for _, n := range doomed {
				if _, err := w.WriteString("destroy " + n + "\n"); err != nil {
					return err
				}
			}
			return w.Flush()
		}, "ipset", "restore"); err != nil {
			return fmt.Errorf("destroy sets: %w (a rule outside sikkerguard may still reference one)", err)
		}
	}
	b.synced, b.rules, b.block, b.allow, b.caps = false, false, ipnet.Set{}, ipnet.Set{}, nil
	b.log.Info("iptables rules and ipset sets removed")
	return nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/ledger"
	"github.com/sikkerapi/sikkerguard/internal/version"
)

// Exit codes, as documented for every sikkerguard binary; status and check
// add their own (see the usage text).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// status: like `systemctl is-active`, non-zero unless all is well.
	exitDegraded  = 3
	exitNotActive = 4 // failed, or still starting
	// check: 1 means blocked, so a failure to ask is 3.
	exitBlocked    = 1
	exitCheckError = 3
)

// exitCode makes a command end with code; err, if set, is printed.
type exitCode struct {
	code int
	err  error
}

func (e exitCode) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

const usage = `usage: sikkerctl [--address ADDR] [--timeout DUR] COMMAND [ARGS]

options (before or after the command):
  --address ADDR                  D-Bus address (default: $DBUS_SYSTEM_BUS_ADDRESS or the system bus)
  --timeout DUR                   give up on a call after this long (default 2m)
  -h, --help                      show this help

commands:
  status [--json]                 daemon state, counts, quota and feeds
  reload                          re-read the config; pull feeds whose settings changed (root)
  pull [FEED]                     pull every feed, or FEED, now (root)
  block ADDR|CIDR [--for DURATION] [--comment TEXT]
                                  block by hand, until unblocked or for DURATION (root)
  unblock ADDR|CIDR...            lift entries blocked by hand (root)
  whitelist add CIDR...           never block these addresses (root)
  whitelist remove CIDR...        drop runtime whitelist entries (root)
  whitelist list [--json]         entries in force
  check [--json] IP               is IP blocked, and why
  top [-n N] [--json]             most-blocked sources (default 10)
  feeds [--json]                  what each feed drops, uniquely catches and breaks, with advice
  version [--json]                sikkerctl's and the daemon's versions
  hub status [--json]             a fleet hub's hosts, pulls and reports

The system bus is used unless --address or DBUS_SYSTEM_BUS_ADDRESS names
another. DURATION is like 90m, 12h or 7d.

Exit codes: 0 ok, 1 error, 2 usage. status: 0 running, 3 degraded,
4 failed or starting, 1 when the daemon cannot be asked. check: 0 not
blocked, 1 blocked, 2 invalid address, 3 when the daemon cannot be asked.
`

// env is everything run touches outside its arguments, so tests can pass
// their own.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
	loc    *time.Location
}

// errUsage marks mistakes on the command line (exit 2).
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func usagef(format string, args ...any) error { return errUsage{fmt.Sprintf(format, args...)} }

// globals are accepted before the command and, for convenience, after it.
type globals struct {
	address string
	timeout time.Duration
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.address, "address", g.address, "D-Bus address `ADDR` (default: $DBUS_SYSTEM_BUS_ADDRESS or the system bus)")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "give up on a call after this long (`DUR`)")
}

func newFlags(name string, g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	return nil
}

func run(ctx context.Context, args []string, e env) int {
	err := dispatch(ctx, args, e)
	var ue errUsage
	var ec exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ec):
		if ec.err != nil {
			fmt.Fprintf(e.stderr, "sikkerctl: %v\n", ec.err)
		}
		return ec.code
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(e.stdout, usage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "sikkerctl: %v\n\n%s", err, usage)
		return exitUsage
	default:
		fmt.Fprintf(e.stderr, "sikkerctl: %v\n", err)
		return exitError
	}
}

func dispatch(ctx context.Context, args []string, e env) error {
	g := &globals{timeout: 2 * time.Minute}
	fs := newFlags("sikkerctl", g)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("missing command")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "help":
		return flag.ErrHelp
	case "status":
		return cmdStatus(ctx, rest, g, e)
	case "reload":
		return cmdReload(ctx, rest, g, e)
	case "pull":
		return cmdPull(ctx, rest, g, e)
	case "block":
		return cmdBlock(ctx, rest, g, e)
	case "unblock":
		return cmdUnblock(ctx, rest, g, e)
	case "whitelist":
		return cmdWhitelist(ctx, rest, g, e)
	case "check":
		return cmdCheck(ctx, rest, g, e)
	case "top":
		return cmdTop(ctx, rest, g, e)
	case "version":
		return cmdVersion(ctx, rest, g, e)
	case "hub":
		return cmdHub(ctx, rest, g, e)
	case "feeds":
		return cmdFeeds(ctx, rest, g, e)
	}
	return usagef("unknown command %q", cmd)
}

// connect dials the bus and bounds the whole command by --timeout.
func connect(ctx context.Context, g *globals, e env) (*dbusapi.Client, context.Context, func(), error) {
	addr := g.address
	if addr == "" {
		addr = e.getenv("DBUS_SYSTEM_BUS_ADDRESS")
	}
	c, err := dbusapi.Dial(addr)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	return c, ctx, func() { cancel(); _ = c.Close() }, nil
}

// readFlags parses the flags of a command that takes no arguments, only
// --json and the flags more declares.
func readFlags(name string, g *globals, args []string, more func(*flag.FlagSet)) (asJSON bool, err error) {
	fs := newFlags(name, g)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if more != nil {
		more(fs)
	}
	if err := parse(fs, args); err != nil {
		return false, err
	}
	return asJSON, noArgs(fs)
}

func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdReload(ctx context.Context, args []string, g *globals, e env) error {
	fs := newFlags("reload", g)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	c, ctx, done, err := connect(ctx, g, e)
	if err != nil {
		return err
	}
	defer done()
	if err := c.Reload(ctx); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "reloaded")
	return nil
}

func cmdWhitelist(ctx context.Context, args []string, g *globals, e env) error {
	if len(args) == 0 {
		return usagef("whitelist: want add, remove or list")
	}
	sub, args := args[0], args[1:]
	fs := newFlags("whitelist "+sub, g)
	asJSON := false
	if sub == "list" {
		fs.BoolVar(&asJSON, "json", false, "print JSON")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	switch sub {
	case "list":
		if err := noArgs(fs); err != nil {
			return err
		}
	case "add", "remove":
		if fs.NArg() == 0 {
			return usagef("whitelist %s: want at least one IP or CIDR", sub)
		}
	default:
		return usagef("whitelist: unknown subcommand %q (want add, remove or list)", sub)
	}
	c, ctx, done, err := connect(ctx, g, e)
	if err != nil {
		return err
	}
	defer done()
	if sub == "list" {
		list, err := c.WhitelistList(ctx)
		if err != nil {
			return err
		}
		if asJSON {
			out := make([]string, 0, len(list))
			for _, p := range list {
				out = append(out, p.String())
			}
			return writeJSON(e.stdout, out)
		}
		for _, p := range list {
			fmt.Fprintln(e.stdout, p)
		}
		return nil
	}
	op, verb := c.WhitelistAdd, "added"
	if sub == "remove" {
		op, verb = c.WhitelistRemove, "removed"
	}
	// Carry on past a bad entry so one typo does not hide the rest, but stop
	// when the daemon is unreachable or refuses us: every call would fail.
	var failed error
	for _, arg := range fs.Args() {
		err := op(ctx, arg)
		switch {
		case err == nil:
			fmt.Fprintf(e.stdout, "%s %s\n", verb, arg)
		case sub == "add" && errors.Is(err, dbusapi.ErrExists):
			fmt.Fprintf(e.stdout, "%s already whitelisted\n", arg)
		case errors.Is(err, dbusapi.ErrInvalidAddress), errors.Is(err, dbusapi.ErrNotFound):
			fmt.Fprintf(e.stderr, "sikkerctl: %v\n", err)
			failed = fmt.Errorf("whitelist %s: not every entry was %s", sub, verb)
		default:
			return err
		}
	}
	return failed
}

func cmdCheck(ctx context.Context, args []string, g *globals, e env) error {
	fs := newFlags("check", g)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("check: want exactly one IP address")
	}
	c, ctx, done, err := connect(ctx, g, e)
	if err != nil {
		return exitCode{exitCheckError, err}
	}
	defer done()
	ip := fs.Arg(0)
	blocked, why, err := c.Check(ctx, ip)
	switch {
	case errors.Is(err, dbusapi.ErrInvalidAddress):
		return exitCode{exitUsage, err}
	case err != nil:
		return exitCode{exitCheckError, err}
	}
	// Scripts test the exit code: 1 when blocked, 0 when not.
	var result error
	if blocked {
		result = exitCode{code: exitBlocked}
	}
	if *asJSON {
		if err := writeJSON(e.stdout, map[string]any{"address": ip, "blocked": blocked, "explanation": why}); err != nil {
			return err
		}
		return result
	}
	verdict := "not blocked"
	if blocked {
		verdict = "BLOCKED"
	}
	// The daemon's explanation leaves the address out; older daemons
	// started with it.
	why = strings.TrimPrefix(why, ip+" is ")
	fmt.Fprintf(e.stdout, "%s: %s — %s\n", ip, verdict, why)
	return result
}

func cmdPull(ctx context.Context, args []string, g *globals, e env) error {
	fs := newFlags("pull", g)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef("pull: want at most one feed name, got %d", fs.NArg())
	}
	c, ctx, done, err := connect(ctx, g, e)
	if err != nil {
		return err
	}
	defer done()
	feed := fs.Arg(0)
	if err := c.Pull(ctx, feed); err != nil {
		return err
	}
	if feed == "" {
		fmt.Fprintln(e.stdout, "pulled every feed")
	} else {
		fmt.Fprintf(e.stdout, "pulled %s\n", feed)
	}
	return nil
}

// parseInterleaved parses flags given before or after the positional
// arguments (`block 192.0.2.1 --for 1h`) and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseFor reads --for: a Go duration, or whole days as "7d".
func parseFor(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		days, err = strconv.Atoi(n)
		d = time.Duration(days) * 24 * time.Hour
		if err == nil && (days <= 0 || d > dbusapi.MaxBlockFor) {
			err = errors.New("out of range")
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 || d > dbusapi.MaxBlockFor {
		return 0, usagef("block: --for %q: want a positive duration like 90m, 12h or 7d, at most %d days", s, int(dbusapi.MaxBlockFor/(24*time.Hour)))
	}
	return d, nil
}

func cmdBlock(ctx context.Context, args []string, g *globals, e env) error {
	fs := newFlags("block", g)
	forText := fs.String("for", "", "unblock after this long (90m, 12h, 7d)")
	comment := fs.String("comment", "", "why, shown by check")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("block: want exactly one address or CIDR")
	}
	d, err := parseFor(*forText)
	if err != nil {
		return err
	}
	c, ctx, done, err := connect(ctx, g, e)
	if err != nil {
		return err
	}
	defer done()
	if err := c.Block(ctx, pos[0], d, *comment); err != nil {
		return err
	}
	if d > 0 {
		fmt.Fprintf(e.stdout, "blocked %s until %s\n", pos[0], e.now().Add(d).In(e.loc).Format("2006-01-02 15:04:05 MST"))
	} else {
		fmt.Fprintf(e.stdout, "blocked %s until unblocked\n", pos[0])
	}
	return nil
}

func cmdUnblock(ctx context.Context, args []string, g *globals, e env) error {
	fs := newFlags("unblock", g)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef("unblock: want at least one address or CIDR")
	}
	c, ctx, done, err := connect(ctx, g, e)
	if err != nil {
		return err
	}
	defer done()
	var failed error
	for _, arg := range pos {
		err := c.Unblock(ctx, arg)
		switch {
		case err == nil:
			fmt.Fprintf(e.stdout, "unblocked %s\n", arg)
		case errors.Is(err, dbusapi.ErrInvalidAddress), errors.Is(err, dbusapi.ErrNotFound):
			fmt.Fprintf(e.stderr, "sikkerctl: %v\n", err)
			failed = errors.New("unblock: not every entry was unblocked")
		default:
			return err
		}
	}
	return failed
}

type topJSON struct {
	Source    string `json:"source"`
	Port      uint16 `json:"port"`
	Transport string `json:"transport"`
	Service   string `json:"service"`
	Count     uint32 `json:"count"`
}

func cmdTop(ctx context.Context, args []string, g *globals, e env) error {
	var n *int
	asJSON, err := readFlags("top", g, args, func(fs *flag.FlagSet) { n = fs.Int("n", 10, "number of sources") })
	if err != nil {
		return err
	}
	if *n < 1 || *n > dbusapi.MaxTop {
		return usagef("top: -n must be between 1 and %d, got %d", dbusapi.MaxTop, *n)
	}
	c, ctx, done, err := connect(ctx, g, e)
	if err != nil {
		return err
	}
	defer done()
	rows, err := c.TopBlocked(ctx, uint32(*n))
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]topJSON, 0, len(rows))
		for _, r := range rows {
			out = append(out, topJSON{r.Source.String(), r.Port, r.Transport, r.Service, r.Count})
		}
		return writeJSON(e.stdout, out)
	}
	if len(rows) == 0 {
		fmt.Fprintln(e.stdout, "no dropped traffic recorded yet")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tPORT\tPROTO\tSERVICE\tCOUNT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\n", r.Source, r.Port, r.Transport, dash(r.Service), r.Count)
	}
	return tw.Flush()
}

func cmdVersion(ctx context.Context, args []string, g *globals, e env) error {
	asJSON, err := readFlags("version", g, args, nil)
	if err != nil {
		return err
	}
	// The client's version is useful even when the daemon cannot be asked.
	daemon, daemonErr := "", error(nil)
	if c, ctx, done, err := connect(ctx, g, e); err != nil {
		daemonErr = err
	} else {
		p, err := c.Properties(ctx)
		done()
		daemon, daemonErr = p.Version, err
	}
	if asJSON {
		out := map[string]any{"sikkerctl": version.String(), "sikkerguard": nil}
		if daemonErr == nil {
			out["sikkerguard"] = daemon
		}
		return writeJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "sikkerctl %s\n", version.String())
	if daemonErr != nil {
		fmt.Fprintf(e.stdout, "sikkerguard: unknown (%v)\n", daemonErr)
		return nil
	}
	fmt.Fprintf(e.stdout, "sikkerguard %s\n", daemon)
	return nil
}

type feedJSON struct {
	Name     string  `json:"name"`
	State    string  `json:"state,omitempty"`
	Entries  uint32  `json:"entries"`
	LastPull *string `json:"lastPull"`
	Error    string  `json:"error,omitempty"`
	Dropped  uint64  `json:"dropped"`
}

// quotaJSON is the blacklist quota; null numbers were not announced.
type quotaJSON struct {
	Used      *int64  `json:"used"`
	Limit     *int64  `json:"limit"`
	Remaining *int64  `json:"remaining"`
	Reset     *string `json:"reset"`
}

func known(n int64) *int64 {
	if n < 0 {
		return nil
	}
	return &n
}

// stateExit is status's exit code, like `systemctl is-active`.
func stateExit(st dbusapi.State) error {
	switch st {
	case dbusapi.StateRunning:
		return nil
	case dbusapi.StateDegraded:
		return exitCode{code: exitDegraded}
	}
	return exitCode{code: exitNotActive}
}

// headline is status's first line: the state and, unless running, why.
func headline(st dbusapi.Status) string {
	s := "sikkerguard is " + string(st.State)
	if st.State == "" {
		s = "sikkerguard is in an unknown state"
	}
	if st.State != dbusapi.StateRunning && st.LastError != "" {
		s += ": " + st.LastError
	}
	for _, f := range st.Feeds {
		if f.State == dbusapi.FeedFailed {
			s += fmt.Sprintf(" (feed %s failed: the API refuses its key; fix it and run sikkerctl pull %s)", f.Name, f.Name)
			break
		}
	}
	return s
}

// quotaLine describes the blacklist quota for people.
func quotaLine(q *dbusapi.Quota, when func(time.Time) string) string {
	var s string
	switch {
	case q.Used >= 0 && q.Limit >= 0:
		s = fmt.Sprintf("%s of %s blacklist entries used today", thousands(uint64(q.Used)), thousands(uint64(q.Limit)))
	case q.Limit >= 0:
		s = fmt.Sprintf("%s blacklist entries a day", thousands(uint64(q.Limit)))
	default:
		s = "blacklist"
	}
	if q.Remaining >= 0 {
		s += fmt.Sprintf(", %s left", thousands(uint64(q.Remaining)))
	}
	if !q.Reset.IsZero() {
		s += ", resets " + when(q.Reset)
	}
	return s
}

type statusJSON struct {
	Version     string     `json:"version"`
	State       string     `json:"state"`
	Backend     string     `json:"backend"`
	DryRun      bool       `json:"dryRun"`
	BlockedIPv4 uint32     `json:"blockedIPv4"`
	BlockedIPv6 uint32     `json:"blockedIPv6"`
	BlockedIPs  uint64     `json:"blockedIps"`
	Whitelisted uint32     `json:"whitelisted"`
	LastPull    *string    `json:"lastPull"`
	NextPull    *string    `json:"nextPull"`
	LastReport  *string    `json:"lastReport"`
	Started     *string    `json:"started"`
	Uptime      *int64     `json:"uptimeSeconds"`
	LastError   string     `json:"lastError,omitempty"`
	Quota       *quotaJSON `json:"quota,omitempty"`
	Feeds       []feedJSON `json:"feeds"`
}

// jsonTime is RFC 3339 in UTC, or null for "never".
func jsonTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

func cmdStatus(ctx context.Context, args []string, g *globals, e env) error {
	asJSON, err := readFlags("status", g, args, nil)
	if err != nil {
		return err
	}
	c, ctx, done, err := connect(ctx, g, e)
	if err != nil {
		return err
	}
	defer done()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	now := e.now()
	if asJSON {
		out := statusJSON{
			Version: st.Version, State: string(st.State), Backend: st.Backend, DryRun: st.DryRun,
			BlockedIPv4: st.BlockedIPv4, BlockedIPv6: st.BlockedIPv6, BlockedIPs: uint64(st.BlockedIPv4) + uint64(st.BlockedIPv6),
			Whitelisted: st.Whitelisted, LastPull: jsonTime(st.LastPull), NextPull: jsonTime(st.NextPull),
			LastReport: jsonTime(st.LastReport), Started: jsonTime(st.Started), LastError: st.LastError,
			Feeds: []feedJSON{},
		}
		if !st.Started.IsZero() {
			up := int64(now.Sub(st.Started) / time.Second)
			out.Uptime = &up
		}
		for _, f := range st.Feeds {
			out.Feeds = append(out.Feeds, feedJSON{f.Name, f.State, f.Entries, jsonTime(f.LastPull), f.Error, f.Dropped})
		}
		if q := st.Quota; q != nil {
			out.Quota = &quotaJSON{known(q.Used), known(q.Limit), known(q.Remaining), jsonTime(q.Reset)}
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
		return stateExit(st.State)
	}
	when := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := now.Sub(t).Round(time.Second)
		rel := d.String() + " ago"
		if d < 0 {
			rel = "in " + (-d).String()
		}
		return t.In(e.loc).Format("2006-01-02 15:04:05 MST") + " (" + rel + ")"
	}
	// The first line is what matters most: is the host protected, and if
	// not fully, why.
	fmt.Fprintln(e.stdout, headline(st))
	fmt.Fprintln(e.stdout)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "State:\t%s\n", st.State)
	fmt.Fprintf(tw, "Version:\t%s\n", st.Version)
	fmt.Fprintf(tw, "Backend:\t%s\n", dash(st.Backend))
	fmt.Fprintf(tw, "Dry run:\t%s\n", yesNo(st.DryRun))
	fmt.Fprintf(tw, "Blocked:\t%s IPv4 addresses, %s IPv6 ranges\n", thousands(uint64(st.BlockedIPv4)), thousands(uint64(st.BlockedIPv6)))
	fmt.Fprintf(tw, "Whitelisted:\t%s entries\n", thousands(uint64(st.Whitelisted)))
	fmt.Fprintf(tw, "Last pull:\t%s\n", when(st.LastPull))
	fmt.Fprintf(tw, "Next pull:\t%s\n", when(st.NextPull))
	fmt.Fprintf(tw, "Last report:\t%s\n", when(st.LastReport))
	fmt.Fprintf(tw, "Started:\t%s\n", when(st.Started))
	if st.Quota != nil {
		fmt.Fprintf(tw, "Quota:\t%s\n", quotaLine(st.Quota, when))
	}
	if st.LastError != "" {
		fmt.Fprintf(tw, "Last error:\t%s\n", st.LastError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Feeds) > 0 {
		fmt.Fprintln(e.stdout)
		tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		// A feed's list as kept: its own overlaps merged, so counted in ranges.
		fmt.Fprintln(tw, "FEED\tSTATE\tRANGES\tDROPPED\tLAST PULL\tERROR")
		for _, f := range st.Feeds {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, dash(f.State), thousands(uint64(f.Entries)), thousands(f.Dropped), when(f.LastPull), dash(f.Error))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return stateExit(st.State)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// thousands groups digits (1234567 → 1,234,567): list sizes run to millions.
func thousands(n uint64) string { return ledger.Thousands(n) }

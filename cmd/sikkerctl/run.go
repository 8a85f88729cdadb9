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
	"github.com/sikkerapi/sikkerguard/internal/version"
)

// Exit codes, as documented for every sikkerguard binary.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `usage: sikkerctl [--address ADDR] [--timeout DUR] COMMAND [ARGS]

options (before or after the command):
  --address ADDR                  D-Bus address (default: $DBUS_SYSTEM_BUS_ADDRESS or the system bus)
  --timeout DUR                   give up on a call after this long (default 2m)
  -h, --help                      show this help

commands:
  status [--json]                 daemon state, counts and feeds
  reload                          re-read the config and re-pull the lists (root)
  whitelist add CIDR...           never block these addresses (root)
  whitelist remove CIDR...        drop runtime whitelist entries (root)
  whitelist list [--json]         entries in force
  check [--json] IP               is IP blocked, and why
  top [-n N] [--json]             most-blocked sources (default 10)
  version [--json]                sikkerctl's and the daemon's versions

The system bus is used unless --address or DBUS_SYSTEM_BUS_ADDRESS names
another. Exit codes: 0 ok, 1 error, 2 usage.
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
	switch {
	case err == nil:
		return exitOK
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
	case "whitelist":
		return cmdWhitelist(ctx, rest, g, e)
	case "check":
		return cmdCheck(ctx, rest, g, e)
	case "top":
		return cmdTop(ctx, rest, g, e)
	case "version":
		return cmdVersion(ctx, rest, g, e)
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
		return err
	}
	defer done()
	ip := fs.Arg(0)
	blocked, why, err := c.Check(ctx, ip)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(e.stdout, map[string]any{"address": ip, "blocked": blocked, "explanation": why})
	}
	verdict := "not blocked"
	if blocked {
		verdict = "BLOCKED"
	}
	fmt.Fprintf(e.stdout, "%s: %s — %s\n", ip, verdict, why)
	return nil
}

type topJSON struct {
	Source    string `json:"source"`
	Port      uint16 `json:"port"`
	Transport string `json:"transport"`
	Service   string `json:"service"`
	Count     uint32 `json:"count"`
}

func cmdTop(ctx context.Context, args []string, g *globals, e env) error {
	fs := newFlags("top", g)
	n := fs.Int("n", 10, "number of sources")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
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
	if *asJSON {
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
	fs := newFlags("version", g)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
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
	if *asJSON {
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
	Entries  uint32  `json:"entries"`
	LastPull *string `json:"lastPull"`
	Error    string  `json:"error,omitempty"`
	Dropped  uint64  `json:"dropped"`
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
	fs := newFlags("status", g)
	asJSON := fs.Bool("json", false, "print JSON")
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
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	now := e.now()
	if *asJSON {
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
			out.Feeds = append(out.Feeds, feedJSON{f.Name, f.Entries, jsonTime(f.LastPull), f.Error, f.Dropped})
		}
		return writeJSON(e.stdout, out)
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
	if st.LastError != "" {
		fmt.Fprintf(tw, "Last error:\t%s\n", st.LastError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Feeds) == 0 {
		return nil
	}
	fmt.Fprintln(e.stdout)
	tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	// A feed's list as kept: its own overlaps merged, so counted in ranges.
	fmt.Fprintln(tw, "FEED\tRANGES\tDROPPED\tLAST PULL\tERROR")
	for _, f := range st.Feeds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Name, thousands(uint64(f.Entries)), thousands(f.Dropped), when(f.LastPull), dash(f.Error))
	}
	return tw.Flush()
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
func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

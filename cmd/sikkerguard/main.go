// Command sikkerguard is the SikkerGuard daemon: it pulls blocklists and
// drops their traffic in the kernel. This file holds flags, wiring and exit
// codes only; the work is done in internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	// The firewall backends register themselves; the daemon opens the
	// configured one through internal/firewall.
	_ "github.com/sikkerapi/sikkerguard/internal/ipset"
	_ "github.com/sikkerapi/sikkerguard/internal/nft"
	"github.com/sikkerapi/sikkerguard/internal/version"
)

// Exit codes of the contract.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const defaultConfigPath = "/etc/sikkerguard/sikkerguard.yaml"

// options are the parsed command-line flags.
type options struct {
	configPath    string
	configDefault bool // the path was not given, so a missing file means defaults
	checkConfig   bool
	online        bool // with -t: also check the key and feed URLs once
	once          bool
	dryRun        bool
	cleanup       bool
	version       bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// parseFlags accepts both the short and the long spelling of each flag, as
// the contract names them (-c/--config, -t/--check-config).
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("sikkerguard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "c", defaultConfigPath, "config file `PATH`")
	fs.StringVar(&o.configPath, "config", defaultConfigPath, "config file `PATH`")
	fs.BoolVar(&o.checkConfig, "t", false, "validate the config and API key presence, then exit")
	fs.BoolVar(&o.checkConfig, "check-config", false, "validate the config and API key presence, then exit")
	fs.BoolVar(&o.online, "online", false, "with -t: also check the API key and every feed URL once")
	fs.BoolVar(&o.once, "once", false, "pull every feed, check, apply once and exit")
	fs.BoolVar(&o.dryRun, "dry-run", false, "fetch and log what would be blocked; never touch the firewall")
	fs.BoolVar(&o.cleanup, "cleanup", false, "remove everything sikkerguard put in the kernel and exit")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() { printUsage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.configDefault = true
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "c" || f.Name == "config" {
			o.configDefault = false
		}
	})
	modes := 0
	for _, m := range []bool{o.checkConfig, o.once, o.cleanup, o.version} {
		if m {
			modes++
		}
	}
	if modes > 1 {
		return o, errors.New("-t, --once, --cleanup and --version exclude each other")
	}
	if o.online && !o.checkConfig {
		return o, errors.New("--online goes with -t")
	}
	if o.dryRun && o.cleanup {
		return o, errors.New("--dry-run and --cleanup exclude each other")
	}
	return o, nil
}

// shortFlags maps a long flag to its one-letter alias; help shows the two
// on one line, as the man page does.
var shortFlags = map[string]string{"config": "c", "check-config": "t"}

// printUsage writes --help: one line per flag, long names with two dashes
// and the short alias beside them, the way sikkerguard(8) writes them.
func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: sikkerguard [-c PATH] [-t [--online] | --once | --cleanup | --version] [--dry-run]\n\n")
	aliases := map[string]bool{}
	for _, s := range shortFlags {
		aliases[s] = true
	}
	type row struct{ left, help string }
	var rows []row
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		if aliases[f.Name] {
			return
		}
		arg, help := flag.UnquoteUsage(f)
		left := "    --" + f.Name
		if s, ok := shortFlags[f.Name]; ok {
			left = "-" + s + ", --" + f.Name
		}
		if arg != "" && arg != "value" {
			left += " " + arg
		}
		if f.DefValue != "" && f.DefValue != "false" {
			help += " (default " + f.DefValue + ")"
		}
		rows = append(rows, row{left, help})
		width = max(width, len(left))
	})
	rows = append(rows, row{"-h, --help", "show this help and exit"})
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r.left, r.help)
	}
	fmt.Fprintf(w, "\nExit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.\n")
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "sikkerguard: %v\n", err)
		return exitUsage
	}
	if o.version {
		fmt.Fprintf(stdout, "sikkerguard %s\n", version.String())
		return exitOK
	}
	return dispatch(ctx, o, env, stdout, stderr)
}

// Command sikkerapi-mock serves a stand-in SikkerAPI for tests and the demo:
// the blacklist (from a list file or generated), reports, status, quotas and
// injectable faults, plus a control API under /_mock/ (see internal/mock).
//
//	sikkerapi-mock -key-file key.txt -generate 5000 -seed 1
//	sikkerapi-mock -key sk_free_demo -list blocklist.txt -fault 429
//
// It prints "listening on http://ADDR" once it accepts connections and runs
// until SIGINT or SIGTERM. Exit codes: 0 after a signal, 1 runtime failure,
// 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/mock"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// usageError marks errors that exit with status 2.
type usageError struct{ error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	opt, listen, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "sikkerapi-mock:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	opt.Logger = log
	srv, err := mock.New(opt.Options)
	if err != nil {
		fmt.Fprintln(stderr, "sikkerapi-mock:", err)
		return 2
	}
	if opt.fault.Mode != mock.FaultNone {
		if err := srv.SetFault(opt.fault); err != nil {
			fmt.Fprintln(stderr, "sikkerapi-mock:", err)
			return 2
		}
	}
	if err := srv.Start(listen); err != nil {
		fmt.Fprintln(stderr, "sikkerapi-mock:", err)
		return 1
	}
	log.Info("serving", "entries", len(srv.Entries()), "tier_limit", opt.TierLimit, "fault", string(opt.fault.Mode))
	fmt.Fprintf(stdout, "listening on %s\n", srv.URL())

	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	return 0
}

type options struct {
	mock.Options
	fault mock.Fault
}

func parseFlags(args []string, stderr io.Writer) (*options, string, error) {
	fs := flag.NewFlagSet("sikkerapi-mock", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o         options
		listen    = fs.String("listen", "127.0.0.1:8580", "address to listen on")
		key       = fs.String("key", "", "the valid API key (prefer -key-file)")
		keyFile   = fs.String("key-file", "", "file holding the valid API key")
		disabled  = fs.String("disabled-keys", "", "comma-separated keys answered with 403")
		list      = fs.String("list", "", "serve this list file (plain text or the API's JSON)")
		generate  = fs.Int("generate", 0, "serve N generated global addresses")
		seed      = fs.Int64("seed", 1, "seed for -generate")
		v6Share   = fs.Float64("v6-share", 0.1, "share of IPv6 entries for -generate")
		cidrShare = fs.Float64("cidr-share", 0, "share of CIDR entries for -generate")
		faultMode = fs.String("fault", "", "inject a fault: "+faultNames())
	)
	fs.IntVar(&o.TierLimit, "tier-limit", 5000, "tier limit: caps limit= and sets the daily quota")
	fs.IntVar(&o.BlacklistQuota, "quota", 0, "blacklist addresses per day (0 = tier limit, -1 = unlimited)")
	fs.IntVar(&o.ReportQuota, "report-quota", 1000, "accepted reports per day (-1 = unlimited)")
	fs.StringVar(&o.QuotaHeaders, "quota-headers", mock.HeadersDaily, "quota header family: daily, blacklist, ratelimit or none")
	fs.StringVar(&o.ASNStyle, "asn-style", mock.ASNPlain, "asn field in JSON: plain, prefixed or mixed")
	fs.BoolVar(&o.OneBasedRows, "one-based-rows", false, "number bulk-report error rows from 1")
	fs.BoolVar(&o.FreshLastSeen, "fresh-last-seen", true, "serve lastSeen moved on so that the newest is the request time, as a live API's (false: the list's own times)")
	fs.IntVar(&o.fault.Count, "fault-count", 0, "apply the fault to the next N requests only (0 = always)")
	fs.StringVar(&o.fault.Path, "fault-path", "", "apply the fault to this API path only")
	fs.DurationVar(&o.fault.Delay, "fault-delay", 10*time.Second, "delay of the slow fault")
	fs.StringVar(&o.fault.RetryAfter, "retry-after", "", "Retry-After of the 429 fault (default: seconds to midnight UTC)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, "", err
		}
		return nil, "", usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, "", usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}

	switch {
	case *key != "" && *keyFile != "":
		return nil, "", usageError{errors.New("-key and -key-file are exclusive")}
	case *keyFile != "":
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return nil, "", fmt.Errorf("read key: %w", err)
		}
		o.Key = strings.TrimSpace(string(b))
		if o.Key == "" {
			return nil, "", usageError{fmt.Errorf("key file %s is empty", *keyFile)}
		}
	case *key != "":
		o.Key = *key
	default:
		return nil, "", usageError{errors.New("no key: give -key or -key-file")}
	}
	if *disabled != "" {
		o.DisabledKeys = strings.Split(*disabled, ",")
	}

	switch {
	case *list != "" && *generate > 0:
		return nil, "", usageError{errors.New("-list and -generate are exclusive")}
	case *list != "":
		f, err := os.Open(*list)
		if err != nil {
			return nil, "", fmt.Errorf("read list: %w", err)
		}
		defer f.Close()
		if o.Entries, err = mock.ParseList(f); err != nil {
			return nil, "", fmt.Errorf("%s: %w", *list, err)
		}
	case *generate < 0:
		return nil, "", usageError{fmt.Errorf("-generate %d is negative", *generate)}
	case *generate > 0:
		if *v6Share < 0 || *v6Share > 1 || *cidrShare < 0 || *cidrShare > 1 {
			return nil, "", usageError{errors.New("-v6-share and -cidr-share must be between 0 and 1")}
		}
		o.Entries = mock.Generate(mock.GenerateOptions{N: *generate, Seed: *seed, V6Share: *v6Share, CIDRShare: *cidrShare})
	}

	if *faultMode != "" {
		m, err := mock.ParseFaultMode(*faultMode)
		if err != nil {
			return nil, "", usageError{err}
		}
		o.fault.Mode = m
	}
	return &o, *listen, nil
}

func faultNames() string {
	names := make([]string, len(mock.FaultModes))
	for i, m := range mock.FaultModes {
		names[i] = string(m)
	}
	return strings.Join(names, ", ")
}

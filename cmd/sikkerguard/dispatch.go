package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/daemon"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/instance"
	"github.com/sikkerapi/sikkerguard/internal/logging"
	"github.com/sikkerapi/sikkerguard/internal/sikkerapi"
)

// dispatch loads the configuration and runs the selected mode.
func dispatch(ctx context.Context, o options, env config.LookupFunc, stdout, stderr io.Writer) int {
	cfg, err := config.Load(o.configPath, o.configDefault, env)
	if err != nil {
		fmt.Fprintf(stderr, "sikkerguard: invalid configuration:\n%v\n", err)
		return exitUsage
	}
	credDir, _ := env("CREDENTIALS_DIRECTORY")
	key, keySource, keyErr := config.LoadAPIKey(cfg, env, credDir)
	if keyErr != nil && !errors.Is(keyErr, config.ErrNoAPIKey) {
		fmt.Fprintf(stderr, "sikkerguard: api key: %v\n", keyErr)
		return exitUsage
	}
	if keyErr != nil && !o.cleanup {
		if err := canStartWithoutKey(cfg, keyErr); err != nil {
			fmt.Fprintf(stderr, "sikkerguard: cannot start: %v\n", err)
			return exitUsage
		}
	}
	if o.checkConfig {
		fmt.Fprintln(stdout, "config OK")
		if keyErr != nil {
			fmt.Fprintf(stdout, "The service can start without a key: it blocks from %s only; the SikkerAPI feed stays off until a key is set (%v).\n"+
				"The packaged unit asserts that /etc/sikkerguard/api.key exists: see sikkerguard(8) for the drop-in that runs without it.\n",
				feedList(cfg.Feeds), keyErr)
		}
		if o.online {
			return checkOnline(ctx, cfg, key, stdout)
		}
		return exitOK
	}

	lo := logging.Options{Journal: logging.UnderJournal()}
	if lo.Journal {
		lo.Send = logging.JournalSend() // attributes become SIKKER_* journal fields
	}
	log := logging.New(stderr, lo)
	if o.dryRun {
		cfg.DryRun = true
	}
	// One sikkerguard per network namespace touches the kernel; a dry run
	// touches nothing and needs no lock.
	var lock *instance.Lock
	if !cfg.DryRun {
		if lock, err = takeLock(ctx, o, log); err != nil {
			return exitFailure
		}
		defer lock.Release()
	}
	if o.cleanup {
		return cleanup(log)
	}
	log.Info(fmt.Sprintf("Score threshold: %d | Pull every %s | Reports every %s",
		cfg.API.ScoreMin, shortDuration(cfg.API.PullInterval), shortDuration(cfg.Report.Interval)))
	if keyErr != nil {
		log.Warn("SikkerAPI feed off: no API key", "err", keyErr)
	} else {
		log.Info("API key loaded", "source", keySource)
	}
	if keyErr == nil && sikkerapi.SendsKeyInClear(cfg.API.URL) {
		log.Warn("api.url is plain http to a host that is not loopback: the API key crosses the network in clear text; use https", "url", cfg.API.URL)
	}
	if !o.once {
		return serve(ctx, o, cfg, key, env, log)
	}
	oo := daemon.OnceOptions{Config: cfg, Key: key, DryRun: cfg.DryRun, Log: log}
	if !cfg.DryRun {
		fw, err := newFirewall(cfg, log)
		if err != nil {
			log.Error("firewall unavailable", "err", err)
			return exitUsage
		}
		oo.Firewall = fw
	}
	if err := daemon.Once(ctx, oo); err != nil {
		log.Error("run failed", "err", err)
		return exitFailure
	}
	return exitOK
}

// canStartWithoutKey decides whether the service is of any use when no API
// key is configured: only extra feeds can then fill the blocklist. -t, the
// daemon and --once all ask it, so -t's answer is what the start does.
func canStartWithoutKey(cfg config.Config, keyErr error) error {
	if len(cfg.Feeds) > 0 {
		return nil
	}
	return fmt.Errorf("%w, and no extra feeds are configured, so there is nothing to block.\n"+
		"Put the key in /etc/sikkerguard/api.key (one line, mode 600) or set %s, or list feeds: in the config", keyErr, config.EnvAPIKey)
}

// feedList names the extra feeds for a sentence: `2 extra feeds (a, b)`.
func feedList(feeds []config.Feed) string {
	names := make([]string, len(feeds))
	for i, f := range feeds {
		names[i] = f.Name
	}
	noun := "extra feeds"
	if len(feeds) == 1 {
		noun = "extra feed"
	}
	return fmt.Sprintf("%d %s (%s)", len(feeds), noun, strings.Join(names, ", "))
}

// serve runs the long-running service until SIGTERM/SIGINT; SIGHUP reloads.
func serve(ctx context.Context, o options, cfg config.Config, key config.Secret, env config.LookupFunc, log *slog.Logger) int {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}()
	bus, err := dbus.ConnectSystemBus()
	if err != nil {
		// Blocking must not depend on D-Bus; only sikkerctl is lost.
		log.Warn("D-Bus system bus unavailable; running without the control API", "err", err)
		bus = nil
	} else {
		defer bus.Close()
	}
	d, err := daemon.New(daemon.Options{
		Config: cfg, Key: key, Log: log, Reload: reload, Bus: bus,
		NewFirewall: func(c config.Config) (firewall.Firewall, error) { return newFirewall(c, log) },
		Load: func() (config.Config, config.Secret, error) {
			c, err := config.Load(o.configPath, o.configDefault, env)
			if err != nil {
				return c, config.Secret{}, err
			}
			if o.dryRun {
				c.DryRun = true
			}
			credDir, _ := env("CREDENTIALS_DIRECTORY")
			k, _, kerr := config.LoadAPIKey(c, env, credDir)
			if kerr != nil && !errors.Is(kerr, config.ErrNoAPIKey) {
				return c, k, kerr
			}
			return c, k, nil
		},
	})
	if err != nil {
		log.Error("start failed", "err", err)
		return exitFailure
	}
	if err := d.Run(ctx); err != nil {
		log.Error("stopped with an error", "err", err)
		return exitFailure
	}
	return exitOK
}

// takeLock takes the instance lock. `--once` and `--cleanup` refuse while
// the daemon runs, naming it and what to use instead; the daemon waits a
// while for a `--once` or `--cleanup` run to finish, then refuses as well.
func takeLock(ctx context.Context, o options, log *slog.Logger) (*instance.Lock, error) {
	wait := time.Duration(0)
	if !o.once && !o.cleanup {
		wait = lockWait
	}
	deadline := time.Now().Add(wait)
	for {
		lock, err := instance.Acquire(instance.DefaultName)
		if err == nil || !errors.Is(err, instance.ErrHeld) {
			if err != nil {
				log.Error("cannot take the instance lock", "err", err)
			}
			return lock, err
		}
		switch {
		case o.once:
			log.Error("refusing --once: "+err.Error(), "instead", "sikkerctl reload (the daemon pulls and applies now)")
			return nil, err
		case o.cleanup:
			log.Error("refusing --cleanup: "+err.Error(), "instead", "systemctl stop sikkerguard (it removes the rules as it stops)")
			return nil, err
		case !oneShot(err) || time.Now().After(deadline):
			log.Error("refusing to start: "+err.Error(), "instead", "stop it first")
			return nil, err
		}
		log.Info("waiting for the other sikkerguard to finish", "holder", err.Error())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// oneShot reports whether the lock's holder is a `--once` or `--cleanup`
// run, which ends by itself.
func oneShot(err error) bool {
	var he *instance.HeldError
	return errors.As(err, &he) && (strings.Contains(he.Comm, "--once") || strings.Contains(he.Comm, "--cleanup"))
}

// lockWait is how long the daemon waits for a `--once` or `--cleanup` run
// holding the lock: long enough for one pass over a large list.
const lockWait = 60 * time.Second

// newFirewall opens the configured backend from the registry.
func newFirewall(cfg config.Config, log *slog.Logger) (firewall.Firewall, error) {
	return firewall.Open(cfg.Firewall.Backend, cfg.FirewallSettings(), log)
}

// cleanup removes the kernel objects of every backend, whichever is
// configured now; running it twice is fine.
func cleanup(log *slog.Logger) int {
	if err := firewall.CleanupAll(log); err != nil {
		log.Error("cleanup failed", "err", err)
		return exitFailure
	}
	log.Info("Firewall rules removed")
	return exitOK
}

// shortDuration prints 24h rather than 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

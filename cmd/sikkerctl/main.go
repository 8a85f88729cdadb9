// Command sikkerctl controls a running sikkerguard over D-Bus: status,
// reload, whitelist changes, address checks and the most-blocked sources.
// It talks D-Bus only and never links netlink or nftables code.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr, now: time.Now, loc: time.Local})
	stop()
	os.Exit(code)
}

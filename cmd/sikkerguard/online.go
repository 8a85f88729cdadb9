package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/daemon"
)

// onlineTimeout bounds `-t --online` as a whole: it runs from a shell or
// before a start, where hanging on a dead feed helps nobody.
const onlineTimeout = 2 * time.Minute

// checkOnline is `-t --online`: the key and every feed URL, asked once.
// It exits 0 when every check passed and 1 when one failed.
func checkOnline(ctx context.Context, cfg config.Config, key config.Secret, stdout io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, onlineTimeout)
	defer cancel()
	checks := daemon.CheckOnline(ctx, cfg, key, slog.New(slog.DiscardHandler))
	code := exitOK
	for _, c := range checks {
		if c.Err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %v\n", c.What, c.Err)
			code = exitFailure
			continue
		}
		fmt.Fprintf(stdout, "ok   %s: %s\n", c.What, c.OK)
	}
	if len(checks) == 0 {
		fmt.Fprintln(stdout, "nothing to check online: no key and no feeds")
	}
	return code
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// guardConfig is a sikkerguard configuration of the benchmark: the
// defaults, with the mock as the API (its key comes from SIKKER_API_KEY
// when the run has one) and, when file is set, the list file as an extra
// feed. The API's address is a literal, so that no start-up waits for DNS.
type guardConfig struct {
	path  string
	state string
}

func writeGuardConfig(dir, name, apiURL, file string) (guardConfig, error) {
	c := guardConfig{path: filepath.Join(dir, name+".yaml"), state: filepath.Join(dir, "state-"+name)}
	y := fmt.Sprintf("api:\n  url: %s\n  key_file: %s\nstate_dir: %s\n", apiURL, filepath.Join(dir, "absent.key"), c.state)
	if file != "" {
		y += fmt.Sprintf("feeds:\n  - {name: bench, file: %s}\n", file)
	}
	return c, os.WriteFile(c.path, []byte(y), 0o644)
}

// keyEnv gives sikkerguard the mock's key.
var keyEnv = []string{"SIKKER_API_KEY=" + labKey}

// logLayout is the time stamp of sikkerguard's log lines outside the journal.
const logLayout = "2006-01-02T15:04:05.000Z07:00"

// logTime returns when the first log line holding msg was written, as an
// offset from start; 0 when no line holds it (a later version may word it
// differently: the table then shows a dash).
func logTime(log string, start time.Time, msg string) time.Duration {
	for _, l := range strings.Split(log, "\n") {
		stamp, rest, ok := strings.Cut(l, " ")
		if !ok || !strings.Contains(rest, msg) {
			continue
		}
		t, err := time.Parse(logLayout, stamp)
		if err != nil {
			continue
		}
		return t.Sub(start)
	}
	return 0
}

// The log lines that mark the parts of a `--once` run.
const (
	msgPulled   = " feed pulled "
	msgBuilt    = " nftables table built " // the kernel took the transaction
	msgBlocking = " Blocking "
)

package main

import (
	"strconv"
	"strings"
	"testing"
)

// With the daemon running, a cron line kept from the old ipset script
// (`--once`) or a stray `--cleanup` must change nothing and say what to
// use instead.
func TestOnceAndCleanupRefuseWhileTheDaemonRuns(t *testing.T) {
	l := newSvcLab(t, svcAttacker.String()+"\n", "")
	s := l.start()
	s.await(t, "READY=1")
	before := l.ruleset()
	pid := strconv.Itoa(s.cmd.Process.Pid)
	for _, tc := range []struct{ flag, instead string }{
		{"--once", "sikkerctl reload"},
		{"--cleanup", "systemctl stop sikkerguard"},
	} {
		out, err := l.host.Run("env", "SIKKER_API_KEY="+testKey, l.bin, "-c", l.cfgPath, tc.flag)
		if err == nil || !strings.Contains(err.Error(), "exit status 1") {
			t.Errorf("%s while the daemon runs: err %v, want exit 1:\n%s", tc.flag, err, out)
		}
		for _, want := range []string{"refusing " + tc.flag, "pid " + pid, tc.instead} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q:\n%s", tc.flag, want, out)
			}
		}
	}
	if after := l.ruleset(); after != before {
		t.Errorf("the refused runs changed the ruleset:\n--- before\n%s\n--- after\n%s", before, after)
	}
	if l.delivered(svcAttacker) {
		t.Error("the attacker got through after the refused runs")
	}
	// A second daemon refuses at once rather than fighting over the table.
	out, err := l.host.Run("env", "SIKKER_API_KEY="+testKey, l.bin, "-c", l.cfgPath)
	if err == nil || !strings.Contains(out, "refusing to start") || !strings.Contains(out, "pid "+pid) {
		t.Errorf("second daemon: err %v:\n%s", err, out)
	}
}

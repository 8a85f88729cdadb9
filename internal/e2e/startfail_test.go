package e2e

import (
	"strings"
	"testing"
	"time"
)

// What systemd 252 prints when the start fails is quoted in the README and
// in sikkerguard(8); these checks keep those quotes true, and log the full
// text so that a change shows up in the test output.

// startWithoutKey starts the unit before /etc/sikkerguard/api.key exists:
// the assertion refuses it, and no restart follows.
func startWithoutKey(t *testing.T, c *container) {
	t.Helper()
	out, err := c.run("systemctl", "start", "sikkerguard")
	if err == nil {
		t.Errorf("start without /etc/sikkerguard/api.key succeeded:\n%s", out)
	}
	status, _ := c.run("systemctl", "status", "--no-pager", "--lines=5", "sikkerguard")
	journal, _ := c.run("journalctl", "-u", "sikkerguard", "--no-pager", "-o", "cat")
	t.Logf("systemctl start without a key:\n%s\n--- systemctl status:\n%s\n--- journal:\n%s", out, status, journal)
	// systemd 252 names neither the path nor the setting; the README says
	// so and sends the administrator to `sikkerguard -t`.
	if !strings.Contains(out, "Assertion failed on job for sikkerguard.service.") {
		t.Errorf("systemctl start output is not the one the README quotes:\n%s", out)
	}
	for _, want := range []string{"sikkerguard.service: Starting requested but asserts failed.", "Assertion failed for sikkerguard.service - SikkerGuard blocklist firewall."} {
		if !strings.Contains(journal, want) {
			t.Errorf("journal lacks %q, which the README quotes:\n%s", want, journal)
		}
	}
	st := c.must("systemctl", "show", "-p", "AssertResult", "-p", "NRestarts", "sikkerguard")
	if !strings.Contains(st, "AssertResult=no") {
		t.Errorf("missing key did not fail the assertion: %s", st)
	}
	c.run("systemctl", "reset-failed", "sikkerguard") // an assertion leaves nothing failed; harmless
}

// startWithBrokenConfig starts the unit with a YAML syntax error: the daemon
// exits 2 naming the line, and RestartPreventExitStatus=2 keeps systemd from
// retrying what cannot succeed. (systemd 252 applies that setting to the
// main process only: a failing ExecStartPre was restarted regardless.)
func startWithBrokenConfig(t *testing.T, c *container) {
	t.Helper()
	c.writeFile("/etc/sikkerguard/sikkerguard.yaml", brokenConfig, 0o644)
	defer c.writeFile("/etc/sikkerguard/sikkerguard.yaml", guardConfig, 0o644)
	out, err := c.run("systemctl", "start", "sikkerguard")
	if err == nil {
		t.Fatalf("start with a broken config succeeded:\n%s", out)
	}
	// RestartSec=5s: a restart, if any, would have happened by now.
	time.Sleep(7 * time.Second)
	show := c.must("systemctl", "show", "-p", "NRestarts", "-p", "ActiveState", "-p", "Result", "sikkerguard")
	status, _ := c.run("systemctl", "status", "--no-pager", "--lines=8", "sikkerguard")
	t.Logf("systemctl start with a broken config:\n%s\n--- systemctl status:\n%s\n--- show:\n%s", out, status, show)
	if !strings.Contains(show, "NRestarts=0") || !strings.Contains(show, "ActiveState=failed") {
		t.Errorf("a config error was retried or did not fail the unit:\n%s", show)
	}
	journal, _ := c.run("journalctl", "-u", "sikkerguard", "--no-pager", "-o", "cat", "-n", "30")
	t.Logf("--- journal:\n%s", journal)
	if !strings.Contains(journal, `sikkerguard.yaml:4: "    limit: 10": mapping values are not allowed in this context`) {
		t.Errorf("journal does not show the config error's line and text:\n%s", journal)
	}
	if !strings.Contains(status, "status=2/INVALIDARGUMENT") {
		t.Errorf("systemctl status does not show exit status 2:\n%s", status)
	}
	c.must("systemctl", "reset-failed", "sikkerguard")
}

// brokenConfig has an indentation error on line 4 (a key indented deeper
// than its siblings); the comment on line 1 is not the culprit.
const brokenConfig = `# a comment that yaml.v3's first-line guess would blame
api:
  score_min: 60
    limit: 10
`

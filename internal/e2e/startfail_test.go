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
	for _, want := range []string{
		"Assertion failed on job for sikkerguard.service.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("systemctl start output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(status, "Assert: start assertion failed") ||
		!strings.Contains(status, "AssertPathExists=/etc/sikkerguard/api.key was not met") {
		t.Errorf("systemctl status does not name the missing key file:\n%s", status)
	}
	st := c.must("systemctl", "show", "-p", "AssertResult", "-p", "NRestarts", "sikkerguard")
	if !strings.Contains(st, "AssertResult=no") {
		t.Errorf("missing key did not fail the assertion: %s", st)
	}
	c.run("systemctl", "reset-failed", "sikkerguard") // an assertion leaves nothing failed; harmless
}

// startWithBrokenConfig starts the unit with a YAML syntax error: `-t` in
// ExecStartPre exits 2 naming the line, and RestartPreventExitStatus=2
// keeps systemd from retrying what cannot succeed.
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
	if !strings.Contains(status, "sikkerguard.yaml:4:") || !strings.Contains(status, "status=2") {
		t.Errorf("systemctl status does not show the config error's line and exit status 2:\n%s", status)
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

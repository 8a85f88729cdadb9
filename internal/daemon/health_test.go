package daemon

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthEndpointServesTheDaemonsState(t *testing.T) {
	l := newLab(t, "203.0.113.0/24\n198.51.100.7\n")
	l.cfg.Health.Listen = freeLoopbackPort(t)
	l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	base := "http://" + l.cfg.Health.Listen

	waitFor(t, "the health endpoint", func() bool {
		c, err := net.Dial("tcp", l.cfg.Health.Listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	code, body := get(t, base+"/status")
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status = %d %q (%v)", code, body, err)
	}
	// The container's field names, with this daemon's values.
	if st["status"] != "running" || st["blockedIps"] != 257.0 || st["lastPull"] == nil || st["dryRun"] != false {
		t.Errorf("/status = %v", st)
	}
	if _, ok := st["uptime"]; !ok {
		t.Errorf("/status lacks uptime: %v", st)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{"sikkerguard_up 1", `sikkerguard_state{state="running"} 1`,
		"sikkerguard_blocked_ipv4_addresses 257", `sikkerguard_feed_entries{feed="sikkerapi"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
}

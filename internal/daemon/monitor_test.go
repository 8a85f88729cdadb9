package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
)

// monLog records the messages a Monitor logs.
type monLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *monLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *monLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *monLog) WithGroup(string) slog.Handler            { return l }
func (l *monLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}

// count returns how often msg was logged.
func (l *monLog) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// with returns the logged messages that start with prefix.
func (l *monLog) with(prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.msgs {
		if strings.HasPrefix(m, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// monClock is a clock the test moves, so that windows end when the test
// says and not when the scheduler does.
type monClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *monClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *monClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// monWait polls cond until it holds; the deadline only bounds a failing
// test, it asserts nothing about speed.
func monWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// monStart runs m until the test ends and returns a stop function that
// cancels it and returns Run's result.
func monStart(t *testing.T, m *Monitor) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("Run did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func monConfig(t *testing.T, group int) config.Config {
	cfg := config.Default()
	cfg.Firewall.LogGroup = group
	cfg.StateDir = t.TempDir()
	cfg.Report.Enabled = false
	return cfg
}

func TestMonitorOffReturnsAtOnce(t *testing.T) {
	cfg := monConfig(t, 0)
	cfg.Report.Enabled = true
	m, err := NewMonitor(cfg, config.NewSecret("sk_test_monitor"), nil, MonitorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run with log_group 0 = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run with log_group 0 did not return")
	}
	if top := m.TopBlocked(10); len(top) != 0 {
		t.Errorf("TopBlocked before any event = %v", top)
	}
	if st := m.Stats(); st != (MonitorStats{}) {
		t.Errorf("Stats with monitoring off = %+v", st)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, DropsFile)); !os.IsNotExist(err) {
		t.Errorf("monitoring off wrote %s: %v", DropsFile, err)
	}
}

func TestNewMonitorRejectsBadGroup(t *testing.T) {
	for _, g := range []int{-1, 65536} {
		_, err := NewMonitor(monConfig(t, g), config.Secret{}, nil, MonitorOptions{})
		if err == nil || !strings.Contains(err.Error(), "firewall.log_group") {
			t.Errorf("log_group %d: err = %v, want one naming firewall.log_group", g, err)
		}
	}
}

func TestMonitorReportsOnlyWhenWanted(t *testing.T) {
	key := config.NewSecret("sk_test_monitor")
	cases := []struct {
		name    string
		group   int
		enabled bool
		dryRun  bool
		key     config.Secret
		want    bool
	}{
		{"enabled", 7, true, false, key, true},
		{"disabled", 7, false, false, key, false},
		{"dry run", 7, true, true, key, false},
		{"no key", 7, true, false, config.Secret{}, false},
		{"monitoring off", 0, true, false, key, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := monConfig(t, c.group)
			cfg.Report.Enabled, cfg.DryRun = c.enabled, c.dryRun
			m, err := NewMonitor(cfg, c.key, nil, MonitorOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Stats().Reporting; got != c.want {
				t.Errorf("Reporting = %v, want %v", got, c.want)
			}
		})
	}
}

func TestMonitorRejectsEmptyReportURL(t *testing.T) {
	cfg := monConfig(t, 7)
	cfg.Report.Enabled = true
	cfg.API.URL = ""
	if _, err := NewMonitor(cfg, config.NewSecret("sk_test_monitor"), nil, MonitorOptions{}); err == nil || !strings.Contains(err.Error(), "URL") {
		t.Fatalf("NewMonitor without an API URL = %v", err)
	}
}

// A listener that cannot be opened is retried, never fatal.
func TestMonitorRetriesAFailingListener(t *testing.T) {
	// An fd that is not a network namespace makes every open fail, with or
	// without root.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rec := &monLog{}
	m, err := NewMonitor(monConfig(t, 7), config.Secret{}, slog.New(rec),
		MonitorOptions{NetNSFd: int(f.Fd()), RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := monStart(t, m)
	monWait(t, "three failed opens", func() bool { return m.Stats().Failures >= 3 })
	if rec.count("drop monitoring interrupted, retrying") < 3 {
		t.Errorf("failures not logged: %v", rec.with(""))
	}
	if st := m.Stats(); st.Listening || st.Opens != 0 {
		t.Errorf("stats %+v, want no listener", st)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	// The totals are saved on stop even when nothing was seen.
	if _, err := os.Stat(filepath.Join(m.cfg.StateDir, DropsFile)); err != nil {
		t.Errorf("totals not saved on stop: %v", err)
	}
}

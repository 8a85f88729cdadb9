package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/mock"
	"github.com/sikkerapi/sikkerguard/internal/safety"
)

// Faults of the API, the network and the firewall, driven in-process like
// the lifecycle tests in daemon_test.go.

func TestFaultsKeepTheCurrentList(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault mock.Fault
		list  string // served instead, when no fault
		want  string // in the log
	}{
		{name: "401", fault: mock.Fault{Mode: mock.Fault401}, want: "401"},
		{name: "429", fault: mock.Fault{Mode: mock.Fault429, RetryAfter: "3600"}, want: "429"},
		{name: "500", fault: mock.Fault{Mode: mock.Fault500}, want: "500"},
		{name: "empty", fault: mock.Fault{Mode: mock.FaultEmpty}, want: "empty"},
		{name: "garbage", fault: mock.Fault{Mode: mock.FaultGarbage}, want: "not a blocklist"},
		{name: "truncated", fault: mock.Fault{Mode: mock.FaultTruncated}, want: "truncated"},
		{name: "slow", fault: mock.Fault{Mode: mock.FaultSlow, Delay: 5 * time.Second}, want: "feed failed"},
		{name: "3x growth", list: "203.0.113.7\n203.0.113.9\n203.0.113.77\n", want: "list rejected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, "203.0.113.7\n")
			l.cfg.API.PullInterval = 100 * time.Millisecond
			d, _ := l.start(func(o *Options) {
				if tc.fault.Mode == mock.FaultSlow {
					o.Config.API.URL = l.srv.URL()
				}
			})
			l.note.waitCount(t, "READY=1", 1)
			if d.State() != StateRunning {
				t.Fatalf("state %s before the fault", d.State())
			}
			if tc.list != "" {
				es, _ := mock.ParseList(strings.NewReader(tc.list))
				l.srv.SetEntries(es)
			} else if err := l.srv.SetFault(tc.fault); err != nil {
				t.Fatal(err)
			}
			if tc.fault.Mode == mock.FaultSlow {
				// The client's 60 s timeout is too long for a test; what
				// matters is that the main loop keeps serving meanwhile.
				waitFor(t, "the slow request", func() bool { return l.srv.RequestCount("/v1/key/blacklist") >= 2 })
				if !l.fw.blocks("203.0.113.7") || d.State() != StateRunning {
					t.Errorf("during a slow pull: blocked=%v state=%s", l.fw.blocks("203.0.113.7"), d.State())
				}
				return
			}
			waitFor(t, "degraded state", func() bool { return d.State() == StateDegraded })
			if !l.fw.blocks("203.0.113.7") {
				t.Error("the current list was lost")
			}
			if tc.list != "" && l.fw.blocks("203.0.113.9") {
				t.Error("the rejected list was applied")
			}
			if !strings.Contains(l.logs.String(), tc.want) {
				t.Errorf("log lacks %q:\n%s", tc.want, l.logs.String())
			}
			if tc.list == "" && !strings.Contains(l.logs.String(), `level=WARN msg="feed failed; its last good list stays in force"`) {
				t.Errorf("no journal warning for the failed pull:\n%s", l.logs.String())
			}
			if tc.fault.Mode == mock.Fault429 {
				n := l.srv.RequestCount("/v1/key/blacklist")
				time.Sleep(300 * time.Millisecond) // three pull intervals
				if got := l.srv.RequestCount("/v1/key/blacklist"); got != n {
					t.Errorf("pulled %d more times before Retry-After", got-n)
				}
			}
			if tc.fault.Mode == mock.Fault401 {
				// A rejected key is not asked again for an hour: feed
				// failed, named in STATUS=; a pull on request recovers.
				n := l.srv.RequestCount("/v1/key/blacklist")
				time.Sleep(300 * time.Millisecond)
				if got := l.srv.RequestCount("/v1/key/blacklist"); got != n {
					t.Errorf("a rejected key was asked %d more times within three pull intervals", got-n)
				}
				if st := d.Status(); len(st.Feeds) != 1 || st.Feeds[0].State != dbusapi.FeedFailed {
					t.Errorf("feeds after a 401: %+v", st.Feeds)
				}
				if !slices.ContainsFunc(l.note.all(), func(m string) bool {
					return strings.HasPrefix(m, "STATUS=degraded") && strings.Contains(m, "feed sikkerapi failed: the API refused the key")
				}) {
					t.Errorf("no STATUS= naming the refused key: %q", l.note.all())
				}
				l.srv.ClearFault()
				if err := d.Pull(context.Background(), "sikkerapi"); err != nil {
					t.Fatal(err)
				}
			}
			// Recovery: the next good pull clears the degraded state.
			if tc.fault.Mode != mock.Fault429 {
				l.srv.ClearFault()
				es, _ := mock.ParseList(strings.NewReader("203.0.113.7\n"))
				l.srv.SetEntries(es)
				waitFor(t, "running state again", func() bool { return d.State() == StateRunning })
			}
		})
	}
}

func TestProtectsFromTheLastGoodListBeforeTheFirstPull(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	_, stop := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	stop()

	// Five restarts within the pull interval: the cached list is enforced
	// and nothing is pulled.
	for i := range 5 {
		l.fw = &fakeFirewall{}
		l.note = listenNotify(t)
		_, stop := l.start(nil)
		l.note.waitCount(t, "READY=1", 1)
		if !l.fw.blocks("203.0.113.7") {
			t.Errorf("restart %d: the last good list was not applied", i+1)
		}
		stop()
	}
	if n := l.srv.RequestCount("/v1/key/blacklist"); n != 1 {
		t.Errorf("five restarts within the pull interval made %d pulls in all, want the first one", n)
	}
	// Settings changed while it was stopped: the cached list was pulled
	// with others, so the start pulls at once; the next one does not.
	l.cfg.API.ScoreMin = 60
	for range 2 {
		l.fw = &fakeFirewall{}
		l.note = listenNotify(t)
		_, stop := l.start(nil)
		l.note.waitCount(t, "READY=1", 1)
		want := feedSpecs(l.cfg, config.NewSecret(key))[0].fingerprint()
		waitFor(t, "the list pulled with the new settings", func() bool {
			return loadSources(l.dir, slog.New(slog.DiscardHandler))[SikkerFeedName] == want
		})
		stop()
	}
	if n := l.srv.RequestCount("/v1/key/blacklist"); n != 2 {
		t.Errorf("two starts after a settings change made %d pulls, want 1", n-1)
	}

	// Once the list is older than the interval, a start pulls; the API is
	// down: the cached list is enforced at once, and the state says why.
	l.cfg.API.PullInterval = 50 * time.Millisecond
	time.Sleep(60 * time.Millisecond)
	l.srv.SetFault(mock.Fault{Mode: mock.Fault500})
	l.fw = &fakeFirewall{}
	l.note = listenNotify(t)
	d, _ := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	if !l.fw.blocks("203.0.113.7") {
		t.Error("the last good list was not applied at start")
	}
	waitFor(t, "degraded state", func() bool { return d.State() == StateDegraded })
}

// A dialer whose targets are unreachable while the fake firewall blocks
// them: it stands in for a rule that cuts the host off.
type firewallDialer struct{ fw *fakeFirewall }

func (f firewallDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(address)
	if f.fw.blocks(host) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	c1, c2 := net.Pipe()
	go func() {
		// Answer DNS queries with a minimal response so the UDP probe succeeds.
		buf := make([]byte, 512)
		n, err := c2.Read(buf)
		if err == nil && n >= 12 {
			buf[2] |= 0x80
			c2.Write(buf[:n])
		}
	}()
	return c1, nil
}

func TestRollbackWhenTheAPIBecomesUnreachable(t *testing.T) {
	// The feed lists the API's own address and discovery's whitelisting is
	// off, so the new rules would cut the host off the API.
	l := newLab(t, "203.0.113.7\n")
	l.cfg.Safety.VerifyConnectivity = true
	l.cfg.Safety.AutoWhitelist = false
	l.cfg.API.PullInterval = 100 * time.Millisecond
	l.never = safety.NeverBlock{API: []netip.Addr{netip.MustParseAddr("203.0.113.50")}, APIPort: 443}
	d, _ := l.start(func(o *Options) {
		o.Prober = &safety.Prober{Dialer: firewallDialer{l.fw}, Timeout: 50 * time.Millisecond}
	})
	l.note.waitCount(t, "READY=1", 1)
	es, _ := mock.ParseList(strings.NewReader("203.0.113.7\n203.0.113.50\n"))
	l.srv.SetEntries(es)
	waitFor(t, "the rollback", func() bool { return strings.Contains(l.logs.String(), "RolledBack") })
	if l.fw.blocks("203.0.113.50") {
		t.Error("the API address is still blocked after the rollback")
	}
	if !l.fw.blocks("203.0.113.7") {
		t.Error("the rollback lost the previous list")
	}
	if d.State() != StateDegraded {
		t.Errorf("state %s after a rollback, want degraded", d.State())
	}
	// The same lists are not retried on every pull.
	n := l.fw.count()
	time.Sleep(300 * time.Millisecond)
	if got := l.fw.count(); got != n {
		t.Errorf("the rolled-back list was applied %d more times", got-n)
	}
}

func TestApplyFailureKeepsRunningDegraded(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	l.cfg.API.PullInterval = 100 * time.Millisecond
	d, _ := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	l.fw.mu.Lock()
	l.fw.fail = errors.New("kernel said no")
	l.fw.mu.Unlock()
	es, _ := mock.ParseList(strings.NewReader("203.0.113.7\n203.0.113.8\n"))
	l.srv.SetEntries(es)
	waitFor(t, "degraded state", func() bool { return d.State() == StateDegraded })
	if !strings.Contains(l.logs.String(), "ApplyFailed") {
		t.Error("no ApplyFailed log line")
	}
}

func TestRuntimeWhitelistFileIsToleratedWhenCorrupt(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::1/128")}
	if err := saveRuntimeWhitelist(dir, want); err != nil {
		t.Fatal(err)
	}
	if got := loadRuntimeWhitelist(dir, log); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("round trip: %v", got)
	}
	os.WriteFile(filepath.Join(dir, runtimeWhitelistFile), []byte(`{"prefixes":["nope"]}`), 0o600)
	if got := loadRuntimeWhitelist(dir, log); got != nil {
		t.Errorf("corrupt file gave %v, want nothing", got)
	}
}

// tamperableFirewall is a fakeFirewall that another program can wipe.
type tamperableFirewall struct {
	*fakeFirewall
	wiped *bool
}

func (f tamperableFirewall) Intact() (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !*f.wiped, nil
}

func (f tamperableFirewall) Restore(hot []netip.Addr) error {
	f.mu.Lock()
	*f.wiped = false
	f.mu.Unlock()
	return f.fakeFirewall.Restore(hot)
}

func TestRestoresRulesRemovedByAnotherProgram(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	wiped := false
	builds := 0
	l.start(func(o *Options) {
		o.IntegrityCheck = 20 * time.Millisecond
		o.NewFirewall = func(config.Config) (firewall.Firewall, error) {
			l.fw.mu.Lock()
			builds++
			wiped = false // a new backend rebuilds what it finds missing
			l.fw.mu.Unlock()
			return tamperableFirewall{l.fw, &wiped}, nil
		}
	})
	l.note.waitCount(t, "READY=1", 1)
	applies := l.fw.count()

	l.fw.mu.Lock()
	wiped = true
	l.fw.block = ipnet.Set{}
	l.fw.mu.Unlock()
	waitFor(t, "the rules to be restored", func() bool { return l.fw.blocks("203.0.113.7") })
	if l.fw.count() != applies {
		t.Error("restored through a new apply instead of the backend's copy")
	}
	// The log line follows the restore; wait for it rather than race it.
	waitFor(t, "the log line about the restore", func() bool { return strings.Contains(l.logs.String(), "RulesRestored") })
	l.fw.mu.Lock()
	defer l.fw.mu.Unlock()
	if builds != 1 || l.fw.restores != 1 {
		t.Errorf("%d backends built and %d restores, want 1 and 1", builds, l.fw.restores)
	}
}

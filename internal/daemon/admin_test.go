package daemon

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
	"github.com/sikkerapi/sikkerguard/internal/mock"
)

// The administrator's side of pulls: honest reloads, pulls on request,
// the quota and a refused key.

func TestReloadWithAnInvalidConfigFailsVisibly(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	bus := dbustest.StartBus(t, dbustest.Shipped)
	bad := errors.New("/etc/sikkerguard/sikkerguard.yaml:3: api.score_min: 500 is out of range 1..100")
	l.start(func(o *Options) {
		o.Bus = bus.Connect(t)
		o.Load = func() (config.Config, config.Secret, error) { return config.Config{}, config.Secret{}, bad }
	})
	l.note.waitCount(t, "READY=1", 1)
	c := dbusapi.NewClient(bus.Connect(t))
	err := c.Reload(context.Background())
	if !errors.Is(err, dbusapi.ErrInvalidConfig) || !strings.Contains(err.Error(), "sikkerguard.yaml:3: api.score_min") {
		t.Fatalf("Reload = %v, want InvalidConfig with the file:line error", err)
	}
	l.note.waitCount(t, "ERRNO=22", 1)
	msgs := l.note.all()
	found := false
	for i, m := range msgs {
		if m == "ERRNO=22" && i >= 2 && msgs[i-2] == "READY=1" && strings.Contains(msgs[i-1], "reload failed: /etc/sikkerguard/sikkerguard.yaml:3") {
			found = true
		}
	}
	if !found {
		t.Errorf("no READY=1 / STATUS=…reload failed / ERRNO=22: %q", msgs)
	}
	if !l.fw.blocks("203.0.113.7") {
		t.Error("the running list was lost")
	}
}

func TestStatusShowsTheQuota(t *testing.T) {
	l := newLab(t, "203.0.113.7\n203.0.113.9\n")
	srv, err := mock.New(mock.Options{Key: key, Entries: l.srv.Entries(), BlacklistQuota: 100})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	l.cfg.API.URL = srv.URL()
	d, _ := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	waitFor(t, "the quota", func() bool {
		q := d.Status().Quota
		return q != nil && q.Used == 2 && q.Limit == 100 && q.Remaining == 98 && q.Reset.After(time.Now())
	})
}

func TestARefusedKeyShowsAtStartWithoutAPull(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	_, stop := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	stop()
	pulls := l.srv.RequestCount("/v1/key/blacklist")
	if err := l.srv.SetFault(mock.Fault{Mode: mock.Fault403}); err != nil {
		t.Fatal(err)
	}
	l.fw = &fakeFirewall{}
	l.note = listenNotify(t)
	d, _ := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	waitFor(t, "the failed feed", func() bool {
		st := d.Status()
		return st.State == dbusapi.StateDegraded && len(st.Feeds) == 1 && st.Feeds[0].State == dbusapi.FeedFailed
	})
	if !l.fw.blocks("203.0.113.7") {
		t.Error("the last good list is not in force")
	}
	if n := l.srv.RequestCount("/v1/key/blacklist"); n != pulls {
		t.Errorf("%d pulls after a restart with a fresh list", n-pulls)
	}
	waitFor(t, "STATUS= naming the key", func() bool {
		for _, m := range l.note.all() {
			if strings.HasPrefix(m, "STATUS=degraded") && strings.Contains(m, "feed sikkerapi failed: the API refused the key") {
				return true
			}
		}
		return false
	})
}

func TestWarnsBeforeAPullTheQuotaCannotCover(t *testing.T) {
	l := newLab(t, "")
	now := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	d := &Daemon{log: l.logger()}
	snap := hosts(t, SikkerFeedName, 3)
	snap.Stats.Entries = 3
	f := &feedState{name: SikkerFeedName, inUse: snap}
	for _, tc := range []struct {
		q    *dbusapi.Quota
		warn bool
	}{
		{&dbusapi.Quota{Used: 4998, Limit: 5000, Remaining: 2, Reset: now.Add(4 * time.Hour)}, true},
		{&dbusapi.Quota{Used: 4000, Limit: 5000, Remaining: 1000, Reset: now.Add(4 * time.Hour)}, false},
		{&dbusapi.Quota{Used: 4998, Limit: 5000, Remaining: 2, Reset: now.Add(-time.Minute)}, false},
		{&dbusapi.Quota{Used: -1, Limit: -1, Remaining: -1}, false},
	} {
		before := strings.Count(l.logs.String(), "needs more than the blacklist quota left")
		d.setQuota(tc.q)
		d.warnQuota(f, now)
		if got := strings.Count(l.logs.String(), "needs more than the blacklist quota left") > before; got != tc.warn {
			t.Errorf("quota %+v: warned %v, want %v", tc.q, got, tc.warn)
		}
	}
	if !strings.Contains(l.logs.String(), "remaining=2") || !strings.Contains(l.logs.String(), "expected_entries=3") {
		t.Errorf("the warning lacks the numbers:\n%s", l.logs.String())
	}
}

func TestPullRespectsRetryAfter(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	d, _ := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	if err := l.srv.SetFault(mock.Fault{Mode: mock.Fault429, RetryAfter: "3600"}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Pull(ctx, SikkerFeedName); !errors.Is(err, dbusapi.ErrFailed) || !strings.Contains(err.Error(), "429") {
		t.Fatalf("Pull under 429 = %v", err)
	}
	n := l.srv.RequestCount("/v1/key/blacklist")
	if err := d.Pull(ctx, SikkerFeedName); !errors.Is(err, dbusapi.ErrBusy) || !strings.Contains(err.Error(), "not to pull before") {
		t.Errorf("Pull before Retry-After = %v, want Busy", err)
	}
	if got := l.srv.RequestCount("/v1/key/blacklist"); got != n {
		t.Errorf("%d requests before Retry-After", got-n)
	}
	if !l.fw.blocks("203.0.113.7") {
		t.Error("the list in force was lost")
	}
}

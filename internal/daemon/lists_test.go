package daemon

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/mock"
)

// A list the growth check refused must not be what a restart enforces:
// the last good list is written only once a list is accepted and applied.
func TestRefusedListIsNotEnforcedAfterARestart(t *testing.T) {
	l := newLab(t, "185.16.39.1\n185.16.39.3\n")
	d, stop := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	if !l.fw.blocks("185.16.39.1") {
		t.Fatal("first list not applied")
	}

	// 2 → 20 entries: refused by safety.max_growth.
	var grown strings.Builder
	for i := range 20 {
		grown.WriteString("185.16.39." + itoa(2*i+1) + "\n")
	}
	entries, _ := mock.ParseList(strings.NewReader(grown.String()))
	l.srv.SetEntries(entries)
	if err := d.Pull(context.Background(), ""); err == nil {
		t.Error("Pull of a refused list reported success")
	}
	waitFor(t, "the refusal", func() bool { return strings.Contains(l.logs.String(), "safety.max_growth") })
	if l.fw.blocks("185.16.39.39") {
		t.Fatal("the refused list was applied")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Restart with the API down: the last good list is the 2-entry one.
	l.srv.SetFault(mock.Fault{Mode: mock.Fault500})
	l.fw = &fakeFirewall{}
	l.note = listenNotify(t)
	l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	if !l.fw.blocks("185.16.39.1") || !l.fw.blocks("185.16.39.3") {
		t.Error("the last good list is not in force after the restart")
	}
	if l.fw.blocks("185.16.39.39") {
		t.Error("the refused list is in force after the restart")
	}
}

// A reload that changes a feed's source while a pull of the old source is
// running pulls the new source at once and drops the old answer.
func TestReloadDuringAPullUsesTheNewSourceAtOnce(t *testing.T) {
	next := newLab(t, "185.16.39.77\n") // another API, another list
	old := newLab(t, "185.16.39.1\n")   // last: its notify socket is the one in use
	reload := make(chan struct{}, 1)
	cfg := old.cfg
	d, _ := old.start(func(o *Options) {
		o.Reload = reload
		o.Load = func() (config.Config, config.Secret, error) { return cfg, config.NewSecret(key), nil }
	})
	old.note.waitCount(t, "READY=1", 1)

	// The old API turns slow; a reload starts a pull that hangs there.
	old.srv.SetFault(mock.Fault{Mode: mock.FaultSlow, Delay: 3 * time.Second})
	go d.Pull(context.Background(), "")
	waitFor(t, "the slow pull", func() bool { return strings.Count(old.logs.String(), "/v1/key/blacklist?") >= 2 })

	// The administrator points api.url elsewhere and reloads again.
	cfg.API.URL = next.srv.URL()
	reload <- struct{}{}
	start := time.Now()
	waitFor(t, "the new API's list", func() bool { return old.fw.blocks("185.16.39.77") })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the new source was applied after %v: it waited for the old pull", d)
	}
	// The old API's late answer must not replace it.
	time.Sleep(3500 * time.Millisecond)
	if !old.fw.blocks("185.16.39.77") || old.fw.blocks("185.16.39.1") {
		t.Errorf("after the old answer came in: new entry blocked %v, old entry blocked %v",
			old.fw.blocks("185.16.39.77"), old.fw.blocks("185.16.39.1"))
	}
	if !strings.Contains(old.logs.String(), "dropping the answer of a feed source replaced by a reload") {
		t.Errorf("the superseded answer was not dropped:\n%s", old.logs.String())
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

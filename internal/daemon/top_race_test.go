package daemon

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
)

// TopBlocked is a bus call, served off the main loop, while a reload that
// changes the monitor's settings replaces the monitor; under -race this
// catches an unguarded read of the monitor in force.
func TestTopBlockedDuringReload(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	l.cfg.Firewall.LogGroup = 0 // the monitor is built but reads no NFLOG group
	reload := make(chan struct{})
	var mu sync.Mutex
	cfg := l.cfg
	d, _ := l.start(func(o *Options) {
		o.Reload = reload
		o.Load = func() (config.Config, config.Secret, error) {
			mu.Lock()
			defer mu.Unlock()
			// A new report interval each time: monitorChanged, so the
			// monitor is rebuilt.
			cfg.Report.Interval += time.Minute
			return cfg, config.NewSecret(key), nil
		}
	})
	l.note.waitCount(t, "READY=1", 1)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			if top := d.TopBlocked(10); len(top) != 0 {
				t.Errorf("TopBlocked = %v, want nothing dropped", top)
				return
			}
		}
	})
	for i := range 3 {
		reload <- struct{}{}
		l.note.waitCount(t, "READY=1", i+2)
	}
	cancel()
	wg.Wait()
}

package daemon

import (
	"context"
	"fmt"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/health"
	"github.com/sikkerapi/sikkerguard/internal/hub"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/nflog"
)

// hubState is the fleet hub beside the daemon: the server and what it was
// last given, so that an unchanged plan is not rendered again.
type hubState struct {
	srv   *hub.Server
	block ipnet.Set
	feeds map[string]ipnet.Set
	pub   *hub.Published
}

// startHub serves hub.listen when set. Like the health endpoint, a hub
// that cannot start is logged and never keeps the firewall from working:
// the hosts keep their last good lists meanwhile.
func (d *Daemon) startHub(ctx context.Context) {
	if d.cfg.Hub.Listen == "" {
		return
	}
	tokens, err := hub.LoadTokens(d.cfg.Hub.TokensFile)
	if err != nil {
		d.log.Error("hub unavailable", "err", err)
		return
	}
	srv, err := hub.New(hub.Options{Listen: d.cfg.Hub.Listen, TLSCert: d.cfg.Hub.TLSCert, TLSKey: d.cfg.Hub.TLSKey,
		Tokens: tokens, Services: d.cfg.PortServices(), Sink: d.fleetReports, Log: d.log, Now: d.o.Now})
	if err == nil {
		err = srv.Listen()
	}
	if err != nil {
		d.log.Error("hub unavailable", "listen", d.cfg.Hub.Listen, "err", err)
		return
	}
	d.log.Info("Hub serving the accepted list", "addr", srv.Addr().String(), "hosts", len(tokens.Names()))
	d.hub = &hubState{srv: srv}
	d.mu.Lock()
	d.hubForStatus = srv
	d.mu.Unlock()
	d.publishHub()
	go func() {
		if err := srv.Serve(ctx); err != nil {
			d.log.Warn("hub stopped", "err", err)
		}
	}()
}

// publishHub hands the hub what the kernel holds: the applied plan's
// blocklist and each feed's list in use, never a pull no decision
// accepted. Called on the main loop after every reconcile, and rendered
// there too (about a second for 1 M entries, once per change), so that
// READY=1 after a reload means the hub already serves the new list.
func (d *Daemon) publishHub() {
	h := d.hub
	if h == nil || !d.hasApplied {
		return
	}
	feeds := make(map[string]ipnet.Set, len(d.feeds))
	for _, f := range d.feeds {
		if f.inUse != nil {
			feeds[f.name] = f.inUse.Set
		}
	}
	if h.pub != nil && h.block.Equal(d.applied.Block) && sameSets(h.feeds, feeds) {
		return
	}
	h.pub = hub.Publish(d.applied.Block, feeds, d.o.Now(), h.pub)
	h.block, h.feeds = d.applied.Block, feeds
	h.srv.Publish(h.pub)
}

func sameSets(a, b map[string]ipnet.Set) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !v.Equal(w) {
			return false
		}
	}
	return true
}

// reloadHubTokens re-reads the tokens file; a bad file keeps the tokens in
// force, so a typo cannot lock the whole fleet out.
func (d *Daemon) reloadHubTokens() {
	if d.hub == nil {
		return
	}
	tokens, err := hub.LoadTokens(d.cfg.Hub.TokensFile)
	if err != nil {
		d.log.Error("reload: hub tokens refused; keeping the ones in force", "err", err)
		return
	}
	d.hub.srv.SetTokens(tokens)
	d.log.Info("hub tokens reloaded", "hosts", len(tokens.Names()))
}

// fleetReports adds a host's drop events to this hub's reporter, which
// deduplicates them with every other host's and its own. It runs on the
// hub's HTTP goroutines.
func (d *Daemon) fleetReports(_ string, counts []nflog.Count) bool {
	d.mu.Lock()
	m := d.monForHealth
	d.mu.Unlock()
	return m.AddFleet(counts)
}

// HubActiveWindow is the "last interval" of hub status: a host that pulled
// within it is active. It is the default feed interval, the slowest a
// host polls unless told otherwise.
const HubActiveWindow = config.DefaultFeedInterval

// hubStatus is the hub's state; ok is false when this daemon is no hub.
// Safe from any goroutine.
func (d *Daemon) hubStatus() (hub.Status, bool) {
	d.mu.Lock()
	h := d.hubForStatus
	d.mu.Unlock()
	if h == nil {
		return hub.Status{}, false
	}
	return h.Status(), true
}

// HubStatus implements dbusapi.Daemon: the hub's hosts and counters, with
// the reporter's forwarded and pending rows.
func (d *Daemon) HubStatus() (dbusapi.HubStatus, error) {
	st, ok := d.hubStatus()
	if !ok {
		return dbusapi.HubStatus{}, fmt.Errorf("hub status: hub.listen is off: %w", dbusapi.ErrNotFound)
	}
	now := d.o.Now()
	out := dbusapi.HubStatus{Listen: st.Listen, Generation: st.Generation, Entries: clampU32(uint64(st.Entries)),
		Window: HubActiveWindow, Active: uint32(st.Active(now, HubActiveWindow)), Requests: st.Requests,
		NotMod: st.NotMod, Refused: st.Refused, Received: st.Received}
	d.mu.Lock()
	m := d.monForHealth
	d.mu.Unlock()
	if m != nil && m.fleet != nil {
		rs := m.fleet.Stats()
		out.Forwarded, out.Pending = rs.Sent, uint64(rs.Pending)
	}
	for _, h := range st.Hosts {
		out.Hosts = append(out.Hosts, dbusapi.HubHost{Name: h.Name, Addr: h.Addr, LastPull: h.LastPull,
			Generation: h.Generation, Reports: h.Reports})
	}
	return out, nil
}

// hubMetrics is the hub's part of /metrics; nil when this is no hub.
func (d *Daemon) hubMetrics() *health.Hub {
	st, err := d.HubStatus()
	if err != nil {
		return nil
	}
	h := &health.Hub{ActiveHosts: uint64(st.Active), Generation: st.Generation, Requests: st.Requests,
		NotModified: st.NotMod, Refused: st.Refused, Received: st.Received, Forwarded: st.Forwarded}
	for _, x := range st.Hosts {
		h.Hosts = append(h.Hosts, health.HubHost{Name: x.Name, LastPull: x.LastPull, Generation: x.Generation, Reports: x.Reports})
	}
	return h
}

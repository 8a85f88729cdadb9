package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/hub"
	"github.com/sikkerapi/sikkerguard/internal/nflog"
	"github.com/sikkerapi/sikkerguard/internal/report"
	"github.com/sikkerapi/sikkerguard/internal/version"
)

// Drop monitoring defaults.
const (
	DropsFile           = "drops.json"           // block statistics in the state directory
	DefaultSaveEvery    = time.Minute            // how often the totals are written
	DefaultFlushTimeout = 5 * time.Second        // last report attempt on stop
	DefaultRetryMin     = time.Second            // first wait before the listener is reopened
	DefaultRetryMax     = 2 * time.Minute        // longest wait between reopen attempts
	dropLogPrefix       = firewall.LogPrefixDrop // the prefix both backends give their blocklist's log rules
	minTick             = 10 * time.Millisecond
)

// MonitorOptions tune a Monitor. Everything may be left zero.
type MonitorOptions struct {
	// NetNSFd is the network namespace whose NFLOG group is read (tests);
	// 0 = the current one.
	NetNSFd int
	// Filter returns true for a source that may be reported; the daemon
	// passes "not whitelisted, not ours". nil reports every source.
	Filter func(netip.Addr) bool
	Now    func() time.Time
	// Window is the aggregation window of the BLOCKED lines; 0 =
	// nflog.DefaultWindow.
	Window time.Duration
	// ReportURL replaces cfg.API.URL for reports (tests).
	ReportURL string
	// SaveEvery is how often the totals are saved; 0 = DefaultSaveEvery.
	SaveEvery time.Duration
	// FlushTimeout bounds the last report on stop; 0 = DefaultFlushTimeout.
	FlushTimeout time.Duration
	// RetryMin and RetryMax bound the backoff of a failing listener.
	RetryMin, RetryMax time.Duration
	// Feeds names the feeds listing an address, for the feed=NAME of the
	// role lines and for the hits; nil names none.
	Feeds FeedResolver
	// Hits receives every window's hits of every kind (drops included);
	// nil discards them.
	Hits HitSink
}

// MonitorStats is what drop monitoring saw since NewMonitor. The listener
// counters add up over every time the listener was reopened.
type MonitorStats struct {
	Listening bool   // an NFLOG listener is bound now
	Opens     uint64 // successful binds of the group, the first one included
	Failures  uint64 // failed binds and listeners that stopped on an error

	Received    uint64 // packets the kernel delivered
	Events      uint64 // packets parsed and counted
	ParseErrors uint64
	Foreign     uint64 // logged by rules that are not sikkerguard's
	Overruns    uint64 // socket overflows: the kernel dropped log messages
	QueueDrops  uint64 // events dropped because aggregation fell behind

	Sources int    // sources in the totals now
	Packets uint64 // packets in the totals, restored ones included
	Evicted uint64 // sources dropped at the aggregator's cap

	Reporting        bool   // reports are sent (enabled, not dry-run, key present)
	Reported         uint64 // rows the API accepted
	ReportRejected   uint64
	ReportPending    int // rows spooled, waiting for the API
	ReportDuplicates uint64
	ReportFiltered   uint64
	ReportOverflow   uint64
	LastReport       time.Time
}

// Monitor reads the packets the firewall drops back from NFLOG, logs them
// per source and port (`BLOCKED 185.16.39.79:23 (telnet) proto=TCP x47`),
// keeps persistent per-source totals and feeds the reporter.
//
// The kernel rule logs behind firewall.log_rate, so the NFLOG stream is a
// rate-limited sample of the drops, not all of them: under a flood the
// kernel keeps dropping every listed packet but logs only log_rate of them.
// That caps the work and memory spent here whatever the attack, at the
// price of precision: every BLOCKED count and total is a lower bound, and
// the exact number of dropped packets is the nft rule counter
// (nft.Backend.Counters). For reports the sample is enough: a source is
// reported once per service and day, whatever its count.
//
// Nothing here can affect blocking: a listener that fails is logged and
// reopened with backoff, and a report that fails is retried by the
// reporter from its spool. Memory is bounded by the aggregator's source
// cap and the reporter's pending cap.
type Monitor struct {
	cfg   config.Config
	log   *slog.Logger
	opt   MonitorOptions
	group uint16
	agg   *nflog.Aggregator
	roles *roleLog     // WOULD-BLOCK, OUTBOUND and BLOCKED-OUT lines
	rep   dropReporter // nil: reporting off
	// fleet is rep when it is this host's own SikkerAPI reporter: a hub
	// adds its hosts' events to it, deduplicated with its own.
	fleet *report.Reporter

	running atomic.Bool

	mu       sync.Mutex // guards the listener fields below
	cur      *nflog.Listener
	past     nflog.Stats // counters of listeners already closed
	opens    uint64
	failures uint64
}

// dropReporter is where a window's drops go: SikkerAPI's bulk reports
// (report.Reporter) or a fleet hub (hub.Sender).
type dropReporter interface {
	Add(...nflog.Count)
	Run(context.Context)
	Flush(context.Context) error
	Stats() report.Stats
}

// NewMonitor prepares drop monitoring for cfg; Run starts it. It loads the
// saved totals, and the report spool when reporting is on.
func NewMonitor(cfg config.Config, key config.Secret, log *slog.Logger, opt MonitorOptions) (*Monitor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Firewall.LogGroup < 0 || cfg.Firewall.LogGroup > 65535 {
		return nil, fmt.Errorf("monitor: firewall.log_group %d is outside 0..65535", cfg.Firewall.LogGroup)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Window <= 0 {
		opt.Window = nflog.DefaultWindow
	}
	if opt.SaveEvery <= 0 {
		opt.SaveEvery = DefaultSaveEvery
	}
	if opt.FlushTimeout <= 0 {
		opt.FlushTimeout = DefaultFlushTimeout
	}
	if opt.RetryMin <= 0 {
		opt.RetryMin = DefaultRetryMin
	}
	if opt.RetryMax < opt.RetryMin {
		opt.RetryMax = max(DefaultRetryMax, opt.RetryMin)
	}
	m := &Monitor{cfg: cfg, log: log, opt: opt, group: uint16(cfg.Firewall.LogGroup)}
	var statePath string
	if cfg.StateDir != "" {
		statePath = filepath.Join(cfg.StateDir, DropsFile)
	}
	m.agg = nflog.NewAggregator(nflog.AggregatorConfig{
		Window: opt.Window, Services: cfg.PortServices(), StatePath: statePath, Now: opt.Now,
	}, log)
	m.roles = newRoleLog(log, cfg.PortServices(), opt.Feeds)
	if m.group == 0 || !reportingWanted(cfg, key) {
		return m, nil
	}
	if cfg.Report.Hub != "" {
		// A token that cannot be read stops the reports, not the drop log.
		tok, err := hubReportToken(cfg)
		var snd *hub.Sender
		if err == nil {
			snd, err = hub.NewSender(hub.SenderConfig{URL: cfg.Report.Hub, Token: tok.Reveal(), UserAgent: version.UserAgent(),
				Interval: cfg.Report.Interval, StateDir: cfg.StateDir, Filter: opt.Filter, AllowNonGlobal: !cfg.Safety.StripPrivate, Now: opt.Now}, log)
		}
		if err != nil {
			log.Error("reports to the hub off", "err", err)
			return m, nil
		}
		m.rep = snd
		return m, nil
	}
	url := cfg.API.URL
	if opt.ReportURL != "" {
		url = opt.ReportURL
	}
	rep, err := report.New(report.Config{
		URL: url, Key: key.Reveal(), UserAgent: version.UserAgent(),
		Interval: cfg.Report.Interval, StateDir: cfg.StateDir,
		Filter: opt.Filter, AllowNonGlobal: !cfg.Safety.StripPrivate, Now: opt.Now,
	}, log)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	m.rep, m.fleet = rep, rep
	return m, nil
}

// AddFleet hands a fleet host's drops to this hub's reporter; false when
// the hub does not report.
func (m *Monitor) AddFleet(counts []nflog.Count) bool {
	if m == nil || m.fleet == nil {
		return false
	}
	m.fleet.Add(counts...)
	return true
}

// hubReportToken is the token for report.hub (config.HubTokenFile).
func hubReportToken(cfg config.Config) (config.Secret, error) {
	path, ok := cfg.HubTokenFile()
	if !ok {
		return config.Secret{}, errors.New("report.hub: no feed of that hub has a token_file")
	}
	return config.LoadToken(path)
}

// reportingWanted tells whether drops are reported: a dry run blocks
// nothing, so it has nothing true to report, and without a key the API
// would refuse every request — unless the drops go to a fleet hub.
func reportingWanted(cfg config.Config, key config.Secret) bool {
	return cfg.Report.Enabled && !cfg.DryRun && (!key.IsZero() || cfg.Report.Hub != "")
}

// Run monitors drops until ctx ends. With log_group 0 it returns nil at
// once. On stop it ends the current window, saves the totals and gives
// the reporter up to FlushTimeout to send what is left; rows it cannot
// send stay in the spool for the next start. It returns an error only
// when the monitor is already running.
func (m *Monitor) Run(ctx context.Context) error {
	if m.group == 0 {
		m.log.Info("drop monitoring off", "log_group", 0)
		return nil
	}
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("monitor: already running")
	}
	defer m.running.Store(false)
	m.log.Info("drop monitoring on", "log_group", m.group, "log_rate", m.cfg.Firewall.LogRate.String(),
		"window", m.opt.Window, "reporting", m.rep != nil)

	listenCtx, stopListen := context.WithCancel(ctx)
	defer stopListen()
	listenDone := make(chan struct{})
	go func() {
		defer close(listenDone)
		m.listen(listenCtx)
	}()
	reportCtx, stopReport := context.WithCancel(ctx)
	defer stopReport()
	reportDone := make(chan struct{})
	if m.rep != nil {
		go func() {
			defer close(reportDone)
			m.rep.Run(reportCtx)
		}()
	} else {
		close(reportDone)
	}

	// Tick several times a window so that a window ends close to Window
	// after it began; Tick itself decides when it has lasted long enough.
	tick := time.NewTicker(max(m.opt.Window/5, minTick))
	defer tick.Stop()
	save := time.NewTicker(m.opt.SaveEvery)
	defer save.Stop()
	for {
		select {
		case <-ctx.Done():
			stopListen()
			<-listenDone
			stopReport()
			<-reportDone
			m.finish(context.WithoutCancel(ctx))
			return nil
		case <-tick.C:
			if w := m.agg.Tick(); w != nil {
				m.hand(w)
				m.emit(w)
			}
		case <-save.C:
			m.save()
		}
	}
}

// hand passes a finished window to the reporter.
func (m *Monitor) hand(window []nflog.Count) {
	if m.rep != nil && len(window) > 0 {
		m.rep.Add(window...)
	}
}

func (m *Monitor) save() {
	if err := m.agg.Save(); err != nil {
		m.log.Warn("block statistics not saved", "err", err)
	}
}

// finish ends the last window and flushes totals and reports within
// FlushTimeout.
func (m *Monitor) finish(ctx context.Context) {
	w := m.agg.Flush()
	m.hand(w)
	m.emit(w)
	m.save()
	if m.rep == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, m.opt.FlushTimeout)
	defer cancel()
	if err := m.rep.Flush(ctx); err != nil {
		m.log.Warn("last drop report not sent, rows kept for the next start", "err", err)
	}
}

// listen keeps a listener bound to the group until ctx ends, reopening it
// with exponential backoff whenever opening or reading fails.
func (m *Monitor) listen(ctx context.Context) {
	delay := m.opt.RetryMin
	for {
		err := m.listenOnce(ctx, &delay)
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		m.failures++
		m.mu.Unlock()
		m.log.Warn("drop monitoring interrupted, retrying", "log_group", m.group, "retry_in", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, m.opt.RetryMax)
	}
}

// listenOnce opens one listener and runs it until it stops. A listener
// that ran for RetryMax resets the backoff: its failure is a new incident.
func (m *Monitor) listenOnce(ctx context.Context, delay *time.Duration) error {
	l, err := nflog.Open(nflog.Config{Group: m.group, Prefix: dropLogPrefix, Prefixes: rolePrefixes, NetNSFd: m.opt.NetNSFd, Now: m.opt.Now}, m.log)
	if err != nil {
		return err
	}
	start := time.Now()
	m.mu.Lock()
	m.cur = l
	m.opens++
	m.mu.Unlock()
	err = l.Run(ctx, m.add)
	cerr := l.Close()
	m.mu.Lock()
	m.past = addListenerStats(m.past, l.Stats())
	m.cur = nil
	m.mu.Unlock()
	if time.Since(start) >= m.opt.RetryMax {
		*delay = m.opt.RetryMin
	}
	if err == nil && cerr == nil && ctx.Err() == nil {
		err = errors.New("nflog listener stopped")
	}
	return errors.Join(err, cerr)
}

func addListenerStats(a, b nflog.Stats) nflog.Stats {
	return nflog.Stats{
		Received:    a.Received + b.Received,
		Events:      a.Events + b.Events,
		ParseErrors: a.ParseErrors + b.ParseErrors,
		Foreign:     a.Foreign + b.Foreign,
		Overruns:    a.Overruns + b.Overruns,
		QueueDrops:  a.QueueDrops + b.QueueDrops,
	}
}

// TopBlocked returns the n (source, port, transport) pairs with the most
// logged packets, largest first. Counts are lower bounds (see Monitor), and
// up to nflog.TopRefresh old: any local user may call this over the bus, so
// it is served from the aggregator's snapshot (see nflog.Aggregator.TopBlocked).
func (m *Monitor) TopBlocked(n int) []nflog.Count {
	return m.agg.TopBlocked(n)
}

// SourceTotal returns the logged packets from src over the totals; 0 when
// none were logged or the source was evicted.
func (m *Monitor) SourceTotal(src netip.Addr) uint64 {
	return m.agg.SourceTotal(src)
}

// ServiceTotals returns the logged packets per service name.
func (m *Monitor) ServiceTotals() map[string]uint64 {
	return m.agg.ServiceTotals()
}

// Stats returns the counters; it is safe from any goroutine.
func (m *Monitor) Stats() MonitorStats {
	m.mu.Lock()
	ls := m.past
	if m.cur != nil {
		ls = addListenerStats(ls, m.cur.Stats())
	}
	st := MonitorStats{Listening: m.cur != nil, Opens: m.opens, Failures: m.failures}
	m.mu.Unlock()
	st.Received, st.Events, st.ParseErrors = ls.Received, ls.Events, ls.ParseErrors
	st.Foreign, st.Overruns, st.QueueDrops = ls.Foreign, ls.Overruns, ls.QueueDrops
	as := m.agg.Stats()
	st.Sources, st.Packets, st.Evicted = as.Sources, as.Packets, as.Evicted
	if m.rep != nil {
		rs := m.rep.Stats()
		st.Reporting = true
		st.Reported, st.ReportRejected, st.ReportPending = rs.Sent, rs.Rejected, rs.Pending
		st.ReportDuplicates, st.ReportFiltered, st.ReportOverflow = rs.Duplicates, rs.Filtered, rs.Overflow
		st.LastReport = rs.LastReport
	}
	return st
}

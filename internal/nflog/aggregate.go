package nflog

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/logging"
	"github.com/sikkerapi/sikkerguard/internal/statefile"
)

// Aggregator defaults.
const (
	DefaultWindow            = 10 * time.Second
	DefaultMaxSources        = 100_000
	DefaultMaxPortsPerSource = 64
	// DefaultScanPorts is how many distinct ports one source may hit over
	// one transport in one window before its lines become one scan line.
	DefaultScanPorts = 8

	// MaxTop caps TopBlocked(n), as dbusapi.MaxTop caps the bus method.
	MaxTop = 1000
	// TopRefresh is how often, at most, TopBlocked goes over the totals.
	TopRefresh = time.Second
)

// Service names for packets without a mapped port.
const (
	ServiceUnknown = "unknown" // TCP/UDP port not in the port map
	ServiceICMP    = "icmp"
	ServiceICMPv6  = "icmpv6"
	ServiceOther   = "other" // neither TCP, UDP nor ICMP
)

// stateVersion is the totals file format; a file with another version is
// ignored like a corrupt one.
const stateVersion = 1

// AggregatorConfig tunes an Aggregator.
type AggregatorConfig struct {
	Window            time.Duration     // 0 = DefaultWindow
	MaxSources        int               // sources kept in the totals; 0 = DefaultMaxSources
	MaxPortsPerSource int               // (port, transport) pairs kept per source; 0 = DefaultMaxPortsPerSource
	ScanPorts         int               // distinct ports per source, transport and window logged one by one; 0 = DefaultScanPorts
	Services          map[uint16]string // destination port → service name (config.PortServices)
	StatePath         string            // totals file; "" = totals live in memory only
	Now               func() time.Time  // default time.Now
}

// Count is the number of logged packets from one source to one port.
type Count struct {
	Src       netip.Addr
	Port      uint16 // 0 for ICMP and other protocols
	Transport string
	Service   string
	Count     uint64
}

// Line renders c as the journal shows it:
// `BLOCKED 185.16.39.79:23 (telnet) proto=TCP x47`, without a port for
// ICMP and other protocols.
func (c Count) Line() string {
	where := c.Src.String()
	if c.Transport == TransportTCP || c.Transport == TransportUDP {
		where = netip.AddrPortFrom(c.Src, c.Port).String()
	}
	return "BLOCKED " + where + " (" + c.Service + ") proto=" + c.Transport + " x" + strconv.FormatUint(c.Count, 10)
}

// ServiceName names the service a packet was aimed at.
func ServiceName(services map[uint16]string, port uint16, transport string) string {
	switch transport {
	case TransportTCP, TransportUDP:
		if s, ok := services[port]; ok && s != "" {
			return s
		}
		return ServiceUnknown
	case TransportICMP:
		return ServiceICMP
	case TransportICMPv6:
		return ServiceICMPv6
	}
	return ServiceOther
}

// AggregateStats summarises the totals.
type AggregateStats struct {
	Sources      int    // sources tracked now
	Packets      uint64 // packets counted since the totals began, evicted sources included
	Evicted      uint64 // sources dropped at MaxSources
	PortsEvicted uint64 // (port, transport) pairs dropped at MaxPortsPerSource
}

type key struct {
	src       netip.Addr
	port      uint16
	transport string
}

type portCount struct {
	Port      uint16 `json:"port"`
	Transport string `json:"transport"`
	Count     uint64 `json:"count"`
}

type sourceTotal struct {
	count uint64
	last  int64 // unix seconds of the latest packet, the eviction tie-breaker
	ports []portCount
}

// Aggregator counts events per (source, port, transport) in fixed windows
// and keeps running totals per source, per service and per (source, port,
// transport). It is safe for concurrent use.
//
// Memory is bounded: at most MaxSources sources and MaxPortsPerSource pairs
// per source are kept. When a new source arrives at the cap, the lowest 1 %
// of sources (fewest packets, then least recently seen) are evicted in one
// pass, so the cost of finding them is paid once per thousand new sources
// rather than per packet; evictions are counted in AggregateStats. The
// window itself holds one entry per distinct key seen in one window, which
// the kernel's log rate limit bounds.
type Aggregator struct {
	cfg AggregatorConfig
	log *slog.Logger

	mu          sync.Mutex
	windowStart time.Time
	window      map[key]uint64
	sources     map[netip.Addr]*sourceTotal
	services    map[string]uint64
	packets     uint64
	evicted     uint64
	portsEvict  uint64
	gen         uint64 // bumped on every change of the totals

	topMu    sync.Mutex // one TopBlocked rebuild at a time; guards top
	top      []Count    // the best MaxTop pairs, best first
	topGen   uint64     // gen when top was built
	topAt    time.Time
	topBuilt bool
}

// NewAggregator returns an aggregator whose first window starts now. With a
// StatePath it loads the totals saved there; a missing file starts empty and
// an unreadable one is logged and ignored.
func NewAggregator(cfg AggregatorConfig, log *slog.Logger) *Aggregator {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.MaxPortsPerSource <= 0 {
		cfg.MaxPortsPerSource = DefaultMaxPortsPerSource
	}
	if cfg.ScanPorts <= 0 {
		cfg.ScanPorts = DefaultScanPorts
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Aggregator{
		cfg:      cfg,
		log:      log,
		window:   map[key]uint64{},
		sources:  map[netip.Addr]*sourceTotal{},
		services: map[string]uint64{},
	}
	a.windowStart = cfg.Now()
	if cfg.StatePath != "" {
		if err := a.load(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("block statistics ignored", "path", cfg.StatePath, "err", err)
			a.sources, a.services = map[netip.Addr]*sourceTotal{}, map[string]uint64{}
			a.packets, a.evicted, a.portsEvict = 0, 0, 0
		}
	}
	return a
}

// Add counts one event.
func (a *Aggregator) Add(ev Event) {
	if !ev.Src.IsValid() {
		return
	}
	src := ev.Src.Unmap()
	k := key{src: src, port: ev.DstPort, transport: ev.Transport}
	if k.transport != TransportTCP && k.transport != TransportUDP {
		k.port = 0
	}
	t := ev.Time
	if t.IsZero() {
		t = a.cfg.Now()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.window[k]++
	a.packets++
	a.gen++
	a.services[ServiceName(a.cfg.Services, k.port, k.transport)]++
	st := a.sources[src]
	if st == nil {
		if len(a.sources) >= a.cfg.MaxSources {
			a.evictLocked(len(a.sources) - a.cfg.MaxSources + max(1, a.cfg.MaxSources/100))
		}
		st = &sourceTotal{}
		a.sources[src] = st
	}
	st.count++
	st.last = max(st.last, t.Unix())
	a.bumpPortLocked(st, k.port, k.transport, 1)
}

// bumpPortLocked adds n to one pair of st, evicting the smallest pair when
// the source is at its cap.
func (a *Aggregator) bumpPortLocked(st *sourceTotal, port uint16, transport string, n uint64) {
	for i := range st.ports {
		if st.ports[i].Port == port && st.ports[i].Transport == transport {
			st.ports[i].Count += n
			return
		}
	}
	if len(st.ports) >= a.cfg.MaxPortsPerSource {
		smallest := 0
		for i, p := range st.ports {
			if p.Count < st.ports[smallest].Count {
				smallest = i
			}
		}
		st.ports = slices.Delete(st.ports, smallest, smallest+1)
		a.portsEvict++
	}
	st.ports = append(st.ports, portCount{Port: port, Transport: transport, Count: n})
}

// evictLocked drops the n lowest-ranked sources.
func (a *Aggregator) evictLocked(n int) {
	if n <= 0 {
		return
	}
	type ranked struct {
		src netip.Addr
		st  *sourceTotal
	}
	all := make([]ranked, 0, len(a.sources))
	for src, st := range a.sources {
		all = append(all, ranked{src, st})
	}
	slices.SortFunc(all, func(x, y ranked) int {
		return cmp.Or(cmp.Compare(x.st.count, y.st.count), cmp.Compare(x.st.last, y.st.last), x.src.Compare(y.src))
	})
	for _, r := range all[:min(n, len(all))] {
		delete(a.sources, r.src)
		a.evicted++
	}
}

// Tick ends the current window if it has lasted Window or longer: it logs
// one BLOCKED line per key and returns the window's counts, largest first.
// Before that it returns nil.
func (a *Aggregator) Tick() []Count {
	now := a.cfg.Now()
	a.mu.Lock()
	if now.Sub(a.windowStart) < a.cfg.Window {
		a.mu.Unlock()
		return nil
	}
	a.mu.Unlock()
	return a.Flush()
}

// Flush ends the current window now (on shutdown), logs and returns it.
// The returned counts are always per port; the journal gets one line per
// port, except for a source that hit more than ScanPorts ports over one
// transport, which gets one scan line (see ScanLine).
func (a *Aggregator) Flush() []Count {
	a.mu.Lock()
	w := a.window
	a.window = map[key]uint64{}
	a.windowStart = a.cfg.Now()
	a.mu.Unlock()
	out := make([]Count, 0, len(w))
	for k, n := range w {
		out = append(out, Count{Src: k.src, Port: k.port, Transport: k.transport,
			Service: ServiceName(a.cfg.Services, k.port, k.transport), Count: n})
	}
	sortCounts(out)
	for _, l := range journalLines(out, a.cfg.ScanPorts) {
		// The line says it all; the attributes go to the journal as fields
		// (journalctl -u sikkerguard SIKKER_SRC=…) and not into the text.
		c := l.Count
		fields := []any{"src", c.Src, "port", c.Port, "service", c.Service, "proto", c.Transport, "count", c.Count}
		if l.ports > 0 {
			fields = append(fields, "ports", l.ports) // a scan: port is the lowest of them
		}
		a.log.Info(l.text, slog.Group(logging.FieldsOnly, fields...))
	}
	return out
}

// scanPortsShown is how many ports a scan line names before "…".
const scanPortsShown = 3

// ServiceScan is the service a scan line names in its journal fields.
const ServiceScan = "scan"

// journalLine is one BLOCKED line of a window: a port's count, or for a
// scan the source's total with the lowest port and the number of ports.
type journalLine struct {
	Count
	ports int // distinct ports of a scan; 0 for a per-port line
	text  string
}

// journalLines turns a window's counts (sorted by sortCounts) into the
// lines to log, in the same order: a scan takes the place of its source's
// first per-port line.
func journalLines(cs []Count, scanPorts int) []journalLine {
	type st struct {
		src       netip.Addr
		transport string
	}
	type group struct {
		ports []uint16
		total uint64
		done  bool
	}
	groups := map[st]*group{}
	for _, c := range cs {
		if c.Transport != TransportTCP && c.Transport != TransportUDP {
			continue
		}
		g := groups[st{c.Src, c.Transport}]
		if g == nil {
			g = &group{}
			groups[st{c.Src, c.Transport}] = g
		}
		g.ports = append(g.ports, c.Port)
		g.total += c.Count
	}
	out := make([]journalLine, 0, len(cs))
	for _, c := range cs {
		g := groups[st{c.Src, c.Transport}]
		switch {
		case g == nil || len(g.ports) <= scanPorts:
			out = append(out, journalLine{Count: c, text: c.Line()})
		case !g.done:
			g.done = true
			slices.Sort(g.ports)
			sc := Count{Src: c.Src, Port: g.ports[0], Transport: c.Transport, Service: ServiceScan, Count: g.total}
			out = append(out, journalLine{Count: sc, ports: len(g.ports), text: ScanLine(c.Src, g.ports, c.Transport, g.total)})
		}
	}
	return out
}

// ScanLine renders a source that hit many ports in one window:
// `BLOCKED 192.0.2.2 (493 ports: 22, 23, 80, …) proto=UDP x493 scan`, the
// lowest ports first. ports must be sorted.
func ScanLine(src netip.Addr, ports []uint16, transport string, total uint64) string {
	var b strings.Builder
	b.WriteString("BLOCKED " + src.String() + " (" + strconv.Itoa(len(ports)) + " ports: ")
	for i, p := range ports[:min(len(ports), scanPortsShown)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(int(p)))
	}
	if len(ports) > scanPortsShown {
		b.WriteString(", …")
	}
	b.WriteString(") proto=" + transport + " x" + strconv.FormatUint(total, 10) + " scan")
	return b.String()
}

// sortCounts orders by count, largest first, then by source, port and
// transport so that the order is total.
func sortCounts(cs []Count) { slices.SortFunc(cs, compareCounts) }

func compareCounts(x, y Count) int {
	return cmp.Or(cmp.Compare(y.Count, x.Count), x.Src.Compare(y.Src), cmp.Compare(x.Port, y.Port), cmp.Compare(x.Transport, y.Transport))
}

// TopBlocked returns the n (source, port, transport) pairs with the most
// packets over the totals, largest first; n <= 0 returns nil and n is
// capped at MaxTop.
//
// Any local user may ask (over D-Bus), and the totals hold up to
// MaxSources × MaxPortsPerSource pairs, so a call must not copy and sort
// them all. The answer comes from a snapshot of the top MaxTop pairs, found
// with a bounded heap in one pass; it is rebuilt only when the totals have
// changed and the snapshot is at least TopRefresh old, by one caller at a
// time while the others wait for it. A call thus costs a copy of n rows,
// and the pass over the totals runs at most once per TopRefresh however
// many callers there are; the answer is at most TopRefresh old.
func (a *Aggregator) TopBlocked(n int) []Count {
	if n <= 0 {
		return nil
	}
	n = min(n, MaxTop)
	a.topMu.Lock()
	defer a.topMu.Unlock()
	now := a.cfg.Now()
	a.mu.Lock()
	stale := a.topGen != a.gen || !a.topBuilt
	if stale && a.topBuilt && now.Sub(a.topAt) < TopRefresh && !now.Before(a.topAt) {
		stale = false // changed, but refreshed too recently
	}
	if stale {
		a.top = a.topLocked(a.top[:0])
		a.topGen, a.topAt, a.topBuilt = a.gen, now, true
	}
	a.mu.Unlock()
	if stale {
		for i := range a.top {
			a.top[i].Service = ServiceName(a.cfg.Services, a.top[i].Port, a.top[i].Transport)
		}
	}
	return slices.Clone(a.top[:min(n, len(a.top))])
}

// topLocked fills h with the MaxTop best pairs, best first. h is kept as a
// heap whose root is the worst pair kept, so each of the other pairs costs
// one comparison with it.
func (a *Aggregator) topLocked(h []Count) []Count {
	worse := func(x, y Count) bool { return compareCounts(x, y) > 0 }
	for src, st := range a.sources {
		for _, p := range st.ports {
			c := Count{Src: src, Port: p.Port, Transport: p.Transport, Count: p.Count}
			switch {
			case len(h) < MaxTop:
				h = append(h, c)
				siftUp(h, len(h)-1, worse)
			case worse(h[0], c):
				h[0] = c
				siftDown(h, 0, worse)
			}
		}
	}
	sortCounts(h)
	return h
}

func siftUp(h []Count, i int, worse func(x, y Count) bool) {
	for i > 0 {
		parent := (i - 1) / 2
		if !worse(h[i], h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func siftDown(h []Count, i int, worse func(x, y Count) bool) {
	for {
		w := i
		if l := 2*i + 1; l < len(h) && worse(h[l], h[w]) {
			w = l
		}
		if r := 2*i + 2; r < len(h) && worse(h[r], h[w]) {
			w = r
		}
		if w == i {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// SourceTotal returns the packets counted from src (0 when untracked).
func (a *Aggregator) SourceTotal(src netip.Addr) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.sources[src.Unmap()]; st != nil {
		return st.count
	}
	return 0
}

// EachSource calls f with every tracked source and its total, under the
// aggregator's lock: f must be quick and must not call back.
func (a *Aggregator) EachSource(f func(src netip.Addr, total uint64)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for src, st := range a.sources {
		f(src, st.count)
	}
}

// ServiceTotals returns the packets counted per service name.
func (a *Aggregator) ServiceTotals() map[string]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]uint64, len(a.services))
	for s, n := range a.services {
		out[s] = n
	}
	return out
}

// Stats summarises the totals.
func (a *Aggregator) Stats() AggregateStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AggregateStats{Sources: len(a.sources), Packets: a.packets, Evicted: a.evicted, PortsEvicted: a.portsEvict}
}

// stateFile is the on-disk form of the totals.
type stateFile struct {
	Version      int               `json:"version"`
	Saved        time.Time         `json:"saved"`
	Packets      uint64            `json:"packets"`
	Evicted      uint64            `json:"evicted"`
	PortsEvicted uint64            `json:"portsEvicted"`
	Services     map[string]uint64 `json:"services"`
	Sources      []stateSource     `json:"sources"`
}

type stateSource struct {
	IP    netip.Addr  `json:"ip"`
	Count uint64      `json:"count"`
	Last  int64       `json:"last"`
	Ports []portCount `json:"ports"`
}

// Save writes the totals to StatePath atomically; without a StatePath it does
// nothing.
func (a *Aggregator) Save() error {
	if a.cfg.StatePath == "" {
		return nil
	}
	a.mu.Lock()
	sf := stateFile{Version: stateVersion, Saved: a.cfg.Now().UTC(), Packets: a.packets,
		Evicted: a.evicted, PortsEvicted: a.portsEvict, Services: make(map[string]uint64, len(a.services)),
		Sources: make([]stateSource, 0, len(a.sources))}
	for s, n := range a.services {
		sf.Services[s] = n
	}
	for src, st := range a.sources {
		sf.Sources = append(sf.Sources, stateSource{IP: src, Count: st.count, Last: st.last, Ports: slices.Clone(st.ports)})
	}
	a.mu.Unlock()
	slices.SortFunc(sf.Sources, func(x, y stateSource) int { return x.IP.Compare(y.IP) })
	err := statefile.WriteAtomic(a.cfg.StatePath, func(w io.Writer) error {
		return json.NewEncoder(w).Encode(sf)
	}, 0o644)
	if err != nil {
		return fmt.Errorf("save block statistics: %w", err)
	}
	return nil
}

// load reads StatePath into the (empty) totals.
func (a *Aggregator) load() error {
	var sf stateFile
	err := statefile.Read(a.cfg.StatePath, func(r io.Reader) error {
		dec := json.NewDecoder(r)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sf); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		if dec.More() {
			return errors.New("trailing data after the statistics")
		}
		return nil
	})
	if err != nil {
		return err
	}
	if sf.Version != stateVersion {
		return fmt.Errorf("format version %d, want %d", sf.Version, stateVersion)
	}
	for i, s := range sf.Sources {
		if !s.IP.IsValid() {
			return fmt.Errorf("source %d: no address", i)
		}
		for _, p := range s.Ports {
			switch p.Transport {
			case TransportTCP, TransportUDP, TransportICMP, TransportICMPv6, TransportOther:
			default:
				return fmt.Errorf("source %s: unknown transport %q", s.IP, p.Transport)
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	a.packets, a.evicted, a.portsEvict = sf.Packets, sf.Evicted, sf.PortsEvicted
	for s, n := range sf.Services {
		a.services[s] = n
	}
	for _, s := range sf.Sources {
		st := &sourceTotal{count: s.Count, last: s.Last}
		for _, p := range s.Ports {
			a.bumpPortLocked(st, p.Port, p.Transport, p.Count)
		}
		a.sources[s.IP.Unmap()] = st
	}
	if len(a.sources) > a.cfg.MaxSources {
		a.evictLocked(len(a.sources) - a.cfg.MaxSources)
	}
	return nil
}

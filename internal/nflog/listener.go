package nflog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	nfl "github.com/florianl/go-nflog/v2"
	"golang.org/x/sys/unix"
)

// Listener defaults.
const (
	DefaultCopyRange  = 256     // bytes per packet: IPv6 with extension headers plus ports
	DefaultReadBuffer = 4 << 20 // socket receive buffer
	DefaultQueueLen   = 4096    // events between the socket reader and the consumer
)

// Config selects the NFLOG group and the socket's sizes.
type Config struct {
	Group  uint16 // NFLOG group, 1..65535
	Prefix string // when set, packets logged with another prefix are ignored
	// Prefixes are further prefixes accepted beside Prefix.
	Prefixes   []string
	CopyRange  uint32 // bytes of each packet copied to userspace; 0 = DefaultCopyRange
	ReadBuffer int    // socket receive buffer in bytes; 0 = DefaultReadBuffer
	QueueLen   int    // 0 = DefaultQueueLen
	NetNSFd    int    // network namespace to listen in (tests); 0 = the current one
	Now        func() time.Time
}

// Stats counts what the listener saw since Open.
type Stats struct {
	Received    uint64 // packets delivered by the kernel
	Events      uint64 // packets parsed and queued
	ParseErrors uint64 // packets whose headers could not be read
	Foreign     uint64 // packets logged with another prefix
	Overruns    uint64 // ENOBUFS: the socket buffer overflowed and the kernel dropped log messages
	QueueDrops  uint64 // events dropped because the consumer fell behind
}

// Listener receives the packets logged to one NFLOG group.
type Listener struct {
	cfg    Config
	log    *slog.Logger
	nf     *nfl.Nflog
	events chan Event
	cancel context.CancelFunc
	done   chan struct{}

	scratch []byte // only touched by go-nflog's single reader goroutine

	received, parsed, parseErrs, foreign, overruns, queueDrops atomic.Uint64

	closeOnce sync.Once
	closeErr  error
	errMu     sync.Mutex
	err       error // why the reader stopped, if it stopped on its own
}

// Open binds to cfg.Group and starts reading; events queue until Run takes
// them. Binding fails when another process holds the group.
func Open(cfg Config, log *slog.Logger) (*Listener, error) {
	if cfg.Group == 0 {
		return nil, errors.New("nflog: group 0 is not a valid NFLOG group")
	}
	if cfg.CopyRange == 0 {
		cfg.CopyRange = DefaultCopyRange
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	nf, err := nfl.Open(&nfl.Config{
		Group:    cfg.Group,
		Copymode: nfl.CopyPacket,
		Bufsize:  cfg.CopyRange,
		NetNS:    cfg.NetNSFd,
	})
	if err != nil {
		return nil, fmt.Errorf("nflog: open group %d: %w", cfg.Group, err)
	}
	l := &Listener{
		cfg:     cfg,
		log:     log,
		nf:      nf,
		events:  make(chan Event, cfg.QueueLen),
		done:    make(chan struct{}),
		scratch: make([]byte, 0, cfg.CopyRange),
	}
	l.setReadBuffer()
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	if err := nf.RegisterWithErrorFunc(ctx, l.onPacket, l.onError); err != nil {
		cancel()
		nf.Close()
		return nil, fmt.Errorf("nflog: bind group %d: %w", cfg.Group, err)
	}
	return l, nil
}

// setReadBuffer raises the socket buffer so that bursts survive a busy
// consumer. SO_RCVBUFFORCE (root, CAP_NET_ADMIN) passes net.core.rmem_max;
// without it the plain option is capped there.
func (l *Listener) setReadBuffer() {
	var forceErr error
	if rc, err := l.nf.Con.SyscallConn(); err == nil {
		ctlErr := rc.Control(func(fd uintptr) {
			forceErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, l.cfg.ReadBuffer)
		})
		if ctlErr != nil {
			forceErr = ctlErr
		}
	} else {
		forceErr = err
	}
	if forceErr == nil {
		return
	}
	if err := l.nf.Con.SetReadBuffer(l.cfg.ReadBuffer); err != nil {
		l.log.Warn("nflog socket buffer not raised", "bytes", l.cfg.ReadBuffer, "err", err)
	}
}

// onPacket runs on go-nflog's reader goroutine for every logged packet.
func (l *Listener) onPacket(a nfl.Attribute) int {
	l.received.Add(1)
	if a.Payload == nil {
		l.parseErrs.Add(1)
		return 0
	}
	var prefix string
	if a.Prefix != nil {
		prefix = strings.TrimRight(*a.Prefix, "\x00")
	}
	if l.cfg.Prefix != "" && prefix != l.cfg.Prefix && !slices.Contains(l.cfg.Prefixes, prefix) {
		l.foreign.Add(1)
		return 0
	}
	// go-nflog hands out a slice of its receive buffer, which the next
	// message overwrites.
	l.scratch = append(l.scratch[:0], *a.Payload...)
	fam := FamilyAuto
	if a.HwProtocol != nil {
		fam = FamilyFromEtherType(*a.HwProtocol)
	}
	ev, err := Parse(l.scratch, fam)
	if err != nil {
		if l.parseErrs.Add(1) == 1 {
			l.log.Warn("nflog packet not understood", "group", l.cfg.Group, "err", err)
		}
		return 0
	}
	ev.Prefix = prefix
	if a.Timestamp != nil {
		ev.Time = *a.Timestamp
	} else {
		ev.Time = l.cfg.Now()
	}
	// Never block the reader: a stalled socket loses messages in the
	// kernel, where nothing counts them per source.
	select {
	case l.events <- ev:
		l.parsed.Add(1)
	default:
		l.queueDrops.Add(1)
	}
	return 0
}

// onError decides whether the reader goes on after a receive error.
func (l *Listener) onError(err error) int {
	select {
	case <-l.done:
		return 1
	default:
	}
	if errors.Is(err, unix.ENOBUFS) {
		// The kernel dropped messages for a full socket buffer; the socket
		// itself is fine.
		if l.overruns.Add(1) == 1 {
			l.log.Warn("nflog socket buffer overrun, some drop events lost", "group", l.cfg.Group)
		}
		return 0
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return 0
	}
	l.errMu.Lock()
	l.err = fmt.Errorf("nflog: receive on group %d: %w", l.cfg.Group, err)
	l.errMu.Unlock()
	l.log.Error("nflog receive failed", "group", l.cfg.Group, "err", err)
	l.Close()
	return 1
}

// Run hands every event to handle, on the calling goroutine, until ctx ends
// (nil) or the listener is closed (nil, or the error that stopped it).
func (l *Listener) Run(ctx context.Context, handle func(Event)) error {
	for {
		select {
		case ev := <-l.events:
			handle(ev)
		case <-ctx.Done():
			return nil
		case <-l.done:
			l.errMu.Lock()
			defer l.errMu.Unlock()
			return l.err
		}
	}
}

// Stats returns the counters.
func (l *Listener) Stats() Stats {
	return Stats{
		Received:    l.received.Load(),
		Events:      l.parsed.Load(),
		ParseErrors: l.parseErrs.Load(),
		Foreign:     l.foreign.Load(),
		Overruns:    l.overruns.Load(),
		QueueDrops:  l.queueDrops.Load(),
	}
}

// Close unbinds the group and stops Run. It is safe to call more than once.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		// go-nflog's Close waits for its context watcher, which only
		// returns once the context is cancelled.
		l.cancel()
		if err := l.nf.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			l.closeErr = fmt.Errorf("nflog: close group %d: %w", l.cfg.Group, err)
		}
	})
	return l.closeErr
}

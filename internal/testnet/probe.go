package testnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Do runs f on an OS thread that has entered the namespace. The thread stays
// locked and dies with its goroutine, so no other goroutine ever runs in the
// namespace by accident. Sockets opened by f keep the namespace for life and
// may be used from any goroutine afterwards.
func (ns *NS) Do(f func() error) error {
	fd := ns.FD()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no UnlockOSThread: the thread is discarded on exit.
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// UDPSink counts UDP datagrams received on one address.
type UDPSink struct {
	conn  *net.UDPConn
	count atomic.Int64
	wg    sync.WaitGroup
	mu    sync.Mutex
	from  map[netip.Addr]int64
}

// ListenUDP opens a counting UDP receiver in the namespace, closed in t.Cleanup.
func (ns *NS) ListenUDP(at netip.AddrPort) *UDPSink {
	ns.t.Helper()
	s := &UDPSink{from: map[netip.Addr]int64{}}
	err := ns.Do(func() (err error) {
		s.conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(at))
		return err
	})
	if err != nil {
		ns.t.Fatalf("listen udp %v in %s: %v", at, ns.Name, err)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 2048)
		for {
			_, src, err := s.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			s.mu.Lock()
			s.from[src.Addr().Unmap()]++
			s.mu.Unlock()
			s.count.Add(1)
		}
	}()
	ns.t.Cleanup(func() { s.conn.Close(); s.wg.Wait() })
	return s
}

// Count returns the datagrams received so far.
func (s *UDPSink) Count() int64 { return s.count.Load() }

// CountFrom returns the datagrams received so far from one source address.
func (s *UDPSink) CountFrom(a netip.Addr) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.from[a]
}

// Addr returns where the sink listens.
func (s *UDPSink) Addr() netip.AddrPort { return s.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// UDPSender sends datagrams from a fixed source address.
type UDPSender struct{ conn *net.UDPConn }

// DialUDP opens a UDP socket in the namespace bound to src (port 0 = any) and
// connected to dst; closed in t.Cleanup.
func (ns *NS) DialUDP(src netip.Addr, dst netip.AddrPort) *UDPSender {
	ns.t.Helper()
	var s *UDPSender
	err := ns.Do(func() (err error) {
		s, err = DialUDP(src, dst)
		return err
	})
	if err != nil {
		ns.t.Fatalf("dial udp %v→%v in %s: %v", src, dst, ns.Name, err)
	}
	ns.t.Cleanup(func() { s.conn.Close() })
	return s
}

// DialUDP opens a UDP socket in the caller's own namespace, bound to src
// and connected to dst: for a helper process that `ip netns exec` started
// inside a lab namespace. The caller closes it.
func DialUDP(src netip.Addr, dst netip.AddrPort) (*UDPSender, error) {
	c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return nil, err
	}
	return &UDPSender{conn: c}, nil
}

// Close closes the socket.
func (s *UDPSender) Close() error { return s.conn.Close() }

// Send sends one datagram; ICMP errors reported back (ECONNREFUSED) are ignored.
func (s *UDPSender) Send(p []byte) error {
	_, err := s.conn.Write(p)
	if errors.Is(err, unix.ECONNREFUSED) {
		return nil
	}
	return err
}

// ServeTCP accepts TCP connections on at in the namespace and closes them at
// once; stopped in t.Cleanup.
func (ns *NS) ServeTCP(at netip.AddrPort) {
	ns.t.Helper()
	var l net.Listener
	err := ns.Do(func() (err error) {
		l, err = net.Listen("tcp", at.String())
		return err
	})
	if err != nil {
		ns.t.Fatalf("listen tcp %v in %s: %v", at, ns.Name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ns.t.Cleanup(func() { l.Close(); <-done })
}

// DialTCP connects from src to dst inside the namespace and reports the
// outcome: nil on success, the dial error otherwise (a timeout for a dropped
// SYN, ECONNREFUSED for a reset).
func (ns *NS) DialTCP(src netip.Addr, dst netip.AddrPort, timeout time.Duration) error {
	return ns.Do(func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: timeout}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", dst.String())
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// Ping sends count echo requests from src to dst and returns nil when at least
// one reply came back.
func (ns *NS) Ping(src, dst netip.Addr, count int, wait time.Duration) error {
	secs := max(1, int(wait.Seconds()))
	_, err := ns.Run("ping", "-n", "-q", "-c", fmt.Sprint(count), "-W", fmt.Sprint(secs), "-i", "0.2", "-I", src.String(), dst.String())
	return err
}

// Flood sends datagrams from every sender as fast as a bounded loop allows
// until stop is called, which returns how many were sent.
func Flood(senders ...*UDPSender) (stop func() int64) {
	var sent atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if s.Send([]byte("flood")) == nil {
					sent.Add(1)
				}
				if i%64 == 63 {
					time.Sleep(50 * time.Microsecond) // keep the veth queue from overflowing
				}
			}
		}()
	}
	return func() int64 { close(done); wg.Wait(); return sent.Load() }
}

package hub

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// BenchmarkFleet1000Hosts is the fleet's scale benchmark: a hub serving a
// 1 M-entry list to 1,000 simulated hosts on loopback. It is bounded (1,000
// hosts, a fixed number of requests, a one-minute deadline) and measures:
//
//   - the handler's CPU per request, without the network, for the 304 path
//     and for a full gzip transfer;
//   - the process's CPU per request over real HTTP (hub and load generator
//     share the process, so this is an upper bound for the hub);
//   - the bytes on the wire of each kind of request, and from them the
//     bytes per host per day when polling every 5 minutes with one change
//     a day;
//   - the hub's heap holding the rendered list.
//
// Run it once: go test -run '^$' -bench Fleet1000Hosts -benchtime 1x ./internal/hub/
func BenchmarkFleet1000Hosts(b *testing.B) {
	const (
		hosts     = 1000
		entries   = 1_000_000
		polls     = 10 // conditional polls per host
		fullPulls = 200
		conns     = 32 // concurrent connections of the load generator
		pollEvery = 5 * time.Minute
	)
	r := rand.New(rand.NewPCG(17, 1))
	addrs := make([]netip.Addr, entries)
	for i := range addrs {
		// Global unicast IPv4 space, 1.0.0.0–223.255.255.255.
		v := 0x01000000 + r.Uint32N(0xdf000000-0x01000000)
		addrs[i] = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	set := ipnet.FromAddrs(addrs...)
	addrs = nil

	var tok strings.Builder
	for i := range hosts {
		fmt.Fprintf(&tok, "host%d %s%04d\n", i, strings.Repeat("t", 28), i)
	}
	tokens, err := ParseTokens(strings.NewReader(tok.String()))
	if err != nil {
		b.Fatal(err)
	}
	token := func(i int) string { return fmt.Sprintf("%s%04d", strings.Repeat("t", 28), i) }

	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		t0 := time.Now()
		pub := Publish(set, map[string]ipnet.Set{"sikkerapi": set}, t0, nil)
		publish := time.Since(t0)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapInuse-before.HeapInuse) / (1 << 20)

		srv, err := New(Options{Listen: "127.0.0.1:0", Tokens: tokens})
		if err != nil {
			b.Fatal(err)
		}
		srv.Publish(pub)
		h := srv.Handler()

		// Handler only: CPU per request without the network.
		handlerCPU := func(n int, hdr map[string]string) float64 {
			c0 := cpu()
			for i := range n {
				req := httptest.NewRequest("GET", "/v1/blocklist", nil)
				req.Header.Set("Authorization", "Bearer "+token(i%hosts))
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				h.ServeHTTP(discard{header: http.Header{}}, req)
			}
			return float64(cpu()-c0) / float64(n) / float64(time.Microsecond)
		}
		h304 := handlerCPU(20000, map[string]string{"If-None-Match": pub.All.gzETag(), "Accept-Encoding": "gzip"})
		hGzip := handlerCPU(2000, map[string]string{"Accept-Encoding": "gzip"})

		// Over loopback HTTP.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		go srv.Serve(ctx)
		for srv.Addr() == nil {
			time.Sleep(time.Millisecond)
		}
		addr := srv.Addr().String()
		run := func(n int, etag bool) (cpuPer float64, wirePer float64, wall time.Duration) {
			var (
				next  atomic.Int64
				bytes atomic.Int64
				wg    sync.WaitGroup
			)
			c0, w0 := cpu(), time.Now()
			for range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, err := net.Dial("tcp", addr)
					if err != nil {
						b.Error(err)
						return
					}
					defer conn.Close()
					cc := &countConn{Conn: conn}
					defer func() { bytes.Add(cc.n.Load()) }()
					br := bufio.NewReaderSize(cc, 64<<10)
					for ctx.Err() == nil {
						i := int(next.Add(1)) - 1
						if i >= n {
							return
						}
						req := "GET /v1/blocklist HTTP/1.1\r\nHost: hub.example:9548\r\nUser-Agent: sikkerguard/1.0\r\n" +
							"Authorization: Bearer " + token(i%hosts) + "\r\nAccept-Encoding: gzip\r\n"
						if etag {
							req += "If-None-Match: " + pub.All.gzETag() + "\r\n"
						}
						if _, err := io.WriteString(cc, req+"\r\n"); err != nil {
							b.Error(err)
							return
						}
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if want := map[bool]int{true: 304, false: 200}[etag]; resp.StatusCode != want {
							b.Errorf("status %d, want %d", resp.StatusCode, want)
							return
						}
					}
				}()
			}
			wg.Wait()
			return float64(cpu()-c0) / float64(n) / float64(time.Microsecond), float64(bytes.Load()) / float64(n), time.Since(w0)
		}
		c304, w304, wall304 := run(hosts*polls, true)
		cFull, wFull, wallFull := run(fullPulls, false)
		cancel()

		perDay := wFull + float64(24*time.Hour/pollEvery-1)*w304
		b.ReportMetric(h304, "handler-cpu-µs/304")
		b.ReportMetric(hGzip, "handler-cpu-µs/gzip")
		b.ReportMetric(c304, "process-cpu-µs/304")
		b.ReportMetric(cFull, "process-cpu-µs/gzip")
		b.ReportMetric(w304, "wire-B/304")
		b.ReportMetric(wFull, "wire-B/gzip")
		b.ReportMetric(perDay, "B/host/day")
		b.ReportMetric(heap, "hub-heap-MiB")
		b.ReportMetric(publish.Seconds(), "publish-s")
		b.Logf("list: %d entries, %d B text, %d B gzip; %d conditional polls in %s, %d full pulls in %s",
			pub.All.Entries, len(pub.All.text), len(pub.All.gz), hosts*polls, wall304, fullPulls, wallFull)
	}
}

// cpu is the process's user and system time.
func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type countConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// discard is a ResponseWriter that keeps nothing.
type discard struct{ header http.Header }

func (d discard) Header() http.Header         { return d.header }
func (d discard) Write(p []byte) (int, error) { return len(p), nil }
func (d discard) WriteHeader(int)             {}

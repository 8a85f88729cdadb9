package testnet

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RawFlood is a flood of ready-made IPv4 UDP frames written straight onto
// the peer's end of a link through a packet socket: no routing, no
// neighbour lookup and no source address configured in the peer, so a
// flood can come from a million listed sources. A veth hands every frame
// to the host's receive path inside the sending system call, so one
// sender thread's CPU time is the whole cost of a packet, the firewall's
// included.
type RawFlood struct {
	Sent    int64         // frames the kernel accepted
	CPU     time.Duration // CPU time of the sending thread, the receive path run inline included
	Elapsed time.Duration
}

// rawBatch is how many frames one sendmmsg hands the kernel.
const rawBatch = 64

// RawFlood sends UDP frames from the peer of link i to dst:port, cycling
// through srcs (IPv4), for d on one thread of the peer's namespace. The
// frames are addressed to the host's link-layer address, so they need no
// neighbour entry either; a mac other than nil addresses them to another
// host on the link instead, and the host's IP stack drops them before its
// first netfilter hook (the cost of a packet without any firewall).
func (l *Lab) RawFlood(i int, mac net.HardwareAddr, srcs []netip.Addr, dst netip.AddrPort, d time.Duration) (RawFlood, error) {
	l.t.Helper()
	ln := l.links[i]
	if mac == nil {
		var err error
		mac, err = net.ParseMAC(strings.TrimSpace(l.Host.MustRun("cat", "/sys/class/net/"+ln.HostIf+"/address")))
		if err != nil {
			return RawFlood{}, fmt.Errorf("host link address: %w", err)
		}
	}
	frames, err := udpFrames(mac, srcs, dst)
	if err != nil {
		return RawFlood{}, err
	}
	var r RawFlood
	err = l.Peers[i].Do(func() error {
		ifc, err := net.InterfaceByName(ln.PeerIf)
		if err != nil {
			return err
		}
		var err2 error
		r, err2 = sendFrames(ifc.Index, frames, d)
		return err2
	})
	return r, err
}

// udpFrames builds one Ethernet frame per source: IPv4 with a valid header
// checksum (the receive path checks it), UDP without checksum.
func udpFrames(dstMAC net.HardwareAddr, srcs []netip.Addr, dst netip.AddrPort) ([][]byte, error) {
	if len(srcs) == 0 || !dst.Addr().Is4() {
		return nil, fmt.Errorf("raw flood: needs IPv4 sources and destination")
	}
	const payload = 18 // a 60-byte frame, Ethernet's minimum
	frames := make([][]byte, len(srcs))
	buf := make([]byte, len(srcs)*(14+20+8+payload))
	for k, src := range srcs {
		if !src.Is4() {
			return nil, fmt.Errorf("raw flood: source %v is not IPv4", src)
		}
		f := buf[k*(14+20+8+payload) : (k+1)*(14+20+8+payload)]
		copy(f[0:6], dstMAC)
		copy(f[6:12], []byte{0x02, 0x00, 0x5e, 0x00, 0x53, 0x01}) // documentation MAC
		binary.BigEndian.PutUint16(f[12:], unix.ETH_P_IP)
		ip := f[14:34]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], 20+8+payload)
		ip[8] = 64
		ip[9] = unix.IPPROTO_UDP
		s4, d4 := src.As4(), dst.Addr().As4()
		copy(ip[12:16], s4[:])
		copy(ip[16:20], d4[:])
		binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
		udp := f[34:42]
		binary.BigEndian.PutUint16(udp[0:], uint16(10000+k%50000))
		binary.BigEndian.PutUint16(udp[2:], dst.Port())
		binary.BigEndian.PutUint16(udp[4:], 8+payload)
		frames[k] = f
	}
	return frames, nil
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// mmsghdr is struct mmsghdr of linux/socket.h (x/sys/unix has none).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// sendFrames writes frames round-robin to the link ifindex until d has
// passed, from the calling thread, which must stay locked to it.
func sendFrames(ifindex int, frames [][]byte, d time.Duration) (RawFlood, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: send only
	if err != nil {
		return RawFlood{}, fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	// Past the device's queueing discipline, as a NIC would hand frames in.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		return RawFlood{}, fmt.Errorf("packet socket: qdisc bypass: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex}); err != nil {
		return RawFlood{}, fmt.Errorf("packet socket: bind: %w", err)
	}
	iovs := make([]unix.Iovec, rawBatch)
	msgs := make([]mmsghdr, rawBatch)
	for i := range msgs {
		msgs[i].hdr.Iov = &iovs[i]
		msgs[i].hdr.Iovlen = 1
	}
	var r RawFlood
	cpu0, start := threadCPU(), time.Now()
	next := 0
	for deadline, round := start.Add(d), 0; round%64 != 0 || time.Now().Before(deadline); round++ {
		for i := range iovs {
			f := frames[next]
			next = (next + 1) % len(frames)
			iovs[i].Base = &f[0]
			iovs[i].SetLen(len(f))
		}
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), rawBatch, 0, 0, 0)
		switch {
		case errno == unix.ENOBUFS || errno == unix.EAGAIN || errno == unix.EINTR:
		case errno != 0:
			return r, fmt.Errorf("sendmmsg: %w", errno)
		default:
			r.Sent += int64(n)
		}
	}
	r.Elapsed, r.CPU = time.Since(start), threadCPU()-cpu0
	return r, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

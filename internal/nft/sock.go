package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// openSocket opens a NETLINK_NETFILTER socket, inside the network namespace
// referred to by nsFD when nsFD > 0. A socket stays in the namespace it was
// created in, so only its creation needs the setns'ed thread.
func openSocket(nsFD int) (int, error) {
	fd := -1
	err := inNetNS(nsFD, func() (err error) {
		fd, err = rawSocket()
		return err
	})
	return fd, err
}

// inNetNS runs fn on an OS thread inside the network namespace nsFD refers
// to, or in place when nsFD <= 0.
func inNetNS(nsFD int, fn func() error) error {
	if nsFD <= 0 {
		return fn()
	}
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- fmt.Errorf("setns: %w", err)
			return
		}
		err = fn()
		// A thread that cannot return to its namespace must die with its
		// goroutine (it stays locked) rather than serve other goroutines.
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}

func rawSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return -1, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("netlink bind: %w", err)
	}
	if sa, err := unix.Getsockname(fd); err == nil {
		if nl, ok := sa.(*unix.SockaddrNetlink); ok {
			notePort(nl.Pid)
		}
	}
	// Errors then carry only the header of the failed message, not a copy of
	// a 48 KiB element list.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	return fd, nil
}

// KernelError is a failed transaction: the kernel rejected one message and
// rolled the whole batch back.
type KernelError struct {
	Op    string // the message that failed, e.g. "add elements to blocklist4"
	Errno unix.Errno
	Msg   string // the kernel's extended ack text, if any
}

func (e *KernelError) Error() string {
	s := e.Op + ": " + e.Errno.Error()
	if e.Msg != "" {
		s += " (" + e.Msg + ")"
	}
	if h := hint(e.Errno); h != "" {
		s += "; " + h
	}
	return s
}

func (e *KernelError) Unwrap() error { return e.Errno }

func hint(errno unix.Errno) string {
	switch errno {
	case unix.EPERM:
		return "nftables needs CAP_NET_ADMIN (run as root)"
	case unix.EEXIST:
		return "an element overlaps one already in the set (the list must be merged)"
	case unix.ENOENT:
		return "the table or one of its objects is missing (was it deleted by hand?)"
	case unix.ENOMEM:
		return "the kernel ran out of memory for the set"
	case unix.ENFILE:
		return "a set is full: it holds as many elements as its declared size"
	case unix.EMSGSIZE:
		return "the batch is larger than the socket buffer"
	case unix.EOPNOTSUPP, unix.EAFNOSUPPORT:
		return "the kernel lacks nf_tables support for this object"
	}
	return ""
}

// send transmits the batch as one sendmsg (one kernel transaction) and reads
// the kernel's verdict. nf_tables processes a batch synchronously inside
// sendmsg, so every error and the final ack are queued when it returns.
func send(fd int, b *batch) error {
	bufs := b.finish()
	total := 0
	for _, c := range bufs {
		total += len(c)
	}
	// The whole batch must fit into one skb; root may exceed wmem_max.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, total+(64<<10)); err != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, total+(64<<10)); err != nil {
			return fmt.Errorf("set netlink send buffer: %w", err)
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	if _, err := unix.SendmsgBuffers(fd, bufs, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0); err != nil {
		var errno unix.Errno
		if errors.As(err, &errno) {
			return &KernelError{Op: "send batch", Errno: errno}
		}
		return fmt.Errorf("send batch: %w", err)
	}
	if len(b.msgs) == 0 {
		return nil
	}
	lastSeq := b.msgs[len(b.msgs)-1].seq
	var first *KernelError
	acked := false
	buf := make([]byte, 64<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return fmt.Errorf("read netlink reply: %w", err)
		}
		for off := 0; off+unix.NLMSG_HDRLEN <= n; {
			l := int(binary.NativeEndian.Uint32(buf[off:]))
			typ := binary.NativeEndian.Uint16(buf[off+4:])
			if l < unix.NLMSG_HDRLEN || off+l > n {
				break
			}
			if typ == unix.NLMSG_ERROR && l >= unix.NLMSG_HDRLEN+4+unix.NLMSG_HDRLEN {
				code := int32(binary.NativeEndian.Uint32(buf[off+16:]))
				seq := binary.NativeEndian.Uint32(buf[off+16+4+8:])
				if code == 0 && seq == lastSeq {
					acked = true
				} else if code != 0 && first == nil {
					first = &KernelError{Op: b.describe(seq), Errno: unix.Errno(-code),
						Msg: extAckMsg(buf[off:off+l], binary.NativeEndian.Uint16(buf[off+6:]))}
				}
			}
			off += (l + 3) &^ 3
		}
	}
	if first != nil {
		return first
	}
	if !acked {
		return errors.New("nftables transaction: no acknowledgement from the kernel")
	}
	return nil
}

func (b *batch) describe(seq uint32) string {
	if seq < b.firstSq {
		return "batch"
	}
	for _, m := range b.msgs {
		if m.seq == seq {
			return m.what
		}
	}
	return "batch"
}

// extAckMsg returns NLMSGERR_ATTR_MSG from an error message with extended
// ack TLVs (flag NLM_F_ACK_TLVS), or "".
func extAckMsg(m []byte, flags uint16) string {
	if flags&unix.NLM_F_ACK_TLVS == 0 {
		return ""
	}
	// header + error code + the echoed header (payload capped by NETLINK_CAP_ACK)
	off := unix.NLMSG_HDRLEN + 4 + unix.NLMSG_HDRLEN
	for off+4 <= len(m) {
		l := int(binary.NativeEndian.Uint16(m[off:]))
		t := binary.NativeEndian.Uint16(m[off+2:])
		if l < 4 || off+l > len(m) {
			break
		}
		if t == unix.NLMSGERR_ATTR_MSG {
			s := m[off+4 : off+l]
			for len(s) > 0 && s[len(s)-1] == 0 {
				s = s[:len(s)-1]
			}
			return string(s)
		}
		off += (l + 3) &^ 3
	}
	return ""
}

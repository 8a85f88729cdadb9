package safety

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// dnsQuery builds a query for the root zone's NS records: the smallest
// question every resolver answers, one way or another, without recursion
// into the wider internet mattering.
func dnsQuery(id uint16) []byte {
	q := make([]byte, 12, 17)
	binary.BigEndian.PutUint16(q[0:], id)
	q[2] = 0x01                             // RD
	binary.BigEndian.PutUint16(q[4:], 1)    // QDCOUNT
	q = append(q, 0)                        // QNAME "."
	q = binary.BigEndian.AppendUint16(q, 2) // QTYPE NS
	q = binary.BigEndian.AppendUint16(q, 1) // QCLASS IN
	return q
}

var (
	errNotAnswer  = errors.New("not a DNS answer to the query")
	errStubFailed = errors.New("the local stub resolver answered but could not resolve")
)

// DNS rcodes a stub gives when its upstream servers do not answer.
const (
	rcodeServFail = 2
	rcodeRefused  = 5
)

// isStub tells a resolver on the host itself (systemd-resolved's
// 127.0.0.53, a local dnsmasq) from one across the network.
func isStub(a netip.Addr) bool { return a.Unmap().IsLoopback() }

// checkStubAnswer refuses an answer from a stub that only says its own
// upstream servers failed: reaching the stub over loopback is never in
// question, reaching the servers behind it is.
func checkStubAnswer(b []byte) error {
	switch rcode := b[3] & 0x0f; rcode {
	case rcodeServFail, rcodeRefused:
		return fmt.Errorf("%w: rcode %d", errStubFailed, rcode)
	}
	return nil
}

// checkDNSAnswer accepts any well-formed response to query id, whatever its
// rcode: a SERVFAIL or REFUSED still proves the server is reachable.
func checkDNSAnswer(b []byte, id uint16) error {
	switch {
	case len(b) < 12:
		return fmt.Errorf("%w: %d bytes is shorter than a DNS header", errNotAnswer, len(b))
	case binary.BigEndian.Uint16(b) != id:
		return fmt.Errorf("%w: id %d, want %d", errNotAnswer, binary.BigEndian.Uint16(b), id)
	case b[2]&0x80 == 0:
		return fmt.Errorf("%w: QR bit clear", errNotAnswer)
	case b[2]&0x78 != 0:
		return fmt.Errorf("%w: opcode %d", errNotAnswer, b[2]>>3&0x0f)
	}
	return nil
}

// probeDNS sends the query over UDP, again a few times within the timeout
// since a datagram may be lost, and waits for a well-formed answer.
func (p *Prober) probeDNS(ctx context.Context, at netip.AddrPort) error {
	timeout := p.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := p.dialer().DialContext(ctx, "udp", at.String())
	if err != nil {
		return err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	query := dnsQuery(id)
	resend := timeout / 4
	buf := make([]byte, 512)
	var lastBad error
	// Once the time is up every socket call fails with a timeout; what the
	// caller needs then is why no answer came, not that last timeout.
	fail := func(err error) error {
		switch {
		case ctx.Err() == nil:
			return err // e.g. ECONNREFUSED from an ICMP port unreachable
		case lastBad != nil:
			return lastBad
		}
		return fmt.Errorf("no DNS answer: %w", ctx.Err())
	}
	for {
		if _, err := c.Write(query); err != nil {
			return fail(err)
		}
		next := time.Now().Add(resend)
		if next.After(deadline) {
			next = deadline
		}
		if err := c.SetReadDeadline(next); err != nil {
			return fail(err)
		}
		for {
			n, err := c.Read(buf)
			if err != nil {
				if ctx.Err() == nil && isTimeout(err) {
					break // resend
				}
				return fail(err)
			}
			if lastBad = checkDNSAnswer(buf[:n], id); lastBad == nil && isStub(at.Addr()) {
				lastBad = checkStubAnswer(buf[:n])
			}
			if lastBad == nil {
				return nil
			}
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

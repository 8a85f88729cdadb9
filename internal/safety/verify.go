package safety

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kind says what a probe target is, and so how it is probed.
type Kind string

const (
	// KindGateway is probed with a TCP connect; a refusal (RST) proves the
	// path as well as an accept does, since only a reachable host answers.
	KindGateway Kind = "gateway"
	// KindDNS is probed with a DNS query over UDP (any well-formed answer,
	// SERVFAIL and REFUSED included, counts), then a TCP connect to the same
	// port judged like a gateway's. A resolver on loopback is a stub that
	// forwards elsewhere: its SERVFAIL or REFUSED, or a TCP connect to it,
	// prove nothing, so only a real answer counts.
	KindDNS Kind = "dns"
	// KindAPI is probed with a TCP connect that must be accepted.
	KindAPI Kind = "api"
)

// DefaultProbeTimeout bounds one probe step.
const DefaultProbeTimeout = 2 * time.Second

// DefaultGatewayPort is the port a gateway is probed on. Routers commonly
// forward DNS; a closed port does as well, since its RST proves reachability.
const DefaultGatewayPort = 53

// Target is one endpoint whose reachability a rule change must not break.
type Target struct {
	Kind Kind
	Addr netip.AddrPort
}

func (t Target) String() string { return string(t.Kind) + " " + t.Addr.String() }

// Targets returns what to probe for n: every gateway on gatewayPort (0 means
// DefaultGatewayPort), every DNS server on 53 and every API address on
// n.APIPort (skipped when it is 0).
func (n NeverBlock) Targets(gatewayPort uint16) []Target {
	if gatewayPort == 0 {
		gatewayPort = DefaultGatewayPort
	}
	var ts []Target
	for _, a := range n.Gateways {
		ts = append(ts, Target{KindGateway, netip.AddrPortFrom(a, gatewayPort)})
	}
	for _, a := range n.DNS {
		ts = append(ts, Target{KindDNS, netip.AddrPortFrom(a, 53)})
	}
	if n.APIPort != 0 {
		for _, a := range n.API {
			ts = append(ts, Target{KindAPI, netip.AddrPortFrom(a, n.APIPort)})
		}
	}
	return ts
}

// Dialer opens connections; *net.Dialer is one. Tests inject one that dials
// inside a network namespace or fails on cue.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Prober probes targets without raw sockets or extra capabilities: plain TCP
// connects and UDP datagrams.
type Prober struct {
	Dialer  Dialer        // default &net.Dialer{}
	Timeout time.Duration // per probe step; default DefaultProbeTimeout
}

func (p *Prober) dialer() Dialer {
	if p.Dialer == nil {
		return &net.Dialer{}
	}
	return p.Dialer
}

func (p *Prober) timeout() time.Duration {
	if p.Timeout <= 0 {
		return DefaultProbeTimeout
	}
	return p.Timeout
}

// Probe reports whether t answers: nil when it does, the reason otherwise.
func (p *Prober) Probe(ctx context.Context, t Target) error {
	var err error
	switch t.Kind {
	case KindGateway:
		err = p.probeTCP(ctx, t.Addr, true)
	case KindAPI:
		err = p.probeTCP(ctx, t.Addr, false)
	case KindDNS:
		// The stub always accepts TCP, also when every upstream server is
		// cut off.
		if err = p.probeDNS(ctx, t.Addr); err != nil && ctx.Err() == nil && !isStub(t.Addr.Addr()) {
			if terr := p.probeTCP(ctx, t.Addr, true); terr == nil {
				err = nil
			} else {
				err = fmt.Errorf("%w; over tcp: %w", err, terr)
			}
		}
	default:
		err = fmt.Errorf("unknown target kind %q", t.Kind)
	}
	if err != nil {
		return fmt.Errorf("probe %s: %w", t, err)
	}
	return nil
}

// probeTCP connects to at. With refusedOK an RST counts as reachable; a
// timeout, an ICMP unreachable or no route never does.
func (p *Prober) probeTCP(ctx context.Context, at netip.AddrPort, refusedOK bool) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	c, err := p.dialer().DialContext(ctx, "tcp", at.String())
	if err == nil {
		return c.Close()
	}
	if refusedOK && errors.Is(err, syscall.ECONNREFUSED) {
		return nil
	}
	return err
}

// Probed is a target with the outcome of its probe.
type Probed struct {
	Target Target
	Err    error // nil when it answered
}

// ProbeAll probes the targets in parallel and returns their outcomes in the
// order given.
func (p *Prober) ProbeAll(ctx context.Context, targets []Target) []Probed {
	out := make([]Probed, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		out[i].Target = t
		wg.Go(func() { out[i].Err = p.Probe(ctx, t) })
	}
	wg.Wait()
	return out
}

// Baseline is what answered before a change: only those targets can be lost
// by it. A resolver that was already down must not roll a good change back.
type Baseline struct {
	p           *Prober
	reachable   []Target
	unreachable []Probed
}

// Before probes targets ahead of a change. The error is only ctx's: a
// baseline taken while shutting down would hold nothing and prove nothing.
func (p *Prober) Before(ctx context.Context, targets []Target) (Baseline, error) {
	b := Baseline{p: p}
	for _, r := range p.ProbeAll(ctx, targets) {
		if r.Err == nil {
			b.reachable = append(b.reachable, r.Target)
		} else {
			b.unreachable = append(b.unreachable, r)
		}
	}
	if err := ctx.Err(); err != nil {
		return Baseline{p: p}, fmt.Errorf("connectivity baseline: %w", err)
	}
	return b, nil
}

// Reachable returns the targets that answered before the change.
func (b Baseline) Reachable() []Target { return b.reachable }

// Unreachable returns the targets that did not answer before the change, with
// why, for a warning: they are not checked afterwards.
func (b Baseline) Unreachable() []Probed { return b.unreachable }

// After probes the reachable targets again once the change is in force. A
// target that fails is probed a second time before it counts as lost, so one
// dropped packet cannot roll back a good change. err is a *LostError when
// something was lost, or ctx's error when the check could not finish (then
// lost is nil: nothing is known).
func (b Baseline) After(ctx context.Context) (lost []Target, err error) {
	if len(b.reachable) == 0 {
		return nil, ctx.Err()
	}
	var failed []Target
	for _, r := range b.p.ProbeAll(ctx, b.reachable) {
		if r.Err != nil {
			failed = append(failed, r.Target)
		}
	}
	var lostErr LostError
	if len(failed) > 0 && ctx.Err() == nil {
		for _, r := range b.p.ProbeAll(ctx, failed) {
			if r.Err != nil {
				lostErr.Lost = append(lostErr.Lost, r)
				lost = append(lost, r.Target)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("connectivity check: %w", err)
	}
	if len(lost) > 0 {
		return lost, &lostErr
	}
	return nil, nil
}

// LostError lists the targets that answered before a change and not after;
// its message is the reason given when the change is rolled back.
type LostError struct {
	Lost []Probed
}

func (e *LostError) Error() string {
	parts := make([]string, len(e.Lost))
	for i, l := range e.Lost {
		parts[i] = l.Err.Error()
	}
	return "connectivity lost after rule change: " + strings.Join(parts, "; ")
}

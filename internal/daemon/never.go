package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/safety"
)

// DiscoverFunc finds the never-block addresses of the host.
type DiscoverFunc func(ctx context.Context, cfg config.Config) (safety.NeverBlock, error)

// discover is the production never-block discovery: netlink, resolv.conf,
// the API host and a fleet host's hub.
func discover(ctx context.Context, cfg config.Config) (safety.NeverBlock, error) {
	n, err := safety.Discover(ctx, safety.Discovery{
		Net: safety.Netlink{}, APIURL: cfg.API.URL, Resolver: net.DefaultResolver, LookupTimeout: 5 * time.Second,
	})
	var errs []error
	for _, u := range hubURLs(cfg) {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ep, herr := safety.ResolveEndpoint(lctx, net.DefaultResolver, u)
		cancel()
		errs = append(errs, herr)
		n.API = append(n.API, ep.Addrs...)
	}
	return n, errors.Join(append(errs, err)...)
}

// hubURLs are the fleet hubs a host talks to: feeds with a token and
// report.hub. They join the never-block list like the API host, so that a
// hub listing its own address cannot cut the host off from the next,
// corrected list.
func hubURLs(cfg config.Config) []string {
	var out []string
	for _, f := range cfg.Feeds {
		if f.TokenFile != "" && f.URL != "" {
			out = append(out, f.URL)
		}
	}
	if cfg.Report.Hub != "" {
		out = append(out, cfg.Report.Hub)
	}
	return out
}

// protection is the never-block list of one run: what discovery found and
// what the administrator whitelisted, in the config file or at run time.
type protection struct {
	found   safety.NeverBlock // discovered, whatever auto_whitelist says
	user    []netip.Prefix
	runtime []netip.Prefix
	auto    bool // safety.auto_whitelist
}

// discoverProtection runs discovery and logs the contract's start-up line.
// A failing discovery source is a warning: what was found still protects.
func discoverProtection(ctx context.Context, cfg config.Config, runtime []netip.Prefix, find DiscoverFunc, log *slog.Logger) protection {
	found, err := find(ctx, cfg)
	if err != nil {
		log.Warn("safety discovery incomplete", "err", err)
	}
	p := protection{found: found, user: cfg.Whitelist, runtime: runtime, auto: cfg.Safety.AutoWhitelist}
	ips, ranges := p.never().Counts()
	log.Info(safety.WhitelistLine(ips, ranges), "auto", p.auto,
		"gateways", len(found.Gateways), "dns", len(found.DNS), "own", len(found.Own), "api", len(found.API))
	return p
}

// never is what the kernel accepts before the blocklist and what every
// plan subtracts: with auto_whitelist the discovered addresses, always
// loopback and the configured and runtime whitelists.
func (p protection) never() safety.NeverBlock {
	n := safety.NeverBlock{Loopback: safety.Loopback(), User: p.user, Runtime: p.runtime}
	if p.auto {
		f := p.found
		n.Gateways, n.DNS, n.Own, n.API, n.APIPort, n.Subnets = f.Gateways, f.DNS, f.Own, f.API, f.APIPort, f.Subnets
	}
	return n
}

// targets are probed around every change: the gateway, DNS and the API,
// whether or not they are whitelisted.
func (p protection) targets() []safety.Target { return p.found.Targets(0) }

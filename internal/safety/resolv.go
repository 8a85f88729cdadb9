package safety

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ParseResolvConf returns the nameserver addresses of a resolv.conf, in file
// order without duplicates. Like the C library it reads only the first word
// after "nameserver" and skips comment lines (# or ;). Zones are kept
// (fe80::1%eth0) since a link-local resolver cannot be reached without one.
//
// A nameserver line that does not hold an address is reported in err, which
// names its line, but does not stop the parse: servers holds every valid one,
// so a single typo cannot leave the real resolvers unprotected.
func ParseResolvConf(r io.Reader) (servers []netip.Addr, err error) {
	var bad []error
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "nameserver" {
			continue // also comments: their first word is never exactly "nameserver"
		}
		if len(f) < 2 {
			bad = append(bad, fmt.Errorf("line %d: nameserver without an address", line))
			continue
		}
		a, perr := netip.ParseAddr(f[1])
		if perr != nil {
			bad = append(bad, fmt.Errorf("line %d: nameserver %q is not an IP address", line, f[1]))
			continue
		}
		a = a.Unmap()
		if !slices.Contains(servers, a) {
			servers = append(servers, a)
		}
	}
	if err := sc.Err(); err != nil {
		bad = append(bad, err)
	}
	return servers, errors.Join(bad...)
}

// ReadResolvConf parses the resolv.conf at path. A missing file gives no
// servers and no error: the C library then asks the local host, which
// loopback already covers.
func ReadResolvConf(path string) ([]netip.Addr, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read resolvers: %w", err)
	}
	defer f.Close()
	servers, err := ParseResolvConf(f)
	if err != nil {
		return servers, fmt.Errorf("read resolvers from %s: %w", path, err)
	}
	return servers, nil
}

// Resolver looks a host name up; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Endpoint is the API server as the firewall sees it.
type Endpoint struct {
	Host  string
	Addrs []netip.Addr
	Port  uint16
}

// ResolveEndpoint finds the addresses and port of the host of rawURL. A
// literal IP needs no lookup; otherwise r (net.DefaultResolver when nil) is
// asked within ctx's deadline. The port defaults from the scheme.
func ResolveEndpoint(ctx context.Context, r Resolver, rawURL string) (Endpoint, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return Endpoint{}, fmt.Errorf("api endpoint: %w", err)
	}
	ep := Endpoint{Host: u.Hostname()}
	if ep.Host == "" {
		return Endpoint{}, fmt.Errorf("api endpoint %q: no host", rawURL)
	}
	switch p := u.Port(); {
	case p != "":
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return Endpoint{}, fmt.Errorf("api endpoint %q: bad port %q", rawURL, p)
		}
		ep.Port = uint16(n)
	case u.Scheme == "https":
		ep.Port = 443
	case u.Scheme == "http":
		ep.Port = 80
	default:
		return Endpoint{}, fmt.Errorf("api endpoint %q: scheme %q has no default port", rawURL, u.Scheme)
	}
	if a, err := netip.ParseAddr(ep.Host); err == nil {
		ep.Addrs = []netip.Addr{a.Unmap()}
		return ep, nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", ep.Host)
	if err != nil {
		return ep, fmt.Errorf("resolve api host %s: %w", ep.Host, err)
	}
	for _, a := range addrs {
		if a = a.Unmap(); !slices.Contains(ep.Addrs, a) {
			ep.Addrs = append(ep.Addrs, a)
		}
	}
	if len(ep.Addrs) == 0 {
		return ep, fmt.Errorf("resolve api host %s: no addresses", ep.Host)
	}
	return ep, nil
}

package safety

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestReadResolvConf(t *testing.T) {
	tests := []struct {
		file    string
		want    []netip.Addr
		wantErr string
	}{
		{"resolv-glibc.conf", addrs("192.0.2.53", "198.51.100.53", "2001:db8::53"), ""},
		{"resolv-linklocal.conf", addrs("fe80::1%eth0", "192.0.2.53", "198.51.100.7"), ""},
		{"resolv-resolved.conf", addrs("127.0.0.53"), ""},
		{"resolv-none.conf", nil, ""},
		{"missing.conf", nil, ""},
		{"resolv-bad.conf", addrs("192.0.2.53", "2001:db8::53"),
			`testdata/resolv-bad.conf: line 2: nameserver "dns.example.com" is not an IP address` + "\n" +
				"line 3: nameserver without an address"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ReadResolvConf(filepath.Join("testdata", tt.file))
			if !slices.Equal(got, tt.want) {
				t.Errorf("servers = %v, want %v", got, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasSuffix(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want suffix %q", err, tt.wantErr)
			}
		})
	}
}

func TestReadResolvConfUnreadable(t *testing.T) {
	// A directory opens but cannot be read: that is an error, unlike absence.
	_, err := ReadResolvConf(t.TempDir())
	if err == nil {
		t.Fatal("reading a directory as resolv.conf succeeded")
	}
}

type fakeResolver struct {
	addrs []netip.Addr
	err   error
	asked []string
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.asked = append(r.asked, network+" "+host)
	return r.addrs, r.err
}

func TestResolveEndpoint(t *testing.T) {
	lookup := &fakeResolver{addrs: addrs("192.0.2.80", "::ffff:192.0.2.80", "2001:db8::80")}
	tests := []struct {
		url       string
		want      Endpoint
		wantAsked bool
		wantErr   string
	}{
		{"https://api.example.com", Endpoint{"api.example.com", addrs("192.0.2.80", "2001:db8::80"), 443}, true, ""},
		{"http://api.example.com:8080/v1", Endpoint{"api.example.com", addrs("192.0.2.80", "2001:db8::80"), 8080}, true, ""},
		{"http://198.51.100.4", Endpoint{"198.51.100.4", addrs("198.51.100.4"), 80}, false, ""},
		{"https://[2001:db8::4]:8443/", Endpoint{"2001:db8::4", addrs("2001:db8::4"), 8443}, false, ""},
		{"https://[fe80::4%25eth0]/", Endpoint{"fe80::4%eth0", addrs("fe80::4%eth0"), 443}, false, ""},
		{"https://", Endpoint{}, false, `api endpoint "https://": no host`},
		{"ftp://192.0.2.1", Endpoint{}, false, `api endpoint "ftp://192.0.2.1": scheme "ftp" has no default port`},
		{"https://192.0.2.1:0", Endpoint{}, false, `api endpoint "https://192.0.2.1:0": bad port "0"`},
		{"https://192.0.2.1:99999", Endpoint{}, false, `api endpoint "https://192.0.2.1:99999": bad port "99999"`},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			lookup.asked = nil
			got, err := ResolveEndpoint(context.Background(), lookup, tt.url)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Host != tt.want.Host || got.Port != tt.want.Port || !slices.Equal(got.Addrs, tt.want.Addrs) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if asked := len(lookup.asked) > 0; asked != tt.wantAsked {
				t.Errorf("resolver asked %v, want asked=%v", lookup.asked, tt.wantAsked)
			}
		})
	}
}

func TestResolveEndpointLookupFails(t *testing.T) {
	boom := errors.New("no such host")
	_, err := ResolveEndpoint(context.Background(), &fakeResolver{err: boom}, "https://api.example.com")
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "resolve api host api.example.com") {
		t.Errorf("err = %v", err)
	}
	_, err = ResolveEndpoint(context.Background(), &fakeResolver{}, "https://api.example.com")
	if err == nil || err.Error() != "resolve api host api.example.com: no addresses" {
		t.Errorf("empty answer: err = %v", err)
	}
}

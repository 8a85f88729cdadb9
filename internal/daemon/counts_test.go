package daemon

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/feed"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/logging"
)

// The journal, STATUS= and sikkerctl name each number with its unit:
// ranges after merging per family, and the IPv4 addresses they cover.
func TestBlockCountsWording(t *testing.T) {
	c := CountBlocked(set(t, "198.51.100.0/24", "198.51.100.7/32", "203.0.113.1/32", "2001:db8::/48", "2001:db8:1::1/128"))
	if want := (BlockCounts{AddressesIPv4: 257, RangesIPv4: 2, RangesIPv6: 2}); c != want {
		t.Fatalf("CountBlocked = %+v, want %+v", c, want)
	}
	if got, want := c.String(), "blocking 257 IPv4 addresses in 2 ranges and 2 IPv6 ranges"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("Blocking 259 IPs", c.Attrs()...)
	if want := `msg="Blocking 259 IPs" addresses_ipv4=257 ranges_ipv4=2 ranges_ipv6=2`; !strings.Contains(buf.String(), want) {
		t.Errorf("logged %q, want %q", buf.String(), want)
	}
}

// "feed pulled" gives the entries as listed for a fresh list only: a cached
// list is stored merged, so its listed entries are unknown.
func TestLogPullEntries(t *testing.T) {
	for _, tc := range []struct {
		cached bool
		want   string
	}{
		{false, `msg="feed pulled" feed=f entries=3 ranges_ipv4=1 ranges_ipv6=0 cached=false`},
		{true, `msg="feed pulled" feed=f ranges_ipv4=1 ranges_ipv6=0 cached=true`},
	} {
		var buf bytes.Buffer
		snap := &feed.Snapshot{Name: "f", Set: set(t, "198.51.100.0/24"), Stats: ipnet.ParseStats{Entries: 3}, FromCache: tc.cached}
		logPull(slog.New(logging.Check(slog.NewTextHandler(&buf, nil), t.Errorf)), "f", snap, nil)
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("logged %q, want %q", buf.String(), tc.want)
		}
	}
}

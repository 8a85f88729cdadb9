package nft

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// BenchmarkUnlistedPacket sends UDP packets from an unlisted source
// across the lab's veth pair into the host, through a table of 100,000
// blocked entries, without and with the role objects (100,000 monitored
// entries, outbound and scoped lists). An op is one packet: the sender's
// syscall, the veth and the host's whole input path, firewall included,
// so only the ratio between the two runs means something. The unlisted
// packet pays the monitor set's one lookup (prerouting -150) and the
// scope's protocol and port compares; the output chain sees no packet.
func BenchmarkUnlistedPacket(b *testing.B) {
	testnet.RequireRoot(b)
	block := testnet.RandomList(1, 100_000, 0)
	monitor := testnet.RandomList(2, 100_000, 0)
	for _, c := range []struct {
		name  string
		cfg   testConfig
		lists firewall.Lists
	}{
		{"plain", testConfig{IPv6: true, LogGroup: 7}, firewall.Lists{Block: block}},
		{"roles", rolesConfig, firewall.Lists{Block: block, Monitor: monitor.Subtract(block),
			Out: testnet.Set("198.18.0.0/16"), Scoped: []ipnet.Set{testnet.Set("198.19.0.0/16")}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := testnet.NewLab(b, "sgmonb", testnet.Link{Host: []netip.Prefix{netip.PrefixFrom(testnet.Host4, 24)},
				Peer: []netip.Prefix{netip.PrefixFrom(goodAddr4, 24)}})
			fw, err := New(c.cfg.settings(), slog.New(slog.DiscardHandler), WithNetNSFd(l.Host.FD()))
			if err != nil {
				b.Fatal(err)
			}
			if err := fw.Apply(c.lists); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = fw.Remove() })
			sink := l.Sink(goodAddr4)
			s := l.Peer.DialUDP(goodAddr4, sink.Addr())
			msg := []byte("probe")
			b.ResetTimer()
			for range b.N {
				if err := s.Send(msg); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			// The sink drains asynchronously; a lost packet is the socket
			// buffer's, not the firewall's, so it is reported, not failed.
			time.Sleep(50 * time.Millisecond)
			b.ReportMetric(float64(sink.CountFrom(goodAddr4))/float64(b.N), "delivered/op")
		})
	}
}

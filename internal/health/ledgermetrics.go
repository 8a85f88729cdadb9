package health

import (
	"strconv"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ledger"
)

// renderLedgerMetrics writes the feed ledger's series; its drops in all are
// sikkerguard_feed_dropped_packets_total, written with the feed status.
// Cardinality is bounded by the configuration: one series per feed (and
// per mode or kind, a fixed handful), never per address; the outbound
// destinations stay in `sikkerctl feeds` for that reason.
func renderLedgerMetrics(m *expo, recs []ledger.Record) {
	if len(recs) == 0 {
		return
	}
	for _, c := range []struct {
		name, typ, help string
		v               func(ledger.Record) uint64
	}{
		{"sikkerguard_feed_unique_drops_total", "counter", "Logged drops from sources no other enforcing feed lists: what would get through without the feed.",
			func(r ledger.Record) uint64 { return r.UniqueTotal }},
		{"sikkerguard_feed_outbound_total", "counter", "The host's own connection attempts to addresses a feed lists.",
			func(r ledger.Record) uint64 { return r.OutboundTotal }},
		{"sikkerguard_feed_blocked_out_total", "counter", "The host's own packets to listed addresses dropped by an outbound feed.",
			func(r ledger.Record) uint64 { return r.BlockedOutTotal }},
		{"sikkerguard_feed_addresses", "gauge", "IPv4 addresses a feed's list covers.", func(r ledger.Record) uint64 { return r.Addresses }},
		{"sikkerguard_feed_kernel_bytes", "gauge", "Estimated kernel memory of a feed's ranges.", func(r ledger.Record) uint64 { return r.KernelBytes }},
		{"sikkerguard_feed_outbound_hosts", "gauge", "Destinations a feed lists that the host tried to reach in the last 7 days.",
			func(r ledger.Record) uint64 { return uint64(r.OutboundHosts) }},
		{"sikkerguard_feed_last_hit_timestamp_seconds", "gauge", "Unix time of a feed's last drop or would-block; 0 = never.",
			func(r ledger.Record) uint64 { return unix(r.LastHit) }},
		{"sikkerguard_feed_last_success_timestamp_seconds", "gauge", "Unix time of a feed's last successful pull; 0 = none since the start.",
			func(r ledger.Record) uint64 { return unix(r.LastPull) }},
	} {
		m.family(c.name, c.typ, c.help)
		for _, r := range recs {
			m.sample(c.name, c.v(r), "feed", r.Name)
		}
	}
	m.family("sikkerguard_feed_would_block_total", "counter", "Packets a monitor feed would drop: unsolicited ones, and replies to connections this host opened (what enforcing would break).")
	for _, r := range recs {
		m.sample("sikkerguard_feed_would_block_total", r.WouldUnsolicited, "feed", r.Name, "kind", "unsolicited")
		m.sample("sikkerguard_feed_would_block_total", r.WouldReplies, "feed", r.Name, "kind", "reply")
	}
	m.family("sikkerguard_feed_mode", "gauge", "1 for the feed's mode: enforce or monitor.")
	for _, r := range recs {
		for _, mode := range []string{ledger.ModeEnforce, ledger.ModeMonitor} {
			m.sample("sikkerguard_feed_mode", b2u(r.Mode == mode), "feed", r.Name, "mode", mode)
		}
	}
	// Unknown values are left out rather than shown as 0, which would read
	// as "fresh" or "always failing".
	m.family("sikkerguard_feed_list_age_seconds", "gauge", "Time since a feed's data last changed (the newest lastSeen for SikkerAPI JSON).")
	for _, r := range recs {
		if !r.DataChanged.IsZero() {
			m.sample("sikkerguard_feed_list_age_seconds", uint64(r.ListAge/time.Second), "feed", r.Name)
		}
	}
	m.family("sikkerguard_feed_pull_success_ratio", "gauge", "Share of a feed's pulls that succeeded over the last 7 days.")
	for _, r := range recs {
		if r.PullRatio >= 0 {
			m.sampleFloat("sikkerguard_feed_pull_success_ratio", r.PullRatio, "feed", r.Name)
		}
	}
	const hist = "sikkerguard_feed_lastseen_to_kernel_seconds"
	m.family(hist, "histogram", "Delay from an entry's lastSeen at SikkerAPI to the list holding it being in the kernel.")
	for _, r := range recs {
		if len(r.Latency.Counts) != len(ledger.LatencyBounds)+1 {
			continue
		}
		var cum uint64
		for i, b := range ledger.LatencyBounds {
			cum += r.Latency.Counts[i]
			m.sample(hist+"_bucket", cum, "feed", r.Name, "le", strconv.FormatFloat(b.Seconds(), 'g', -1, 64))
		}
		cum += r.Latency.Counts[len(ledger.LatencyBounds)]
		m.sample(hist+"_bucket", cum, "feed", r.Name, "le", "+Inf")
		m.sampleFloat(hist+"_sum", r.Latency.Sum, "feed", r.Name)
		m.sample(hist+"_count", cum, "feed", r.Name)
	}
}

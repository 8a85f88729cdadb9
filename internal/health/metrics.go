package health

import (
	"bytes"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// metricsContentType is the Prometheus text exposition format 0.0.4.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", metricsContentType)
	w.Write(renderMetrics(s.src.Snapshot()))
}

// renderMetrics writes the exposition by hand: a few dozen series do not
// justify a client library and its dependency tree.
func renderMetrics(snap Snapshot) []byte {
	var m expo
	up := uint64(0)
	if protecting(snap.State) {
		up = 1
	}
	m.family("sikkerguard_up", "gauge", "1 while the blocklist is enforced (state running or degraded).")
	m.sample("sikkerguard_up", up)

	m.family("sikkerguard_state", "gauge", "The daemon's state, one-hot over starting, running, degraded and failed.")
	for _, st := range states {
		v := uint64(0)
		if snap.State == st {
			v = 1
		}
		m.sample("sikkerguard_state", v, "state", st)
	}

	m.family("sikkerguard_build_info", "gauge", "Always 1; the version label names the build.")
	m.sample("sikkerguard_build_info", 1, "version", snap.Version)

	m.family("sikkerguard_dry_run", "gauge", "1 when rules are computed but not applied.")
	m.sample("sikkerguard_dry_run", b2u(snap.DryRun))

	m.family("sikkerguard_blocked_ipv4_addresses", "gauge", "IPv4 addresses covered by the blocklist's ranges.")
	m.sample("sikkerguard_blocked_ipv4_addresses", snap.BlockedIPv4)
	m.family("sikkerguard_blocked_ipv6_ranges", "gauge", "IPv6 ranges in the blocklist, after merging.")
	m.sample("sikkerguard_blocked_ipv6_ranges", snap.BlockedIPv6)

	m.family("sikkerguard_last_pull_timestamp_seconds", "gauge", "Unix time of the last successful pull; 0 = never.")
	m.sample("sikkerguard_last_pull_timestamp_seconds", unix(snap.LastPull))
	m.family("sikkerguard_last_report_timestamp_seconds", "gauge", "Unix time of the last report sent; 0 = never.")
	m.sample("sikkerguard_last_report_timestamp_seconds", unix(snap.LastReport))
	m.family("sikkerguard_start_timestamp_seconds", "gauge", "Unix time the daemon started.")
	m.sample("sikkerguard_start_timestamp_seconds", unix(snap.Started))

	if len(snap.Feeds) > 0 {
		// The name predates the shared vocabulary; the value is ranges.
		m.family("sikkerguard_feed_entries", "gauge", "Ranges in the list last accepted from a feed, its own overlaps merged.")
		for _, f := range snap.Feeds {
			m.sample("sikkerguard_feed_entries", f.Entries, "feed", f.Name)
		}
		m.family("sikkerguard_feed_dropped_packets_total", "counter", "Logged drops (a rate-limited sample) from sources an enforcing feed listed when they came (the feed ledger).")
		for _, f := range snap.Feeds {
			m.sample("sikkerguard_feed_dropped_packets_total", f.Dropped, "feed", f.Name)
		}
		m.family("sikkerguard_feed_last_pull_timestamp_seconds", "gauge", "Unix time a feed's list in use was fetched; 0 = never.")
		for _, f := range snap.Feeds {
			m.sample("sikkerguard_feed_last_pull_timestamp_seconds", unix(f.LastPull), "feed", f.Name)
		}
		m.family("sikkerguard_feed_up", "gauge", "0 while a feed's last pull failed, else 1.")
		for _, f := range snap.Feeds {
			m.sample("sikkerguard_feed_up", b2u(f.Error == ""), "feed", f.Name)
		}
		m.family("sikkerguard_feed_failed", "gauge", "1 while the API refuses a feed's key (401/403: retried only after hours).")
		for _, f := range snap.Feeds {
			m.sample("sikkerguard_feed_failed", b2u(f.State == "failed"), "feed", f.Name)
		}
	}

	if q := snap.Quota; q != nil {
		// Numbers the API did not announce (-1) are left out, not faked.
		for _, g := range []struct {
			name, help string
			v          int64
		}{
			{"sikkerguard_api_quota_used", "SikkerAPI blacklist addresses served today (quota used).", q.Used},
			{"sikkerguard_api_quota_limit", "SikkerAPI blacklist addresses allowed per day.", q.Limit},
			{"sikkerguard_api_quota_remaining", "SikkerAPI blacklist addresses left today.", q.Remaining},
		} {
			if g.v >= 0 {
				m.family(g.name, "gauge", g.help)
				m.sample(g.name, uint64(g.v), "endpoint", "blacklist")
			}
		}
		if !q.Reset.IsZero() {
			m.family("sikkerguard_api_quota_reset_timestamp_seconds", "gauge", "Unix time the SikkerAPI quota resets.")
			m.sample("sikkerguard_api_quota_reset_timestamp_seconds", unix(q.Reset), "endpoint", "blacklist")
		}
	}

	m.family("sikkerguard_dropped_packets_total", "counter", "Packets dropped by the blocklist rules (kernel counters).")
	m.sample("sikkerguard_dropped_packets_total", snap.Drops4Packets, "family", "ipv4")
	m.sample("sikkerguard_dropped_packets_total", snap.Drops6Packets, "family", "ipv6")
	m.family("sikkerguard_dropped_bytes_total", "counter", "Bytes dropped by the blocklist rules (kernel counters).")
	m.sample("sikkerguard_dropped_bytes_total", snap.Drops4Bytes, "family", "ipv4")
	m.sample("sikkerguard_dropped_bytes_total", snap.Drops6Bytes, "family", "ipv6")

	m.family("sikkerguard_nflog_events_total", "counter", "Drop events read from the NFLOG group.")
	m.sample("sikkerguard_nflog_events_total", snap.NFLOGEvents)
	m.family("sikkerguard_nflog_overruns_total", "counter", "Times the kernel dropped NFLOG messages because the socket buffer was full.")
	m.sample("sikkerguard_nflog_overruns_total", snap.NFLOGOverruns)
	m.family("sikkerguard_rules_restored_total", "counter", "Times the kernel objects were restored after another program removed or changed them.")
	m.sample("sikkerguard_rules_restored_total", snap.RulesRestored)
	m.family("sikkerguard_nftables_listener_warnings_total", "counter", "Large loads sent while another program listened to nftables events (the kernel holds about 8 KiB per element until the commit ends).")
	m.sample("sikkerguard_nftables_listener_warnings_total", snap.ListenerWarnings)
	m.family("sikkerguard_nflog_queue_drops_total", "counter", "Drop events discarded because aggregation fell behind.")
	m.sample("sikkerguard_nflog_queue_drops_total", snap.NFLOGQueueDrops)

	m.family("sikkerguard_reports_sent_total", "counter", "Reports accepted by SikkerAPI.")
	m.sample("sikkerguard_reports_sent_total", snap.Reported)
	m.family("sikkerguard_reports_rejected_total", "counter", "Reports SikkerAPI refused and that will not be retried.")
	m.sample("sikkerguard_reports_rejected_total", snap.ReportRejected)
	m.family("sikkerguard_reports_pending", "gauge", "Reports spooled and waiting to be sent.")
	m.sample("sikkerguard_reports_pending", snap.ReportPending)

	if len(snap.ServiceTotals) > 0 {
		m.family("sikkerguard_blocked_by_service_total", "counter", "Blocked connection attempts per targeted service.")
		for _, svc := range slices.Sorted(maps.Keys(snap.ServiceTotals)) {
			m.sample("sikkerguard_blocked_by_service_total", snap.ServiceTotals[svc], "service", svc)
		}
	}
	renderLedgerMetrics(&m, snap.FeedLedger)
	renderHubMetrics(&m, snap.Hub)
	return m.buf.Bytes()
}

// expo accumulates exposition lines.
type expo struct{ buf bytes.Buffer }

func (m *expo) family(name, typ, help string) {
	m.buf.WriteString("# HELP " + name + " " + helpEscaper.Replace(help) + "\n")
	m.buf.WriteString("# TYPE " + name + " " + typ + "\n")
}

// sample writes one series; labels are name, value pairs.
func (m *expo) sample(name string, v uint64, labels ...string) {
	m.series(name, strconv.FormatUint(v, 10), labels)
}

// sampleFloat writes one series with a value that is not a whole number.
func (m *expo) sampleFloat(name string, v float64, labels ...string) {
	m.series(name, strconv.FormatFloat(v, 'g', -1, 64), labels)
}

func (m *expo) series(name, value string, labels []string) {
	m.buf.WriteString(name)
	if len(labels) > 0 {
		m.buf.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				m.buf.WriteByte(',')
			}
			m.buf.WriteString(labels[i] + `="` + labelEscaper.Replace(strings.ToValidUTF8(labels[i+1], "\uFFFD")) + `"`)
		}
		m.buf.WriteByte('}')
	}
	m.buf.WriteByte(' ')
	m.buf.WriteString(value)
	m.buf.WriteByte('\n')
}

// The format escapes backslash and newline everywhere, and the double quote
// inside label values only.
var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func unix(t time.Time) uint64 {
	if t.IsZero() || t.Unix() < 0 {
		return 0
	}
	return uint64(t.Unix())
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

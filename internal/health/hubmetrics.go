package health

import "time"

// Hub is a fleet hub's part of a Snapshot; nil on a daemon that is no hub.
type Hub struct {
	ActiveHosts uint64 // hosts that pulled within the status window
	Generation  time.Time
	Requests    uint64
	NotModified uint64
	Refused     uint64
	Received    uint64 // drop events taken from hosts
	Forwarded   uint64 // report rows SikkerAPI accepted
	Hosts       []HubHost
}

// HubHost is one host of the hub's tokens file.
type HubHost struct {
	Name       string
	LastPull   time.Time
	Generation time.Time // of the merged list the host holds
	Reports    uint64
}

func renderHubMetrics(m *expo, h *Hub) {
	if h == nil {
		return
	}
	m.family("sikkerguard_hub_active_hosts", "gauge", "Fleet hosts that pulled the list within the status window.")
	m.sample("sikkerguard_hub_active_hosts", h.ActiveHosts)
	m.family("sikkerguard_hub_list_generation_timestamp_seconds", "gauge", "Unix time the served merged list last changed.")
	m.sample("sikkerguard_hub_list_generation_timestamp_seconds", unix(h.Generation))
	m.family("sikkerguard_hub_requests_total", "counter", "Requests to the hub endpoint.")
	m.sample("sikkerguard_hub_requests_total", h.Requests)
	m.family("sikkerguard_hub_not_modified_total", "counter", "Blocklist requests answered 304 Not Modified.")
	m.sample("sikkerguard_hub_not_modified_total", h.NotModified)
	m.family("sikkerguard_hub_refused_total", "counter", "Requests refused for a missing or unknown token (401).")
	m.sample("sikkerguard_hub_refused_total", h.Refused)
	m.family("sikkerguard_hub_reports_received_total", "counter", "Drop events received from fleet hosts.")
	m.sample("sikkerguard_hub_reports_received_total", h.Received)
	m.family("sikkerguard_hub_reports_forwarded_total", "counter", "Report rows SikkerAPI accepted from this hub (its own drops included).")
	m.sample("sikkerguard_hub_reports_forwarded_total", h.Forwarded)
	if len(h.Hosts) == 0 {
		return
	}
	m.family("sikkerguard_hub_host_last_pull_timestamp_seconds", "gauge", "Unix time a host last pulled a list; 0 = never.")
	for _, x := range h.Hosts {
		m.sample("sikkerguard_hub_host_last_pull_timestamp_seconds", unix(x.LastPull), "host", x.Name)
	}
	m.family("sikkerguard_hub_host_list_generation_timestamp_seconds", "gauge", "Generation of the list a host holds; 0 = none.")
	for _, x := range h.Hosts {
		m.sample("sikkerguard_hub_host_list_generation_timestamp_seconds", unix(x.Generation), "host", x.Name)
	}
	m.family("sikkerguard_hub_host_reports_total", "counter", "Drop events received from a host.")
	for _, x := range h.Hosts {
		m.sample("sikkerguard_hub_host_reports_total", x.Reports, "host", x.Name)
	}
}

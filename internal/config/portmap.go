package config

import "slices"

// DefaultPortMap returns the SikkerGuard container's service → ports map,
// used to name the service of a dropped packet's destination port. Each call
// returns a fresh map.
func DefaultPortMap() map[string][]uint16 {
	return map[string][]uint16{
		"ssh":           {22, 2222, 22222},
		"telnet":        {23, 2323},
		"ftp":           {21, 2121},
		"http":          {80, 8080},
		"https":         {443, 8443},
		"smtp":          {25, 587, 465},
		"imap":          {143, 993},
		"mysql":         {3306, 33060},
		"postgres":      {5432, 5433},
		"mssql":         {1433, 14330},
		"redis":         {6379, 6380},
		"mongodb":       {27017, 27018},
		"smb":           {445, 139},
		"docker":        {2375, 2376},
		"elasticsearch": {9200, 9201},
		"rtsp":          {554, 8554},
		"sip":           {5060},
	}
}

// EffectivePortMap merges report.port_map over DefaultPortMap: a service named
// in the config replaces that service's ports, and an empty list removes it.
func (c Config) EffectivePortMap() map[string][]uint16 {
	m := DefaultPortMap()
	for svc, ports := range c.Report.PortMap {
		if len(ports) == 0 {
			delete(m, svc)
			continue
		}
		m[svc] = slices.Clone(ports)
	}
	return m
}

// PortServices returns the reverse of EffectivePortMap. When a configured
// service claims a port that a default service also lists, the configured one
// wins, so `port_map: {minecraft: [8080]}` takes 8080 away from http.
func (c Config) PortServices() map[uint16]string {
	eff := c.EffectivePortMap()
	rev := make(map[uint16]string, 2*len(eff))
	for _, pass := range []bool{false, true} {
		for _, svc := range sortedKeys(eff) {
			if _, configured := c.Report.PortMap[svc]; configured != pass {
				continue
			}
			for _, port := range eff[svc] {
				rev[port] = svc
			}
		}
	}
	return rev
}

// ServiceForPort names the service of a destination port, or "" when none is
// mapped. It builds the reverse map on every call: hot paths should keep the
// result of PortServices instead.
func (c Config) ServiceForPort(port uint16) string {
	return c.PortServices()[port]
}

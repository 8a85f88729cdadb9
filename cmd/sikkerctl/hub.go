package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"
)

type hubHostJSON struct {
	Name       string  `json:"name"`
	Addr       string  `json:"addr,omitempty"`
	LastPull   *string `json:"lastPull"`
	Generation *string `json:"generation"`
	Current    bool    `json:"current"` // holds the list the hub serves now
	Active     bool    `json:"active"`  // pulled within windowSeconds
	Reports    uint64  `json:"reports"`
}

type hubJSON struct {
	Listen           string        `json:"listen"`
	Generation       *string       `json:"generation"`
	Entries          uint32        `json:"entries"`
	WindowSeconds    int64         `json:"windowSeconds"`
	ActiveHosts      uint32        `json:"activeHosts"`
	Requests         uint64        `json:"requests"`
	NotModified      uint64        `json:"notModified"`
	Refused          uint64        `json:"refused"`
	ReportsReceived  uint64        `json:"reportsReceived"`
	ReportsForwarded uint64        `json:"reportsForwarded"`
	ReportsPending   uint64        `json:"reportsPending"`
	Hosts            []hubHostJSON `json:"hosts"`
}

// cmdHub is `sikkerctl hub status [--json]`, on a fleet hub.
func cmdHub(ctx context.Context, args []string, g *globals, e env) error {
	if len(args) == 0 || args[0] != "status" {
		return usagef("hub: want `hub status [--json]`")
	}
	asJSON, err := readFlags("hub status", g, args[1:], nil)
	if err != nil {
		return err
	}
	c, ctx, done, err := connect(ctx, g, e)
	if err != nil {
		return err
	}
	defer done()
	st, err := c.HubStatus(ctx)
	if err != nil {
		return err
	}
	now := e.now()
	active := func(t time.Time) bool { return !t.IsZero() && now.Sub(t) <= st.Window }
	if asJSON {
		out := hubJSON{Listen: st.Listen, Generation: jsonTime(st.Generation), Entries: st.Entries,
			WindowSeconds: int64(st.Window / time.Second), ActiveHosts: st.Active, Requests: st.Requests,
			NotModified: st.NotMod, Refused: st.Refused, ReportsReceived: st.Received,
			ReportsForwarded: st.Forwarded, ReportsPending: st.Pending, Hosts: []hubHostJSON{}}
		for _, h := range st.Hosts {
			out.Hosts = append(out.Hosts, hubHostJSON{Name: h.Name, Addr: h.Addr, LastPull: jsonTime(h.LastPull),
				Generation: jsonTime(h.Generation), Current: !h.Generation.IsZero() && h.Generation.Equal(st.Generation),
				Active: active(h.LastPull), Reports: h.Reports})
		}
		return writeJSON(e.stdout, out)
	}
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.In(e.loc).Format("2006-01-02 15:04:05 MST")
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Listening:\t%s\n", st.Listen)
	fmt.Fprintf(tw, "List:\t%s entries, generated %s\n", thousands(uint64(st.Entries)), stamp(st.Generation))
	fmt.Fprintf(tw, "Hosts:\t%d of %d pulled in the last %s\n", st.Active, len(st.Hosts), st.Window)
	fmt.Fprintf(tw, "Requests:\t%s (%s not modified, %s refused)\n", thousands(st.Requests), thousands(st.NotMod), thousands(st.Refused))
	fmt.Fprintf(tw, "Reports:\t%s events received, %s rows forwarded, %s pending\n",
		thousands(st.Received), thousands(st.Forwarded), thousands(st.Pending))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Hosts) == 0 {
		return nil
	}
	fmt.Fprintln(e.stdout)
	tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tLAST PULL\tLIST\tREPORTS\tADDRESS")
	for _, h := range st.Hosts {
		list := stamp(h.Generation)
		if !h.Generation.IsZero() && h.Generation.Equal(st.Generation) {
			list += " (current)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, stamp(h.LastPull), list, thousands(h.Reports), dash(h.Addr))
	}
	return tw.Flush()
}

package main

import (
	"context"
	"fmt"
	"math"
	"text/tabwriter"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ledger"
)

type destJSON struct {
	Addr       string  `json:"addr"`
	Outbound   uint64  `json:"outbound"`
	BlockedOut uint64  `json:"blockedOut"`
	Last       *string `json:"last"`
}

// feedLedgerJSON is one record of `sikkerctl feeds --json`.
type feedLedgerJSON struct {
	Name               string     `json:"name"`
	Mode               string     `json:"mode"`
	Entries            uint64     `json:"entries"`
	Addresses          uint64     `json:"addresses"`
	KernelBytes        uint64     `json:"kernelBytes"`
	Drops24h           uint64     `json:"drops24h"`
	Drops7d            uint64     `json:"drops7d"`
	Drops              uint64     `json:"drops"`
	UniqueDrops7d      uint64     `json:"uniqueDrops7d"`
	UniqueDrops30d     uint64     `json:"uniqueDrops30d"`
	UniqueDrops        uint64     `json:"uniqueDrops"`
	HitsPer1000        float64    `json:"hitsPer1000"`
	LastHit            *string    `json:"lastHit"`
	DataChanged        *string    `json:"dataChanged"`
	ListAgeSeconds     *int64     `json:"listAgeSeconds"`
	LastPull           *string    `json:"lastPull"`
	PullRatio          *float64   `json:"pullRatio7d"` // null: no pull in 7 days
	Outbound7d         uint64     `json:"outbound7d"`
	Outbound           uint64     `json:"outbound"`
	BlockedOut7d       uint64     `json:"blockedOut7d"`
	BlockedOut         uint64     `json:"blockedOut"`
	OutboundHosts      int        `json:"outboundHosts"`
	Destinations       []destJSON `json:"destinations"`
	WouldUnsolicited   uint64     `json:"wouldUnsolicited"`
	WouldReplies       uint64     `json:"wouldReplies"`
	WouldUnsolicited7d uint64     `json:"wouldUnsolicited7d"`
	WouldReplies7d     uint64     `json:"wouldReplies7d"`
	Since              *string    `json:"since"`
	Advice             string     `json:"advice"`
}

// cmdFeeds is `sikkerctl feeds [--json]`: the value ledger of every feed.
func cmdFeeds(ctx context.Context, args []string, g *globals, e env) error {
	asJSON, err := readFlags("feeds", g, args, nil)
	if err != nil {
		return err
	}
	c, ctx, done, err := connect(ctx, g, e)
	if err != nil {
		return err
	}
	defer done()
	recs, err := c.Feeds(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		out := make([]feedLedgerJSON, 0, len(recs))
		for _, r := range recs {
			out = append(out, ledgerJSON(r))
		}
		return writeJSON(e.stdout, out)
	}
	if len(recs) == 0 {
		fmt.Fprintln(e.stdout, "no feeds")
		return nil
	}
	now := e.now()
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEED\tMODE\tRANGES\tADDRESSES\tKERNEL\tDROPS 24H/7D/ALL\tUNIQUE 7D/30D\tHITS/1K\tLAST HIT\tLIST AGE\tPULLS 7D\tOUTBOUND 7D\tWOULD UNSOL/REPLY\tADVICE")
	for _, r := range recs {
		would := "-"
		if r.Mode == ledger.ModeMonitor {
			would = thousands(r.WouldUnsolicited) + "/" + thousands(r.WouldReplies)
		}
		age := "-"
		if !r.DataChanged.IsZero() {
			age = shortDuration(r.ListAge)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s/%s/%s\t%s/%s\t%.1f\t%s\t%s\t%s\t%s (%d hosts)\t%s\t%s\n",
			r.Name, r.Mode, thousands(r.Entries), thousands(r.Addresses), bytesIEC(r.KernelBytes),
			thousands(r.Drops24h), thousands(r.Drops7d), thousands(r.DropsTotal),
			thousands(r.Unique7d), thousands(r.Unique30d), r.HitsPer1000, ago(now, r.LastHit), age,
			ratio(r.PullRatio), thousands(r.Outbound7d), r.OutboundHosts, would, r.Advice)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Destinations name what a list breaks: the hosts to whitelist or the
	// feed to scope.
	first := true
	for _, r := range recs {
		for _, d := range r.Destinations {
			if first {
				fmt.Fprintln(e.stdout)
				tw = tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "FEED\tOUTBOUND DESTINATION\tATTEMPTS\tDROPPED\tLAST")
				first = false
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, d.Addr, thousands(d.Outbound), thousands(d.BlockedOut), ago(now, d.Last))
		}
	}
	if !first {
		return tw.Flush()
	}
	return nil
}

func ledgerJSON(r ledger.Record) feedLedgerJSON {
	out := feedLedgerJSON{
		Name: r.Name, Mode: r.Mode, Entries: r.Entries, Addresses: r.Addresses, KernelBytes: r.KernelBytes,
		Drops24h: r.Drops24h, Drops7d: r.Drops7d, Drops: r.DropsTotal,
		UniqueDrops7d: r.Unique7d, UniqueDrops30d: r.Unique30d, UniqueDrops: r.UniqueTotal,
		HitsPer1000: math.Round(r.HitsPer1000*100) / 100, LastHit: jsonTime(r.LastHit), DataChanged: jsonTime(r.DataChanged),
		LastPull: jsonTime(r.LastPull), Outbound7d: r.Outbound7d, Outbound: r.OutboundTotal,
		BlockedOut7d: r.BlockedOut7d, BlockedOut: r.BlockedOutTotal, OutboundHosts: r.OutboundHosts,
		Destinations: []destJSON{}, WouldUnsolicited: r.WouldUnsolicited, WouldReplies: r.WouldReplies,
		WouldUnsolicited7d: r.WouldUnsolicited7d, WouldReplies7d: r.WouldReplies7d, Since: jsonTime(r.Since), Advice: r.Advice,
	}
	if !r.DataChanged.IsZero() {
		s := int64(r.ListAge / time.Second)
		out.ListAgeSeconds = &s
	}
	if r.PullRatio >= 0 {
		p := r.PullRatio
		out.PullRatio = &p
	}
	for _, d := range r.Destinations {
		out.Destinations = append(out.Destinations, destJSON{d.Addr.String(), d.Outbound, d.BlockedOut, jsonTime(d.Last)})
	}
	return out
}

// ago is "never" or a short time before now ("5m ago").
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return shortDuration(now.Sub(t)) + " ago"
}

// shortDuration keeps the largest unit or two: 45s, 12m, 3h5m, 4d2h.
func shortDuration(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

func ratio(r float64) string {
	if r < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", r*100)
}

// bytesIEC writes a size in B, KiB or MiB.
func bytesIEC(n uint64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

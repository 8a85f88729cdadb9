package main

import (
	"context"
	"fmt"
	"github.com/sikkerapi/sikkerguard/internal/firewall"
	"log/slog"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/ipset"
)

// opLog keeps the "op" attribute of the ipset backend's log lines: the
// backend picks a delta or a full swap by itself, and the table says which
// one was measured.
type opLog struct{ ops *[]string }

func (h opLog) Enabled(context.Context, slog.Level) bool { return true }
func (h opLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h opLog) WithGroup(string) slog.Handler            { return h }

func (h opLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "op" {
			*h.ops = append(*h.ops, a.Value.String())
		}
		return true
	})
	return nil
}

// runIptables measures the iptables backend: load a, then time Apply(next).
// ipt-full gets an unrelated list (the backend swaps), ipt-deltaN a list
// with N % of the ranges replaced (the backend sends a delta when that is
// cheaper). The peak RSS is our process's; the ipset child that the backend
// streams the script into is not measured (its rusage would include our own
// pages, which Go's fork shares with it until exec).
func runIptables(res result, ns, method string, a, next ipnet.Set, slab0 int64) (result, error) {
	var ops []string
	b, err := ipset.New(benchSettings(ipset.HookInput), slog.New(opLog{&ops}), ipset.WithNetNS(ns))
	if err != nil {
		return res, err
	}
	if err := b.Apply(firewall.Lists{Block: a, Allow: ipnet.Set{}}); err != nil {
		return res, err
	}
	if method != "ipt-full" {
		added, removed := ipnet.Diff(a, next)
		res.Changed = len(added.V4) + len(removed.V4)
	}
	ops = ops[:0]
	resetHWM()
	start := time.Now()
	err = b.Apply(firewall.Lists{Block: next, Allow: ipnet.Set{}})
	res.Wall = time.Since(start)
	if err != nil {
		return res, err
	}
	res.RSSKiB = hwmKiB()
	res.Ours = true
	if len(ops) != 1 {
		return res, fmt.Errorf("%s: the backend logged operations %q, want one", method, ops)
	}
	res.Op = ops[0]
	time.Sleep(time.Second) // RCU frees the old list's memory
	res.SlabKiB = slabKiB() - slab0
	return res, nil
}

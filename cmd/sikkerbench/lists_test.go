package main

import (
	"slices"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

func TestAddrListIsDistinctGlobalAndChangesByThePercent(t *testing.T) {
	list, fresh := addrList(10_000, 100, 1)
	if len(list) != 10_000 || len(fresh) != 100 {
		t.Fatalf("got %d + %d addresses, want 10000 + 100", len(list), len(fresh))
	}
	all := slices.Concat(list, fresh)
	for _, a := range all {
		if !ipnet.IsGlobal(ipnet.AddrFrom4(a)) {
			t.Fatalf("%s is not a global address", ipnet.AddrFrom4(a))
		}
	}
	slices.Sort(all)
	if len(slices.Compact(all)) != 10_100 {
		t.Fatal("addresses repeat")
	}
	if slices.IsSorted(list) {
		t.Error("the list is sorted; the API's order says nothing about the address")
	}
	next := changed(list, fresh, 1)
	diff := 0
	for i := range list {
		if list[i] != next[i] {
			diff++
		}
	}
	if diff != 100 {
		t.Errorf("1 %% changed replaced %d of 10000 entries, want 100", diff)
	}
}

func TestLogTimeReadsTheStampOfTheFirstMatchingLine(t *testing.T) {
	start := time.Date(2026, 12, 2, 6, 36, 0, 500e6, time.UTC)
	log := "2026-12-02T06:36:00.703Z INFO Score threshold: 50\n" +
		"2026-12-02T06:36:11.615Z INFO feed pulled feed=sikkerapi entries=1000000\n" +
		"2026-12-02T06:36:12.000Z INFO feed pulled feed=other entries=1\n"
	if got, want := logTime(log, start, msgPulled), 11115*time.Millisecond; got != want {
		t.Errorf("feed pulled at %v, want %v", got, want)
	}
	if got := logTime(log, start, msgBlocking); got != 0 {
		t.Errorf("a missing line gave %v, want 0", got)
	}
}

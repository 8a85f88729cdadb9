package daemon

import (
	"runtime/debug"
	"runtime/metrics"
)

// A list of a million entries is parsed, merged, diffed and encoded in a
// few seconds and then held for a day. What those seconds used is garbage
// afterwards, but the Go runtime returns freed memory to the kernel only
// slowly, so a daemon that pulled once would idle at several times the
// size of its list. After every event of the main loop the daemon checks
// how much of its heap is garbage or free and, past heapSlack, collects
// and returns it at once; small events (a status call, a watchdog tick)
// stay below it and cost nothing but the check. A forced collection thus
// follows at least heapSlack of allocation, as an ordinary one would.
const heapSlack = 8 << 20

var memSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"}, // live and not yet collected
	{Name: "/gc/heap/live:bytes"},                // live at the last collection
	{Name: "/memory/classes/heap/free:bytes"},    // free, not yet returned
}

// releaseMemory returns the memory a big operation left behind.
func releaseMemory() {
	if reclaimable() > heapSlack {
		debug.FreeOSMemory()
	}
}

// reclaimable estimates the heap bytes a collection and a scavenge would
// give back.
func reclaimable() uint64 {
	metrics.Read(memSamples)
	var v [3]uint64
	for i, s := range memSamples {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	objects, live, free := v[0], v[1], v[2]
	garbage := uint64(0)
	if objects > live {
		garbage = objects - live
	}
	return garbage + free
}

package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// addrList returns n distinct random global IPv4 addresses in random order
// (the API sorts by confidence, which says nothing about the address), and
// extra more, distinct from the first n, for a changed list.
func addrList(n, extra int, seed uint64) (list, fresh []uint32) {
	r := rand.New(rand.NewPCG(seed, 0x5ca1e))
	want := n + extra
	out := make([]uint32, 0, want+want/50)
	for len(out) < want {
		for len(out) < cap(out) {
			a := 1<<24 + r.Uint32N(223<<24-1<<24)
			if ipnet.IsGlobal(ipnet.AddrFrom4(a)) {
				out = append(out, a)
			}
		}
		slices.Sort(out)
		out = slices.Compact(out)
	}
	out = out[:want]
	r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:n], out[n:]
}

// changed returns list with one entry in every 100/pct replaced by the
// addresses of fresh: pct percent of the list changed.
func changed(list, fresh []uint32, pct int) []uint32 {
	out := slices.Clone(list)
	step := 100 / pct
	for i, j := 0, 0; i < len(out) && j < len(fresh); i, j = i+step, j+1 {
		out[i] = fresh[j]
	}
	return out
}

// writeList writes one address a line, as the plaintext API serves it.
func writeList(dir, name string, list []uint32) (string, error) {
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	buf := make([]byte, 0, 16)
	for _, a := range list {
		buf = ipnet.AddrFrom4(a).AppendTo(buf[:0])
		w.Write(append(buf, '\n'))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, f.Close()
}

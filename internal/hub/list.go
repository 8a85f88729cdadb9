package hub

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// MergedName is the name of the merged list in status and metrics.
const MergedName = "all"

// List is one served list, rendered once per generation: the text, its
// gzip form and their validators, so that a request costs a header
// comparison (304) or one write of bytes already made.
type List struct {
	Name      string
	Generated time.Time // when this content was first published
	Entries   int
	text      []byte
	gz        []byte
	etag      string // of text; the gzip form's is etag with -gz
	set       ipnet.Set

	jsonOnce sync.Once
	json     []byte
}

// ETag is the list's strong validator (of the plain text), quoted.
func (l *List) ETag() string { return `"` + l.etag + `"` }

// gzETag is the validator of the gzip form: a strong ETag names one
// representation's bytes.
func (l *List) gzETag() string { return `"` + l.etag + `-gz"` }

// Published is everything the hub serves at one time: the merged list and
// each feed's.
type Published struct {
	All   *List
	Feeds map[string]*List
	// feeds of the merged list, by name, for ?format=json.
	sets map[string]ipnet.Set
}

// NewList renders set, one CIDR a line. The generation time is kept from
// prev when the content is the same, so that a restart or a pull that
// changed nothing moves neither ETag nor Last-Modified.
func NewList(name string, set ipnet.Set, now time.Time, prev *List) *List {
	// Sized for a line per range ("203.0.113.7/32" is 15 bytes), so that a
	// million-entry list is not grown by doubling and kept with the slack.
	n4, n6 := set.Len()
	text := make([]byte, 0, 16*n4+32*n6)
	n := 0
	for p := range set.AllPrefixes() {
		text = append(p.AppendTo(text), '\n')
		n++
	}
	sum := sha256.Sum256(text)
	tag := hex.EncodeToString(sum[:16])
	if prev != nil && prev.etag == tag {
		return prev
	}
	var gz bytes.Buffer
	gz.Grow(len(text) / 2) // random addresses compress to about 40 %
	// The default level: BestCompression saves a few per cent of the bytes
	// for several times the CPU, paid again on every change of the list.
	zw, _ := gzip.NewWriterLevel(&gz, gzip.DefaultCompression) // the level is valid
	zw.Write(text)
	zw.Close()
	return &List{Name: name, Generated: now.UTC().Truncate(time.Second), Entries: n,
		text: fit(text), gz: fit(gz.Bytes()), etag: tag, set: set}
}

// fit returns b in an array of its own length when more than a quarter of
// its array is unused: a rendered list is kept until the next change.
func fit(b []byte) []byte {
	if cap(b)-len(b) > cap(b)/4 {
		return bytes.Clone(b)
	}
	return b
}

// Publish renders what a hub serves after a decision: merged is the
// applied plan's blocklist, feeds each feed's list in use. prev is the
// last publication (nil at start); lists that did not change are reused.
func Publish(merged ipnet.Set, feeds map[string]ipnet.Set, now time.Time, prev *Published) *Published {
	p := &Published{Feeds: make(map[string]*List, len(feeds)), sets: feeds}
	var old *List
	if prev != nil {
		old = prev.All
	}
	p.All = NewList(MergedName, merged, now, old)
	for name, set := range feeds {
		old = nil
		if prev != nil {
			old = prev.Feeds[name]
		}
		if set.Equal(merged) {
			// One feed alone is the common case: render it once.
			a := p.All
			p.Feeds[name] = &List{Name: name, Generated: a.Generated, Entries: a.Entries, text: a.text, gz: a.gz, etag: a.etag, set: a.set}
			continue
		}
		p.Feeds[name] = NewList(name, set, now, old)
	}
	return p
}

// JSON renders l with the feeds that list each entry (for the merged
// list: the feeds holding the entry's first address), built on first use:
// {"name":…,"generated":…,"entries":[{"entry":"cidr","feeds":[…]},…]}.
// It is written straight into one buffer: a struct per entry and a
// marshal of them all held about ten times the final size for a million
// entries.
func (p *Published) JSON(l *List) []byte {
	l.jsonOnce.Do(func() {
		names := make([]string, 0, len(p.sets))
		for n := range p.sets {
			names = append(names, n)
		}
		sort.Strings(names)
		quoted := make(map[string][]byte, len(names)+1)
		for _, n := range append(names, l.Name) {
			quoted[n], _ = json.Marshal(n) // a string: cannot fail
		}
		gen, _ := json.Marshal(l.Generated) // a UTC time: cannot fail
		b := make([]byte, 0, len(l.text)*2+64)
		b = append(append(append(b, `{"name":`...), quoted[l.Name]...), `,"generated":`...)
		b = append(append(b, gen...), `,"entries":[`...)
		first := true
		for pfx := range l.set.AllPrefixes() {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(pfx.AppendTo(append(b, `{"entry":"`...)), '"')
			feeds := []string{l.Name}
			if l.Name == MergedName {
				feeds = feedsOf(pfx.Addr(), names, p.sets)
			}
			for i, f := range feeds {
				if i == 0 {
					b = append(b, `,"feeds":[`...)
				} else {
					b = append(b, ',')
				}
				b = append(b, quoted[f]...)
			}
			if len(feeds) > 0 {
				b = append(b, ']')
			}
			b = append(b, '}')
		}
		l.json = fit(append(b, "]}"...))
	})
	return l.json
}

func feedsOf(a netip.Addr, names []string, sets map[string]ipnet.Set) []string {
	var out []string
	for _, n := range names {
		if sets[n].Contains(a) {
			out = append(out, n)
		}
	}
	return out
}

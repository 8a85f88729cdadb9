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
	var buf bytes.Buffer
	n := 0
	for p := range set.AllPrefixes() {
		buf.WriteString(p.String())
		buf.WriteByte('\n')
		n++
	}
	sum := sha256.Sum256(buf.Bytes())
	tag := hex.EncodeToString(sum[:16])
	if prev != nil && prev.etag == tag {
		return prev
	}
	var gz bytes.Buffer
	// The default level: BestCompression saves a few per cent of the bytes
	// for several times the CPU, paid again on every change of the list.
	zw, _ := gzip.NewWriterLevel(&gz, gzip.DefaultCompression) // the level is valid
	zw.Write(buf.Bytes())
	zw.Close()
	return &List{Name: name, Generated: now.UTC().Truncate(time.Second), Entries: n,
		text: buf.Bytes(), gz: gz.Bytes(), etag: tag, set: set}
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

// jsonEntry is one line of ?format=json.
type jsonEntry struct {
	Entry string   `json:"entry"`
	Feeds []string `json:"feeds,omitempty"`
}

type jsonList struct {
	Name      string      `json:"name"`
	Generated time.Time   `json:"generated"`
	Entries   []jsonEntry `json:"entries"`
}

// JSON renders l with the feeds that list each entry (for the merged
// list: the feeds holding the entry's first address), built on first use.
func (p *Published) JSON(l *List) []byte {
	l.jsonOnce.Do(func() {
		names := make([]string, 0, len(p.sets))
		for n := range p.sets {
			names = append(names, n)
		}
		sort.Strings(names)
		out := jsonList{Name: l.Name, Generated: l.Generated, Entries: make([]jsonEntry, 0, l.Entries)}
		for pfx := range l.set.AllPrefixes() {
			e := jsonEntry{Entry: pfx.String()}
			if l.Name == MergedName {
				e.Feeds = feedsOf(pfx.Addr(), names, p.sets)
			} else {
				e.Feeds = []string{l.Name}
			}
			out.Entries = append(out.Entries, e)
		}
		l.json, _ = json.Marshal(out) // plain strings and times: cannot fail
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

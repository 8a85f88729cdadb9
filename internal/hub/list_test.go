package hub

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
	"github.com/sikkerapi/sikkerguard/internal/testnet"
)

// jsonEntry and jsonList are ?format=json as a client decodes it.
type jsonEntry struct {
	Entry string   `json:"entry"`
	Feeds []string `json:"feeds,omitempty"`
}

type jsonList struct {
	Name      string      `json:"name"`
	Generated time.Time   `json:"generated"`
	Entries   []jsonEntry `json:"entries"`
}

// The JSON written by hand is byte for byte what encoding/json makes of
// the same list: entries with their feeds, one without any, names that
// need escaping, and an empty list.
func TestJSONIsWhatEncodingJSONWrites(t *testing.T) {
	sets := map[string]ipnet.Set{
		"a":   testnet.Set("192.0.2.0/24", "2001:db8::/48"),
		"b<&": testnet.Set("192.0.2.7/32", "198.51.100.0/25"),
	}
	merged := ipnet.Union(sets["a"], sets["b<&"], testnet.Set("203.0.113.9/32"))
	pub := Publish(merged, sets, t0, nil)
	for _, l := range []*List{pub.All, pub.Feeds["a"], pub.Feeds["b<&"], NewList("empty", ipnet.Set{}, t0, nil)} {
		want := jsonList{Name: l.Name, Generated: l.Generated, Entries: []jsonEntry{}}
		for pfx := range l.set.AllPrefixes() {
			e := jsonEntry{Entry: pfx.String(), Feeds: []string{l.Name}}
			if l.Name == MergedName {
				e.Feeds = nil
				for _, n := range []string{"a", "b<&"} {
					if sets[n].Contains(pfx.Addr()) {
						e.Feeds = append(e.Feeds, n)
					}
				}
			}
			want.Entries = append(want.Entries, e)
		}
		wantJSON, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		if got := pub.JSON(l); string(got) != string(wantJSON) {
			t.Errorf("%s:\n got %s\nwant %s", l.Name, got, wantJSON)
		}
	}
}

package feed

import (
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

func TestGarbagePolicy(t *testing.T) {
	tests := []struct {
		name       string
		st         ipnet.ParseStats
		allowEmpty bool
		policy     GarbagePolicy
		want       string // "" = accepted
	}{
		{"clean", ipnet.ParseStats{Lines: 100, Entries: 100}, false, GarbagePolicy{}, ""},
		{"empty rejected", ipnet.ParseStats{Lines: 3, Skipped: 3}, false, GarbagePolicy{}, "empty list"},
		{"empty allowed", ipnet.ParseStats{Lines: 3, Skipped: 3}, true, GarbagePolicy{}, ""},
		{"all malformed even when empty is allowed", ipnet.ParseStats{Lines: 2, Malformed: 2,
			Samples: []ipnet.Malformed{{Line: 1, Text: "<html>"}}}, true, GarbagePolicy{}, `no valid entry in 2 lines (line 1: "<html>")`},
		{"few malformed in a short list", ipnet.ParseStats{Lines: 20, Entries: 12, Malformed: 8}, false, GarbagePolicy{}, ""},
		{"few malformed in a long list", ipnet.ParseStats{Lines: 10000, Entries: 9900, Malformed: 100}, false, GarbagePolicy{}, ""},
		{"many malformed", ipnet.ParseStats{Lines: 100, Entries: 80, Malformed: 20}, false, GarbagePolicy{}, "20 of 100 lines malformed"},
		{"stricter policy", ipnet.ParseStats{Lines: 100, Entries: 97, Malformed: 3}, false,
			GarbagePolicy{MaxMalformed: 2, MaxMalformedRatio: 0.01}, "3 of 100 lines malformed"},
	}
	for _, tt := range tests {
		err := tt.policy.check(tt.st, tt.allowEmpty)
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/mock"
)

// A feed that suddenly lists the whole internet must not cut the host off:
// lines wider than safety.min_prefix4/6 are malformed, and a list that
// would block too large a share of the internet is refused; in every case
// the previous list stays in force and an unlisted peer still gets in.
func TestServiceRefusesListsThatBlockTheInternet(t *testing.T) {
	custom := filepath.Join(t.TempDir(), "custom.txt")
	if err := os.WriteFile(custom, []byte("185.16.39.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newSvcLab(t, svcAttacker.String()+"\n185.16.39.1\n", "feeds:\n  - {name: custom, file: "+custom+"}\n"+
		// The growth check alone would refuse these lists; the share cap
		// must hold by itself.
		"safety:\n  strip_private: false\n  max_growth: 1e12\n")
	c := l.withBus() // a reload pulls only changed feeds: pull on request
	s := l.start()
	s.await(t, "READY=1")
	if l.delivered(svcAttacker) || !l.delivered(svcFriend) {
		t.Fatal("the first list is not in force")
	}
	var wide strings.Builder // 30 /8s: 13.5 % of the global IPv4 space
	for i := 11; i < 41; i++ {
		wide.WriteString(strings.Join([]string{itoaSvc(i), "0", "0", "0/8\n"}, "."))
	}
	for _, tc := range []struct{ name, api, file, log string }{
		{"everything from the API", "0.0.0.0/0\n::/0\n", "", `no valid entry in 2 lines (line 1: \"0.0.0.0/0\")`},
		{"everything, other spellings, from a file", "", "0.0.0.0-255.255.255.255\n0.0.0.0/0.0.0.0\n::ffff:0:0/96\n128.0.0.0/1\n185.16.39.9\n", "feed=custom"},
		{"too large a share", wide.String() + svcAttacker.String() + "\n", "", "safety.max_block_share"},
	} {
		if tc.api != "" {
			es, err := mock.ParseList(strings.NewReader(tc.api))
			if err != nil {
				t.Fatalf("%s: mock list: %v", tc.name, err)
			}
			l.srv.SetEntries(es)
		}
		if tc.file != "" {
			if err := os.WriteFile(custom, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		pull(t, c) // refused: an error
		s.awaitLog(t, tc.log)
		if !l.delivered(svcFriend) {
			t.Errorf("%s: an unlisted peer was cut off", tc.name)
		}
		if l.delivered(svcAttacker) || !l.inTable(svcAttacker) {
			t.Errorf("%s: the previous list is no longer in force", tc.name)
		}
	}
	for _, line := range []string{"0.0.0.0-255.255.255.255", "::ffff:0:0/96"} {
		if !strings.Contains(s.stderr.String(), line) {
			t.Errorf("the line %s was not reported:\n%s", line, s.stderr.String())
		}
	}
}

func itoaSvc(i int) string {
	return strings.TrimLeft(string(rune('0'+i/10))+string(rune('0'+i%10)), "0")
}

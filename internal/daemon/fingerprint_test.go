package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/config"
)

// A spec's fingerprint counts the settings that are set: a setting a later
// version adds, left at its zero default, keeps the fingerprint, so the
// first start after an upgrade trusts the cached list's age.
func TestFingerprintCountsSetFieldsOnly(t *testing.T) {
	cfg, err := config.Load("../../configs/sikkerguard.yaml", false, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Feeds = append(cfg.Feeds, config.Feed{Name: "x", URL: "https://example.net/list", Ports: []string{"22"}, Mode: config.ModeMonitor})
	specs := feedSpecs(cfg, config.NewSecret(key))
	seen := map[string]bool{}
	for _, s := range specs {
		fp := s.fingerprint() // a whole real configuration: no field it cannot print
		if seen[fp] {
			t.Errorf("two feeds share the fingerprint %s", fp)
		}
		seen[fp] = true
	}
	s := feedSpec{Name: "x", Feed: config.Feed{Name: "x", File: "/l"}}
	sum := sha256.Sum256([]byte(".Name=\"x\"\n.Feed.Name=\"x\"\n.Feed.File=\"/l\"\n"))
	if got := s.fingerprint(); got != hex.EncodeToString(sum[:]) {
		t.Errorf("fingerprint of %+v counts more than its set fields", s)
	}
	if s.fingerprint() == (feedSpec{Name: "x", Feed: config.Feed{Name: "x", File: "/m"}}).fingerprint() {
		t.Error("a changed file path kept the fingerprint")
	}
}

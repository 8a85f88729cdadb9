package config

import (
	"strconv"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
)

// An entry accepted in the config file is accepted over D-Bus as the same
// range, and one refused in either is refused in both.
func TestWhitelistParsingAgreesWithConfig(t *testing.T) {
	inputs := []string{
		"192.0.2.1", "192.0.2.0/24", "192.0.2.1/24", "2001:db8::1/32", "::ffff:192.0.2.1",
		"::ffff:192.0.2.0/120", "::ffff:0:0/80", "192.0.2.0/255.255.255.0", "0.0.0.0/0", "::/0",
		" 198.51.100.7 ", "", "  ", "300.1.1.1", "192.0.2.0/33", "192.0.2.0/08", "010.1.1.1",
		"fe80::1%eth0", "fe80::/10%eth0", "example.com", "192.0.2.1-192.0.2.9", "2001:db8::/129",
	}
	for _, in := range inputs {
		fromBus, busErr := dbusapi.ParsePrefix(in)
		fromEnv, envErr := ParsePrefix(in)
		cfg, fileErr := Parse([]byte("whitelist: ["+strconv.Quote(in)+"]\n"), "test.yaml", func(string) (string, bool) { return "", false })
		if (busErr == nil) != (fileErr == nil) || (busErr == nil) != (envErr == nil) {
			t.Errorf("%q: D-Bus err %v, config file err %v, ParsePrefix err %v", in, busErr, fileErr, envErr)
			continue
		}
		if busErr != nil {
			continue
		}
		if len(cfg.Whitelist) != 1 || cfg.Whitelist[0] != fromBus || fromEnv != fromBus {
			t.Errorf("%q: D-Bus %v, config file %v, ParsePrefix %v", in, fromBus, cfg.Whitelist, fromEnv)
		}
	}
}

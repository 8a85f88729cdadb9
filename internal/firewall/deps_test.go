package firewall

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The daemon and the config reach the backends only through this package:
// neither may link a backend, or the seam is gone.
func TestConsumersLinkNoBackend(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	const module = "github.com/sikkerapi/sikkerguard/"
	for _, pkg := range []string{"../daemon", "../config"} {
		out, err := exec.Command(goBin, "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := map[string]bool{}
		for _, d := range strings.Fields(string(out)) {
			deps[d] = true
		}
		if !deps[module+"internal/firewall"] {
			t.Fatalf("%s does not use internal/firewall; go list output looks wrong:\n%s", pkg, out)
		}
		for d := range deps {
			for _, banned := range []string{module + "internal/nft", module + "internal/ipset", "github.com/google/nftables"} {
				if d == banned || strings.HasPrefix(d, banned+"/") {
					t.Errorf("%s links %s", pkg, d)
				}
			}
		}
	}
}

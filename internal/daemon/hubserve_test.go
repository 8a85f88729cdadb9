package daemon

import (
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/mock"
)

const hubTok = "hub-test-token-0123456789"

func hubGet(t *testing.T, d *Daemon) (int, string, string) {
	t.Helper()
	st, ok := d.hubStatus()
	if !ok {
		t.Fatal("the daemon is no hub")
	}
	req, _ := http.NewRequest("GET", "http://"+st.Listen+"/v1/blocklist", nil)
	req.Header.Set("Authorization", "Bearer "+hubTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("ETag"), string(body)
}

// The hub serves what its decision accepted and the kernel holds: never a
// never-block address, never a pull the checks refused.
func TestHubServesTheAppliedPlanOnly(t *testing.T) {
	l := newLab(t, "203.0.113.7\n198.51.100.1\n")
	l.never.Own = []netip.Addr{netip.MustParseAddr("198.51.100.1")}
	tokens := filepath.Join(l.dir, "hub-tokens")
	if err := os.WriteFile(tokens, []byte("web1 "+hubTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l.cfg.Hub = config.Hub{Listen: "127.0.0.1:0", TokensFile: tokens}
	reload := make(chan struct{})
	d, _ := l.start(func(o *Options) {
		o.Reload = reload
		o.Load = func() (config.Config, config.Secret, error) { return l.cfg, config.NewSecret(key), nil }
	})
	l.note.waitCount(t, "READY=1", 1)
	code, etag, body := hubGet(t, d)
	if code != 200 || body != "203.0.113.7/32\n" {
		t.Fatalf("hub served %d %q, want only 203.0.113.7 (198.51.100.1 is never blocked)", code, body)
	}

	// Ten times the list: refused by max_growth, so neither the kernel nor
	// the hosts get it.
	var big strings.Builder
	for i := range 20 {
		big.WriteString(netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)}).String() + "\n")
	}
	grown, _ := mock.ParseList(strings.NewReader(big.String()))
	l.srv.SetEntries(grown)
	// A broken tokens file is refused and the tokens in force stay.
	if err := os.WriteFile(tokens, []byte("web1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- struct{}{}
	l.note.waitCount(t, "READY=1", 2)
	if l.fw.blocks("203.0.113.10") {
		t.Fatal("the refused list reached the kernel")
	}
	code, etag2, body := hubGet(t, d)
	if code != 200 || etag2 != etag || body != "203.0.113.7/32\n" {
		t.Fatalf("after a refused pull the hub served %d %s %q, want the accepted list %s", code, etag2, body, etag)
	}
	if !strings.Contains(l.logs.String(), "hub tokens refused") {
		t.Error("the broken tokens file was not reported")
	}
	hs, err := d.HubStatus()
	if err != nil || len(hs.Hosts) != 1 || hs.Hosts[0].Name != "web1" || hs.Hosts[0].LastPull.IsZero() || hs.Entries != 1 {
		t.Fatalf("HubStatus = %+v, %v", hs, err)
	}
}

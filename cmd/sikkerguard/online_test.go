package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/mock"
)

// -t --online asks the key's status and fetches every feed once: 0 when
// all answer, 1 when one fails, 2 for an invalid config. The blacklist
// itself is never pulled: it would cost quota.
func TestCheckOnline(t *testing.T) {
	const key = "sk_test_online_000000000000"
	srv, err := mock.New(mock.Options{Key: key, Entries: mock.Generate(mock.GenerateOptions{N: 5, Seed: 1})})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	list := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/list.txt" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("203.0.113.7\n198.51.100.0/24\n"))
	}))
	t.Cleanup(list.Close)

	run1 := func(yaml, k string) (int, string) {
		t.Helper()
		dir := t.TempDir()
		path := filepath.Join(dir, "sikkerguard.yaml")
		yaml = "state_dir: " + filepath.Join(dir, "state") + "\napi:\n  url: " + srv.URL() + "\n" + yaml
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"-t", "--online", "-c", path},
			config.MapEnv(map[string]string{"SIKKER_API_KEY": k}), &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	good := "feeds:\n  - name: extra\n    url: " + list.URL + "/list.txt\n"
	code, out := run1(good, key)
	if code != exitOK || !strings.Contains(out, "ok   key: accepted") || !strings.Contains(out, "ok   feed extra: 2 entries") {
		t.Errorf("all good: exit %d\n%s", code, out)
	}
	if n := srv.RequestCount("/v1/key/blacklist"); n != 0 {
		t.Errorf("-t --online pulled the blacklist %d times", n)
	}
	code, out = run1(good, "sk_test_wrong_00000000000000")
	if code != exitFailure || !strings.Contains(out, "FAIL key:") || !strings.Contains(out, "401") {
		t.Errorf("wrong key: exit %d\n%s", code, out)
	}
	code, out = run1("feeds:\n  - name: extra\n    url: "+list.URL+"/gone.txt\n", key)
	if code != exitFailure || !strings.Contains(out, "FAIL feed extra:") || !strings.Contains(out, "404") {
		t.Errorf("missing feed: exit %d\n%s", code, out)
	}
	code, out = run1("api:\n  score_min: 500\n", key)
	if code != exitUsage {
		t.Errorf("invalid config: exit %d\n%s", code, out)
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--online"}, config.MapEnv(nil), &bytes.Buffer{}, &stderr); code != exitUsage ||
		!strings.Contains(stderr.String(), "--online goes with -t") {
		t.Errorf("--online alone: exit %d, %q", code, stderr.String())
	}
}

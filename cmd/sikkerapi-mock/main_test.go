package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRunServesAndStops(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte("sk_free_cmdtest\n"), 0o600)
	list := filepath.Join(dir, "list.txt")
	os.WriteFile(list, []byte("203.0.113.1\n2001:db8::1\n"), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	var stderr strings.Builder
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-key-file", keyFile, "-list", list}, outW, &syncBuilder{b: &stderr})
		outW.Close()
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("no address printed: %v", err)
	}
	base := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	go io.Copy(io.Discard, outR)

	req, _ := http.NewRequest("GET", base+"/v1/key/blacklist?plaintext=true", nil)
	req.Header.Set("Authorization", "Bearer sk_free_cmdtest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "203.0.113.1\n2001:db8::1\n" {
		t.Errorf("blacklist: %d %q", resp.StatusCode, body)
	}
	// JSON rows carry lastSeen in epoch ms, by default as fresh as a live
	// API's: a plain-text list's entries were all seen at the request.
	req, _ = http.NewRequest("GET", base+"/v1/key/blacklist", nil)
	req.Header.Set("Authorization", "Bearer sk_free_cmdtest")
	before := time.Now().UnixMilli()
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Data []struct {
			LastSeen int64 `json:"lastSeen"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || len(doc.Data) != 2 || doc.Data[0].LastSeen < before || doc.Data[0].LastSeen > time.Now().UnixMilli() {
		t.Errorf("json blacklist: %+v, %v; want lastSeen between %d and now", doc, err, before)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
	if strings.Contains(stderr.String(), "sk_free_cmdtest") {
		t.Errorf("the key was logged: %s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "path=/v1/key/blacklist") {
		t.Errorf("request not logged: %s", stderr.String())
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{}, "no key"},
		{[]string{"-key", "k", "-key-file", "f"}, "exclusive"},
		{[]string{"-key", "k", "-list", "a", "-generate", "5"}, "exclusive"},
		{[]string{"-key", "k", "-fault", "melt"}, `unknown fault mode "melt"`},
		{[]string{"-key", "k", "-quota-headers", "x"}, `quota headers "x"`},
		{[]string{"-key", "k", "extra"}, `unexpected argument "extra"`},
		{[]string{"-nope"}, "flag provided but not defined"},
	} {
		var stderr strings.Builder
		code := run(context.Background(), tt.args, io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run(%q) = %d, stderr %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
	var stderr strings.Builder
	if code := run(context.Background(), []string{"-key", "k", "-list", "/nonexistent/list"}, io.Discard, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "/nonexistent/list") {
		t.Errorf("missing list: %d %q", code, stderr.String())
	}
}

// syncBuilder lets the server's goroutines log while the test waits.
type syncBuilder struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

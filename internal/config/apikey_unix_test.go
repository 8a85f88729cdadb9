//go:build unix

package config

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A FIFO in the key file's place is refused without blocking the start.
func TestKeyFileFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.key")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	cfg := Default()
	cfg.API.KeyFile = path
	done := make(chan error, 1)
	go func() { _, _, err := LoadAPIKey(cfg, nil, ""); done <- err }()
	select {
	case err := <-done:
		if err == nil || err.Error() != "api key file "+path+" is not a regular file" {
			t.Errorf("error = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("LoadAPIKey blocked on a FIFO")
	}
}

package feed

import (
	"context"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileFeed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "blacklist.txt")
	f, err := NewFile(FileOptions{Name: "custom", Path: path})
	if err != nil {
		t.Fatal(err)
	}

	_, err = f.Fetch(context.Background())
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("missing file: err = %v, want not-exist naming %s", err, path)
	}

	tests := []struct {
		name, content string
		entries       int
		wantErr       error
	}{
		{name: "empty file is a valid empty list", content: ""},
		{name: "comments only", content: "# my list\n\n# nothing yet\n"},
		{name: "entries re-read", content: "203.0.113.9\n198.51.100.0/24 # office scanner\n2001:db8::/32\n", entries: 3},
		{name: "a typo is tolerated", content: "203.0.113.9\n203.0.113.300\n", entries: 1},
		{name: "not a list", content: "hello\nworld\n", wantErr: ErrGarbage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}
			snap, err := f.Fetch(context.Background())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Errorf("err = %v, want %v naming the path", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if snap.Stats.Entries != tt.entries || snap.Origin != path || snap.FromCache {
				t.Errorf("snapshot = %+v, want %d entries from %s", snap, tt.entries, path)
			}
		})
	}
	os.WriteFile(path, []byte("203.0.113.9\n"), 0o644)
	snap, err := f.Fetch(context.Background())
	if err != nil || !snap.Set.Contains(netip.MustParseAddr("203.0.113.9")) {
		t.Errorf("re-read after edit = %+v, %v", snap, err)
	}

	big, _ := NewFile(FileOptions{Name: "big", Path: path, MaxBytes: 4})
	if _, err := big.Fetch(context.Background()); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized file: err = %v", err)
	}
	dirFeed, _ := NewFile(FileOptions{Name: "dir", Path: dir})
	if _, err := dirFeed.Fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: err = %v", err)
	}
}

package statefile

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}
}

func TestWriteAtomicCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.txt")
	for _, content := range []string{"first\n", "second, longer content\n", ""} {
		if err := WriteAtomic(path, writeString(content), 0o640); err != nil {
			t.Fatalf("WriteAtomic(%q): %v", content, err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != content {
			t.Errorf("content = %q, want %q", got, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
	assertNoTemps(t, dir)
}

func TestWriteAtomicFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.txt")
	if err := WriteAtomic(path, writeString("good\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteAtomic(path, func(w io.Writer) error {
		io.WriteString(w, "half of a new fi")
		return boom
	}, 0o600)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapping boom", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the path", err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != "good\n" {
		t.Errorf("old file changed to %q", got)
	}
	assertNoTemps(t, dir)
}

func TestWriteAtomicMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "state.txt")
	err := WriteAtomic(path, writeString("x"), 0o600)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.txt")
	if err := WriteAtomic(path, writeString("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Read(path, func(r io.Reader) error { _, err := io.Copy(&buf, r); return err }); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "hello" {
		t.Errorf("read %q", buf.String())
	}

	err := Read(filepath.Join(dir, "missing"), func(io.Reader) error { return nil })
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
	bad := errors.New("bad content")
	err = Read(path, func(io.Reader) error { return bad })
	if !errors.Is(err, bad) || !strings.Contains(err.Error(), path) {
		t.Errorf("reader error = %v, want wrapping %v and naming %s", err, bad, path)
	}
}

func assertNoTemps(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

// Package statefile writes and reads sikkerguard's state files (last good
// feed lists, runtime whitelist, report spool) so that a crash or power loss
// at any moment leaves either the complete old file or the complete new one.
//
// WriteAtomic writes to a temporary file in the destination directory, fsyncs
// it, renames it over the destination and fsyncs the directory so that the
// rename itself is durable. A failed write removes the temporary file and
// leaves the old file untouched.
package statefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// tempPattern names temporary files; the leading dot keeps them out of
// directory listings and globs such as "*.list".
const tempPattern = ".tmp-*"

// WriteAtomic replaces path with what write produces, atomically and durably.
// The file gets mode perm; the directory must already exist.
func WriteAtomic(path string, write func(io.Writer) error, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+tempPattern)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	// CreateTemp uses 0600; set the requested mode before any content exists
	// so that a secret never sits in a more permissive file.
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := write(tmp); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: close: %w", path, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		// The new content is in place; only its durability across a power
		// cut is in doubt, which the caller may want to know.
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	err = d.Sync()
	// Some filesystems (and Windows) cannot fsync a directory; that is not a
	// reason to fail the write.
	if errors.Is(err, os.ErrInvalid) {
		return nil
	}
	return err
}

// Read opens path and hands its content to read. A missing file yields an
// error that satisfies errors.Is(err, fs.ErrNotExist).
func Read(path string, read func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	defer f.Close()
	if err := read(f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

//go:build unix

package config

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// openNoFollow opens path for reading without following a symbolic link in
// its last element, and without blocking on a FIFO planted in its place.
func openNoFollow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}

// isSymlinkErr tells the error O_NOFOLLOW gives for a symbolic link.
func isSymlinkErr(err error) bool { return errors.Is(err, syscall.ELOOP) }

// fileOwner returns the uid that owns the file st describes.
func fileOwner(st fs.FileInfo) (uint32, bool) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return s.Uid, true
}

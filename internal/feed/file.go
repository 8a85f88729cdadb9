package feed

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// FileOptions configures a local blocklist file, such as the one named by
// SIKKER_CUSTOM_BLACKLIST.
type FileOptions struct {
	Name     string
	Path     string
	MaxBytes int64 // default DefaultMaxBodyBytes
	Limits   Limits
	Garbage  GarbagePolicy
	Now      func() time.Time
}

// FileFeed re-reads a local list on every fetch, so edits take effect at
// the next pull without a reload. An empty file (or one holding only
// comments) is a valid empty list: a custom blacklist is often empty on
// purpose. A missing or unreadable file is an error naming the path.
type FileFeed struct{ opt FileOptions }

// NewFile validates opt and returns the feed. The file need not exist yet.
func NewFile(opt FileOptions) (*FileFeed, error) {
	if err := ValidName(opt.Name); err != nil {
		return nil, err
	}
	if opt.Path == "" {
		return nil, fmt.Errorf("feed %s: empty file path", opt.Name)
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = DefaultMaxBodyBytes
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &FileFeed{opt: opt}, nil
}

// Name implements Source.
func (f *FileFeed) Name() string { return f.opt.Name }

// Fetch implements Source.
func (f *FileFeed) Fetch(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	snap, err := f.read()
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", f.opt.Name, err)
	}
	return snap, nil
}

func (f *FileFeed) read() (*Snapshot, error) {
	fh, err := os.Open(f.opt.Path)
	if err != nil {
		return nil, err // *PathError names the path
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", f.opt.Path)
	}
	if fi.Size() > f.opt.MaxBytes {
		return nil, fmt.Errorf("%s: file larger than %d bytes (%w)", f.opt.Path, f.opt.MaxBytes, ErrTooLarge)
	}
	lb := &limitedBody{r: fh, max: f.opt.MaxBytes}
	set, st, err := ipnet.Parse(bufio.NewReaderSize(lb, 64<<10), f.opt.Limits.parseOptions())
	if err != nil {
		if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrTooManyEntries) {
			return nil, fmt.Errorf("%s: %w", f.opt.Path, err)
		}
		return nil, fmt.Errorf("read %s: %w", f.opt.Path, err)
	}
	if err := f.opt.Garbage.check(st, true); err != nil {
		return nil, fmt.Errorf("%s: %w", f.opt.Path, err)
	}
	set.Merge()
	return &Snapshot{Name: f.opt.Name, Set: set, Stats: st, FetchedAt: f.opt.Now(), Origin: f.opt.Path}, nil
}

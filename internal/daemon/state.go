package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"

	"github.com/sikkerapi/sikkerguard/internal/statefile"
)

// runtimeWhitelistFile holds whitelist entries added at run time (D-Bus),
// which survive restarts.
const runtimeWhitelistFile = "whitelist.json"

// ensureStateDir creates the state directory, or checks the one that
// exists: everything in it is trusted (last good lists are enforced at
// start, the runtime whitelist opens the firewall), so a directory that
// another user could write is refused.
func ensureStateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return checkStateDir(dir, os.Geteuid(), log)
}

// checkStateDir refuses a state directory that is group or world writable,
// or owned by a user other than euid (or root). A symlink is followed to
// its target, which must pass the same test.
func checkStateDir(dir string, euid int, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		err := fmt.Errorf("state directory %s is writable by other users (mode %04o): fix it with chmod go-w %s", dir, fi.Mode().Perm(), dir)
		log.Error("state directory refused", "dir", dir, "err", err)
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != euid && st.Uid != 0 {
		err := fmt.Errorf("state directory %s is owned by uid %d, not by this process (uid %d) or root: fix it with chown", dir, st.Uid, euid)
		log.Error("state directory refused", "dir", dir, "err", err)
		return err
	}
	return nil
}

type runtimeWhitelist struct {
	Prefixes []netip.Prefix `json:"prefixes"`
}

// loadRuntimeWhitelist reads the runtime whitelist; a missing file is an
// empty list and a corrupt one is ignored with a warning, never a crash.
// Entries are held to the same rules as WhitelistAdd (masked, no wider
// than /8 or /32): a file edited by hand or by another program must not
// open more than the D-Bus call could.
func loadRuntimeWhitelist(dir string, log *slog.Logger) []netip.Prefix {
	var w runtimeWhitelist
	if !loadState(dir, runtimeWhitelistFile, "runtime whitelist", &w, log) {
		return nil
	}
	out := make([]netip.Prefix, 0, len(w.Prefixes))
	for _, p := range w.Prefixes {
		q, err := checkRuntimeEntry(p)
		if err != nil {
			log.Warn("runtime whitelist entry ignored", "file", runtimeWhitelistFile, "err", err)
			continue
		}
		out = append(out, q)
	}
	return out
}

// loadState reads the state file into v. A missing file is false without
// a word; a corrupt one is false with a warning naming what it held, so
// that a damaged file never stops the firewall from starting.
func loadState(dir, file, what string, v any, log *slog.Logger) bool {
	err := readJSONState(filepath.Join(dir, file), v)
	if errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if err != nil {
		log.Warn(what+" unreadable; ignored", "file", file, "err", err)
		return false
	}
	return true
}

// checkRuntimeEntry applies WhitelistAdd's rules to an entry and returns
// it masked, an IPv4-mapped IPv6 prefix as the IPv4 prefix it covers.
func checkRuntimeEntry(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return p, errors.New("invalid prefix")
	}
	q := p.Masked()
	if a := q.Addr(); a.Is4In6() {
		if q.Bits() < 96 {
			return p, fmt.Errorf("%s mixes IPv4-mapped and IPv6 space", p)
		}
		q = netip.PrefixFrom(a.Unmap(), q.Bits()-96)
	}
	if bits := minWhitelistBits(q); q.Bits() < bits {
		return p, fmt.Errorf("%s is wider than /%d; whitelist such ranges in the config file", p.Masked(), bits)
	}
	return q, nil
}

// readJSONState decodes one JSON value from a state file strictly: unknown
// fields and trailing data make it corrupt. A missing file satisfies
// errors.Is(err, fs.ErrNotExist).
func readJSONState(path string, v any) error {
	return statefile.Read(path, func(r io.Reader) error {
		dec := json.NewDecoder(r)
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return err
		}
		if dec.More() {
			return errors.New("trailing data")
		}
		return nil
	})
}

// saveRuntimeWhitelist writes the runtime whitelist atomically.
func saveRuntimeWhitelist(dir string, ps []netip.Prefix) error {
	return statefile.WriteAtomic(filepath.Join(dir, runtimeWhitelistFile), func(w io.Writer) error {
		return json.NewEncoder(w).Encode(runtimeWhitelist{Prefixes: ps})
	}, 0o640)
}

// sourcesFile records, per feed, the fingerprint of the settings its last
// good list was pulled with.
const sourcesFile = "sources.json"

type sourcesState struct {
	Feeds map[string]string `json:"feeds"`
}

// loadSources reads the fingerprints; a missing or corrupt file is empty,
// which only makes the next start pull.
func loadSources(dir string, log *slog.Logger) map[string]string {
	var st sourcesState
	if !loadState(dir, sourcesFile, "feed fingerprints", &st, log) || st.Feeds == nil {
		return map[string]string{}
	}
	return st.Feeds
}

func saveSources(dir string, m map[string]string) error {
	return statefile.WriteAtomic(filepath.Join(dir, sourcesFile), func(w io.Writer) error {
		return json.NewEncoder(w).Encode(sourcesState{Feeds: m})
	}, 0o640)
}

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

	"github.com/sikkerapi/sikkerguard/internal/statefile"
)

// runtimeWhitelistFile holds whitelist entries added at run time (D-Bus),
// which survive restarts.
const runtimeWhitelistFile = "whitelist.json"

func ensureStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return nil
}

type runtimeWhitelist struct {
	Prefixes []netip.Prefix `json:"prefixes"`
}

// loadRuntimeWhitelist reads the runtime whitelist; a missing file is an
// empty list and a corrupt one is ignored with a warning, never a crash.
func loadRuntimeWhitelist(dir string, log *slog.Logger) []netip.Prefix {
	var w runtimeWhitelist
	err := readJSONState(filepath.Join(dir, runtimeWhitelistFile), &w)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		log.Warn("runtime whitelist unreadable; ignored", "file", runtimeWhitelistFile, "err", err)
		return nil
	}
	out := w.Prefixes[:0]
	for _, p := range w.Prefixes {
		if p.IsValid() {
			out = append(out, p.Masked())
		}
	}
	return out
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

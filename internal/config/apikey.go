package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// CredentialName is the systemd credential (LoadCredential=) holding the key.
const CredentialName = "sikker-api-key"

// maxKeyFileSize bounds the read: a key is well under 100 bytes, so anything
// larger is the wrong file.
const maxKeyFileSize = 4096

// ErrNoAPIKey means no key is configured anywhere. The daemon can still block
// with extra feeds and its last good list, so callers may treat it as a
// warning.
var ErrNoAPIKey = errors.New("no SikkerAPI key configured")

const redacted = "[redacted]"

// Secret holds the API key. Every way of printing, logging or marshalling it
// shows "[redacted]"; only Reveal returns the key. The value sits behind a
// pointer so that even reflection-based printing of a struct holding a Secret
// in an unexported field shows an address, not the key.
type Secret struct{ v *string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: &s} }

// Reveal returns the key, for the Authorization header and nothing else.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether no key is held.
func (s Secret) IsZero() bool { return s.Reveal() == "" }

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer, for %#v.
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter so that no verb (%x, %d, %q…) bypasses String.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalText implements encoding.TextMarshaler, used by JSON and YAML.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// LoadAPIKey finds the SikkerAPI key. Precedence: the systemd credential
// sikker-api-key in credentialsDir ($CREDENTIALS_DIRECTORY, "" if unset), then
// SIKKER_API_KEY, then cfg.API.KeyFile. source says where the key came from,
// for logging. When none is present the error wraps ErrNoAPIKey. No error
// ever contains the key.
//
// The key file, when it exists, is checked whichever source wins: under
// LoadCredential= it is what systemd copied the credential from, and a copy
// on disk that others can read leaks the key as surely as the original.
func LoadAPIKey(cfg Config, env LookupFunc, credentialsDir string) (key Secret, source string, err error) {
	path := cfg.API.KeyFile
	// For a key taken from elsewhere the file need not be readable by the
	// daemon; its metadata is enough to tell whether others can read it.
	checkIdle := func() error {
		if path == "" {
			return nil
		}
		st, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("api key: %w", err)
		}
		return checkKeyFileInfo(path, st)
	}
	if credentialsDir != "" {
		cpath := filepath.Join(credentialsDir, CredentialName)
		// systemd controls access to credentials itself (a private,
		// read-only mount), so the mode and owner are not checked here.
		k, err := readKeyFile(cpath, false)
		switch {
		case err == nil:
			if err := checkIdle(); err != nil {
				return Secret{}, "", err
			}
			return k, "systemd credential " + CredentialName, nil
		case !errors.Is(err, fs.ErrNotExist):
			return Secret{}, "", err
		}
	}
	if env != nil {
		if v, ok := env(EnvAPIKey); ok && strings.TrimSpace(v) != "" {
			k, err := checkKey(v)
			if err != nil {
				return Secret{}, "", fmt.Errorf("%s: %w", EnvAPIKey, err)
			}
			if err := checkIdle(); err != nil {
				return Secret{}, "", err
			}
			return k, EnvAPIKey, nil
		}
	}
	if path == "" {
		return Secret{}, "", fmt.Errorf("%w: api.key_file is empty and neither the %s credential nor %s is set",
			ErrNoAPIKey, CredentialName, EnvAPIKey)
	}
	k, err := readKeyFile(path, true)
	if errors.Is(err, fs.ErrNotExist) {
		return Secret{}, "", fmt.Errorf("%w: %s does not exist and neither the %s credential nor %s is set",
			ErrNoAPIKey, path, CredentialName, EnvAPIKey)
	}
	if err != nil {
		return Secret{}, "", err
	}
	return k, "key file " + path, nil
}

// keyOwnerTrusted says whether a key file owned by uid may be used: root's,
// or that of the user the program runs as (root for the daemon), since the
// owner can change the file's mode and content. A variable so that tests,
// which may not run as root, can see a foreign owner refused.
var keyOwnerTrusted = func(uid uint32) bool { return uid == 0 || int64(uid) == int64(os.Geteuid()) }

// checkKeyFileInfo applies the rules for a key file to its metadata: a
// regular file, not a symbolic link (whoever can change the link's target
// chooses the key), owned by root, readable by its owner alone.
func checkKeyFileInfo(path string, st fs.FileInfo) error {
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		return symlinkError(path)
	case !st.Mode().IsRegular():
		return fmt.Errorf("api key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("api key file %s has mode %04o, open to group or others; run: chmod 600 %s", path, perm, path)
	}
	uid, ok := fileOwner(st)
	if !ok || !keyOwnerTrusted(uid) {
		owner := "an unknown user"
		if ok {
			owner = fmt.Sprintf("uid %d", uid)
		}
		return fmt.Errorf("api key file %s is owned by %s, not root; run: chown root:root %s", path, owner, path)
	}
	return nil
}

func symlinkError(path string) error {
	return fmt.Errorf("api key file %s is a symbolic link; point api.key_file (and LoadCredential=) at the file itself", path)
}

// readKeyFile reads a one-line key file. With checkFile it also applies
// checkKeyFileInfo, since the key grants the account's quota. A symbolic
// link is never followed.
func readKeyFile(path string, checkFile bool) (Secret, error) {
	f, err := openNoFollow(path)
	if isSymlinkErr(err) {
		return Secret{}, symlinkError(path)
	}
	if err != nil {
		return Secret{}, fmt.Errorf("api key: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the read one.
	st, err := f.Stat()
	if err != nil {
		return Secret{}, fmt.Errorf("api key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Secret{}, fmt.Errorf("api key file %s is not a regular file", path)
	}
	if checkFile {
		if err := checkKeyFileInfo(path, st); err != nil {
			return Secret{}, err
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return Secret{}, fmt.Errorf("api key: read %s: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return Secret{}, fmt.Errorf("api key file %s is larger than %d bytes; it must hold only the key", path, maxKeyFileSize)
	}
	k, err := checkKey(string(data))
	if err != nil {
		return Secret{}, fmt.Errorf("api key file %s: %w", path, err)
	}
	return k, nil
}

// checkKey trims the key and refuses anything that cannot be one; the key
// ends up in an HTTP header, where a stray newline would split the request.
func checkKey(s string) (Secret, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Secret{}, errors.New("is empty")
	case strings.ContainsAny(s, "\r\n"):
		return Secret{}, errors.New("has more than one line; it must hold only the key")
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return Secret{}, errors.New("contains a space, control or non-ASCII character")
		}
	}
	return NewSecret(s), nil
}

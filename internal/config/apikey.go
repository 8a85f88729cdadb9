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
func LoadAPIKey(cfg Config, env LookupFunc, credentialsDir string) (key Secret, source string, err error) {
	if credentialsDir != "" {
		path := filepath.Join(credentialsDir, CredentialName)
		// systemd controls access to credentials itself (a private,
		// read-only mount), so the file mode is not checked here.
		k, err := readKeyFile(path, false)
		switch {
		case err == nil:
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
			return k, EnvAPIKey, nil
		}
	}
	path := cfg.API.KeyFile
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

// readKeyFile reads a one-line key file. With checkMode it refuses a file that
// group or others can access, since the key grants the account's quota.
func readKeyFile(path string, checkMode bool) (Secret, error) {
	f, err := os.Open(path)
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
	if perm := st.Mode().Perm(); checkMode && perm&0o077 != 0 {
		return Secret{}, fmt.Errorf("api key file %s has mode %04o, open to group or others; run: chmod 600 %s", path, perm, path)
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

package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const testKey = "sk_free_0123456789abcdef"

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; set it exactly.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// credentials makes dir/creds a credentials directory holding the key
// sk_cred, as systemd would, and returns it.
func credentials(t *testing.T, dir string) string {
	t.Helper()
	credDir := filepath.Join(dir, "creds")
	if err := os.Mkdir(credDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(credDir, CredentialName), "sk_cred\n", 0o400)
	return credDir
}

func TestLoadAPIKeyPrecedence(t *testing.T) {
	dir := t.TempDir()
	credDir := credentials(t, dir)
	keyFile := filepath.Join(dir, "api.key")
	writeFile(t, keyFile, "sk_file\n", 0o600)
	cfg := Default()
	cfg.API.KeyFile = keyFile
	env := MapEnv(map[string]string{EnvAPIKey: "sk_env"})

	tests := []struct {
		name       string
		env        LookupFunc
		credDir    string
		wantKey    string
		wantSource string
	}{
		{"credential first", env, credDir, "sk_cred", "systemd credential sikker-api-key"},
		{"credential dir without the credential", env, dir, "sk_env", "SIKKER_API_KEY"},
		{"env before file", env, "", "sk_env", "SIKKER_API_KEY"},
		{"empty env ignored", MapEnv(map[string]string{EnvAPIKey: "  "}), "", "sk_file", "key file " + keyFile},
		{"file last", nil, "", "sk_file", "key file " + keyFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, src, err := LoadAPIKey(cfg, tt.env, tt.credDir)
			if err != nil {
				t.Fatalf("LoadAPIKey: %v", err)
			}
			if key.Reveal() != tt.wantKey || src != tt.wantSource {
				t.Errorf("got (%s, %q), want key %s from %q", key.Reveal(), src, tt.wantKey, tt.wantSource)
			}
		})
	}
}

func TestLoadAPIKeyFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string // key, or the error text with PATH for the file's path
	}{
		{"0600", testKey + "\n", 0o600, testKey},
		{"0400 with CRLF and spaces", "  " + testKey + " \r\n", 0o400, testKey},
		{"0640 refused", testKey, 0o640, "api key file PATH has mode 0640, open to group or others; run: chmod 600 PATH"},
		{"0644 refused", testKey, 0o644, "api key file PATH has mode 0644, open to group or others; run: chmod 600 PATH"},
		{"0604 refused", testKey, 0o604, "api key file PATH has mode 0604, open to group or others; run: chmod 600 PATH"},
		{"empty", "", 0o600, "api key file PATH: is empty"},
		{"only whitespace", " \n\n", 0o600, "api key file PATH: is empty"},
		{"two lines", testKey + "\nsk_other\n", 0o600, "api key file PATH: has more than one line; it must hold only the key"},
		{"inner space", "sk_free_01234 56789\n", 0o600, "api key file PATH: contains a space, control or non-ASCII character"},
		{"too large", strings.Repeat("k", maxKeyFileSize+1), 0o600, "api key file PATH is larger than 4096 bytes; it must hold only the key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "api.key")
			writeFile(t, path, tt.content, tt.mode)
			cfg := Default()
			cfg.API.KeyFile = path
			key, _, err := LoadAPIKey(cfg, nil, "")
			if tt.want == testKey {
				if err != nil || key.Reveal() != testKey {
					t.Fatalf("got (%s, %v), want the key", key.Reveal(), err)
				}
				return
			}
			want := strings.ReplaceAll(tt.want, "PATH", path)
			if err == nil || err.Error() != want {
				t.Fatalf("error\n got: %v\nwant: %s", err, want)
			}
			if errors.Is(err, ErrNoAPIKey) {
				t.Error("a bad key file must not look like a missing one")
			}
			if strings.Contains(err.Error(), "sk_") {
				t.Errorf("error leaks key material: %v", err)
			}
		})
	}
}

func TestLoadAPIKeyMissing(t *testing.T) {
	cfg := Default()
	cfg.API.KeyFile = filepath.Join(t.TempDir(), "api.key")
	_, _, err := LoadAPIKey(cfg, MapEnv(nil), t.TempDir())
	if !errors.Is(err, ErrNoAPIKey) {
		t.Fatalf("error = %v, want ErrNoAPIKey", err)
	}
	if !strings.Contains(err.Error(), cfg.API.KeyFile) {
		t.Errorf("error %q does not name the key file", err)
	}

	cfg.API.KeyFile = ""
	if _, _, err := LoadAPIKey(cfg, nil, ""); !errors.Is(err, ErrNoAPIKey) {
		t.Errorf("empty key_file: error = %v, want ErrNoAPIKey", err)
	}
}

func TestLoadAPIKeyOtherFailures(t *testing.T) {
	dir := t.TempDir()
	cfg := Default()
	cfg.API.KeyFile = dir
	if _, _, err := LoadAPIKey(cfg, nil, ""); err == nil || errors.Is(err, ErrNoAPIKey) ||
		err.Error() != "api key file "+dir+" is not a regular file" {
		t.Errorf("directory as key file: error = %v", err)
	}

	// A credential that exists but is broken is an error, not a fallthrough.
	writeFile(t, filepath.Join(dir, CredentialName), "", 0o400)
	if _, _, err := LoadAPIKey(cfg, MapEnv(map[string]string{EnvAPIKey: "sk_env"}), dir); err == nil ||
		!strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty credential: error = %v", err)
	}

	_, _, err := LoadAPIKey(cfg, MapEnv(map[string]string{EnvAPIKey: "sk_a\nsk_b"}), "")
	if err == nil || err.Error() != "SIKKER_API_KEY: has more than one line; it must hold only the key" {
		t.Errorf("two-line env key: error = %v", err)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	s := NewSecret(testKey)
	type holder struct {
		Key    Secret
		hidden Secret
		Ptr    *Secret
	}
	h := holder{Key: s, hidden: s, Ptr: &s}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outputs = append(outputs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	outputs = append(outputs, fmt.Sprint(s), fmt.Sprintln(h), s.String(), s.GoString())

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("key", "key", s, "holder", h)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("key", "key", s, "holder", h)
	outputs = append(outputs, text.String(), js.String())

	j, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(j), string(y))

	for _, out := range outputs {
		if strings.Contains(out, "0123456789abcdef") || strings.Contains(strings.ToLower(out), "736b5f") {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if got := fmt.Sprintf("%v", s); got != "[redacted]" {
		t.Errorf("%%v = %q, want [redacted]", got)
	}
	if !strings.Contains(text.String(), "key=[redacted]") || !strings.Contains(js.String(), `"key":"[redacted]"`) {
		t.Errorf("slog output does not show [redacted]:\n%s%s", text.String(), js.String())
	}
	if s.Reveal() != testKey || s.IsZero() || !(Secret{}).IsZero() {
		t.Error("Reveal/IsZero do not return the held key")
	}
}

// trustOwner makes keyOwnerTrusted answer trusted for the test's duration.
func trustOwner(t *testing.T, trusted func(uid uint32) bool) {
	t.Helper()
	old := keyOwnerTrusted
	keyOwnerTrusted = trusted
	t.Cleanup(func() { keyOwnerTrusted = old })
}

// The key file is checked even when the key comes from the systemd
// credential (systemd copied it from there) or from the environment.
func TestKeyFileCheckedWhateverTheSource(t *testing.T) {
	dir := t.TempDir()
	credDir := credentials(t, dir)
	keyFile := filepath.Join(dir, "api.key")
	cfg := Default()
	cfg.API.KeyFile = keyFile
	env := MapEnv(map[string]string{EnvAPIKey: "sk_env"})

	// No key file on disk: nothing to leak.
	for _, cd := range []string{credDir, ""} {
		if k, _, err := LoadAPIKey(cfg, env, cd); err != nil || k.IsZero() {
			t.Errorf("credentials %q without a key file: %v", cd, err)
		}
	}

	writeFile(t, keyFile, "sk_file\n", 0o644)
	want := "api key file " + keyFile + " has mode 0644, open to group or others; run: chmod 600 " + keyFile
	for name, cd := range map[string]string{"credential": credDir, "environment": ""} {
		if _, _, err := LoadAPIKey(cfg, env, cd); err == nil || err.Error() != want {
			t.Errorf("%s with a 0644 key file: error\n got: %v\nwant: %s", name, err, want)
		}
	}

	trustOwner(t, func(uint32) bool { return false })
	writeFile(t, keyFile, "sk_file\n", 0o600)
	if _, _, err := LoadAPIKey(cfg, env, credDir); err == nil || !strings.Contains(err.Error(), "not root; run: chown root:root "+keyFile) {
		t.Errorf("credential with a key file of another owner: %v", err)
	}
}

func TestKeyFileOwner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.key")
	writeFile(t, path, testKey, 0o600)
	cfg := Default()
	cfg.API.KeyFile = path
	var asked []uint32
	trustOwner(t, func(uid uint32) bool { asked = append(asked, uid); return false })
	_, _, err := LoadAPIKey(cfg, nil, "")
	want := fmt.Sprintf("api key file %s is owned by uid %d, not root; run: chown root:root %s", path, os.Getuid(), path)
	if err == nil || err.Error() != want {
		t.Errorf("error\n got: %v\nwant: %s", err, want)
	}
	if len(asked) != 1 || asked[0] != uint32(os.Getuid()) {
		t.Errorf("owner check saw %v, want the file's owner uid %d", asked, os.Getuid())
	}
}

// The real rule: root's file is trusted, another user's is not.
func TestKeyOwnerTrustedDefault(t *testing.T) {
	if !keyOwnerTrusted(0) {
		t.Error("a root-owned key file is refused")
	}
	other := uint32(65534)
	if other == uint32(os.Geteuid()) {
		other = 65533
	}
	if keyOwnerTrusted(other) {
		t.Errorf("a key file of uid %d is trusted", other)
	}
	if os.Geteuid() != 0 {
		return
	}
	// As root the check can be seen end to end on a file given away.
	path := filepath.Join(t.TempDir(), "api.key")
	writeFile(t, path, testKey, 0o600)
	if err := os.Chown(path, int(other), int(other)); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.API.KeyFile = path
	if _, _, err := LoadAPIKey(cfg, nil, ""); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("owned by uid %d, not root", other)) {
		t.Errorf("key file of uid %d: error = %v", other, err)
	}
}

// A symbolic link is refused, not followed: whoever can change its target
// chooses the key. That holds for the key file under the credential too, and
// for the credential itself.
func TestKeyFileSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.key")
	writeFile(t, real, testKey, 0o600)
	link := filepath.Join(dir, "api.key")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	cfg.API.KeyFile = link
	want := "api key file " + link + " is a symbolic link; point api.key_file (and LoadCredential=) at the file itself"
	if _, _, err := LoadAPIKey(cfg, nil, ""); err == nil || err.Error() != want {
		t.Errorf("error\n got: %v\nwant: %s", err, want)
	}

	credDir := credentials(t, dir)
	if _, _, err := LoadAPIKey(cfg, nil, credDir); err == nil || err.Error() != want {
		t.Errorf("under the credential: error\n got: %v\nwant: %s", err, want)
	}

	cfg.API.KeyFile = real
	cred := filepath.Join(credDir, CredentialName)
	if err := os.Remove(cred); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, cred); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadAPIKey(cfg, nil, credDir); err == nil || !strings.Contains(err.Error(), cred+" is a symbolic link") {
		t.Errorf("credential as a link: error = %v", err)
	}
}

// Package hub is sikkerguard's fleet mode over plain HTTP: a hub serves the
// blocklist its own decision accepted (GET /v1/blocklist, one feed's list
// under /v1/blocklist/FEED) and takes its hosts' drop events
// (POST /v1/reports), every request with a per-host bearer token; Sender is
// the host's side of the report stream.
//
// The hub adds no protocol of its own: the list is a plain-text file with a
// strong ETag, so any HTTP cache or CDN can carry it, and a host reads it as
// an ordinary URL feed that goes through every local check. A hub can
// therefore make a host block less or more, never block the host's own
// never-block list: that is subtracted on the host.
package hub

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/sikkerapi/sikkerguard/internal/config"
)

// Bounds of the tokens file.
const (
	MaxTokensFileBytes = 1 << 20
	MinTokenLen        = 16
	MaxTokenLen        = 256
)

var reHostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Tokens maps bearer tokens to host names. Only hashes are kept, and a
// lookup compares with every one in constant time, so neither timing nor a
// memory dump of the map gives a token away.
type Tokens struct {
	hosts []tokenEntry
}

type tokenEntry struct {
	name string
	hash [sha256.Size]byte
}

// Names lists the hosts in file order.
func (t *Tokens) Names() []string {
	if t == nil {
		return nil
	}
	out := make([]string, len(t.hosts))
	for i, h := range t.hosts {
		out[i] = h.name
	}
	return out
}

// Lookup returns the host whose token is tok.
func (t *Tokens) Lookup(tok string) (string, bool) {
	if t == nil || tok == "" {
		return "", false
	}
	h := sha256.Sum256([]byte(tok))
	found := -1
	for i := range t.hosts {
		// No early exit: every request costs the same whatever it holds.
		if subtle.ConstantTimeCompare(h[:], t.hosts[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return t.hosts[found].name, true
}

// ParseTokens reads "NAME TOKEN" lines; blank lines and # comments are
// skipped. Every bad line is reported with its number, never with its
// token.
func ParseTokens(r io.Reader) (*Tokens, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 4096)
	var (
		t     Tokens
		errs  []error
		names = map[string]int{}
		seen  = map[[sha256.Size]byte]int{}
		n     int
	)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			errs = append(errs, fmt.Errorf("line %d: want NAME TOKEN", n))
			continue
		}
		name, tok := fields[0], fields[1]
		if !reHostName.MatchString(name) {
			errs = append(errs, fmt.Errorf("line %d: host name %q must match [A-Za-z0-9][A-Za-z0-9._-]{0,63}", n, name))
			continue
		}
		if err := checkToken(tok); err != nil {
			errs = append(errs, fmt.Errorf("line %d (%s): token %w", n, name, err))
			continue
		}
		if j, dup := names[name]; dup {
			errs = append(errs, fmt.Errorf("line %d: host %s is already on line %d", n, name, j))
			continue
		}
		h := sha256.Sum256([]byte(tok))
		if j, dup := seen[h]; dup {
			errs = append(errs, fmt.Errorf("line %d (%s): the token of line %d again; every host needs its own, so that one can be revoked", n, name, j))
			continue
		}
		names[name], seen[h] = n, n
		t.hosts = append(t.hosts, tokenEntry{name: name, hash: h})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("line %d: %w", n+1, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &t, nil
}

func checkToken(tok string) error {
	if len(tok) < MinTokenLen || len(tok) > MaxTokenLen {
		return fmt.Errorf("must be %d to %d characters (e.g. openssl rand -hex 32)", MinTokenLen, MaxTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] >= 0x7f {
			return errors.New("contains a control or non-ASCII character")
		}
	}
	return nil
}

// LoadTokens reads the tokens file under the API key file's rules
// (root-owned, mode 0600, no symbolic link).
func LoadTokens(path string) (*Tokens, error) {
	data, err := config.ReadSecretFile("hub tokens file", path, MaxTokensFileBytes)
	if err != nil {
		return nil, err
	}
	t, err := ParseTokens(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("hub tokens file %s: %w", path, err)
	}
	return t, nil
}

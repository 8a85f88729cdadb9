package sikkerapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

var (
	// ErrKeyRejected is wrapped by errors for a 401 answer.
	ErrKeyRejected = errors.New("api key rejected (401): check api.key_file, the sikker-api-key credential or SIKKER_API_KEY")
	// ErrKeyDisabled is wrapped by errors for a 403 answer.
	ErrKeyDisabled = errors.New("api key disabled or expired (403): renew it in the SikkerAPI dashboard")
	// ErrRedirectRefused is wrapped by the error of a request whose answer
	// redirected to another scheme, host or port.
	ErrRedirectRefused = errors.New("redirect refused")
)

// StatusError is a non-2xx HTTP answer not covered by a more specific error.
type StatusError struct {
	Status  int
	Message string // the body's "error" field or a short prefix of the body
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("http %d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// retryableError marks failures worth retrying before the next interval.
type retryableError struct{ err error }

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// Retryable reports whether err is transient (5xx, timeout, network
// failure, truncated transfer) so that an early retry may succeed. Quota,
// key and client errors are not retryable.
func Retryable(err error) bool {
	var re *retryableError
	return errors.As(err, &re)
}

// MarkRetryable wraps err so that Retryable reports true for it.
func MarkRetryable(err error) error { return &retryableError{err} }

// ErrorMessage extracts a short, printable message from an error body: the
// "error" (or "message") field of a JSON object, else the text itself. The
// body is hostile: the result is at most 200 runes on one line, with
// control characters and invalid UTF-8 replaced.
func ErrorMessage(body []byte) string {
	var obj struct {
		Error   any `json:"error"`
		Message any `json:"message"`
	}
	if err := json.Unmarshal(body, &obj); err == nil {
		if m, ok := obj.Error.(map[string]any); ok {
			obj.Error = m["message"]
		}
		for _, v := range []any{obj.Error, obj.Message} {
			if s, ok := v.(string); ok && strings.TrimSpace(s) != "" {
				return Printable(s, 200)
			}
		}
	}
	return Printable(string(body), 200)
}

// Printable shortens s to at most n runes of printable text on one line,
// so that text from outside is safe to put in a log record or an error.
func Printable(s string, n int) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	count := 0
	for _, r := range s {
		if count == n {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			r = ' '
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}

// scrubbedError carries a message with secrets removed, keeping the chain
// for errors.Is and errors.As.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// replaceAll returns err with every secret in its text replaced by with; err
// itself when its text holds none.
func replaceAll(err error, with string, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	out := msg
	for _, s := range secrets {
		if s != "" {
			out = strings.ReplaceAll(out, s, with)
		}
	}
	if out == msg {
		return err
	}
	return &scrubbedError{msg: out, err: err}
}

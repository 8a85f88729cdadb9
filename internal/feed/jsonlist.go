package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

const maxSamples = 5

// maxJSONValue bounds one value of a JSON list. json.Decoder holds a whole
// value in memory before decoding it, so without a bound a single row of
// 256 MiB would be buffered at once; a real row is well under 1 KiB.
const maxJSONValue = 64 << 10

// valueWindow fails a read once the decoder has buffered more than max
// bytes past the end of the last value it finished.
type valueWindow struct {
	r          io.Reader
	read, mark int64
	max        int64
}

func (w *valueWindow) Read(p []byte) (int, error) {
	if w.read-w.mark > w.max {
		return 0, fmt.Errorf("%w: a json value longer than %d bytes", ErrGarbage, w.max)
	}
	n, err := w.r.Read(p)
	w.read += int64(n)
	return n, err
}

type jsonResult struct {
	set       ipnet.Set // unmerged
	stats     ipnet.ParseStats
	entries   []Entry
	seen      *SeenSummary // nil unless asked for
	metaCount int          // -1 when meta.count is absent

	lim Limits
	win *valueWindow
	dec *json.Decoder
}

// done marks the end of a value, so that the next one gets a full window.
func (res *jsonResult) done() { res.win.mark = res.dec.InputOffset() }

// parseJSONList decodes a SikkerAPI JSON blacklist element by element, so
// a large answer never exists as one big slice of structs. The document
// must be complete: a body that ends before the closing brackets is
// ErrTruncated. A bare top-level array of entries is accepted as well.
//
// Memory is bounded by lim.MaxEntries (the parse stops with
// ErrTooManyEntries one entry later) and by maxJSONValue per value. With
// keep, every entry's details are kept; seen, when not nil, summarises the
// lastSeen of the entries in the list in a fixed size instead.
func parseJSONList(r io.Reader, keep bool, lim Limits, seen *SeenSummary) (*jsonResult, error) {
	win := &valueWindow{r: r, max: maxJSONValue}
	dec := json.NewDecoder(win)
	res := &jsonResult{metaCount: -1, lim: lim, win: win, dec: dec, seen: seen}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, ErrEmpty
		}
		return nil, jsonError(err)
	}
	switch tok {
	case json.Delim('['):
		if err := res.decodeData(dec, keep); err != nil {
			return nil, err
		}
	case json.Delim('{'):
		sawData := false
		for dec.More() {
			res.done()
			key, err := dec.Token()
			if err != nil {
				return nil, jsonError(err)
			}
			switch key {
			case "data":
				tok, err := dec.Token()
				if err != nil {
					return nil, jsonError(err)
				}
				if tok != json.Delim('[') {
					return nil, fmt.Errorf("%w: \"data\" is not an array", ErrGarbage)
				}
				if err := res.decodeData(dec, keep); err != nil {
					return nil, err
				}
				sawData = true
			case "meta":
				var meta struct {
					Count *int `json:"count"`
				}
				// meta is only a hint: one of another shape is skipped.
				var te *json.UnmarshalTypeError
				if err := dec.Decode(&meta); err != nil && !errors.As(err, &te) {
					return nil, jsonError(err)
				}
				if meta.Count != nil {
					res.metaCount = *meta.Count
				}
			default:
				var skip json.RawMessage
				if err := dec.Decode(&skip); err != nil {
					return nil, jsonError(err)
				}
			}
		}
		if _, err := dec.Token(); err != nil { // the closing brace
			return nil, jsonError(err)
		}
		if !sawData {
			return nil, fmt.Errorf("%w: json without a \"data\" array", ErrGarbage)
		}
	default:
		return nil, fmt.Errorf("%w: json is neither an object nor an array", ErrGarbage)
	}
	// Anything after the document means it was not what we think it is.
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, fmt.Errorf("%w: data after the json document", ErrGarbage)
		}
		return nil, jsonError(err)
	}
	return res, nil
}

// decodeData reads array elements up to and including the closing bracket.
// Each element is decoded straight into a jsonEntry: the decoder scans the
// whole element before filling the struct, so an element of the wrong shape
// is a malformed row and the stream stays in step.
func (res *jsonResult) decodeData(dec *json.Decoder, keep bool) error {
	var slim struct {
		IP       json.RawMessage `json:"ip"`
		LastSeen json.RawMessage `json:"lastSeen"`
	}
	for dec.More() {
		res.done()
		var je jsonEntry
		var err error
		if keep {
			row := new(jsonEntry) // je stays on the stack when not kept
			err = dec.Decode(row)
			je = *row
		} else {
			// Only what the list and the summary need, into buffers that
			// the next row reuses: a row costs the address string alone.
			slim.IP, slim.LastSeen = slim.IP[:0], slim.LastSeen[:0]
			err = dec.Decode(&slim)
		}
		if err != nil && !errors.As(err, new(*json.UnmarshalTypeError)) {
			return jsonError(err)
		}
		if err == nil && !keep {
			je.LastSeen = slim.LastSeen
			if je.IP, err = jsonString(slim.IP); err != nil {
				err = fmt.Errorf("ip %s is not a string", clip(string(slim.IP), 60))
			}
		}
		res.stats.Lines++
		var e Entry
		if err == nil {
			e, err = je.entry(res.lim.mode(), keep)
		}
		if err != nil {
			res.stats.Malformed++
			if len(res.stats.Samples) < maxSamples {
				res.stats.Samples = append(res.stats.Samples, ipnet.Malformed{Line: res.stats.Lines, Text: clip(err.Error(), 120)})
			}
			continue
		}
		if max := res.lim.MaxEntries; max > 0 && res.stats.Entries == max {
			return fmt.Errorf("%w (%d) at row %d", ErrTooManyEntries, max, res.stats.Lines)
		}
		res.stats.Entries++
		if e.Prefix.IsSingleIP() {
			res.set.AddAddr(e.Prefix.Addr())
		} else {
			res.set.AddPrefix(e.Prefix)
		}
		if keep {
			res.entries = append(res.entries, e)
		}
		if res.seen != nil {
			res.seen.add(je.LastSeen)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return jsonError(err)
	}
	return nil
}

// jsonError turns a decoder failure into ErrTruncated when the input simply
// stopped, and keeps read errors (size limit, cut connection) as they are.
func jsonError(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrTruncated):
		return err
	case err == io.EOF, errors.Is(err, io.ErrUnexpectedEOF):
		return retryable(fmt.Errorf("%w: json document not closed", ErrTruncated))
	case errors.As(err, &syn):
		return fmt.Errorf("%w: invalid json at byte %d: %w", ErrGarbage, syn.Offset, err)
	case errors.As(err, new(*json.UnmarshalTypeError)):
		return fmt.Errorf("%w: %w", ErrGarbage, err)
	}
	return err
}

// jsonEntry mirrors one data row; flexible types absorb the undocumented
// variations (numbers as strings, "AS" prefixes, protocol lists as text).
type jsonEntry struct {
	IP          string          `json:"ip"`
	Confidence  json.RawMessage `json:"confidenceLevel"`
	Score       json.RawMessage `json:"score"`
	LastSeen    json.RawMessage `json:"lastSeen"`
	Sessions    json.RawMessage `json:"sessions"`
	Protocols   json.RawMessage `json:"protocols"`
	CountryCode json.RawMessage `json:"countryCode"`
	ASN         json.RawMessage `json:"asn"`
	ASNOrg      json.RawMessage `json:"asnOrg"`
}

// entry reads the row's address; with details also the rest of it.
func (je *jsonEntry) entry(mode ipnet.Mode, details bool) (Entry, error) {
	p, err := ipnet.ParsePrefix(je.IP, mode)
	if err != nil {
		var ee *ipnet.EntryError
		if errors.As(err, &ee) {
			return Entry{}, fmt.Errorf("ip %q %s", clip(je.IP, 60), ee.Why)
		}
		return Entry{}, fmt.Errorf("ip %q: not an address or prefix", clip(je.IP, 60))
	}
	if !details {
		return Entry{Prefix: p}, nil
	}
	// Details of an odd type are left empty: only the address decides
	// whether a row is in the list.
	e := Entry{Prefix: p, CountryCode: flexString(je.CountryCode), ASNOrg: flexString(je.ASNOrg)}
	conf := je.Confidence
	if len(conf) == 0 {
		conf = je.Score
	}
	e.Confidence = int(flexInt(conf))
	e.Sessions = int(flexInt(je.Sessions))
	e.LastSeen, _ = seenTime(je.LastSeen)
	e.Protocols = flexStrings(je.Protocols)
	if n, ok := parseASN(flexString(je.ASN)); ok {
		e.ASN = n
	}
	return e, nil
}

// jsonString returns the value of a JSON string; an absent field is "".
func jsonString(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return "", nil
	case raw[0] != '"':
		return "", errors.New("not a string")
	case bytes.IndexByte(raw, '\\') < 0 && len(raw) >= 2:
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// flexString returns a JSON string's value or a number's text.
func flexString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) >= 2 && raw[0] == '"' {
		// Fast path: a string without escapes needs no decoder.
		if bytes.IndexByte(raw, '\\') < 0 {
			return string(raw[1 : len(raw)-1])
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	}
	if len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return string(raw)
	}
	return ""
}

func flexInt(raw json.RawMessage) int64 {
	f, err := strconv.ParseFloat(strings.TrimSpace(flexString(raw)), 64)
	if err != nil {
		return 0
	}
	return int64(f)
}

func flexStrings(raw json.RawMessage) []string {
	var list []string
	if raw = bytes.TrimSpace(raw); len(raw) > 0 && raw[0] == '[' {
		if json.Unmarshal(raw, &list) == nil {
			return list
		}
		return nil
	}
	if s := flexString(raw); s != "" {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				list = append(list, p)
			}
		}
	}
	return list
}

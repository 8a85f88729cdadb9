package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// LookupFunc returns the value of an environment variable and whether it is
// set; os.LookupEnv fits.
type LookupFunc func(string) (string, bool)

// MapEnv turns a map into a LookupFunc, for tests and callers that build
// their own environment.
func MapEnv(m map[string]string) LookupFunc {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// Load reads the config file at path and returns the effective configuration:
// file over defaults, environment over file, then validated and normalised.
// A missing file is an error unless pathIsDefault is set, in which case the
// built-in defaults plus the environment apply. env may be nil.
//
// Problems with the content come back as a *ValidationError listing all of
// them, each naming the file, line and field path (or the variable) where
// known. On any error the returned Config is the zero value.
func Load(path string, pathIsDefault bool, env LookupFunc) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && pathIsDefault {
			return Parse(nil, path, env)
		}
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path, env)
}

// Parse is Load without the file system: data is the file's content (nil or
// empty means defaults) and name is used in error messages.
func Parse(data []byte, name string, env LookupFunc) (Config, error) {
	cfg := Default()
	var probs problems
	idx := newIndex()

	if fe, bad := checkText(data); bad {
		fe.File = name
		return Config{}, &ValidationError{Errors: []FieldError{fe}}
	}
	if doc, fe := parseSingleDocument(data); fe != nil {
		fe.File = name
		return Config{}, &ValidationError{Errors: []FieldError{*fe}}
	} else if doc != nil {
		idx.walk(doc, "")
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			probs = append(probs, idx.decodeErrors(err)...)
		}
	}

	cfg.Firewall.Backend = strings.ToLower(strings.TrimSpace(cfg.Firewall.Backend))
	if _, set := idx.byPath["firewall.hooks"]; !set {
		cfg.Firewall.Hooks = DefaultHooks(cfg.Firewall.Backend)
	}
	probs = append(probs, applyEnv(&cfg, env)...)
	for i := range cfg.Feeds {
		if cfg.Feeds[i].Interval == 0 {
			cfg.Feeds[i].Interval = DefaultFeedInterval
		}
	}
	probs = append(probs, dropShifted(cfg.validate(), probs)...)

	if len(probs) > 0 {
		for i := range probs {
			if strings.HasPrefix(probs[i].Field, "SIKKER_") {
				continue // the environment, not the file
			}
			probs[i].File = name
			if probs[i].Line == 0 {
				probs[i].Line = idx.lineOf(probs[i].Field)
			}
		}
		// File problems in line order, then those that have no line.
		slices.SortStableFunc(probs, func(a, b FieldError) int {
			return cmp.Compare(lineKey(a.Line), lineKey(b.Line))
		})
		return Config{}, probs.err()
	}
	return cfg, nil
}

// dropShifted removes validation problems inside a list that failed to
// decode: yaml.v3 leaves a bad entry out, so later indexes would point at the
// wrong entries of the file.
func dropShifted(valid, decoded problems) problems {
	var lists []string
	for _, fe := range decoded {
		if i := strings.LastIndex(fe.Field, "["); i > 0 {
			lists = append(lists, fe.Field[:i+1])
		}
	}
	return slices.DeleteFunc(valid, func(fe FieldError) bool {
		return slices.ContainsFunc(lists, func(l string) bool { return strings.HasPrefix(fe.Field, l) })
	})
}

func lineKey(l int) int {
	if l == 0 {
		return math.MaxInt
	}
	return l
}

// checkText refuses what yaml.v3 would report without a line number.
func checkText(data []byte) (FieldError, bool) {
	if utf8.Valid(data) {
		return FieldError{}, false
	}
	line := 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			break
		}
		if r == '\n' {
			line++
		}
		data = data[size:]
	}
	return FieldError{Line: line, Msg: "not valid UTF-8; the config must be UTF-8 text"}, true
}

var (
	reYAMLLine  = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	reErrLine   = regexp.MustCompile(`^line (\d+): (?:column (\d+): )?(.*)$`)
	reUnknown   = regexp.MustCompile(`^field (.+) not found in type `)
	reDupField  = regexp.MustCompile(`^field (.+) already set in type `)
	reDupKey    = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	reCannotUse = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")
)

// parseSingleDocument parses data into a node tree, refusing syntax errors and
// a second document. It returns nil for a file with no document at all
// (empty, or only comments).
func parseSingleDocument(data []byte) (*yaml.Node, *FieldError) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		fe := syntaxError(err, data)
		return nil, &fe
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
		return &doc, nil
	case err != nil:
		fe := syntaxError(err, data)
		return nil, &fe
	default:
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		// Decoding only the first document would silently ignore the rest.
		return nil, &FieldError{Line: line, Msg: "a second YAML document starts here; the config must be a single document (remove the extra ---)"}
	}
}

// syntaxError turns a yaml.v3 parse error into a FieldError naming the
// offending line and quoting its text. yaml.v3 reports the line where the
// enclosing block started (counted from 0), which may be a comment far above
// the mistake, so the line is found again as the first one whose inclusion
// makes the document fail with the same message. Tabs in indentation get
// their own message: yaml's is cryptic and sometimes points at a later line.
func syntaxError(err error, data []byte) FieldError {
	fe := FieldError{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := reYAMLLine.FindStringSubmatch(err.Error()); m != nil {
		fe.Line, _ = strconv.Atoi(m[1])
		fe.Msg = m[2]
	}
	lines := strings.SplitAfter(string(data), "\n")
	if l := offendingLine(lines, fe.Msg); l > 0 {
		fe.Line = l
	}
	for i, line := range lines {
		if fe.Line > 0 && i+1 > fe.Line {
			break
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		if strings.Contains(indent, "\t") && strings.TrimSpace(line) != "" {
			return FieldError{Line: i + 1, Field: quoteLine(line), Msg: "tab character in indentation; YAML indents with spaces only"}
		}
	}
	if indentationHint[fe.Msg] {
		fe.Msg += "; check the indentation of this line and the one above"
	}
	if fe.Line > 0 && fe.Line <= len(lines) {
		fe.Field = quoteLine(lines[fe.Line-1])
	}
	return fe
}

// indentationHint lists yaml.v3 messages that mostly mean a key indented
// deeper or shallower than its siblings.
var indentationHint = map[string]bool{
	"did not find expected key":                      true,
	"mapping values are not allowed in this context": true,
	"did not find expected '-' indicator":            true,
}

// maxSearchLines bounds the quadratic search for the offending line; a
// config is a few hundred lines.
const maxSearchLines = 5000

// offendingLine returns the 1-based number of the first line whose
// inclusion makes lines fail to parse with msg, or 0 when none does (the
// error then depends on what follows, as with a second document).
func offendingLine(lines []string, msg string) int {
	if len(lines) > maxSearchLines {
		return 0
	}
	var prefix strings.Builder
	for i, l := range lines {
		prefix.WriteString(l)
		var n yaml.Node
		err := yaml.Unmarshal([]byte(prefix.String()), &n)
		if err == nil {
			continue
		}
		got := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := reYAMLLine.FindStringSubmatch(err.Error()); m != nil {
			got = m[2]
		}
		if got == msg {
			return i + 1
		}
	}
	return 0
}

// quoteLine shows a line of the file as it is, indentation included.
func quoteLine(line string) string {
	const max = 120
	line = strings.TrimRight(line, "\r\n")
	if len(line) > max {
		line = line[:max] + "…"
	}
	return strconv.Quote(line)
}

type position struct{ line, col int }

// index maps the field paths of a parsed file to lines and back, so that
// decoding and validation problems can name both.
type index struct {
	byPath map[string]int      // field path → line of its key or item
	byPos  map[position]string // position of a value node → field path
	byLine map[int][]string    // line → field paths starting there, outermost first
	scalar map[string]string   // field path → scalar value
}

func newIndex() *index {
	return &index{byPath: map[string]int{}, byPos: map[position]string{}, byLine: map[int][]string{}, scalar: map[string]string{}}
}

func (x *index) note(path string, line int, value *yaml.Node) {
	if _, dup := x.byPath[path]; !dup {
		x.byPath[path] = line
	}
	x.byLine[line] = append(x.byLine[line], path)
	if value.Kind == yaml.ScalarNode {
		x.scalar[path] = value.Value
	}
	p := position{value.Line, value.Column}
	if _, taken := x.byPos[p]; !taken {
		x.byPos[p] = path
	}
}

func (x *index) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			x.walk(c, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			x.note(p, k.Line, v)
			x.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			x.note(p, item.Line, item)
			x.walk(item, p)
		}
	}
}

// lineOf returns the line of path, or of its nearest parent in the file.
func (x *index) lineOf(path string) int {
	for path != "" {
		if l, ok := x.byPath[path]; ok {
			return l
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut < 0 {
			break
		}
		path = path[:cut]
	}
	return 0
}

// decodeErrors converts the errors of the strict decode into FieldErrors with
// field paths and plainer wording.
func (x *index) decodeErrors(err error) []FieldError {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		fe := FieldError{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
		if m := reYAMLLine.FindStringSubmatch(err.Error()); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Msg = m[2]
		}
		return []FieldError{fe}
	}
	out := make([]FieldError, 0, len(te.Errors))
	for _, s := range te.Errors {
		m := reErrLine.FindStringSubmatch(s)
		if m == nil {
			out = append(out, FieldError{Msg: s})
			continue
		}
		fe := FieldError{Msg: m[3]}
		fe.Line, _ = strconv.Atoi(m[1])
		if m[2] != "" {
			col, _ := strconv.Atoi(m[2])
			fe.Field = x.byPos[position{fe.Line, col}]
		} else if paths := x.byLine[fe.Line]; len(paths) > 0 {
			fe.Field = paths[0]
		}
		switch {
		case reUnknown.MatchString(fe.Msg):
			key := reUnknown.FindStringSubmatch(fe.Msg)[1]
			fe.Field = x.pathEndingIn(fe.Line, key)
			fe.Msg = "unknown key"
			if known := knownKeys(parentPath(fe.Field)); len(known) > 0 {
				fe.Msg += " (valid keys here: " + strings.Join(known, ", ") + ")"
			}
		case reDupField.MatchString(fe.Msg):
			key := reDupField.FindStringSubmatch(fe.Msg)[1]
			fe.Field = x.pathEndingIn(fe.Line, key)
			fe.Msg = "key is set twice"
		case reDupKey.MatchString(fe.Msg):
			mm := reDupKey.FindStringSubmatch(fe.Msg)
			fe.Field = x.pathEndingIn(fe.Line, mm[1])
			fe.Msg = "key is set twice (first at line " + mm[2] + ")"
		case reCannotUse.MatchString(fe.Msg):
			mm := reCannotUse.FindStringSubmatch(fe.Msg)
			if mm[3] == "config.Config" {
				fe.Field = "" // the document itself
			} else if mm[2] != "" {
				fe.Field = x.pathWithValue(fe.Line, mm[2], fe.Field)
			}
			fe.Msg = typeMismatch(mm[1], mm[2], mm[3])
		}
		out = append(out, fe)
	}
	return out
}

// pathEndingIn finds the path of key on line; yaml.v3 names only the key.
func (x *index) pathEndingIn(line int, key string) string {
	for _, p := range x.byLine[line] {
		if p == key || strings.HasSuffix(p, "."+key) {
			return p
		}
	}
	return key
}

// pathWithValue finds the field on line holding value, which tells apart the
// entries of a flow collection such as [80, 70000]; yaml.v3 gives only the line.
func (x *index) pathWithValue(line int, value, fallback string) string {
	for _, p := range x.byLine[line] {
		if x.scalar[p] == value {
			return p
		}
	}
	return fallback
}

func parentPath(p string) string {
	if i := strings.LastIndex(p, "."); i >= 0 {
		return p[:i]
	}
	return ""
}

var typeWords = map[string]string{
	"int":           "a whole number",
	"uint16":        "a port number 1..65535",
	"float64":       "a number",
	"bool":          "true or false",
	"string":        "a string",
	"time.Duration": "a duration such as 90m or 24h",
	"[]string":      "a list of strings",
	"[]uint16":      "a list of port numbers",
	"[]config.Feed": "a list of feeds",
}

var tagWords = map[string]string{"seq": "a list", "map": "a mapping", "null": "an empty value"}

// typeMismatch rewords yaml.v3's "cannot unmarshal !!str `x` into int".
func typeMismatch(tag, value, goType string) string {
	want, ok := typeWords[goType]
	if !ok {
		want = "a mapping of keys"
		if strings.HasPrefix(goType, "map[") {
			want = "a mapping"
		}
	}
	if value != "" {
		return fmt.Sprintf("%q is not %s", value, want)
	}
	got, ok := tagWords[tag]
	if !ok {
		got = "!!" + tag
	}
	return fmt.Sprintf("%s is not %s", got, want)
}

// knownKeys lists the YAML keys valid under parent ("" = top level, "api",
// "feeds[0]"), found from the struct tags so the list cannot go stale.
func knownKeys(parent string) []string {
	t := reflect.TypeOf(Config{})
	if parent != "" {
		for _, seg := range strings.Split(parent, ".") {
			seg, _, _ = strings.Cut(seg, "[")
			f, ok := fieldByKey(t, seg)
			if !ok {
				return nil
			}
			t = f.Type
			for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() != reflect.Struct {
				return nil
			}
		}
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		if k := yamlKey(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if yamlKey(t.Field(i)) == key {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

func yamlKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if k == "-" || !f.IsExported() {
		return ""
	}
	return k
}

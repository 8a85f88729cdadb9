package mock

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

// Limits of the report endpoints as documented.
const (
	MaxBulkRows     = 10000
	MaxCSVBytes     = 2 << 20
	MaxProtocolLen  = 32
	MaxCommentLen   = 1000
	maxBulkJSONBody = 32 << 20
)

// Categories are the report categories by id (1-based).
var Categories = []string{"brute_force", "port_scan", "ddos", "web_exploit", "sql_injection",
	"phishing", "spam", "bad_bot", "exploited_host", "malware", "dns_abuse", "open_proxy",
	"iot_targeted", "spoofing", "fraud", "other"}

// Report is one accepted report.
type Report struct {
	IP       netip.Addr `json:"ip"`
	Category string     `json:"category"` // always the name, also when sent as a number
	Protocol string     `json:"protocol,omitempty"`
	Comment  string     `json:"comment,omitempty"`
	Received time.Time  `json:"received"`
	Bulk     bool       `json:"bulk"`
}

// Reports returns the accepted reports so far, in arrival order.
func (s *Server) Reports() []Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reports)
}

// ClearReports forgets the accepted reports.
func (s *Server) ClearReports() {
	s.mu.Lock()
	s.reports = nil
	s.mu.Unlock()
}

// documentation are the ranges network-namespace labs use for addresses.
var documentation = ipnet.FromPrefixes(netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::/32"))

// wireReport is one row as sent; category may be a name or a number.
type wireReport struct {
	IP       string          `json:"ip"`
	Category json.RawMessage `json:"category"`
	Protocol string          `json:"protocol"`
	Comment  string          `json:"comment"`
	invalid  error           // the row could not be decoded
}

// validate checks one row as the API documents it.
func (wr wireReport) validate(lab bool) (Report, error) {
	if wr.invalid != nil {
		return Report{}, wr.invalid
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(wr.IP))
	switch {
	case wr.IP == "":
		return Report{}, errors.New("ip is required")
	case err != nil || ip.Zone() != "":
		return Report{}, fmt.Errorf("invalid ip address %q", wr.IP)
	}
	ip = ip.Unmap()
	if !ipnet.IsGlobal(ip) && !(lab && documentation.Contains(ip)) {
		return Report{}, fmt.Errorf("ip %s is not a public address", ip)
	}
	cat, err := category(wr.Category)
	if err != nil {
		return Report{}, err
	}
	if n := utf8.RuneCountInString(wr.Protocol); n > MaxProtocolLen {
		return Report{}, fmt.Errorf("protocol longer than %d characters", MaxProtocolLen)
	}
	if n := utf8.RuneCountInString(wr.Comment); n > MaxCommentLen {
		return Report{}, fmt.Errorf("comment longer than %d characters", MaxCommentLen)
	}
	return Report{IP: ip, Category: cat, Protocol: wr.Protocol, Comment: wr.Comment}, nil
}

func category(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", errors.New("category is required")
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		return categoryText(name)
	}
	var n int
	if json.Unmarshal(raw, &n) == nil {
		if n < 1 || n > len(Categories) {
			return "", fmt.Errorf("category %d out of range 1..%d", n, len(Categories))
		}
		return Categories[n-1], nil
	}
	return "", fmt.Errorf("invalid category %s", raw)
}

func categoryText(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("category is required")
	}
	if n, err := strconv.Atoi(s); err == nil {
		return category(json.RawMessage(strconv.Itoa(n)))
	}
	if slices.Contains(Categories, strings.ToLower(s)) {
		return strings.ToLower(s), nil
	}
	return "", fmt.Errorf("unknown category %q", s)
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	var wr wireReport
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&wr); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	rep, err := wr.validate(s.opt.LabAddresses)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := s.opt.Now()
	s.mu.Lock()
	s.rollDay(now)
	if q := s.opt.ReportQuota; q >= 0 && s.usedRep >= q {
		s.quotaHeaders(w, q, s.usedRep, now, true)
		s.mu.Unlock()
		quotaExceeded(w, now, "report")
		return
	}
	rep.Received = now
	s.reports = append(s.reports, rep)
	s.usedRep++
	s.quotaHeaders(w, s.opt.ReportQuota, s.usedRep, now, true)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "ip": rep.IP.String(), "category": rep.Category})
}

// BulkResult is the bulk-report answer.
type BulkResult struct {
	Total    int        `json:"total"`
	Accepted int        `json:"accepted"`
	Rejected int        `json:"rejected"`
	Errors   []RowError `json:"errors"`
}

// RowError names one rejected row.
type RowError struct {
	Row   int    `json:"row"`
	IP    string `json:"ip"`
	Error string `json:"error"`
}

func (s *Server) handleBulkReport(w http.ResponseWriter, r *http.Request) {
	var rows []wireReport
	var err error
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		rows, err = readCSVRows(r)
	} else {
		rows, err = readJSONRows(r)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(rows) == 0 {
		writeError(w, http.StatusBadRequest, "no reports in request")
		return
	}
	if len(rows) > MaxBulkRows {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("too many reports: %d, at most %d per request", len(rows), MaxBulkRows))
		return
	}
	now := s.opt.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollDay(now)
	quota := s.opt.ReportQuota
	if quota >= 0 && s.usedRep >= quota {
		s.quotaHeaders(w, quota, s.usedRep, now, true)
		quotaExceeded(w, now, "report")
		return
	}
	res := BulkResult{Total: len(rows), Errors: []RowError{}}
	base := 0
	if s.opt.OneBasedRows {
		base = 1
	}
	for i, wr := range rows {
		rep, err := wr.validate(s.opt.LabAddresses)
		if err == nil && quota >= 0 && s.usedRep >= quota {
			err = errors.New("daily report quota exceeded")
		}
		if err != nil {
			res.Rejected++
			res.Errors = append(res.Errors, RowError{Row: i + base, IP: wr.IP, Error: err.Error()})
			continue
		}
		rep.Received, rep.Bulk = now, true
		s.reports = append(s.reports, rep)
		s.usedRep++
		res.Accepted++
	}
	s.quotaHeaders(w, quota, s.usedRep, now, true)
	writeJSON(w, http.StatusOK, res)
}

func readJSONRows(r *http.Request) ([]wireReport, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBulkJSONBody+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(body) > maxBulkJSONBody {
		return nil, fmt.Errorf("body larger than %d bytes", maxBulkJSONBody)
	}
	var doc struct {
		Reports []json.RawMessage `json:"reports"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, errors.New("invalid JSON body: want {\"reports\": [...]}")
	}
	rows := make([]wireReport, len(doc.Reports))
	for i, raw := range doc.Reports {
		// A row of the wrong shape is that row's error, not the request's.
		if err := json.Unmarshal(raw, &rows[i]); err != nil {
			rows[i] = wireReport{invalid: errors.New("row is not a report object")}
		}
	}
	return rows, nil
}

// readCSVRows reads the multipart form's "file": a CSV with a header row
// naming the columns ip, category, protocol, comment.
func readCSVRows(r *http.Request) ([]wireReport, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, MaxCSVBytes+64<<10)
	f, hdr, err := r.FormFile("file")
	if err != nil {
		return nil, fmt.Errorf("multipart form needs a \"file\" field: %v", err)
	}
	defer f.Close()
	if hdr.Size > MaxCSVBytes {
		return nil, fmt.Errorf("csv file larger than %d bytes", MaxCSVBytes)
	}
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("invalid csv: %v", err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	if _, ok := col["ip"]; !ok {
		return nil, errors.New("csv header must name an ip column")
	}
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return rec[i]
		}
		return ""
	}
	rows := make([]wireReport, 0, len(recs)-1)
	for _, rec := range recs[1:] {
		cat, _ := json.Marshal(get(rec, "category"))
		rows = append(rows, wireReport{IP: get(rec, "ip"), Category: cat,
			Protocol: get(rec, "protocol"), Comment: get(rec, "comment")})
	}
	return rows, nil
}

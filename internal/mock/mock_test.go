package mock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/ipnet"
)

const key = "sk_free_mocktestkey"

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func start(t *testing.T, opt Options) *Server {
	t.Helper()
	if opt.Key == "" {
		opt.Key = key
	}
	s, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// call sends one request and returns status, headers and body.
func call(t *testing.T, method, url, auth, contentType string, body io.Reader) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestGenerate(t *testing.T) {
	opt := GenerateOptions{N: 2000, Seed: 42, V6Share: 0.25, CIDRShare: 0.2}
	a, b := Generate(opt), Generate(opt)
	opt.Seed = 43
	c := Generate(opt)
	if len(a) != 2000 {
		t.Fatalf("got %d entries", len(a))
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("same seed, different lists")
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Error("different seeds, same list")
	}
	nonGlobal := ipnet.NonGlobal()
	seen := map[netip.Prefix]bool{}
	var v6, cidr int
	for i, e := range a {
		if seen[e.Prefix] {
			t.Fatalf("duplicate %v", e.Prefix)
		}
		seen[e.Prefix] = true
		if !isGlobalPrefix(e.Prefix, nonGlobal) {
			t.Errorf("%v overlaps non-global space", e.Prefix)
		}
		if e.Score < 1 || e.Score > 100 || e.CountryCode == "" || e.ASN == 0 || len(e.Protocols) == 0 || e.Sessions < 1 {
			t.Errorf("incomplete entry %+v", e)
		}
		if e.LastSeen.After(DefaultBase) || e.LastSeen.Before(DefaultBase.Add(-30*24*time.Hour)) {
			t.Errorf("lastSeen %v outside the 30 days before the base", e.LastSeen)
		}
		if e.Prefix.Addr().Is6() {
			v6++
		}
		if !e.Prefix.IsSingleIP() {
			cidr++
		}
		if i > 0 {
			p := a[i-1]
			if p.Score < e.Score || p.Score == e.Score && p.LastSeen.Before(e.LastSeen) {
				t.Fatalf("not sorted by confidence then recency at %d", i)
			}
		}
	}
	if v6 < 400 || v6 > 600 || cidr < 300 || cidr > 500 {
		t.Errorf("v6 = %d, cidr = %d of 2000; want about 500 and 400", v6, cidr)
	}
}

func TestParseList(t *testing.T) {
	es, err := ParseList(strings.NewReader("# test list\n203.0.113.7\n\n198.51.100.0/24 # office\n2001:db8::1\n"))
	if err != nil || len(es) != 3 || es[0].Score != 100 {
		t.Fatalf("plain list = %+v, %v", es, err)
	}
	es, err = ParseList(strings.NewReader(`{"data":[{"ip":"203.0.113.7","confidenceLevel":70,"asn":"AS4134","lastSeen":1760000000000},{"ip":"203.0.113.8","confidenceLevel":90}]}`))
	if err != nil || len(es) != 2 || es[0].Score != 90 || es[1].ASN != 4134 || !es[1].LastSeen.Equal(DefaultBase) {
		t.Fatalf("json list = %+v, %v", es, err)
	}
	_, err = ParseList(strings.NewReader("203.0.113.7\nbogus\n"))
	if err == nil || !strings.Contains(err.Error(), "list line 2") {
		t.Errorf("bad line: err = %v", err)
	}
	_, err = ParseList(strings.NewReader(`[{"ip":"203.0.113.7"},{"ip":"x"}]`))
	if err == nil || !strings.Contains(err.Error(), "json list row 2") {
		t.Errorf("bad row: err = %v", err)
	}
}

func TestAuth(t *testing.T) {
	s := start(t, Options{DisabledKeys: []string{"sk_free_old"}, Entries: Generate(GenerateOptions{N: 10, Seed: 1})})
	u := s.URL() + "/v1/key/blacklist?plaintext=true&scoreMinimum=1"
	for _, tt := range []struct {
		auth, query string
		want        int
		recorded    string
	}{
		{"", "", 401, "none"},
		{"Bearer wrong", "", 401, "bearer"},
		{"Basic " + key, "", 401, "none"},
		{"Bearer sk_free_old", "", 403, "bearer"},
		{"Bearer " + key, "", 200, "bearer"},
		{"", "&key=" + key, 200, "query"},
	} {
		s.ClearRequests()
		code, _, body := call(t, "GET", u+tt.query, tt.auth, "", nil)
		if code != tt.want {
			t.Errorf("auth %q%s: status %d, want %d (%s)", tt.auth, tt.query, code, tt.want, body)
		}
		if code >= 400 && !strings.HasPrefix(body, `{"error":`) {
			t.Errorf("error body %q is not {\"error\": …}", body)
		}
		r := s.Requests()[0]
		if r.Auth != tt.recorded || r.Status != tt.want {
			t.Errorf("recorded %+v, want auth %s status %d", r, tt.recorded, tt.want)
		}
		if strings.Contains(fmt.Sprint(r), key) {
			t.Errorf("the key was recorded: %+v", r)
		}
	}
}

func TestBlacklistParametersAndLimits(t *testing.T) {
	es := Generate(GenerateOptions{N: 300, Seed: 3, V6Share: 0.3})
	s := start(t, Options{TierLimit: 50, BlacklistQuota: -1, Entries: es})
	get := func(q string) (int, string) {
		code, _, body := call(t, "GET", s.URL()+"/v1/key/blacklist?"+q, "Bearer "+key, "", nil)
		return code, body
	}
	for _, q := range []string{"scoreMinimum=0", "scoreMinimum=101", "scoreMinimum=x", "limit=0", "limit=-3",
		"ipVersion=5", "minSeverity=extreme", "plaintext=yes", "onlyAsn=ASx"} {
		if code, body := get(q); code != 400 || !strings.Contains(body, "error") {
			t.Errorf("%s: %d %s, want 400", q, code, body)
		}
	}
	// limit is capped by the tier.
	_, body := get("plaintext=true&scoreMinimum=1&limit=1000")
	if n := strings.Count(body, "\n"); n != 50 {
		t.Errorf("limit above tier served %d lines, want 50", n)
	}
	_, body = get("plaintext=true&scoreMinimum=1&limit=7&ipVersion=6")
	lines := strings.Fields(body)
	if len(lines) != 7 {
		t.Fatalf("limit=7 served %d", len(lines))
	}
	for _, l := range lines {
		if !strings.Contains(l, ":") {
			t.Errorf("ipVersion=6 served %s", l)
		}
	}
	// JSON carries meta and rows in API order.
	_, body = get("scoreMinimum=90&limit=5")
	var doc struct {
		Meta map[string]int64 `json:"meta"`
		Data []wireEntry      `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Meta["count"] != int64(len(doc.Data)) || doc.Meta["scoreMinimum"] != 90 || len(doc.Data) != 5 {
		t.Errorf("meta = %v with %d rows", doc.Meta, len(doc.Data))
	}
	for i, d := range doc.Data {
		if d.Confidence < 90 || d.IP != es[i].text() {
			t.Errorf("row %d = %+v, want %s", i, d, es[i].text())
		}
	}
}

func TestDailyQuotaAndHeaders(t *testing.T) {
	clk := &clock{now: time.Date(2025, 10, 9, 23, 0, 0, 0, time.UTC)}
	for _, tt := range []struct {
		family string
		check  func(h http.Header) bool
	}{
		{HeadersDaily, func(h http.Header) bool {
			return h.Get("X-Daily-Limit") == "30" && h.Get("X-Daily-Used") == "20" && h.Get("X-Daily-Remaining") == "10"
		}},
		{HeadersBlacklist, func(h http.Header) bool {
			return h.Get("X-Blacklist-Limit") == "30" && h.Get("X-Blacklist-Used") == "20" && h.Get("X-Daily-Limit") == ""
		}},
		{HeadersRateLimit, func(h http.Header) bool {
			return h.Get("X-RateLimit-Limit") == "30" && h.Get("X-RateLimit-Remaining") == "10" &&
				h.Get("X-RateLimit-Reset") == fmt.Sprint(time.Date(2025, 10, 10, 0, 0, 0, 0, time.UTC).Unix())
		}},
		{HeadersNone, func(h http.Header) bool { return h.Get("X-Daily-Limit") == "" && h.Get("X-RateLimit-Limit") == "" }},
	} {
		t.Run(tt.family, func(t *testing.T) {
			clk.Set(time.Date(2025, 10, 9, 23, 0, 0, 0, time.UTC))
			s := start(t, Options{TierLimit: 20, BlacklistQuota: 30, QuotaHeaders: tt.family, Now: clk.Now,
				Entries: Generate(GenerateOptions{N: 100, Seed: 5})})
			u := s.URL() + "/v1/key/blacklist?plaintext=true&scoreMinimum=1"
			code, h, _ := call(t, "GET", u, "Bearer "+key, "", nil)
			if code != 200 || !tt.check(h) {
				t.Errorf("first pull: %d %v", code, h)
			}
			code, _, body := call(t, "GET", u, "Bearer "+key, "", nil)
			if code != 200 || strings.Count(body, "\n") != 10 {
				t.Errorf("second pull: %d with %d lines, want the 10 left", code, strings.Count(body, "\n"))
			}
			code, h, body = call(t, "GET", u, "Bearer "+key, "", nil)
			if code != 429 || h.Get("Retry-After") != "3600" || !strings.Contains(body, "quota exceeded") {
				t.Errorf("exhausted: %d Retry-After %q %s", code, h.Get("Retry-After"), body)
			}
			clk.Set(time.Date(2025, 10, 10, 0, 0, 1, 0, time.UTC))
			if code, _, _ := call(t, "GET", u, "Bearer "+key, "", nil); code != 200 {
				t.Errorf("after midnight UTC: %d", code)
			}
		})
	}
}

func bulk(rows ...any) io.Reader {
	b, _ := json.Marshal(map[string]any{"reports": rows})
	return bytes.NewReader(b)
}

func TestBulkReport(t *testing.T) {
	s := start(t, Options{OneBasedRows: true, ReportQuota: 5})
	u := s.URL() + "/v1/key/bulk-report"
	long := strings.Repeat("x", 1001)
	code, _, body := call(t, "POST", u, "Bearer "+key, "application/json", bulk(
		map[string]any{"ip": "8.8.4.4", "category": "brute_force", "protocol": "ssh", "comment": "x47"},
		map[string]any{"ip": "10.0.0.1", "category": "port_scan"},
		map[string]any{"ip": "1.1.1.1", "category": 17},
		map[string]any{"ip": "1.1.1.1", "category": "nonsense"},
		map[string]any{"ip": "not-ip", "category": 1},
		map[string]any{"ip": "1.0.0.1", "category": 2, "protocol": strings.Repeat("p", 33)},
		map[string]any{"ip": "1.0.0.1", "category": 2, "comment": long},
		"a string row",
		map[string]any{"ip": "2606:4700::1111", "category": 16},
		map[string]any{"ip": "9.9.9.9"},
	))
	if code != 200 {
		t.Fatalf("bulk: %d %s", code, body)
	}
	var res BulkResult
	json.Unmarshal([]byte(body), &res)
	wantErrs := map[int]string{
		2: "not a public address", 3: "category 17 out of range", 4: `unknown category "nonsense"`, 5: `invalid ip address "not-ip"`,
		6: "protocol longer than 32", 7: "comment longer than 1000", 8: "not a report object", 10: "category is required",
	}
	if res.Total != 10 || res.Accepted != 2 || res.Rejected != 8 || len(res.Errors) != 8 {
		t.Fatalf("result = %+v", res)
	}
	for _, e := range res.Errors {
		if !strings.Contains(e.Error, wantErrs[e.Row]) || wantErrs[e.Row] == "" {
			t.Errorf("row %d error %q, want %q", e.Row, e.Error, wantErrs[e.Row])
		}
	}
	reps := s.Reports()
	if len(reps) != 2 || reps[0].IP != netip.MustParseAddr("8.8.4.4") || reps[0].Category != "brute_force" ||
		reps[0].Protocol != "ssh" || reps[1].Category != "other" || !reps[1].Bulk {
		t.Errorf("recorded reports = %+v", reps)
	}

	// The quota (5) cuts the next batch: 3 accepted, the rest rejected.
	rows := make([]any, 5)
	for i := range rows {
		rows[i] = map[string]any{"ip": fmt.Sprintf("1.2.3.%d", i+1), "category": "ddos"}
	}
	_, _, body = call(t, "POST", u, "Bearer "+key, "application/json", bulk(rows...))
	json.Unmarshal([]byte(body), &res)
	if res.Accepted != 3 || res.Rejected != 2 || !strings.Contains(res.Errors[0].Error, "quota") {
		t.Errorf("over quota = %+v", res)
	}
	code, h, _ := call(t, "POST", u, "Bearer "+key, "application/json", bulk(rows...))
	if code != 429 || h.Get("Retry-After") == "" {
		t.Errorf("exhausted report quota: %d %v", code, h)
	}
}

func TestBulkReportLimitsAndCSV(t *testing.T) {
	s := start(t, Options{ReportQuota: -1})
	u := s.URL() + "/v1/key/bulk-report"
	rows := make([]any, MaxBulkRows+1)
	for i := range rows {
		rows[i] = map[string]any{"ip": "1.1.1.1", "category": 1}
	}
	code, _, body := call(t, "POST", u, "Bearer "+key, "application/json", bulk(rows...))
	if code != 400 || !strings.Contains(body, "too many reports: 10001, at most 10000") {
		t.Errorf("10001 rows: %d %s", code, body)
	}
	code, _, body = call(t, "POST", u, "Bearer "+key, "application/json", bulk(rows[:MaxBulkRows]...))
	if code != 200 || !strings.Contains(body, `"accepted":10000`) {
		t.Errorf("10000 rows: %d %.100s", code, body)
	}
	for _, b := range []string{`{}`, `{"reports":[]}`, `not json`} {
		if code, _, _ := call(t, "POST", u, "Bearer "+key, "application/json", strings.NewReader(b)); code != 400 {
			t.Errorf("body %s: %d, want 400", b, code)
		}
	}

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "reports.csv")
	fmt.Fprint(fw, "ip,category,protocol,comment\n185.16.39.79,brute_force,telnet,x47\n192.168.1.1,port_scan,,\n")
	mw.Close()
	s.ClearReports()
	code, _, body = call(t, "POST", u, "Bearer "+key, mw.FormDataContentType(), &mp)
	var res BulkResult
	json.Unmarshal([]byte(body), &res)
	if code != 200 || res.Accepted != 1 || res.Rejected != 1 || res.Errors[0].Row != 1 {
		t.Errorf("csv: %d %+v (rows 0-based by default)", code, res)
	}
	if r := s.Reports(); len(r) != 1 || r[0].Protocol != "telnet" {
		t.Errorf("csv reports = %+v", r)
	}
}

func TestSingleReport(t *testing.T) {
	s := start(t, Options{})
	u := s.URL() + "/v1/key/report"
	code, _, body := call(t, "POST", u, "Bearer "+key, "application/json",
		strings.NewReader(`{"ip":"185.16.39.79","category":"9","protocol":"telnet"}`))
	if code != 200 || !strings.Contains(body, `"category":"exploited_host"`) {
		t.Errorf("report: %d %s", code, body)
	}
	code, _, body = call(t, "POST", u, "Bearer "+key, "application/json", strings.NewReader(`{"ip":"127.0.0.1","category":1}`))
	if code != 400 || !strings.Contains(body, "not a public address") {
		t.Errorf("loopback report: %d %s", code, body)
	}
	if len(s.Reports()) != 1 {
		t.Errorf("reports = %+v", s.Reports())
	}
}

func TestFaultCountAndPath(t *testing.T) {
	s := start(t, Options{Entries: Generate(GenerateOptions{N: 5, Seed: 1})})
	bl, st := s.URL()+"/v1/key/blacklist", s.URL()+"/v1/key/status"
	if err := s.SetFault(Fault{Mode: Fault500, Count: 2, Path: "/v1/key/blacklist"}); err != nil {
		t.Fatal(err)
	}
	codes := []int{}
	for _, u := range []string{st, bl, bl, bl} {
		c, _, _ := call(t, "GET", u, "Bearer "+key, "", nil)
		codes = append(codes, c)
	}
	if fmt.Sprint(codes) != "[200 500 500 200]" {
		t.Errorf("codes = %v, want the fault on the next two blacklist requests only", codes)
	}
	if _, ok := s.CurrentFault(); ok {
		t.Error("fault still installed after its count")
	}
	if err := s.SetFault(Fault{Mode: "melt"}); err == nil || !strings.Contains(err.Error(), `unknown fault mode "melt"`) {
		t.Errorf("bad mode: %v", err)
	}
}

func TestControlAPI(t *testing.T) {
	s := start(t, Options{})
	base := s.URL()
	code, _, body := call(t, "POST", base+"/_mock/list", "", "text/plain", strings.NewReader("203.0.113.1\n203.0.113.2\n"))
	if code != 200 || !strings.Contains(body, `"entries":2`) {
		t.Fatalf("set list: %d %s", code, body)
	}
	code, _, _ = call(t, "POST", base+"/_mock/fault", "", "application/json",
		strings.NewReader(`{"mode":"429","count":1,"retryAfter":"57000"}`))
	if code != 204 {
		t.Fatalf("set fault: %d", code)
	}
	code, h, _ := call(t, "GET", base+"/v1/key/blacklist?plaintext=true", "Bearer "+key, "", nil)
	if code != 429 || h.Get("Retry-After") != "57000" {
		t.Errorf("faulted pull: %d %v", code, h)
	}
	code, _, body = call(t, "GET", base+"/v1/key/blacklist?plaintext=true", "Bearer "+key, "", nil)
	if code != 200 || body != "203.0.113.1\n203.0.113.2\n" {
		t.Errorf("pull: %d %q", code, body)
	}
	call(t, "POST", base+"/v1/key/report", "Bearer "+key, "", strings.NewReader(`{"ip":"1.1.1.1","category":"spam"}`))
	_, _, body = call(t, "GET", base+"/_mock/reports", "", "", nil)
	if !strings.Contains(body, `"ip":"1.1.1.1","category":"spam"`) {
		t.Errorf("reports: %s", body)
	}
	_, _, body = call(t, "GET", base+"/_mock/requests", "", "", nil)
	var reqs []Request
	if err := json.Unmarshal([]byte(body), &reqs); err != nil || len(reqs) != 3 || reqs[0].Fault != Fault429 || reqs[1].Query.Get("plaintext") != "true" {
		t.Errorf("requests = %+v, %v", reqs, err)
	}
	for _, bad := range []string{`{"mode":"explode"}`, `{"mode":"slow","delay":"soon"}`, `{"mode":"500","colour":"red"}`} {
		if code, _, _ := call(t, "POST", base+"/_mock/fault", "", "", strings.NewReader(bad)); code != 400 {
			t.Errorf("fault %s: %d, want 400", bad, code)
		}
	}
	if code, _, _ := call(t, "POST", base+"/_mock/list", "", "", strings.NewReader("nonsense\n")); code != 400 {
		t.Errorf("bad list accepted: %d", code)
	}
}

func TestStatus(t *testing.T) {
	s := start(t, Options{TierLimit: 350000, Entries: Generate(GenerateOptions{N: 50, Seed: 1})})
	call(t, "GET", s.URL()+"/v1/key/blacklist?scoreMinimum=1", "Bearer "+key, "", nil)
	code, _, body := call(t, "GET", s.URL()+"/v1/key/status", "Bearer "+key, "", nil)
	if code != 200 || !strings.Contains(body, `"tier":{"id":"large_business","name":"Large Business"}`) ||
		!strings.Contains(body, `"blacklist":{"used":50,"limit":350000,"remaining":349950}`) {
		t.Errorf("status: %d %s", code, body)
	}
}

// The JSON blacklist carries lastSeen as epoch milliseconds: the entries'
// own, or with FreshLastSeen moved on so that the newest is the request's
// time, every age kept.
func TestLastSeen(t *testing.T) {
	es := Generate(GenerateOptions{N: 200, Seed: 4})
	c := &clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	rows := func(fresh bool) []wireEntry {
		s := start(t, Options{BlacklistQuota: -1, Entries: es, FreshLastSeen: fresh, Now: c.Now})
		_, _, body := call(t, "GET", s.URL()+"/v1/key/blacklist?scoreMinimum=1", "Bearer "+key, "", nil)
		var doc struct{ Data []wireEntry }
		if err := json.Unmarshal([]byte(body), &doc); err != nil || len(doc.Data) != len(es) {
			t.Fatalf("%d rows, %v", len(doc.Data), err)
		}
		return doc.Data
	}
	own, fresh := rows(false), rows(true)
	var seen time.Time
	for _, e := range es {
		if e.LastSeen.After(seen) {
			seen = e.LastSeen
		}
	}
	shift := c.Now().Sub(seen).Milliseconds()
	var newest int64
	for i, e := range es { // Generate sorts like the API

		if own[i].LastSeen != e.LastSeen.UnixMilli() || fresh[i].LastSeen != own[i].LastSeen+shift {
			t.Fatalf("row %d: lastSeen %d and fresh %d, want %d and +%d", i, own[i].LastSeen, fresh[i].LastSeen, e.LastSeen.UnixMilli(), shift)
		}
		newest = max(newest, fresh[i].LastSeen)
	}
	if newest != c.Now().UnixMilli() {
		t.Errorf("newest fresh lastSeen %d, want the request time %d", newest, c.Now().UnixMilli())
	}
}

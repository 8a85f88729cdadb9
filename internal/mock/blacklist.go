package mock

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// severityFloor is the mock's reading of minSeverity as a score floor.
var severityFloor = map[string]int{"very_high": 90, "high": 75, "medium": 50, "low": 1}

// filter is a parsed blacklist query.
type filter struct {
	scoreMin      int
	limit         int
	plaintext     bool
	ipVersion     string
	protocols     map[string]bool
	onlyCountries map[string]bool
	exceptCountry map[string]bool
	onlyASN       map[uint32]bool
	exceptASN     map[uint32]bool
}

func parseFilter(q url.Values, tierLimit int) (*filter, error) {
	f := &filter{scoreMin: 50, limit: tierLimit, ipVersion: "mixed"}
	if v := q.Get("scoreMinimum"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return nil, fmt.Errorf("scoreMinimum must be an integer between 1 and 100")
		}
		f.scoreMin = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("limit must be a positive integer")
		}
		f.limit = min(n, tierLimit)
	}
	for _, b := range []string{"plaintext", "ignoreWhitelist"} {
		if v := q.Get(b); v != "" && v != "true" && v != "false" {
			return nil, fmt.Errorf("%s must be true or false", b)
		}
	}
	f.plaintext = q.Get("plaintext") == "true"
	if v := q.Get("ipVersion"); v != "" {
		if v != "4" && v != "6" && v != "mixed" {
			return nil, fmt.Errorf("ipVersion must be 4, 6 or mixed")
		}
		f.ipVersion = v
	}
	if v := q.Get("minSeverity"); v != "" {
		floor, ok := severityFloor[v]
		if !ok {
			return nil, fmt.Errorf("minSeverity must be very_high, high, medium or low")
		}
		f.scoreMin = max(f.scoreMin, floor)
	}
	f.protocols = stringSet(q.Get("protocols"), strings.ToLower)
	f.onlyCountries = stringSet(q.Get("onlyCountries"), strings.ToUpper)
	f.exceptCountry = stringSet(q.Get("exceptCountries"), strings.ToUpper)
	var err error
	if f.onlyASN, err = asnSet(q.Get("onlyAsn")); err != nil {
		return nil, fmt.Errorf("onlyAsn: %w", err)
	}
	if f.exceptASN, err = asnSet(q.Get("exceptAsn")); err != nil {
		return nil, fmt.Errorf("exceptAsn: %w", err)
	}
	return f, nil
}

func stringSet(v string, norm func(string) string) map[string]bool {
	if v == "" {
		return nil
	}
	m := map[string]bool{}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			m[norm(p)] = true
		}
	}
	return m
}

func asnSet(v string) (map[uint32]bool, error) {
	if v == "" {
		return nil, nil
	}
	m := map[uint32]bool{}
	for _, p := range strings.Split(v, ",") {
		n, ok := parseASN(p)
		if !ok {
			return nil, fmt.Errorf("invalid ASN %q", p)
		}
		m[n] = true
	}
	return m, nil
}

func (f *filter) match(e Entry) bool {
	switch {
	case e.Score < f.scoreMin,
		f.ipVersion == "4" && !e.Prefix.Addr().Is4(),
		f.ipVersion == "6" && !e.Prefix.Addr().Is6(),
		f.onlyCountries != nil && !f.onlyCountries[strings.ToUpper(e.CountryCode)],
		f.exceptCountry[strings.ToUpper(e.CountryCode)],
		f.onlyASN != nil && !f.onlyASN[e.ASN],
		f.exceptASN[e.ASN]:
		return false
	}
	if f.protocols == nil {
		return true
	}
	for _, p := range e.Protocols {
		if f.protocols[strings.ToLower(p)] {
			return true
		}
	}
	return false
}

func (s *Server) handleBlacklist(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query(), s.opt.TierLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := s.opt.Now()
	s.mu.Lock()
	s.rollDay(now)
	quota := s.opt.BlacklistQuota
	limit := f.limit
	if quota >= 0 {
		if s.usedList >= quota {
			s.quotaHeaders(w, quota, s.usedList, now, false)
			s.mu.Unlock()
			quotaExceeded(w, now, "blacklist")
			return
		}
		limit = min(limit, quota-s.usedList)
	}
	var out []Entry
	for _, e := range s.entries {
		if len(out) == limit {
			break
		}
		if f.match(e) {
			out = append(out, e)
		}
	}
	var shift time.Duration // of every served lastSeen
	if s.opt.FreshLastSeen && !s.newest.IsZero() {
		shift = now.Sub(s.newest)
	}
	s.usedList += len(out)
	s.quotaHeaders(w, quota, s.usedList, now, false)
	s.mu.Unlock()

	bw := bufio.NewWriterSize(w, 64<<10)
	if f.plaintext {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, e := range out {
			bw.WriteString(e.text())
			bw.WriteByte('\n')
		}
		bw.Flush()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	meta, _ := json.Marshal(map[string]int64{
		"generatedAt": now.UnixMilli(), "scoreMinimum": int64(f.scoreMin), "limit": int64(f.limit), "count": int64(len(out)),
	})
	fmt.Fprintf(bw, `{"meta":%s,"data":[`, meta)
	for i, e := range out {
		if i > 0 {
			bw.WriteByte(',')
		}
		b, _ := json.Marshal(e.wire(s.opt.ASNStyle, i, shift))
		bw.Write(b)
	}
	bw.WriteString("]}\n")
	bw.Flush()
}

type quotaUse struct {
	Used      int `json:"used"`
	Limit     int `json:"limit"`
	Remaining int `json:"remaining"`
}

func use(used, limit int) quotaUse {
	if limit < 0 {
		return quotaUse{Used: used, Limit: -1, Remaining: -1}
	}
	return quotaUse{Used: used, Limit: limit, Remaining: max(limit-used, 0)}
}

// tierName follows the documented tiers by their blacklist limit.
func tierName(limit int) (id, name string) {
	switch limit {
	case 5000:
		return "free", "Free"
	case 50000:
		return "basic", "Basic"
	case 75000:
		return "small_business", "Small Business"
	case 150000:
		return "medium_business", "Medium Business"
	case 350000:
		return "large_business", "Large Business"
	}
	return "custom", "Custom"
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	now := s.opt.Now()
	s.mu.Lock()
	s.rollDay(now)
	bl, rep := use(s.usedList, s.opt.BlacklistQuota), use(s.usedRep, s.opt.ReportQuota)
	s.mu.Unlock()
	id, name := tierName(s.opt.TierLimit)
	writeJSON(w, http.StatusOK, map[string]any{
		"tier": map[string]string{"id": id, "name": name},
		"quotas": map[string]quotaUse{
			"lookups": use(0, 1000), "reports": rep, "blacklist": bl, "taxii": use(0, 0),
		},
		"alerts":    map[string]any{},
		"checkedAt": now.UTC().Format(time.RFC3339),
	})
}

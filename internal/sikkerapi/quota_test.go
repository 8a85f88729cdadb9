package sikkerapi

import (
	"net/http"
	"testing"
	"time"
)

func TestParseQuota(t *testing.T) {
	now := time.Date(2025, 10, 9, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		headers map[string]string
		want    *Quota
	}{
		{"none", map[string]string{"Content-Type": "text/plain"}, nil},
		{"daily", map[string]string{"X-Daily-Limit": "5000", "X-Daily-Used": "1200", "X-Daily-Remaining": "3800"},
			&Quota{Family: "X-Daily", Limit: 5000, Used: 1200, Remaining: 3800}},
		{"blacklist, used derived", map[string]string{"X-Blacklist-Limit": "50000", "X-Blacklist-Remaining": "100"},
			&Quota{Family: "X-Blacklist", Limit: 50000, Used: 49900, Remaining: 100}},
		{"ratelimit reset epoch", map[string]string{"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1760054400"},
			&Quota{Family: "X-RateLimit", Limit: 5000, Used: 5000, Remaining: 0, Reset: time.Unix(1760054400, 0).UTC()}},
		{"ratelimit reset seconds", map[string]string{"X-RateLimit-Reset": "3600"},
			&Quota{Family: "X-RateLimit", Limit: -1, Used: -1, Remaining: -1, Reset: now.Add(time.Hour)}},
		{"ratelimit reset ms", map[string]string{"X-RateLimit-Reset": "1760054400000"},
			&Quota{Family: "X-RateLimit", Limit: -1, Used: -1, Remaining: -1, Reset: time.UnixMilli(1760054400000).UTC()}},
		{"remaining derived", map[string]string{"X-Daily-Limit": "10", "X-Daily-Used": "12"},
			&Quota{Family: "X-Daily", Limit: 10, Used: 12, Remaining: 0}},
		{"blacklist wins over daily", map[string]string{"X-Daily-Limit": "1", "X-Blacklist-Limit": "2"},
			&Quota{Family: "X-Blacklist", Limit: 2, Used: -1, Remaining: -1}},
		{"junk ignored", map[string]string{"X-Daily-Limit": "lots"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.headers {
				h.Set(k, v)
			}
			got := ParseQuota(h, now)
			if !sameQuota(got, tt.want) {
				t.Errorf("parseQuota = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 10, 9, 8, 10, 0, 0, time.UTC)
	midnight := time.Date(2025, 10, 10, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"57000":                         now.Add(57000 * time.Second),
		" 0 ":                           now,
		"Thu, 09 Oct 2025 12:00:00 GMT": time.Date(2025, 10, 9, 12, 0, 0, 0, time.UTC),
		"":                              midnight,
		"soon":                          midnight,
		"-5":                            midnight,
		// Clamped to 25 h: a ten-year wait, an overflowing one, a far date.
		"315360000":                     now.Add(MaxRetryAfter),
		"9223372037":                    now.Add(MaxRetryAfter),
		"99999999999999999":             now.Add(MaxRetryAfter),
		"Fri, 01 Jan 2100 00:00:00 GMT": now.Add(MaxRetryAfter),
		"90000":                         now.Add(MaxRetryAfter),
		"89999":                         now.Add(89999 * time.Second),
	} {
		if got := ParseRetryAfter(in, now); !got.Equal(want) {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func sameQuota(a, b *Quota) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Family == b.Family && a.Limit == b.Limit && a.Used == b.Used && a.Remaining == b.Remaining && a.Reset.Equal(b.Reset)
}

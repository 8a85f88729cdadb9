package sikkerapi

import "testing"

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p@x.example/list.txt":                 "https://x.example/list.txt",
		"https://x.example/l?key=abc&format=txt":         "https://x.example/l?format=txt&key=REDACTED",
		"https://x.example/l?apiToken=abc":               "https://x.example/l?apiToken=REDACTED",
		"https://api.sikkerapi.com/v1/key/blacklist?a=1": "https://api.sikkerapi.com/v1/key/blacklist?a=1",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

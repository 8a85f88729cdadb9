package safety

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckList(t *testing.T) {
	lim := Limits{MaxGrowth: 2.0, MaxEntries: 1000}
	tests := []struct {
		name       string
		prev, next int
		want       Reason // "" = accepted
		msg        string
	}{
		{"first list", 0, 500, "", ""},
		{"empty", 100, 0, ReasonEmpty, "empty"},
		{"empty first", 0, 0, ReasonEmpty, "empty"},
		{"exactly double", 100, 200, "", ""},
		{"just over double", 100, 201, ReasonGrowth, "more than 2× the previous 100"},
		{"three times", 100, 300, ReasonGrowth, "safety.max_growth"},
		{"shrink is fine", 900, 10, "", ""},
		{"at the cap", 999, 1000, "", ""},
		{"over the cap", 999, 1001, ReasonTooLarge, "exceed safety.max_entries 1000"},
		{"cap before growth", 10, 5000, ReasonTooLarge, "max_entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckList(tt.prev, tt.next, lim)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckList(%d, %d) = %v, want nil", tt.prev, tt.next, err)
				}
				return
			}
			var re *RejectError
			if !errors.As(err, &re) || re.Reason != tt.want {
				t.Fatalf("CheckList(%d, %d) = %v, want reason %s", tt.prev, tt.next, err, tt.want)
			}
			if !errors.Is(err, ErrRejected) {
				t.Errorf("errors.Is(%v, ErrRejected) = false", err)
			}
			if !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), "keeping the current one") {
				t.Errorf("message %q lacks %q", err.Error(), tt.msg)
			}
		})
	}
}

func TestCheckListZeroLimitsDisableChecks(t *testing.T) {
	if err := CheckList(1, 1_000_000, Limits{}); err != nil {
		t.Fatalf("zero limits: %v", err)
	}
	if err := CheckList(1, 0, Limits{}); err == nil {
		t.Fatal("an empty list must be refused even without limits")
	}
}

package dbusapi

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/google/go-cmp/cmp"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string // substring of the message; "" = success
	}{
		{"192.0.2.1", "192.0.2.1/32", ""},
		{" 198.51.100.0/24 ", "198.51.100.0/24", ""},
		{"2001:db8::1", "2001:db8::1/128", ""},
		{"2001:db8::/32", "2001:db8::/32", ""},
		{"::ffff:192.0.2.1", "192.0.2.1/32", ""},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24", ""},
		{"0.0.0.0/0", "0.0.0.0/0", ""},
		{"::/0", "::/0", ""},
		{"300.1.1.1", "", `invalid address "300.1.1.1": is not an IP address`},
		{"", "", `invalid address "": is empty`},
		{"   ", "", `invalid address "   ": is empty`},
		{"garbage", "", `invalid address "garbage"`},
		{"192.0.2.1/33", "", `invalid address "192.0.2.1/33": is not an IP address or CIDR: bad prefix length "33"`},
		{"192.0.2.1/24", "192.0.2.0/24", ""}, // masked, as in the config file
		{"fe80::1%eth0", "", "has an interface zone"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePrefix(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePrefix(%q) = %v, %v; want error containing %q", tt.in, p, err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalidAddress) {
					t.Errorf("error %v is not ErrInvalidAddress", err)
				}
				return
			}
			if err != nil || p.String() != tt.want {
				t.Fatalf("ParsePrefix(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
			}
		})
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"192.0.2.7", "192.0.2.7", ""},
		{"2001:db8::7", "2001:db8::7", ""},
		{"::ffff:198.51.100.1", "198.51.100.1", ""},
		{"", "", `invalid address "": is empty`},
		{"192.0.2.0/24", "", "is a CIDR; want a single IP address"},
		{"1.2.3", "", `invalid address "1.2.3"`},
	}
	for _, tt := range tests {
		a, err := ParseAddr(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidAddress) {
				t.Errorf("ParseAddr(%q) = %v, %v; want InvalidAddress containing %q", tt.in, a, err, tt.wantErr)
			}
			continue
		}
		if err != nil || a.String() != tt.want {
			t.Errorf("ParseAddr(%q) = %v, %v; want %s", tt.in, a, err, tt.want)
		}
	}
}

func TestStatusWireRoundTrip(t *testing.T) {
	in := Status{
		Version: "1.2.3", State: StateDegraded, Backend: "nftables", DryRun: true,
		BlockedIPv4: 123456, BlockedIPv6: 789, Whitelisted: 12,
		LastPull: time.Unix(1700000000, 0), NextPull: time.Unix(1700086400, 0),
		Started: time.Unix(1699990000, 0), LastError: "feed spamhaus: timeout",
		Feeds: []FeedStatus{
			{Name: "sikkerapi", Entries: 123000, LastPull: time.Unix(1700000000, 0), Dropped: 77},
			{Name: "spamhaus-drop", Entries: 456, Error: "timeout"},
		},
	}
	out, err := statusFromWire(in.toWire())
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(in, out); d != "" {
		t.Errorf("round trip (-in +out):\n%s", d)
	}
	if got := in.toWire()[keyLastReport].Value(); got != int64(0) {
		t.Errorf("zero LastReport on the wire = %v, want 0 (never)", got)
	}
}

func TestStatusFromWireIgnoresUnknownRejectsWrongType(t *testing.T) {
	s, err := statusFromWire(map[string]dbus.Variant{"State": dbus.MakeVariant("running"), "FutureField": dbus.MakeVariant(7)})
	if err != nil || s.State != StateRunning {
		t.Fatalf("got %+v, %v", s, err)
	}
	_, err = statusFromWire(map[string]dbus.Variant{"BlockedIPv4": dbus.MakeVariant("many")})
	if err == nil || !strings.Contains(err.Error(), "BlockedIPv4") {
		t.Fatalf("wrong type: err = %v, want one naming BlockedIPv4", err)
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name     string
		daemon   error // what the daemon returns
		wantName string
		wantMsg  string
		is       error
	}{
		{"wrapped sentinel", fmt.Errorf("reload: %w", ErrNotReady), ErrorNotReady, "reload: sikkerguard is not ready yet", ErrNotReady},
		{"plain error", errors.New("disk full"), ErrorFailed, "disk full", ErrFailed},
		{"own error", &Error{Name: ErrorInvalidAddress, Message: `invalid address "x"`}, ErrorInvalidAddress, `invalid address "x"`, ErrInvalidAddress},
		{"not found", fmt.Errorf("remove: %w", ErrNotFound), ErrorNotFound, "remove: not found", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := toDBus(tt.daemon)
			if wire.Name != tt.wantName {
				t.Errorf("wire name = %s, want %s", wire.Name, tt.wantName)
			}
			back := fromDBus("M", *wire)
			var e *Error
			if !errors.As(back, &e) || e.Name != tt.wantName || e.Message != tt.wantMsg {
				t.Errorf("client error = %#v, want name %s message %q", back, tt.wantName, tt.wantMsg)
			}
			if !errors.Is(back, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", back, tt.is)
			}
			if errors.Is(back, ErrAccessDenied) {
				t.Errorf("%v unexpectedly matches ErrAccessDenied", back)
			}
		})
	}
}

func TestBusErrorsMapToOurs(t *testing.T) {
	for _, name := range []string{busErrorServiceUnknown, busErrorNameHasNoOwner} {
		err := fromDBus("Status", dbus.Error{Name: name, Body: []any{"The name is not activatable"}})
		if !errors.Is(err, ErrNotRunning) || err.Error() != "sikkerguard is not running (com.sikkerapi.SikkerGuard1 not on the bus)" {
			t.Errorf("%s → %v", name, err)
		}
		var e *Error
		if !errors.As(err, &e) || e.Name != name {
			t.Errorf("%s: D-Bus name not kept: %#v", name, err)
		}
	}
	err := fromDBus("Reload", dbus.Error{Name: busErrorAccessDenied, Body: []any{"Rejected send message"}})
	if !errors.Is(err, ErrAccessDenied) || !strings.HasPrefix(err.Error(), "access denied: run as root") || !strings.Contains(err.Error(), "Reload") {
		t.Errorf("bus AccessDenied → %v", err)
	}
	if err := fromDBus("Status", errors.New("connection closed")); err == nil || err.Error() != "Status: connection closed" {
		t.Errorf("transport error → %v", err)
	}
}

func TestTopRowShape(t *testing.T) {
	// The wire struct must keep the documented a(sqssu) signature.
	if sig := dbus.SignatureOf([]topWire{}).String(); sig != "a(sqssu)" {
		t.Fatalf("TopBlocked signature %s, want a(sqssu)", sig)
	}
	e := TopEntry{Source: netip.MustParseAddr("192.0.2.9")}
	if !e.Source.IsValid() {
		t.Fatal("bad fixture")
	}
}

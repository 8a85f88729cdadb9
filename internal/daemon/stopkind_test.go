package daemon

import (
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
)

// fakeSystemd answers the calls systemdKeeps makes, for one unit.
type fakeSystemd struct{ unit dbus.ObjectPath }

func (f fakeSystemd) GetUnitByPID(uint32) (dbus.ObjectPath, *dbus.Error) { return f.unit, nil }

type jobRef struct {
	ID   uint32
	Path dbus.ObjectPath
}

func TestSystemdKeeps(t *testing.T) {
	bus := dbustest.StartBus(t, dbustest.Open)
	const dest = "org.freedesktop.systemd1"
	for _, tc := range []struct {
		name      string
		invocated bool
		job       string // "" = no job
		fileState string
		keep      bool
		why       string
	}{
		{"outside systemd", false, "stop", "disabled", false, ""},
		{"restart", true, "restart", "disabled", true, "restarting"},
		{"try-restart of an upgrade", true, "try-restart", "enabled", true, "restarting"},
		{"stop of an enabled unit", true, "stop", "enabled", true, "enabled"},
		{"disable --now", true, "stop", "disabled", false, ""},
		{"stop of a unit enabled at run time", true, "stop", "enabled-runtime", true, "enabled"},
		{"no job, a static unit", true, "", "static", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := bus.Connect(t)
			if reply, err := srv.RequestName(dest, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
				t.Fatalf("own %s: %v %v", dest, reply, err)
			}
			defer srv.ReleaseName(dest)
			unit := dbus.ObjectPath("/org/freedesktop/systemd1/unit/sikkerguard_2eservice")
			job := jobRef{}
			if tc.job != "" {
				job = jobRef{7, "/org/freedesktop/systemd1/job/7"}
				if _, err := prop.Export(srv, job.Path, prop.Map{dest + ".Job": {"JobType": {Value: tc.job}}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := srv.Export(fakeSystemd{unit}, "/org/freedesktop/systemd1", dest+".Manager"); err != nil {
				t.Fatal(err)
			}
			if _, err := prop.Export(srv, unit, prop.Map{dest + ".Unit": {
				"Job": {Value: job}, "UnitFileState": {Value: tc.fileState},
			}}); err != nil {
				t.Fatal(err)
			}
			if tc.invocated {
				t.Setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
			} else {
				t.Setenv("INVOCATION_ID", "")
			}
			keep, why := systemdKeeps(bus.Connect(t))
			if keep != tc.keep || !strings.Contains(why, tc.why) {
				t.Errorf("systemdKeeps = %v %q, want %v and a reason with %q", keep, why, tc.keep, tc.why)
			}
		})
	}
	t.Run("systemd not on the bus", func(t *testing.T) {
		t.Setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
		if keep, why := systemdKeeps(bus.Connect(t)); !keep || why == "" {
			t.Errorf("systemdKeeps = %v %q; when systemd cannot be asked the table stays", keep, why)
		}
	})
	t.Run("no bus", func(t *testing.T) {
		t.Setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef")
		if keep, _ := systemdKeeps(nil); !keep {
			t.Error("without a bus under systemd the table must stay")
		}
	})
}

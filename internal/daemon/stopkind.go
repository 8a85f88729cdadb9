package daemon

import (
	"fmt"
	"os"
	"strings"

	"github.com/godbus/dbus/v5"
)

// A stop under systemd is not always the end: `systemctl restart`, a
// package upgrade (postinst restarts the unit) and a `systemctl stop` of an
// enabled unit that is started again are all followed by a start, and
// removing the table in between would leave the host unprotected for as
// long as the next start takes to load the list (seconds at a million
// entries). So with cleanup_on_stop the table stays when the stop is part
// of a restart job or the unit is enabled; the next start adopts it
// without a gap. It goes when the unit is stopped while disabled
// (`systemctl disable --now`), outside systemd (run by hand), by
// `sikkerguard --cleanup`, and on package removal (prerm stops, disables
// and runs --cleanup).

// restartJobs are systemd job types whose stop phase is followed by a start.
var restartJobs = map[string]bool{"restart": true, "try-restart": true, "reload-or-restart": true, "reload-or-try-restart": true}

// systemdKeeps reports whether the table should stay at this stop, and
// why. Outside systemd (no INVOCATION_ID) it never keeps. When systemd
// cannot be asked (no system bus, an error), it keeps: a stale table
// protects, a missing one does not, and --cleanup removes it.
func systemdKeeps(bus *dbus.Conn) (bool, string) {
	if os.Getenv("INVOCATION_ID") == "" {
		return false, ""
	}
	if bus == nil {
		return true, "systemd cannot be asked whether the service comes back (no system bus connection)"
	}
	const dest = "org.freedesktop.systemd1"
	var unit dbus.ObjectPath
	if err := bus.Object(dest, "/org/freedesktop/systemd1").Call(dest+".Manager.GetUnitByPID", 0, uint32(os.Getpid())).Store(&unit); err != nil {
		return true, fmt.Sprintf("systemd could not be asked whether the service comes back (%v)", err)
	}
	u := bus.Object(dest, unit)
	if v, err := u.GetProperty(dest + ".Unit.Job"); err == nil {
		if job, ok := v.Value().([]any); ok && len(job) == 2 {
			if id, _ := job[0].(uint32); id != 0 {
				if path, ok := job[1].(dbus.ObjectPath); ok {
					if t, err := bus.Object(dest, path).GetProperty(dest + ".Job.JobType"); err == nil {
						if s, _ := t.Value().(string); restartJobs[s] {
							return true, "the service is restarting (systemd job " + s + ")"
						}
					}
				}
			}
		}
	}
	v, err := u.GetProperty(dest + ".Unit.UnitFileState")
	if err != nil {
		return true, fmt.Sprintf("systemd could not be asked whether the service is enabled (%v)", err)
	}
	state, _ := v.Value().(string)
	if strings.HasPrefix(state, "enabled") {
		return true, "the service is enabled and comes back at its next start (" + state + ")"
	}
	return false, ""
}

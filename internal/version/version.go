// Package version holds the build's version string, set by the linker
// (make build passes -X with `git describe`) and readable by every binary.
package version

import "runtime/debug"

// Version is overwritten at link time; "dev" marks an unversioned build.
var Version = "dev"

// String returns Version, or the module version recorded by `go install`
// when the linker flag was not used.
func String() string {
	if Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return Version
}

// UserAgent is what sikkerguard sends to HTTP servers it talks to.
func UserAgent() string {
	return "sikkerguard/" + String() + " (+https://sikkerapi.com)"
}

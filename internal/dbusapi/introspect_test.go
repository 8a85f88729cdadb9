package dbusapi

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite dbus/com.sikkerapi.SikkerGuard1.xml from the code")

var xmlFile = filepath.Join("..", "..", "dbus", BusName+".xml")

func TestIntrospectionFileIsCurrent(t *testing.T) {
	want, err := IntrospectXML()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(xmlFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(xmlFile)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, string(got)); d != "" {
		t.Errorf("%s differs from the exported introspection (go test -update rewrites it) (-code +file):\n%s", xmlFile, d)
	}
}

// The hand-written introspection must match what godbus really dispatches.
func TestIntrospectionMatchesMethods(t *testing.T) {
	sigs := func(args []introspect.Arg, dir string) string {
		s := ""
		for _, a := range args {
			if a.Direction == dir {
				s += a.Type
			}
		}
		return s
	}
	declared := map[string][2]string{}
	for _, m := range InterfaceIntrospection().Methods {
		declared[m.Name] = [2]string{sigs(m.Args, "in"), sigs(m.Args, "out")}
	}
	real := map[string][2]string{}
	for _, m := range introspect.Methods(methods{}) {
		real[m.Name] = [2]string{sigs(m.Args, "in"), sigs(m.Args, "out")}
	}
	if d := cmp.Diff(declared, real); d != "" {
		t.Errorf("introspection vs exported methods (-declared +real):\n%s", d)
	}
	// Properties: declared types against the values the server stores.
	initial := propMap("v", StateRunning, "nftables", false)[Interface]
	for _, p := range InterfaceIntrospection().Properties {
		v, ok := initial[p.Name]
		if !ok {
			t.Errorf("property %s declared but not served", p.Name)
			continue
		}
		if got := dbus.SignatureOf(v.Value).String(); got != p.Type {
			t.Errorf("property %s declared %s, served %s", p.Name, p.Type, got)
		}
		if want := map[bool]prop.EmitType{true: prop.EmitConst, false: prop.EmitTrue}[p.Name == PropVersion]; v.Emit != want {
			t.Errorf("property %s emits %v, want %v", p.Name, v.Emit, want)
		}
	}
	if n := len(InterfaceIntrospection().Properties); n != len(initial) {
		t.Errorf("%d properties declared, %d served", n, len(initial))
	}
}

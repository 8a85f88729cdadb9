package dbusapi_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi/dbustest"
)

func TestHubStatusOverTheBus(t *testing.T) {
	e := setup(t, dbustest.Shipped, dbusapi.Options{})
	if _, err := e.client.HubStatus(ctx(t)); !errors.Is(err, dbusapi.ErrNotFound) {
		t.Fatalf("no hub: err = %v, want ErrNotFound", err)
	}
	at := time.Unix(1_764_590_400, 0)
	want := dbusapi.HubStatus{Listen: "[::]:9548", Generation: at, Entries: 3, Window: 24 * time.Hour, Active: 1,
		Requests: 9, NotMod: 5, Refused: 2, Received: 4, Forwarded: 3, Pending: 1,
		Hosts: []dbusapi.HubHost{{Name: "web1", Addr: "192.0.2.10:40000", LastPull: at, Generation: at, Reports: 4}, {Name: "web2"}}}
	e.fake.SetHub(&want)
	got, err := e.client.HubStatus(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("HubStatus (-want +got):\n%s", d)
	}
}

package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sikkerapi/sikkerguard/internal/config"
	"github.com/sikkerapi/sikkerguard/internal/dbusapi"
	"github.com/sikkerapi/sikkerguard/internal/safety"
)

// A manual block is in force when the call returns, shown by check,

// persisted across a restart, held to the never-block list and the

// lockout guards, and lifted by unblock.

func TestManualBlockAndUnblock(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	l.cfg.Whitelist = append(l.cfg.Whitelist, mustPrefix(t, "198.51.100.10/32"))
	_, c, stop := startWithBus(t, l)
	ctx := context.Background()

	if err := c.Block(ctx, "198.51.100.0/28", 0, "scanner on port 22"); err != nil {
		t.Fatal(err)
	}
	if !l.fw.blocks("198.51.100.3") || l.fw.blocks("198.51.100.10") {
		t.Error("the manual range is not blocked, or its whitelisted address is")
	}
	blocked, why, err := c.Check(ctx, "198.51.100.3")
	if err != nil || !blocked || !strings.Contains(why, `blocked by hand: 198.51.100.0/28 ("scanner on port 22"), until unblocked`) ||
		!strings.Contains(why, "sikkerctl unblock 198.51.100.0/28") || strings.Contains(why, "198.51.100.3") {
		t.Errorf("check = %v %q %v", blocked, why, err)
	}
	if err := c.Block(ctx, "198.51.100.0/28", 0, "scanner on port 22"); !errors.Is(err, dbusapi.ErrExists) {
		t.Errorf("second block = %v, want Exists", err)
	}
	// Never-block list and lockout guards.
	if err := c.Block(ctx, "198.51.100.10", 0, ""); !errors.Is(err, dbusapi.ErrInvalidArgs) || !strings.Contains(err.Error(), "never blocked") {
		t.Errorf("block of a whitelisted address = %v", err)
	}
	if err := c.Block(ctx, "64.0.0.0/7", 0, ""); !errors.Is(err, dbusapi.ErrInvalidArgs) || !strings.Contains(err.Error(), "safety.min_prefix4") {
		t.Errorf("block wider than min_prefix4 = %v", err)
	}
	if err := c.Block(ctx, "64.0.0.0/8", 0, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.Block(ctx, "65.0.0.0/8", 0, ""); err != nil {
		t.Fatal(err)
	}
	// 16 more /8s pass max_block_share (10 % of the IPv4 internet).
	var err2 error
	for i := 66; i < 110 && err2 == nil; i++ {
		err2 = c.Block(ctx, itoa(i)+".0.0.0/8", 0, "")
	}
	if !errors.Is(err2, dbusapi.ErrFailed) || !strings.Contains(err2.Error(), "merged list") {
		t.Errorf("blocking a large share of the internet by hand = %v, want the merged-list refusal", err2)
	}
	if !l.fw.blocks("203.0.113.7") || !l.fw.blocks("64.1.2.3") {
		t.Error("a refused manual change altered what is in force")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// After a restart the entries are back, before any pull.
	l.fw = &fakeFirewall{}
	l.note = listenNotify(t)
	_, c, stop = startWithBus(t, l)
	if !l.fw.blocks("198.51.100.3") {
		t.Fatal("the manual block did not survive the restart")
	}
	if err := c.Unblock(ctx, "198.51.100.0/28"); err != nil {
		t.Fatal(err)
	}
	if l.fw.blocks("198.51.100.3") || !l.fw.blocks("203.0.113.7") {
		t.Error("unblock did not lift exactly the manual entry")
	}
	if err := c.Unblock(ctx, "198.51.100.0/28"); !errors.Is(err, dbusapi.ErrNotFound) {
		t.Errorf("second unblock = %v, want NotFound", err)
	}
	stop()
}

// An entry given a duration is lifted when it expires.

func TestManualBlockExpires(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	d, _ := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	if err := d.Block(mustPrefix(t, "198.51.100.7/32"), 200*time.Millisecond, ""); err != nil {
		t.Fatal(err)
	}
	if !l.fw.blocks("198.51.100.7") {
		t.Fatal("not blocked")
	}
	waitFor(t, "the entry to expire", func() bool { return !l.fw.blocks("198.51.100.7") })
	if !l.fw.blocks("203.0.113.7") {
		t.Error("the feed's list went with the expired entry")
	}
}

// A hand-edited manual.json is held to Block's rules.

func TestManualFileIsValidatedOnLoad(t *testing.T) {
	dir := t.TempDir()
	body := `{"entries":[{"prefix":"198.51.100.0/24","added":"2026-12-01T00:00:00Z"},` +
		`{"prefix":"10.0.0.0/4","added":"2026-12-01T00:00:00Z"},` +
		`{"prefix":"192.0.2.1/32","added":"2026-12-01T00:00:00Z","until":"2026-12-01T01:00:00Z"},` +
		`{"prefix":"198.51.100.0/24","added":"2026-12-01T00:00:00Z"}]}`
	if err := os.WriteFile(filepath.Join(dir, manualFile), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	l := newLab(t, "")
	got := loadManual(dir, config.Default().Safety, time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC), l.logger())
	if len(got) != 1 || got[0].Prefix.String() != "198.51.100.0/24" {
		t.Fatalf("loaded %+v, want only 198.51.100.0/24 (wide, expired and duplicate left out)", got)
	}
	if !strings.Contains(l.logs.String(), "wider than /8") {
		t.Errorf("log lacks the refused wide entry:\n%s", l.logs.String())
	}
	if err := os.WriteFile(filepath.Join(dir, manualFile), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := loadManual(dir, config.Default().Safety, time.Now(), l.logger()); got != nil {
		t.Fatalf("corrupt file loaded as %+v", got)
	}
}

// A configuration that does not load fails the reload: Reload returns

// InvalidConfig with the errors, systemd hears READY=1 with STATUS=reload

// failed and ERRNO=, and the running configuration stays.

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (l *lab) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// The blacklist quota the pull's headers announced is in the status.

// With safety.strip_private a manual block of a non-global address would

// be stripped from the plan: it is refused instead of claimed.

func TestManualBlockOfAPrivateAddressIsRefused(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	l.cfg.Safety.StripPrivate = true
	d, _ := l.start(nil)
	l.note.waitCount(t, "READY=1", 1)
	err := d.Block(mustPrefix(t, "10.1.2.3/32"), 0, "")
	if !errors.Is(err, dbusapi.ErrInvalidArgs) || !strings.Contains(err.Error(), "strip_private") {
		t.Fatalf("Block(10.1.2.3) = %v", err)
	}
}

// After a restart with a fresh cache nothing is pulled, yet a key the API

// refuses now (disabled while the daemon was stopped) shows at once:

// /v1/key/status refuses it and the feed is failed.

// --once enforces the entries blocked by hand too: the same inputs of

// the same decision as the daemon.

func TestOnceEnforcesManualEntries(t *testing.T) {
	l := newLab(t, "203.0.113.7\n")
	if err := saveManual(l.dir, []manualEntry{{Prefix: mustPrefix(t, "198.51.100.0/28"), Added: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	err := Once(context.Background(), OnceOptions{Config: l.cfg, Key: config.NewSecret(key), Firewall: l.fw, Log: l.logger(),
		Discover: func(context.Context, config.Config) (safety.NeverBlock, error) { return l.never, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if !l.fw.blocks("198.51.100.3") || !l.fw.blocks("203.0.113.7") {
		t.Error("--once did not enforce the manual entries with the feed's list")
	}
}

// Before a pull that needs more than the quota left, the journal says so;

// not when it fits, and not once the quota has reset.

// A pull on request honours a 429's Retry-After: asking again would only

// spend quota the API has refused.

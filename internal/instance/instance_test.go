package instance

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func testName(t *testing.T) string {
	return fmt.Sprintf("sikkerguard-test-%d-%s", os.Getpid(), t.Name())
}

func TestSecondAcquireNamesTheHolder(t *testing.T) {
	name := testName(t)
	l, err := Acquire(name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(name)
	var he *HeldError
	if !errors.As(err, &he) || !errors.Is(err, ErrHeld) {
		t.Fatalf("second Acquire = %v, want a HeldError", err)
	}
	if he.PID != os.Getpid() {
		t.Errorf("holder pid %d, want ours %d", he.PID, os.Getpid())
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d (", os.Getpid())) {
		t.Errorf("message %q does not name the pid and command", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(name)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
}

// A holder that dies without releasing leaves nothing behind.
func TestLockDiesWithItsHolder(t *testing.T) {
	if os.Getenv("INSTANCE_HOLDER") != "" {
		if _, err := Acquire(os.Getenv("INSTANCE_HOLDER")); err != nil {
			os.Exit(3)
		}
		fmt.Println("held")
		time.Sleep(time.Minute)
		return
	}
	name := testName(t)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestLockDiesWithItsHolder$")
	cmd.Env = append(os.Environ(), "INSTANCE_HOLDER="+name)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := out.Read(buf); err != nil || string(buf) != "held" {
		t.Fatalf("child did not take the lock: %q %v", buf, err)
	}
	_, err = Acquire(name)
	var he *HeldError
	if !errors.As(err, &he) || he.PID != cmd.Process.Pid {
		t.Fatalf("while the child holds it: %v, want pid %d", err, cmd.Process.Pid)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := Acquire(name)
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	l.Release()
}

package main

import (
	"fmt"
	"os"
	"testing"
)

// benchTB lets the benchmark use internal/testnet's lab outside a test: it
// runs the cleanups (the namespaces' removal) in reverse order and turns a
// fatal error into a panic that runPacket recovers after cleaning up.
// Embedding testing.TB supplies the unexported method; what the lab does
// not call stays nil and would panic.
type benchTB struct {
	testing.TB
	cleanups []func()
}

type benchFatal struct{ msg string }

func (b *benchTB) Helper()                         {}
func (b *benchTB) Cleanup(f func())                { b.cleanups = append(b.cleanups, f) }
func (b *benchTB) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (b *benchTB) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sikkerbench: "+format+"\n", args...)
}
func (b *benchTB) Fatal(args ...any) { panic(benchFatal{fmt.Sprint(args...)}) }
func (b *benchTB) Fatalf(format string, args ...any) {
	panic(benchFatal{fmt.Sprintf(format, args...)})
}

// run calls f and then every cleanup, and returns f's error or the fatal
// error that stopped it.
func (b *benchTB) run(f func() error) (err error) {
	defer func() {
		for i := len(b.cleanups) - 1; i >= 0; i-- {
			b.cleanups[i]()
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			bf, ok := r.(benchFatal)
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("%s", bf.msg)
		}
	}()
	return f()
}

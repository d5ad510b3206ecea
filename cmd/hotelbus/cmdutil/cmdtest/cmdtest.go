// Package cmdtest runs hotelbus commands in tests: the real command tree with buffers for I/O and
// a given environment, no process.
package cmdtest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/root"
)

// Result is what a command printed and its exit code.
type Result struct {
	Code        int
	Out, ErrOut string
}

// Run executes `hotelbus args...` with stdin, environment env (nil: empty) and a fresh data
// directory, and returns the outcome.
func Run(t testing.TB, env map[string]string, stdin string, args ...string) Result {
	t.Helper()
	var out, errOut bytes.Buffer
	f := &cmdutil.Factory{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut,
		Getenv: func(k string) string { return env[k] }, DataDir: t.TempDir()}
	code := root.Run(f, args)
	return Result{Code: code, Out: out.String(), ErrOut: errOut.String()}
}

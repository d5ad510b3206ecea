// Package cmdtest runs hotelbus commands in tests: the real command tree with buffers for I/O and
// a given environment, no process.
package cmdtest

import (
	"bytes"
	"os/exec"
	"path/filepath"
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

// Binary builds the hotelbus binary into t's temp dir, with ldflags (for -X stamping; "" for
// none), and returns its path: for tests of what only the real process shows (exit codes and
// timing with real signals and networking, linker stamping).
func Binary(t testing.TB, ldflags string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hotelbus")
	cmd := exec.Command("go", "build", "-ldflags", ldflags, "-o", bin, "github.com/hotelbus/hotelbus/cmd/hotelbus")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hotelbus: %v\n%s", err, out)
	}
	return bin
}

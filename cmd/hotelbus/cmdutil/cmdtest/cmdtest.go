// Package cmdtest runs hotelbus commands in tests: the real command tree with buffers for I/O and
// a given environment, no process.
package cmdtest

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/root"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
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

// SealedStack is a prefixed catalog on an in-process broker and registry with a fresh privacy key
// file, and a producer for system whose Serde seals personal data with it: for tests of commands
// that open sealed events.
type SealedStack struct {
	Broker   streamstest.Backend
	Prefix   string // the topic prefix, with its trailing "."
	Catalog  *topics.Catalog
	Schemas  *schemas.Set
	Registry string // the registry's URL
	KeyFile  string
	Serde    *streams.Serde
	Producer *streams.Producer
}

// Sealed starts a SealedStack whose topics are prefixed by a unique name made of name; everything
// stops when t ends.
func Sealed(t *testing.T, name, system string) *SealedStack {
	t.Helper()
	s := &SealedStack{Broker: streamstest.Kfake(t), Prefix: streamstest.Name(t, name) + "."}
	s.Catalog = streamstest.PrefixedCatalog(t, s.Broker, s.Prefix)
	var reg *sr.Client
	reg, s.Registry = streamstest.Registry(t)
	s.Schemas = streamstest.RegisterSchemas(t, reg, s.Catalog)
	s.KeyFile = filepath.Join(t.TempDir(), privacy.KeyFileName)
	if _, err := privacy.GenerateKeyFile(s.KeyFile); err != nil {
		t.Fatal(err)
	}
	prot, closeKeys, err := cmdutil.StartProtector(s.KeyFile, s.Broker.Brokers, nil, s.Catalog, s.Schemas)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeKeys)
	if s.Serde, err = streams.NewSerde(reg, s.Schemas, s.Catalog, streams.WithFieldProtector(prot)); err != nil {
		t.Fatal(err)
	}
	if s.Producer, err = streams.NewProducer(system, s.Serde, streams.Brokers(s.Broker.Brokers...)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Producer.Close(context.Background()) })
	return s
}

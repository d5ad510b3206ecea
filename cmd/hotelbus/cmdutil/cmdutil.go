// Package cmdutil holds what every hotelbus subcommand shares: injected I/O, environment lookup,
// exit codes, and where the brokers, registry and Redis are (flag, environment variable, or a running
// `hotelbus dev` stack's endpoints.json).
package cmdutil

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Exit codes: success, a failure of the work, bad usage.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Factory is what a command gets from its caller: I/O streams and the environment. Tests build
// their own Factory with buffers.
type Factory struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// Getenv looks up environment variables (os.Getenv in the binary).
	Getenv func(string) string
	// DataDir is where `hotelbus dev` keeps its data and endpoints.json (HOTELBUS_DATA_DIR or
	// ".hotelbus").
	DataDir string
}

// System returns the Factory of the running binary.
func System() *Factory {
	f := &Factory{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, Getenv: os.Getenv}
	f.DataDir = f.Getenv("HOTELBUS_DATA_DIR")
	if f.DataDir == "" {
		f.DataDir = DefaultDataDir
	}
	return f
}

// DefaultDataDir is the data directory of `hotelbus dev` when none is given.
const DefaultDataDir = ".hotelbus"

// UsageError is bad usage: a wrong flag, argument or value. The command exits with ExitUsage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError; name the flag or argument in the message.
func Usagef(format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...)}
}

// ExitCode maps a command's error to the process exit code.
func ExitCode(err error) int {
	var ue *UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return ExitUsage
	}
	return ExitFailure
}

// Endpoints is the shape of <data-dir>/endpoints.json written by `hotelbus dev`.
type Endpoints struct {
	Kafka    string            `json:"kafka,omitempty"`
	Registry string            `json:"registry,omitempty"`
	Redis    string            `json:"redis,omitempty"`
	Gateway  string            `json:"gateway,omitempty"`
	Monitor  string            `json:"monitor,omitempty"`
	Tokens   map[string]string `json:"tokens,omitempty"`
}

// EndpointsFile is the file name of Endpoints inside the data directory.
const EndpointsFile = "endpoints.json"

// ReadEndpoints reads dir/endpoints.json.
func ReadEndpoints(dir string) (*Endpoints, error) {
	b, err := os.ReadFile(filepath.Join(dir, EndpointsFile))
	if err != nil {
		return nil, err
	}
	var e Endpoints
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, EndpointsFile), err)
	}
	return &e, nil
}

// Resolve returns where a component is: the flag's value, else the environment variable, else the
// running dev stack's endpoints.json (saying so on ErrOut). flag names the flag for the error.
func (f *Factory) Resolve(flagValue, flag, env string, pick func(*Endpoints) string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := f.Getenv(env); v != "" {
		return v, nil
	}
	if e, err := ReadEndpoints(f.DataDir); err == nil && pick(e) != "" {
		fmt.Fprintf(f.ErrOut, "using %s from the dev stack's %s\n", pick(e), filepath.Join(f.DataDir, EndpointsFile))
		return pick(e), nil
	}
	return "", Usagef("no %s: pass --%s, set %s, or start `hotelbus dev`", flag, flag, env)
}

// Registry resolves --registry / HOTELBUS_REGISTRY.
func (f *Factory) Registry(flagValue string) (string, error) {
	return f.Resolve(flagValue, "registry", "HOTELBUS_REGISTRY", func(e *Endpoints) string { return e.Registry })
}

// Brokers resolves --brokers / HOTELBUS_BROKERS.
func (f *Factory) Brokers(flagValue string) (string, error) {
	return f.Resolve(flagValue, "brokers", "HOTELBUS_BROKERS", func(e *Endpoints) string { return e.Kafka })
}

// Redis resolves --redis / HOTELBUS_REDIS.
func (f *Factory) Redis(flagValue string) (string, error) {
	return f.Resolve(flagValue, "redis", "HOTELBUS_REDIS", func(e *Endpoints) string { return e.Redis })
}

// WriteJSON writes v as indented JSON to w.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteJSONLine writes v as one line of compact JSON to w.
func WriteJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

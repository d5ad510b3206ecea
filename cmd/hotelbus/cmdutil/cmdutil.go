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
	"time"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/streams"
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
	// DataDir is where `hotelbus dev` keeps its data and endpoints.json by default (LocateDev).
	DataDir string
	// DevSearch lists the data directories searched for a running dev stack (LocateDev); empty:
	// DataDir alone.
	DevSearch []string
	// DevSearchFrom is the directory DevSearch walked up from, for DevStack's message.
	DevSearchFrom string
	// ConnectTimeout bounds Reachable (--connect-timeout, a flag of the root command; 0 is
	// refused).
	ConnectTimeout time.Duration

	// components are what the command resolved and Reachable checks.
	components []*component
}

// System returns the Factory of the running binary.
func System() *Factory {
	f := &Factory{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, Getenv: os.Getenv, ConnectTimeout: DefaultConnectTimeout}
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "."
	}
	loc := LocateDev(f.Getenv, cwd)
	f.DataDir, f.DevSearch, f.DevSearchFrom = loc.DataDir, loc.Search, loc.From
	return f
}

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

// Resolve returns where a component is: the flag's value, else the environment variable, else the
// running dev stack's endpoints.json (DevStack; saying so on ErrOut). flag names the flag for the
// error, which also lists where the dev stack was looked for.
func (f *Factory) Resolve(flagValue, flag, env string, pick func(*Endpoints) string) (string, error) {
	v, _, err := f.resolve(flagValue, flag, env, pick)
	return v, err
}

// resolve is Resolve that also says where the value came from, for Reachable's messages.
func (f *Factory) resolve(flagValue, flag, env string, pick func(*Endpoints) string) (value, origin string, err error) {
	if flagValue != "" {
		return flagValue, "--" + flag, nil
	}
	if v := f.Getenv(env); v != "" {
		return v, env, nil
	}
	e, file, err := f.DevStack(flag, func(e *Endpoints) bool { return pick(e) != "" })
	if err != nil {
		return "", "", Usagef("no %s: pass --%s, set %s, or start `hotelbus dev`; %v", flag, flag, env, err)
	}
	fmt.Fprintf(f.ErrOut, "using %s from the dev stack's %s\n", pick(e), file)
	return pick(e), file + " of `hotelbus dev`, is it running?", nil
}

// Registry resolves --registry / HOTELBUS_REGISTRY; Reachable then checks it.
func (f *Factory) Registry(flagValue string) (string, error) {
	url, origin, err := f.resolve(flagValue, "registry", "HOTELBUS_REGISTRY", func(e *Endpoints) string { return e.Registry })
	if err == nil {
		f.useRegistry(url, origin)
	}
	return url, err
}

// Brokers resolves --brokers / HOTELBUS_BROKERS.
func (f *Factory) Brokers(flagValue string) (string, error) {
	v, _, err := f.brokers(flagValue)
	return v, err
}

func (f *Factory) brokers(flagValue string) (value, origin string, err error) {
	return f.resolve(flagValue, "brokers", "HOTELBUS_BROKERS", func(e *Endpoints) string { return e.Kafka })
}

// Redis resolves --redis / HOTELBUS_REDIS; Reachable then checks it. A password given in --redis
// is refused (a command line is visible to every user of the machine): it belongs in
// HOTELBUS_REDIS_PASSWORD, or in HOTELBUS_REDIS's URL.
func (f *Factory) Redis(flagValue string) (string, error) {
	url, origin, err := f.resolve(flagValue, "redis", "HOTELBUS_REDIS", func(e *Endpoints) string { return e.Redis })
	if err != nil {
		return "", err
	}
	if flagValue != "" && streams.RedactRedisURL(flagValue) != flagValue {
		return "", Usagef("--redis %s: no password on the command line; set %s instead", streams.RedactRedisURL(flagValue), EnvRedisPassword)
	}
	f.useRedis(url, origin)
	return url, nil
}

// AddPrefixFlag registers --prefix on cmd into p: the prefix of every topic and consumer group
// name the command uses, the one `topics apply --prefix` created the isolated copy with. Its usage
// has no backticks: pflag would show a backticked phrase as the flag's value name.
func AddPrefixFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "prefix", "", `topic and consumer group name prefix of an isolated copy of the platform (as "topics apply --prefix" creates)`)
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

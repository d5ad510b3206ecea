package cmdutil_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// factory returns a Factory with env as its environment, dir as its data directory and a
// buffer as ErrOut.
func factory(env map[string]string, dir string) (*cmdutil.Factory, *bytes.Buffer) {
	var errOut bytes.Buffer
	return &cmdutil.Factory{ErrOut: &errOut, Getenv: func(k string) string { return env[k] }, DataDir: dir,
		ConnectTimeout: cmdutil.DefaultConnectTimeout}, &errOut
}

// TestReachable: Kafka, the registry and Redis that answer pass; that do not answer fail at once
// with one line each naming the service, the address and where the address came from (flag,
// variable, the dev stack's endpoints.json); WarnUnreachable prints the same lines as warnings and
// goes on; each component is asked once.
func TestReachable(t *testing.T) {
	b := streamstest.Kfake(t)
	_, registry := streamstest.Registry(t)
	var redisURL string
	for _, u := range streamstest.RedisBackends(t) {
		redisURL = u
		break
	}
	f, _ := factory(map[string]string{"HOTELBUS_REGISTRY": registry}, t.TempDir())
	if _, _, err := f.KafkaOpts(&cmdutil.KafkaFlags{Brokers: strings.Join(b.Brokers, ",")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Registry(""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Redis(redisURL); err != nil {
		t.Fatal(err)
	}
	if err := f.Reachable(context.Background()); err != nil {
		t.Fatalf("every component answers: %v", err)
	}

	dev := t.TempDir()
	if err := os.WriteFile(filepath.Join(dev, cmdutil.EndpointsFile), []byte(`{"redis":"redis://127.0.0.1:1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ = factory(map[string]string{"HOTELBUS_REGISTRY": "http://127.0.0.1:1"}, dev)
	_, _, _ = f.KafkaOpts(&cmdutil.KafkaFlags{Brokers: "127.0.0.1:1"})
	_, _ = f.Registry("")
	_, _ = f.Redis("")
	start := time.Now()
	err := f.Reachable(context.Background())
	if !errors.Is(err, cmdutil.ErrUnreachable) || time.Since(start) > 5*time.Second {
		t.Fatalf("nothing answers: %v after %s, want ErrUnreachable at once", err, time.Since(start))
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"cannot reach Kafka at 127.0.0.1:1 (from --brokers): Metadata request: ",
		"cannot reach the schema registry at http://127.0.0.1:1 (from HOTELBUS_REGISTRY): GET /subjects: ",
		"cannot reach Redis at redis://127.0.0.1:1 (from " + filepath.Join(dev, cmdutil.EndpointsFile) + " of `hotelbus dev`, is it running?): PING: ",
	}
	if len(lines) != len(want) {
		t.Fatalf("error:\n%v\nwant %d lines", err, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) || !strings.Contains(lines[i], "refused") {
			t.Errorf("line %d = %q, want the prefix %q and the cause", i, lines[i], w)
		}
	}
	if err := f.Reachable(context.Background()); err != nil {
		t.Errorf("asked again: %v, want each component asked once", err)
	}

	f, errOut := factory(nil, t.TempDir())
	_, _ = f.Redis("redis://127.0.0.1:1")
	if err := f.WarnUnreachable(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := errOut.String(); !strings.HasPrefix(got, "warning: cannot reach Redis at redis://127.0.0.1:1 (from --redis): PING: ") ||
		!strings.HasSuffix(got, " (still trying)\n") {
		t.Errorf("WarnUnreachable printed %q", got)
	}

	f, _ = factory(nil, t.TempDir())
	f.ConnectTimeout = 0
	if err := f.Reachable(context.Background()); cmdutil.ExitCode(err) != cmdutil.ExitUsage || !strings.Contains(err.Error(), "--connect-timeout") {
		t.Errorf("--connect-timeout 0: %v, want a usage error naming the flag", err)
	}
}

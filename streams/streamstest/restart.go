package streamstest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Restartable is a Kafka broker a test may stop and start again at the same address with its data:
// an in-process kfake cluster persisting to a directory, or a private Apache Kafka process started
// from the rig's jars (never the shared rig broker other tests use).
type Restartable struct {
	Backend
	stop  func(t testing.TB, hard bool)
	start func(t testing.TB)
}

// Stop shuts the broker down cleanly.
func (r *Restartable) Stop(t testing.TB) { t.Helper(); r.stop(t, false) }

// Kill stops the broker without a clean shutdown (SIGKILL for Apache Kafka; kfake can only Close).
func (r *Restartable) Kill(t testing.TB) { t.Helper(); r.stop(t, true) }

// Start starts the broker again at the same address, on the same data.
func (r *Restartable) Start(t testing.TB) { t.Helper(); r.start(t) }

// RestartableBackends returns a restartable kfake always, and a private Apache Kafka broker when
// the rig is in use (HOTELBUS_TEST_BROKERS set); both are started and stopped when the test ends.
func RestartableBackends(t testing.TB) []*Restartable {
	t.Helper()
	out := []*Restartable{restartableKfake(t)}
	if os.Getenv(EnvBrokers) != "" {
		out = append(out, privateKafka(t))
	} else if Real() {
		t.Fatalf("a real Kafka broker is required (HOTELBUS_TEST_REAL=1) but %s is not set", EnvBrokers)
	}
	return out
}

func restartableKfake(t testing.TB) *Restartable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	var c *kfake.Cluster
	r := &Restartable{Backend: Backend{Name: "kfake", Brokers: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}}}
	r.start = func(t testing.TB) {
		t.Helper()
		var err error
		c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir), kfake.SyncWrites())
		if err != nil {
			t.Fatalf("streamstest: kfake start: %v", err)
		}
	}
	r.stop = func(testing.TB, bool) {
		if c != nil {
			c.Close()
			c = nil
		}
	}
	r.start(t)
	t.Cleanup(func() { r.stop(t, false) })
	return r
}

func privateKafka(t testing.TB) *Restartable {
	t.Helper()
	script := filepath.Join(ModuleRoot(t), ".ci", "rig", "broker.sh")
	state := t.TempDir()
	run := func(t testing.TB, args ...string) string {
		t.Helper()
		out, err := exec.Command("bash", append([]string{script}, args...)...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("streamstest: broker.sh %s: %v\n%s", args[0], err, stderr)
		}
		return strings.TrimSpace(string(out))
	}
	addr := run(t, "start", state)
	r := &Restartable{Backend: Backend{Name: "kafka", Brokers: []string{addr}, Real: true}}
	r.start = func(t testing.TB) { t.Helper(); run(t, "start", state) }
	r.stop = func(t testing.TB, hard bool) {
		t.Helper()
		if hard {
			run(t, "kill", state)
		} else {
			run(t, "stop", state)
		}
	}
	t.Cleanup(func() { _, _ = exec.Command("bash", script, "kill", state).Output() })
	return r
}

// ModuleRoot returns the directory holding go.mod, searching up from the working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("streamstest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

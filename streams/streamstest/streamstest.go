// Package streamstest gives tests the parts hotelbus runs on: a Kafka broker, a schema registry
// and a Redis. Each is the real one when the rig's environment variables name it (`make test`), and
// otherwise the embedded default: franz-go's kfake broker in process, the embedded registry, and
// miniredis (`go test`, `make test-fast`).
//
// Environment (set by `make test`):
//
//	HOTELBUS_TEST_REAL=1      real components are mandatory: a test that needs one fails without it
//	HOTELBUS_TEST_BROKERS     bootstrap address of a real Apache Kafka broker
//	HOTELBUS_TEST_REDIS       redis:// URL of a real redis-server
//	HOTELBUS_TEST_REDIS_CLUSTER  redis-cluster:// URL of a real Redis Cluster of three masters
//	HOTELBUS_TEST_PYTHON      python of a venv with confluent-kafka and fastavro (the interop peer)
//	HOTELBUS_TEST_NODE_MODULES node_modules of the rig's npm tools (@asyncapi/parser, typescript)
package streamstest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/streams/registry"
)

// Environment variable names.
const (
	EnvReal    = "HOTELBUS_TEST_REAL"
	EnvBrokers = "HOTELBUS_TEST_BROKERS"
	EnvRedis   = "HOTELBUS_TEST_REDIS"
	// EnvRedisCluster names a real Redis Cluster (redis-cluster://...).
	EnvRedisCluster = "HOTELBUS_TEST_REDIS_CLUSTER"
	EnvPython       = "HOTELBUS_TEST_PYTHON"
	// EnvNodeModules names the node_modules directory .ci/rig/common.sh ensure_npm_tools fills.
	EnvNodeModules = "HOTELBUS_TEST_NODE_MODULES"
)

// Real reports whether real components are mandatory in this run.
func Real() bool { return os.Getenv(EnvReal) == "1" }

// need returns the environment variable's value; when it is unset it fails the test under
// HOTELBUS_TEST_REAL=1 and skips it otherwise.
func need(t testing.TB, env, what string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	if Real() {
		t.Fatalf("%s is required (HOTELBUS_TEST_REAL=1) but %s is not set: run the tests through `make test`", what, env)
	}
	t.Skipf("%s not available: %s unset (runs under `make test`)", what, env)
	return ""
}

// Backend is one Kafka to run a test against.
type Backend struct {
	// Name is "kfake" or "kafka".
	Name    string
	Brokers []string
	// Real is true for Apache Kafka.
	Real bool
}

// Backends returns the Kafka backends a conformance test runs against: always the in-process kfake
// broker, and the real broker when HOTELBUS_TEST_BROKERS is set. Under HOTELBUS_TEST_REAL=1 a
// missing real broker fails the test.
func Backends(t testing.TB) []Backend {
	t.Helper()
	out := []Backend{Kfake(t)}
	if b := os.Getenv(EnvBrokers); b != "" {
		out = append(out, Backend{Name: "kafka", Brokers: strings.Split(b, ","), Real: true})
	} else if Real() {
		t.Fatalf("a real Kafka broker is required (HOTELBUS_TEST_REAL=1) but %s is not set", EnvBrokers)
	}
	return out
}

// Kfake starts an in-process kfake broker that is closed when the test ends.
func Kfake(t testing.TB, opts ...kfake.Opt) Backend {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("streamstest: kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return Backend{Name: "kfake", Brokers: c.ListenAddrs()}
}

// RealKafka returns the rig's real broker (see need for when it is missing).
func RealKafka(t testing.TB) Backend {
	t.Helper()
	return Backend{Name: "kafka", Brokers: strings.Split(need(t, EnvBrokers, "a real Kafka broker"), ","), Real: true}
}

// Client returns a franz-go client for the backend, closed when the test ends.
func (b Backend) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Brokers...)}, opts...)...)
	if err != nil {
		t.Fatalf("streamstest: client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// RedisBackends returns the Redis servers a conformance test runs against: always an in-process
// miniredis, and the rig's redis-server when HOTELBUS_TEST_REDIS is set (mandatory under
// HOTELBUS_TEST_REAL=1). Names are "miniredis" and "redis".
func RedisBackends(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{"miniredis": "redis://" + miniredis.RunT(t).Addr()}
	if u := os.Getenv(EnvRedis); u != "" {
		out["redis"] = u
	} else if Real() {
		t.Fatalf("a real Redis is required (HOTELBUS_TEST_REAL=1) but %s is not set", EnvRedis)
	}
	return out
}

// RedisCluster returns the rig's Redis Cluster URL (redis-cluster://, three masters), or "" when
// HOTELBUS_TEST_REDIS_CLUSTER is unset outside `make test`; under HOTELBUS_TEST_REAL=1 a missing
// Cluster fails the test. miniredis has no Cluster mode: the key layout is checked on a real one.
func RedisCluster(t testing.TB) string {
	t.Helper()
	u := os.Getenv(EnvRedisCluster)
	if u == "" && Real() {
		t.Fatalf("a real Redis Cluster is required (HOTELBUS_TEST_REAL=1) but %s is not set", EnvRedisCluster)
	}
	return u
}

// Registry starts the embedded schema registry (in memory) over HTTP and returns a client for it
// and its URL; it is closed when the test ends.
func Registry(t testing.TB, opts ...registry.Option) (*sr.Client, string) {
	t.Helper()
	reg, err := registry.New(opts...)
	if err != nil {
		t.Fatalf("streamstest: registry: %v", err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	cl, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		t.Fatalf("streamstest: registry client: %v", err)
	}
	return cl, reg.URL()
}

// Python returns the interop peer's python (see need for when it is missing).
func Python(t testing.TB) string {
	t.Helper()
	return need(t, EnvPython, "the Python interop peer")
}

// NodeModules returns the node_modules directory of the rig's npm tools (see need for when it is
// missing).
func NodeModules(t testing.TB) string {
	t.Helper()
	return need(t, EnvNodeModules, "the rig's npm tools (.ci/rig/common.sh ensure_npm_tools)")
}

// Chromium returns the path of a Chromium for headless browser tests: the rig installs Debian's
// (.ci/rig/common.sh ensure_chromium). Without one the test fails under HOTELBUS_TEST_REAL=1 and is
// skipped otherwise.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if Real() {
		t.Fatal("no Chromium in PATH (HOTELBUS_TEST_REAL=1): the rig installs Debian's chromium, see .ci/rig/common.sh ensure_chromium")
	}
	t.Skip("no Chromium in PATH (installed by the rig under `make test`)")
	return ""
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// Name returns a name unique to this test run, usable as a topic or group name:
// "<prefix>.<test name>.<random>".
func Name(t testing.TB, prefix string) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := unsafeChars.ReplaceAllString(t.Name(), "_")
	if len(n) > 100 {
		n = n[:100]
	}
	return prefix + "." + n + "." + hex.EncodeToString(b[:])
}

// Eventually polls cond every 10ms until it holds, failing the test after timeout with what it
// was waiting for.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

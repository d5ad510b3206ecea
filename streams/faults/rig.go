package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// runScript runs one of the rig's scripts (.ci/rig/NAME) with args and extra environment and
// returns its standard output; an error carries the script's standard error.
func runScript(root string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{filepath.Join(root, ".ci", "rig", name)}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("faults: %s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// script is runScript failing t on an error.
func script(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runScript(streamstest.ModuleRoot(t), env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readPid(t testing.TB, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("faults: pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("faults: pid file %s: %v", file, err)
	}
	return pid
}

// Broker is a private single-node Apache Kafka (.ci/rig/broker.sh) that a scenario may kill.
type Broker struct {
	Addr  string
	state string
}

// StartBroker starts a private broker; it is stopped when the test ends.
func StartBroker(t testing.TB) *Broker {
	t.Helper()
	b := &Broker{state: StateDir(t, "broker")}
	t.Cleanup(func() {
		_ = exec.Command("bash", filepath.Join(streamstest.ModuleRoot(t), ".ci", "rig", "broker.sh"), "stop", b.state).Run()
	})
	b.Addr = script(t, nil, "broker.sh", "start", b.state)
	return b
}

// Kill9 kills the broker's JVM with SIGKILL (no shutdown) and waits until it is gone.
func (b *Broker) Kill9(t testing.TB) {
	t.Helper()
	if err := killPid(readPid(t, filepath.Join(b.state, "kafka", "pid"))); err != nil {
		t.Fatal(err)
	}
}

// Restart starts the broker again on its data and address and waits until it serves metadata.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	script(t, nil, "broker.sh", "start", b.state)
}

// Cluster is the rig's three-node cluster (.ci/rig/cluster3.sh: replication 3, min.insync.replicas
// 2), with its state in a private directory so that it never touches another run's cluster.
type Cluster struct {
	Brokers []string
	runDir  string
}

// StartCluster3 starts the three-node cluster; it is stopped when the test ends. Its ports are
// fixed (19192/19292/19392): a cluster already running there fails the test.
func StartCluster3(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{runDir: StateDir(t, "cluster3")}
	env := []string{"HOTELBUS_RIG_TMP=" + c.runDir}
	t.Cleanup(func() {
		cmd := exec.Command("bash", filepath.Join(streamstest.ModuleRoot(t), ".ci", "rig", "cluster3.sh"), "stop")
		cmd.Env = append(os.Environ(), env...)
		_ = cmd.Run()
	})
	script(t, env, "cluster3.sh", "start")
	for n := 1; n <= 3; n++ {
		c.Brokers = append(c.Brokers, c.addr(n))
	}
	return c
}

func (c *Cluster) addr(node int) string { return "127.0.0.1:" + strconv.Itoa(19092+100*node) }

func (c *Cluster) dir(node int) string {
	return filepath.Join(c.runDir, "hotelbus-cluster3", "node"+strconv.Itoa(node))
}

// Kill9 kills node's JVM with SIGKILL and waits until it is gone.
func (c *Cluster) Kill9(t testing.TB, node int) {
	t.Helper()
	if err := killPid(readPid(t, filepath.Join(c.dir(node), "pid"))); err != nil {
		t.Fatal(err)
	}
}

// Restart starts nodes again on their data (faults.sh node-start), in parallel, and waits until
// each one is registered.
func (c *Cluster) Restart(t testing.TB, nodes ...int) {
	t.Helper()
	root := streamstest.ModuleRoot(t)
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			_, errs[i] = runScript(root, nil, "faults.sh", "node-start", c.dir(n), c.addr(n), strconv.Itoa(n))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// Redis is a private redis-server that a scenario may kill: like the rig's, without persistence,
// so a restart comes back empty (the dedup keys are gone).
type Redis struct {
	URL  string
	port int
	dir  string
	proc *Proc
}

// StartRedis starts a private redis-server and waits until it answers PING.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{port: FreePort(t), dir: t.TempDir()}
	r.URL = fmt.Sprintf("redis://127.0.0.1:%d/0", r.port)
	r.Restart(t)
	return r
}

// Kill9 kills redis-server with SIGKILL.
func (r *Redis) Kill9(t testing.TB) { t.Helper(); r.proc.Kill9(t) }

// Restart starts redis-server on the same port and waits until it answers PING.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("faults: redis-server: %v", err)
	}
	r.proc = Start(t, "redis-server", nil, bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", r.dir)
	cl := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for cl.Ping(context.Background()).Err() != nil {
		if r.proc.Exited() || time.Now().After(deadline) {
			t.Fatalf("faults: redis-server on port %d did not answer PING:\n%s", r.port, r.proc.Tail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RedisHA is a highly available Redis (.ci/rig/redis-ha.sh): a primary, a replica and three
// Sentinels, or a Redis Cluster; a scenario may kill its processes.
type RedisHA struct {
	// URL is the redis-sentinel:// or redis-cluster:// URL of the set.
	URL   string
	state string
}

// StartRedisSentinel starts a primary, a replica and three Sentinels (master name "hotelbus"); it
// is stopped when the test ends.
func StartRedisSentinel(t testing.TB) *RedisHA { t.Helper(); return startRedisHA(t, "sentinel") }

// StartRedisCluster starts a Redis Cluster of three masters with replicas (0 or 1) replicas each;
// it is stopped when the test ends.
func StartRedisCluster(t testing.TB, replicas int) *RedisHA {
	t.Helper()
	return startRedisHA(t, "cluster", strconv.Itoa(replicas))
}

func startRedisHA(t testing.TB, kind string, args ...string) *RedisHA {
	t.Helper()
	r := &RedisHA{state: StateDir(t, "redis-ha")}
	t.Cleanup(func() {
		_ = exec.Command("bash", filepath.Join(streamstest.ModuleRoot(t), ".ci", "rig", "redis-ha.sh"), "stop", r.state).Run()
	})
	r.URL = script(t, nil, "redis-ha.sh", append([]string{kind, r.state}, args...)...)
	return r
}

// Kill9 kills one of the set's processes (primary, replica, sentinel1..3, node1..6) with SIGKILL
// and returns its address.
func (r *RedisHA) Kill9(t testing.TB, name string) string {
	t.Helper()
	return "127.0.0.1:" + script(t, nil, "redis-ha.sh", "kill", r.state, name)
}

// Name returns the name of the set's process listening at addr ("" for none).
func (r *RedisHA) Name(t testing.TB, addr string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.state, "ports"))
	if err != nil {
		t.Fatalf("faults: redis-ha ports: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, port, ok := strings.Cut(line, " "); ok && "127.0.0.1:"+port == addr {
			return name
		}
	}
	return ""
}

// Primary returns the address of the primary now: for a Sentinel set, the one the first Sentinel
// that answers reports for master "hotelbus"; for a Cluster, the master that serves key's slot, as
// a freshly started client sees the cluster.
func (r *RedisHA) Primary(ctx context.Context, key string) (string, error) {
	rest, ok := strings.CutPrefix(r.URL, "redis-sentinel://")
	if !ok {
		rdb, err := streams.NewRedisClient(r.URL, streams.RedisNoRetry())
		if err != nil {
			return "", err
		}
		defer rdb.Close()
		cc, ok := rdb.(*redis.ClusterClient)
		if !ok {
			return "", fmt.Errorf("faults: %s is neither a Sentinel set nor a Cluster", r.URL)
		}
		node, err := cc.MasterForKey(ctx, key)
		if err != nil {
			return "", err
		}
		return node.Options().Addr, nil
	}
	addrs, master, _ := strings.Cut(rest, "/")
	var errs []error
	for _, addr := range strings.Split(addrs, ",") {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
		a, err := sc.GetMasterAddrByName(ctx, master).Result()
		sc.Close()
		if err == nil && len(a) == 2 {
			return a[0] + ":" + a[1], nil
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %v", addr, err))
	}
	return "", errors.Join(errs...)
}

package streams_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// crashChildEnv names the environment variable that turns the test binary into a crash-test
// consumer (see runCrashChild); its value is the child's crashChildConfig as JSON.
const crashChildEnv = "HOTELBUS_CRASH_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(crashChildEnv); cfg != "" {
		os.Exit(runCrashChild(cfg))
	}
	stop, err := startExampleStack()
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples' backends:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// crashChildConfig is what a crash-test consumer process needs to join the parent test's setup.
type crashChildConfig struct {
	Brokers  []string
	Registry string
	Prefix   string // the catalog's topic and group prefix
	Redis    string
	Effects  string // the Redis list the handler appends its side effects to
}

// runCrashChild consumes hotel-pms's service.ordered events with dedup until SIGTERM. The
// handler's side effect is one entry "<key> <eventId> <seq>" appended to a Redis list, applied
// with Dedup.OnDone: atomically with the event's done mark.
func runCrashChild(raw string) int {
	var cfg crashChildConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		return fail(err)
	}
	cat, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		return fail(err)
	}
	cat = cat.WithPrefix(cfg.Prefix)
	reg, err := sr.NewClient(sr.URLs(cfg.Registry))
	if err != nil {
		return fail(err)
	}
	serde, err := streams.NewSerde(reg, set, cat)
	if err != nil {
		return fail(err)
	}
	opts, err := redis.ParseURL(cfg.Redis)
	if err != nil {
		return fail(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	sys, _ := cat.System("hotel-pms")
	// The lease is shorter than the session timeout: when a killed member's partitions move on,
	// its leases have expired and the next owner takes the events over without waiting.
	dedup, err := streams.NewDedup(rdb, sys.Group, streams.DedupLease(2*time.Second))
	if err != nil {
		return fail(err)
	}
	c, err := streams.NewConsumer("hotel-pms", serde, streams.Brokers(cfg.Brokers...), streams.CommitInterval(100*time.Millisecond),
		streams.SessionTimeout(6*time.Second), streams.KafkaOptions(kgo.HeartbeatInterval(500*time.Millisecond)),
		streams.Use(dedup.Middleware(), streams.Retry()), streams.UsePreparer(dedup))
	if err != nil {
		return fail(err)
	}
	c.HandleType("service.ordered", func(ctx context.Context, m *streams.Message) error {
		entry := fmt.Sprintf("%s/%s %s %s", m.Record.Topic, m.Envelope.Metadata.TenantID, m.Envelope.EventID, m.Envelope.Metadata.CorrelationID)
		dedup.OnDone(m, func(p redis.Pipeliner) { p.RPush(ctx, cfg.Effects, entry) })
		time.Sleep(200 * time.Microsecond)
		return nil
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := c.Run(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// TestConsumerKill9: a consumer process is killed with SIGKILL in the middle of consumption,
// again and again, and restarted. Its side effects are written with Dedup.OnDone, so no event's
// effect is lost, applied twice or applied out of order per key, over 20,000 events of 200
// tenants and four kills.
func TestConsumerKill9(t *testing.T) {
	redisURL := streamstest.RedisBackends(t)["redis"]
	if redisURL == "" {
		redisURL = "redis://" + clockedMiniredis(t, 100*time.Millisecond).Addr() // a killed child's leases (2 s) must expire
	}
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			set, _ := loadAll(t)
			prefix := streamstest.Name(t, "t") + "."
			_, base := loadAll(t)
			cat := base.WithPrefix(prefix)
			ensure(t, b, cat)
			regCl, regURL := streamstest.Registry(t)
			serde, err := streams.NewSerde(regCl, set, cat, streams.AutoRegister(true))
			if err != nil {
				t.Fatal(err)
			}
			chk := streamstest.NewChecker()
			const tenants, per, kills = 200, 100, 4
			publishMany(t, b, serde, chk, []eventSpec{byTenant("service.ordered")}, tenants, per)

			opts, err := redis.ParseURL(redisURL)
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(opts)
			t.Cleanup(func() { rdb.Close() })
			sys, _ := cat.System("hotel-pms")
			effects := "effects:{" + sys.Group + "}"
			raw, err := json.Marshal(crashChildConfig{Brokers: b.Brokers, Registry: regURL, Prefix: prefix, Redis: redisURL, Effects: effects})
			if err != nil {
				t.Fatal(err)
			}
			applied := func() int64 { return rdb.LLen(context.Background(), effects).Val() }
			for k := range kills {
				child := startCrashChild(t, string(raw))
				// Kill points spread over the run: after another 2,000 to 5,000 effects.
				target := applied() + int64(2000+k*1000)
				eventually(t, 2*time.Minute, fmt.Sprintf("%d effects before kill %d", target, k+1), func() bool { return applied() >= target })
				if err := child.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				_ = child.Wait()
				t.Logf("%s: kill -9 #%d after %d effects", b.Name, k+1, applied())
			}
			child := startCrashChild(t, string(raw))
			eventually(t, 3*time.Minute, "every event's effect", func() bool { return applied() >= tenants*per })
			if err := child.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := child.Wait(); err != nil {
				t.Fatalf("the last consumer did not shut down cleanly: %v", err)
			}
			entries, err := rdb.LRange(context.Background(), effects, 0, -1).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				f := strings.Fields(e)
				if len(f) != 3 {
					t.Fatalf("malformed effect %q", e)
				}
				seq, err := strconv.Atoi(f[2])
				if err != nil {
					t.Fatalf("malformed effect %q", e)
				}
				chk.Handled(f[0], f[1], seq)
			}
			checkNoAnomalies(t, chk.Report())
			t.Logf("%s: %d events, %d effects applied after %d kills", b.Name, tenants*per, len(entries), kills)
		})
	}
}

// startCrashChild starts the test binary as a crash-test consumer; it is killed when the test
// ends, and its log is shown when the test failed.
func startCrashChild(t *testing.T, cfg string) *exec.Cmd {
	t.Helper()
	log, err := os.CreateTemp(t.TempDir(), "child-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("consumer process %d log:\n%s", cmd.Process.Pid, out)
		}
	})
	return cmd
}

// Package bench implements `hotelbus bench`: side-by-side performance ratios of the hotelbus paths
// against baselines measured in the same run.
package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/bench"
	"github.com/hotelbus/hotelbus/streams/registry"
)

type options struct {
	quick    bool
	json     bool
	kafka    *cmdutil.KafkaFlags
	registry string
	redis    string
	kcat     string
}

// New returns the bench command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "bench [--quick] [--json]",
		Short: "Side-by-side performance: each hotelbus path as a ratio against a baseline in the same run",
		Long: `bench measures, in one process against one broker, each hotelbus path next to a baseline doing the
same work without hotelbus, and prints the ratios (see "Reading the bench table" in the README):

  produce           SDK PublishAsync vs raw franz-go producing the same pre-encoded bytes
  consume           consumer runtime with Redis dedup, no-op handler, vs raw franz-go consume
  consume-typed     the same with handlers of the generated types (hamba/avro's struct codec)
  consume-lazy      the same with LazyDecode: the handler never decodes
  key-ordering      key-ordered concurrency vs partition-serial, 2 ms handler, 1,000 keys
  dedup-roundtrips  Redis round trips of the dedup checks per batch vs events per batch
  dedup-throughput  dedup check + done marks vs pipelined SET NX PX
  publish-sealed    publishing events with personal data sealed (streams/privacy) vs not sealed
  consume-sealed    consuming them, opened, vs the same events not sealed
  replay            hotelbus replay to JSONL vs kcat -C -e raw read of the same topic
  e2e-p50, e2e-p99  gateway to dispatcher target latency at half the peak rate vs the 202 answer time

It connects to --brokers, --registry and --redis (or HOTELBUS_BROKERS, HOTELBUS_REGISTRY,
HOTELBUS_REDIS). Given none of them, it starts an embedded broker (kfake), registry and Redis
(miniredis) in process and says so: those figures compare hotelbus with its baselines on the
embedded default, not on production components. Topics and consumer groups are created with a
random prefix and deleted at the end. --quick runs fewer events (under a minute on two cores).`,
		Example: `  hotelbus bench --quick
  hotelbus bench --brokers kafka:9092 --registry http://registry:8081 --redis redis://redis:6379/0 --json`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.BoolVar(&o.quick, "quick", false, "fewer events: under a minute on two cores")
	fl.BoolVar(&o.json, "json", false, "print the report as JSON instead of the table")
	fl.StringVar(&o.registry, "registry", "", "schema registry URL (env HOTELBUS_REGISTRY)")
	fl.StringVar(&o.redis, "redis", "", "Redis URL for the dedup keys: "+cmdutil.RedisURLUsage)
	fl.StringVar(&o.kcat, "kcat", "", "kcat binary for the replay baseline (default: kcat in PATH; without it the row is skipped)")
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	env := bench.Env{Kcat: o.kcat, Progress: f.ErrOut}
	var stop func()
	var err error
	if o.kafka.Brokers == "" && o.registry == "" && o.redis == "" &&
		f.Getenv("HOTELBUS_BROKERS") == "" && f.Getenv("HOTELBUS_REGISTRY") == "" && f.Getenv("HOTELBUS_REDIS") == "" {
		fmt.Fprintln(f.ErrOut, "bench: no --brokers, --registry or --redis: starting an embedded broker (kfake), registry and Redis (miniredis) in process")
		stop, err = embedded(&env)
	} else {
		stop, err = connect(f, o, &env)
	}
	if err != nil {
		return err
	}
	defer stop()
	if err := f.Reachable(ctx); err != nil {
		return err
	}
	rep, err := bench.Run(ctx, env, bench.Options{Quick: o.quick})
	if err != nil {
		return err
	}
	if o.json {
		return cmdutil.WriteJSON(f.Out, rep)
	}
	return rep.WriteTable(f.Out)
}

func connect(f *cmdutil.Factory, o *options, env *bench.Env) (func(), error) {
	seeds, kopts, err := f.KafkaOpts(o.kafka)
	if err != nil {
		return nil, err
	}
	if env.Registry, err = f.Registry(o.registry); err != nil {
		return nil, err
	}
	url, err := f.Redis(o.redis)
	if err != nil {
		return nil, err
	}
	rdb, err := f.RedisClientFor(url)
	if err != nil {
		return nil, err
	}
	env.Brokers, env.KafkaOptions, env.Redis = seeds, kopts, rdb
	env.Label = "brokers " + strings.Join(seeds, ",") + ", redis " + streams.RedactRedisURL(url)
	return func() { rdb.Close() }, nil
}

// embedded starts an in-memory kfake broker, the embedded registry and miniredis.
func embedded(env *bench.Env) (func(), error) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		return nil, fmt.Errorf("bench: kfake: %w", err)
	}
	reg, err := registry.New()
	if err != nil {
		kc.Close()
		return nil, fmt.Errorf("bench: registry: %w", err)
	}
	mr, err := miniredis.Run()
	if err != nil {
		kc.Close()
		_ = reg.Close()
		return nil, fmt.Errorf("bench: miniredis: %w", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	env.Brokers, env.Registry, env.Redis = kc.ListenAddrs(), reg.URL(), rdb
	env.Label = "embedded: kfake broker, embedded registry, miniredis"
	return func() {
		rdb.Close()
		mr.Close()
		_ = reg.Close()
		kc.Close()
	}, nil
}

// Package bridge implements `hotelbus bridge`: bridges between Kafka and other brokers.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/bridge/rabbitmq"
)

// EnvAMQP is the environment variable holding the AMQP URL when --amqp is not given.
const EnvAMQP = "HOTELBUS_AMQP"

// New returns the bridge command.
func New(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bridge",
		Short: "Bridge Kafka and another broker (RabbitMQ) while systems migrate",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newRabbitMQ(f))
	return cmd
}

type options struct {
	amqp, passwordEnv string
	fromRabbit        bool
	toRabbit          bool
	userMap           string
	types             []string
	kafka             *cmdutil.KafkaFlags
	registry, redis   string
	prefix            string
	spoolDir          string
	prefetch          int
	attempts          int
	maxInFlight       int
	lease             time.Duration
	shutdownTimeout   time.Duration
	sessionTimeout    time.Duration
	listen            string
	keyFile           string
}

func newRabbitMQ(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "rabbitmq [--from-rabbit] [--to-rabbit] --user-map FILE",
		Short: "Bridge RabbitMQ and Kafka in both directions",
		Long: `rabbitmq runs the RabbitMQ bridge (both directions unless --from-rabbit or --to-rabbit picks one).

It declares, durable and idempotently, the catalog's topic exchanges (hotelbus.system,
hotelbus.business, hotelbus.audit), the dead-letter exchange hotelbus.dlx with a queue of the same
name, and the bridge's quorum queue hotelbus.bridge.rabbitmq bound to every event exchange. On
RabbitMQ the routing key is the eventType, the body the JSON envelope, message-id the eventId.

RabbitMQ → Kafka (--from-rabbit): each message is published to Kafka as the system its AMQP
user-id maps to in --user-map ("<system> <rabbitmq user>" lines; RabbitMQ verifies user-id against
the connection's user), and acknowledged only after Kafka acknowledged it (or the spool, with
--spool-dir, holds it). A message with no mapped user-id, a type its system does not own, or an
invalid envelope goes to hotelbus.dlx with the header hotelbus-dlx-reason. One message per tenant
at a time, in queue order.

Kafka → RabbitMQ (--to-rabbit): every event type (--types narrows) is read through the consumer
group hotelbus.bridge.rabbitmq (dedup on Redis, retries, dead letters on
hotelbus.dlq.bridge.rabbitmq) and published to its exchange with publisher confirms and the
mandatory flag; offsets commit only after the confirm. The audit log's records are copied to
hotelbus.audit (group hotelbus.bridge.rabbitmq.audit, committed after the confirms).

Personal-data fields are sealed on their way to Kafka and opened on their way to RabbitMQ with the
guest-data protection key file (--key-file, ` + cmdutil.EnvKeyFile + `, or a running dev stack's); without
one they cross as they are.

Messages the bridge writes carry hotelbus-origin and are never taken back to the side they came
from. The AMQP URL comes from --amqp or $` + EnvAMQP + `; its password from the URL or from the variable
--amqp-password-env names (never write it on the command line). SIGINT or SIGTERM finishes what
is in flight, commits and closes the connection.`,
		Example: `  HOTELBUS_AMQP=amqp://bridge:$PW@rabbit:5672/ hotelbus bridge rabbitmq --user-map /etc/hotelbus/rabbit-users
  hotelbus bridge rabbitmq --amqp amqp://bridge@rabbit:5672/hotel --amqp-password-env RABBIT_PW --to-rabbit --types reservation.created,reservation.canceled`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.amqp, "amqp", "", "AMQP URL amqp://USER[:PASS]@HOST:PORT/VHOST (env "+EnvAMQP+")")
	fl.StringVar(&o.passwordEnv, "amqp-password-env", "", "name of the environment `variable` holding the AMQP password")
	fl.BoolVar(&o.fromRabbit, "from-rabbit", false, "bridge RabbitMQ → Kafka (default: both directions)")
	fl.BoolVar(&o.toRabbit, "to-rabbit", false, "bridge Kafka → RabbitMQ (default: both directions)")
	fl.StringVar(&o.userMap, "user-map", "", "`file` of \"<system> <rabbitmq user>\" lines (required with RabbitMQ → Kafka)")
	fl.StringSliceVar(&o.types, "types", nil, "event types bridged to RabbitMQ (default: every catalog type)")
	fl.StringVar(&o.registry, "registry", "", "schema registry URL (env HOTELBUS_REGISTRY)")
	fl.StringVar(&o.redis, "redis", "", "Redis URL for dedup, redis://host:port/db (env HOTELBUS_REDIS)")
	cmdutil.AddPrefixFlag(cmd, &o.prefix)
	fl.StringVar(&o.spoolDir, "spool-dir", "", "spool `dir` for events Kafka does not acknowledge in time (default: none; RabbitMQ keeps them unacknowledged)")
	fl.IntVar(&o.prefetch, "prefetch", 256, "RabbitMQ messages held unacknowledged at once")
	fl.IntVar(&o.attempts, "attempts", 5, "publications of one event to RabbitMQ before it is dead-lettered")
	fl.IntVar(&o.maxInFlight, "max-in-flight", 256, "events published to RabbitMQ at once (different keys)")
	fl.DurationVar(&o.lease, "dedup-lease", 30*time.Second, "dedup lease: how long another member waits for a crashed one's event")
	fl.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a shutdown waits for what is in flight")
	fl.DurationVar(&o.sessionTimeout, "session-timeout", 45*time.Second, "how long the group waits for a silent member (a crashed replica) before its partitions move")
	fl.StringVar(&o.listen, "listen", "127.0.0.1:9094", "address serving /metrics, /healthz and /readyz (`host:port`)")
	cmdutil.AddKeyFileFlag(cmd, &o.keyFile)
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	return cmd
}

// amqpURL resolves the AMQP URL and puts the password of --amqp-password-env in it.
func amqpURL(f *cmdutil.Factory, o *options) (string, error) {
	raw := o.amqp
	if raw == "" {
		raw = f.Getenv(EnvAMQP)
	}
	if raw == "" {
		return "", cmdutil.Usagef("--amqp: no AMQP URL (set --amqp or %s)", EnvAMQP)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" || u.User == nil {
		return "", cmdutil.Usagef("--amqp: want amqp://USER[:PASS]@HOST:PORT/VHOST")
	}
	if o.passwordEnv != "" {
		pw := f.Getenv(o.passwordEnv)
		if pw == "" {
			return "", cmdutil.Usagef("--amqp-password-env: $%s is empty", o.passwordEnv)
		}
		u.User = url.UserPassword(u.User.Username(), pw)
	}
	return u.String(), nil
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	if !o.fromRabbit && !o.toRabbit {
		o.fromRabbit, o.toRabbit = true, true
	}
	cat, err := cmdutil.Catalog(o.prefix)
	if err != nil {
		return err
	}
	topo := cat.RabbitMQ
	if topo == nil {
		return fmt.Errorf("bridge: the catalog declares no rabbitmq topology")
	}
	for _, et := range o.types {
		if _, err := cat.LookupEventType(et); err != nil {
			return cmdutil.Usagef("--types: %v", err)
		}
	}
	if o.types == nil {
		o.types = cat.EventTypes()
	}
	rawURL, err := amqpURL(f, o)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(f.ErrOut, nil))
	bopts := []rabbitmq.Option{rabbitmq.Prefetch(o.prefetch), rabbitmq.Logger(log)}
	var users map[string]string
	if o.fromRabbit {
		if o.userMap == "" {
			return cmdutil.Usagef("--user-map is required to bridge RabbitMQ → Kafka")
		}
		fh, err := os.Open(o.userMap)
		if err != nil {
			return cmdutil.Usagef("--user-map: %v", err)
		}
		users, err = rabbitmq.ParseUserMap(fh, cat)
		fh.Close()
		if err != nil {
			return cmdutil.Usagef("--user-map %s: %v", o.userMap, err)
		}
		bopts = append(bopts, rabbitmq.UserMap(users))
	}
	priv, err := f.PrivacyOptions(o.keyFile, o.kafka, cat, "personal-data fields cross the bridge as they are")
	if err != nil {
		return err
	}
	defer priv.Close()
	serde, err := f.Serde(o.registry, cat, false, priv.SerdeOptions...)
	if err != nil {
		return err
	}
	b, err := rabbitmq.New(rawURL, serde, cat, bopts...)
	if err != nil {
		return cmdutil.Usagef("%v", err)
	}
	seeds, kopts, err := f.KafkaOpts(o.kafka)
	if err != nil {
		return err
	}
	ops := cmdutil.NewOps()
	ops.Registry.MustRegister(b.Collectors()...)
	priv.Register(ops.Registry)
	metrics, err := streams.NewMetrics(ops.Registry)
	if err != nil {
		return err
	}
	ops.Ready(b.Ready)

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(1)
	go func() { defer wg.Done(); b.Run(runCtx) }()

	if o.fromRabbit {
		producers := map[string]rabbitmq.Publisher{}
		for _, sys := range users {
			if producers[sys] != nil {
				continue
			}
			popts := []streams.ProducerOption{streams.Brokers(seeds...), streams.KafkaOptions(append(slices.Clone(kopts), rabbitmq.OriginHook())...),
				streams.Observe(metrics)}
			if o.spoolDir != "" {
				popts = append(popts, streams.SpoolDir(o.spoolDir))
			}
			p, err := streams.NewProducer(sys, serde, popts...)
			if err != nil {
				return err
			}
			defer func() {
				cctx, ccancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
				defer ccancel()
				_ = p.Close(cctx)
			}()
			producers[sys] = p
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Inbound(runCtx, producers); err != nil {
				errs <- err
			}
		}()
	}
	if o.toRabbit {
		rdb, err := f.RedisClient(o.redis)
		if err != nil {
			return err
		}
		defer rdb.Close()
		ops.Ready(func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
		dedup, err := streams.NewDedup(rdb, topo.Group, streams.DedupLease(o.lease), streams.DedupLogger(log))
		if err != nil {
			return cmdutil.Usagef("%v (--dedup-lease)", err)
		}
		// Dead letters are written as the system the bridge consumes as, through the SDK's writer.
		w, err := streams.NewWriter(topo.ConsumeAs, cat, streams.Brokers(seeds...), streams.KafkaOptions(kopts...))
		if err != nil {
			return err
		}
		defer func() {
			cctx, ccancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
			defer ccancel()
			_ = w.Close(cctx)
		}()
		ops.Ready(w.Ping)
		dl, err := streams.NewDeadLetters(w, topo.DeadLetterTopic, streams.DeadLetterLogger(log))
		if err != nil {
			return err
		}
		c, err := streams.NewConsumer(topo.ConsumeAs, serde, streams.Brokers(seeds...), streams.KafkaOptions(kopts...), streams.Group(topo.Group),
			streams.Logger(log), streams.MaxInFlight(o.maxInFlight), streams.ShutdownTimeout(o.shutdownTimeout),
			streams.SessionTimeout(o.sessionTimeout), streams.UseStandard(streams.StandardChain{Metrics: metrics, Dedup: dedup, DeadLetters: dl,
				Retry: []streams.RetryOption{streams.RetryMaxAttempts(o.attempts)}}))
		if err != nil {
			if errors.Is(err, streams.ErrConfig) {
				return cmdutil.Usagef("%v", err)
			}
			return err
		}
		b.HandleAll(c, o.types)
		acl, err := f.KafkaClient(o.kafka, kgo.ConsumerGroup(topo.Group+".audit"), kgo.ConsumeTopics(cat.AuditTopic),
			kgo.DisableAutoCommit(), kgo.SessionTimeout(o.sessionTimeout))
		if err != nil {
			return err
		}
		defer acl.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Audit(runCtx, acl); err != nil {
				errs <- err
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(runCtx); err != nil {
				errs <- err
			}
			cancel() // the bridge stops with its Kafka side
		}()
	}
	if err := f.WarnUnreachable(ctx); err != nil {
		return err
	}
	addr, err := ops.Serve(o.listen)
	if err != nil {
		return err
	}
	defer ops.Close(context.Background())
	var dirs []string
	if o.fromRabbit {
		dirs = append(dirs, "RabbitMQ → Kafka (queue "+topo.Queue+")")
	}
	if o.toRabbit {
		dirs = append(dirs, fmt.Sprintf("Kafka → RabbitMQ (group %s, %d event types)", topo.Group, len(o.types)))
	}
	fmt.Fprintf(f.ErrOut, "bridging %s with %s; metrics on http://%s/metrics\n", b.Addr(), strings.Join(dirs, " and "), addr)
	<-runCtx.Done()
	wg.Wait()
	counts := b.Counts()
	fmt.Fprintf(f.ErrOut, "bridge stopped: in %d published, %d dead-lettered, %d own skipped; out %d published, %d own skipped\n",
		counts["in/published"], counts["in/dead-lettered"], counts["in/loop-skipped"], counts["out/published"], counts["out/loop-skipped"])
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// Package gateway implements `hotelbus gateway`: HTTP ingestion of events for services that are
// not written in Go.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams"
	gw "github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/topics"
)

type options struct {
	listen          string
	credentials     string
	reloadEvery     time.Duration
	kafka           *cmdutil.KafkaFlags
	keyFile         string
	registry        string
	redis           string
	spoolDir        string
	spoolAfter      time.Duration
	prefix          string
	devRegister     bool
	maxBodyBytes    int64
	maxEventBytes   int64
	maxBatchEvents  int
	publishTimeout  time.Duration
	shutdownTimeout time.Duration
	maxBuffered     int64
	maxParse        int64
	limits          gw.Limits
}

// New returns the gateway command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "gateway [--listen ADDR]",
		Short: "HTTP ingestion: services publish JSON envelopes over HTTP",
		Long: `gateway serves POST /v1/events and POST /v1/events/batch for the systems' services: the seed's JSON
envelope in, Avro on Kafka out, published as the system whose bearer token the request carries.
The OpenAPI document is at /openapi.json; /healthz, /readyz and /metrics are for operators.

Credentials (one or more tokens per system) come from --credentials, a file of
"<system> <token or sha256:digest> [tenants=<patterns>]" lines or a directory with one file per
system (a mounted Kubernetes secret) of "<token or sha256:digest> [tenants=<patterns>]" lines; from
HOTELBUS_GATEWAY_TOKEN_<SYSTEM> variables (HOTELBUS_GATEWAY_TOKEN_HOTEL_PMS); or, given neither, from
a running ` + "`hotelbus dev`" + ` stack's tokens (the ones of the gateway dev runs itself, in its
endpoints.json). Keep digests at rest: print one with
  printf %s "$TOKEN" | sha256sum        (and write it as sha256:<hex>)
tenants= scopes a credential: a comma-separated list of tenantIds and prefixes ending in "*"
(tenants=sakura-*,kyoto-grand); a publish for another tenant is refused with 403.

--credentials is checked every --reload-interval: a changed file replaces all its credentials at
once; an empty one revokes them all. A load that fails (malformed line, unknown system, missing
file) keeps the previous credentials, is logged once, counted in
hotelbus_gateway_credential_reload_failures_total and shown by hotelbus_gateway_credentials_stale
(1 until a load succeeds). Errors name the file and line, never a line's content.

Rate limits are token buckets counted in events: --system-rate per system, --tenant-rate per
system and tenant (0 turns one off); a refused publish is 429 with Retry-After. Memory is bounded
by --max-buffered-bytes (request bodies held at once) and --max-parse-bytes (events parsed at once,
whose memory can reach ~75 times their size); a request that waits more than 10s for either gets
503.

With --spool-dir, events the broker cannot take are kept on disk (answer 202 "spooled") and
delivered in order later; without it they fail with 503. SIGINT or SIGTERM stops accepting
connections, finishes the requests in flight and closes the producers (spooled events stay on disk
for the next run).`,
		Example: `  hotelbus gateway                                             # a second gateway on a running hotelbus dev stack, its tokens
  hotelbus gateway --listen :8080 --credentials /etc/hotelbus/tokens --spool-dir /var/lib/hotelbus/spool \
      --brokers kafka:9092 --registry http://registry:8081 --redis redis://redis:6379/0
  curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
      -d @reservation.json http://localhost:8080/v1/events`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to serve HTTP on (`host:port`; :8080 for every interface)")
	fl.StringVar(&o.credentials, "credentials", "", "credentials file or directory (a mounted Kubernetes secret); see above")
	fl.DurationVar(&o.reloadEvery, "reload-interval", 5*time.Second, "how often --credentials is checked for changes")
	fl.StringVar(&o.registry, "registry", "", "schema registry URL (env HOTELBUS_REGISTRY)")
	fl.StringVar(&o.redis, "redis", "", "Redis URL for Idempotency-Key answers: "+cmdutil.RedisURLUsage)
	fl.StringVar(&o.spoolDir, "spool-dir", "", "durable offline spool directory, one file per system (default: none)")
	fl.DurationVar(&o.spoolAfter, "spool-after", 15*time.Second, "with --spool-dir: how long an event waits for the broker before it is spooled")
	cmdutil.AddPrefixFlag(cmd, &o.prefix)
	fl.BoolVar(&o.devRegister, "dev-register", false, "register schema versions on first use (development only)")
	fl.Int64Var(&o.maxBodyBytes, "max-body-bytes", 4<<20, "largest request body")
	fl.Int64Var(&o.maxEventBytes, "max-event-bytes", 512<<10, "largest single event (JSON)")
	fl.IntVar(&o.maxBatchEvents, "max-batch-events", 500, "most events in one batch")
	fl.DurationVar(&o.publishTimeout, "publish-timeout", 30*time.Second, "how long a request waits for the broker (or the spool)")
	fl.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a shutdown waits for requests in flight")
	fl.Int64Var(&o.maxBuffered, "max-buffered-bytes", 8<<20, "request bodies held at once, at least --max-body-bytes")
	fl.Int64Var(&o.maxParse, "max-parse-bytes", 512<<10, "bytes of events parsed at once, at least --max-event-bytes")
	fl.Float64Var(&o.limits.SystemRate, "system-rate", 1000, "events per second each system may publish (0: unlimited)")
	fl.IntVar(&o.limits.SystemBurst, "system-burst", 2000, "events a system may publish at once above --system-rate")
	fl.Float64Var(&o.limits.TenantRate, "tenant-rate", 100, "events per second a system may publish for one tenant (0: unlimited)")
	fl.IntVar(&o.limits.TenantBurst, "tenant-burst", 500, "events a system may publish at once for one tenant above --tenant-rate")
	fl.IntVar(&o.limits.TenantBuckets, "tenant-buckets", 10000, "tenant buckets kept (least recently used dropped)")
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	cmdutil.AddKeyFileFlag(cmd, &o.keyFile)
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	if o.reloadEvery <= 0 || o.shutdownTimeout <= 0 {
		return cmdutil.Usagef("--reload-interval and --shutdown-timeout must be positive")
	}
	switch l := o.limits; {
	case l.SystemRate < 0 || l.TenantRate < 0:
		return cmdutil.Usagef("--system-rate and --tenant-rate must not be negative (0 = unlimited)")
	case l.SystemBurst < 1 || l.TenantBurst < 1 || l.TenantBuckets < 1:
		return cmdutil.Usagef("--system-burst, --tenant-burst and --tenant-buckets must be at least 1")
	}
	cat, err := cmdutil.Catalog(o.prefix)
	if err != nil {
		return err
	}
	systems := make([]string, len(cat.Systems))
	for i, s := range cat.Systems {
		systems[i] = s.Name
	}
	src := gw.CredentialSource{Path: o.credentials, Getenv: f.Getenv}
	if o.credentials == "" && !anyEnvToken(f, systems) {
		if ep, file, err := f.DevStack("gateway tokens", func(e *cmdutil.Endpoints) bool { return len(e.Tokens) > 0 }); err == nil {
			fmt.Fprintf(f.ErrOut, "using the dev stack's tokens from %s\n", file)
			src.Tokens = map[string][]string{}
			for sys, tok := range ep.Tokens {
				src.Tokens[sys] = []string{tok}
			}
		}
	}
	creds, err := gw.NewCredentials(systems, src)
	if err != nil {
		return cmdutil.Usagef("%v (--credentials)", err)
	}
	if creds.Count() == 0 {
		fmt.Fprintf(f.ErrOut, "gateway: %s holds no credential: every publish is refused (401) until it lists some\n", o.credentials)
	}
	seeds, kopts, err := f.KafkaOpts(o.kafka)
	if err != nil {
		return err
	}
	priv, err := f.PrivacyOptions(o.keyFile, o.kafka, cat, "") // seal personal data
	if err != nil {
		return err
	}
	defer priv.Close()
	serde, err := f.Serde(o.registry, cat, o.devRegister, priv.SerdeOptions...)
	if err != nil {
		return err
	}
	rdb, err := f.RedisClient(o.redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	kcl, err := f.KafkaClient(o.kafka)
	if err != nil {
		return err
	}
	defer kcl.Close()
	if err := f.WarnUnreachable(ctx); err != nil {
		return err
	}
	tp, stopTracing, err := f.Tracing(ctx, "gateway")
	if err != nil {
		return err
	}
	defer stopTracing(context.Background())
	var popts []streams.ProducerOption
	if o.spoolDir != "" {
		popts = append(popts, streams.SpoolDir(o.spoolDir), streams.SpoolAfter(o.spoolAfter))
	}
	log := slog.New(slog.NewTextHandler(f.ErrOut, nil))
	privMetrics := prometheus.NewRegistry()
	priv.Register(privMetrics)
	rt, err := Assemble(gw.Config{Credentials: creds, Redis: rdb, Kafka: kcl, TracerProvider: tp, Logger: log, Metrics: privMetrics,
		MaxBodyBytes: o.maxBodyBytes, MaxEventBytes: o.maxEventBytes, MaxBatchEvents: o.maxBatchEvents, PublishTimeout: o.publishTimeout,
		WriteTimeout: o.publishTimeout + 15*time.Second, MaxBufferedBytes: o.maxBuffered, MaxParseBytes: o.maxParse, Limits: o.limits},
		cat, serde, append([]streams.ProducerOption{streams.Brokers(seeds...), streams.KafkaOptions(kopts...), streams.Tracing(tp)}, popts...)...)
	if err != nil {
		return err
	}
	defer rt.Close(f.ErrOut)
	server := rt.Server
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return cmdutil.Usagef("--listen: %v", err)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go creds.Watch(wctx, o.reloadEvery, log)
	fmt.Fprintf(f.ErrOut, "gateway listening on http://%s (OpenAPI at /openapi.json)\n", ln.Addr())
	served := make(chan error, 1)
	go func() { served <- server.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("gateway: serving: %w", err)
	case <-ctx.Done():
	}
	fmt.Fprintln(f.ErrOut, "gateway: shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := server.Shutdown(sctx); err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	return <-served
}

func anyEnvToken(f *cmdutil.Factory, systems []string) bool {
	for _, s := range systems {
		if f.Getenv(gw.EnvName(s)) != "" {
			return true
		}
	}
	return false
}

// Runtime is a gateway on one catalog: a producer per system and the Server. `hotelbus gateway`
// and `hotelbus dev` both run it.
type Runtime struct {
	Server    *gw.Server
	producers map[string]*streams.Producer
}

// Assemble builds a Runtime from cfg, whose Credentials, Redis and Kafka must be set: it fills in
// the producers, one per system of cat built with popts and observed by the gateway's metrics (each
// writes its own publish audit records, streams.PublishAudit's default), the registry and the
// metrics (the gateway's, beside cfg.Metrics when set). A configuration refused is a usage error.
// Close it after the Server's Shutdown.
func Assemble(cfg gw.Config, cat *topics.Catalog, serde *streams.Serde, popts ...streams.ProducerOption) (_ *Runtime, err error) {
	reg := prometheus.NewRegistry()
	metrics, err := streams.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	rt := &Runtime{producers: map[string]*streams.Producer{}}
	defer func() {
		if err != nil {
			rt.Close(io.Discard)
		}
	}()
	popts = append(popts, streams.Observe(metrics))
	for _, s := range cat.Systems {
		p, err := streams.NewProducer(s.Name, serde, popts...)
		if err != nil {
			if errors.Is(err, streams.ErrConfig) {
				return nil, cmdutil.Usagef("%v", err)
			}
			return nil, err
		}
		rt.producers[s.Name] = p
		metrics.ObserveSpool(p)
	}
	cfg.Producers, cfg.Registry = rt.producers, serde.Registry()
	if cfg.Metrics != nil {
		cfg.Metrics = prometheus.Gatherers{reg, cfg.Metrics}
	} else {
		cfg.Metrics = reg
	}
	if rt.Server, err = gw.New(cfg); err != nil {
		return nil, cmdutil.Usagef("%v", err)
	}
	return rt, nil
}

// Close flushes every producer (with a spool, what the broker did not take stays on disk),
// reporting failures on errOut.
func (rt *Runtime) Close(errOut io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for sys, p := range rt.producers {
		if err := p.Close(ctx); err != nil {
			fmt.Fprintf(errOut, "gateway: closing the %s producer: %v\n", sys, err)
		}
	}
}

// Package dispatch implements `hotelbus dispatch`: a system's events pushed to an HTTP endpoint.
package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/dispatch"
)

// EnvSecret is the environment variable holding the signing secrets, comma-separated, newest
// first, when --secret-file is not given.
const EnvSecret = "HOTELBUS_DISPATCH_SECRET"

type options struct {
	system          string
	target          string
	secretFile      string
	authFile        string
	kafka           *cmdutil.KafkaFlags
	keyFile         string
	registry        string
	redis           string
	prefix          string
	timeout         time.Duration
	attempts        int
	threshold       int
	probe, probeMax time.Duration
	lease           time.Duration
	waitReplicas    int
	waitTimeout     time.Duration
	parkKey         bool
	maxInFlight     int
	shutdownTimeout time.Duration
	sessionTimeout  time.Duration
	listen          string
}

// New returns the dispatch command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "dispatch --system S --target URL",
		Short: "Deliver the events a system subscribes to to its HTTP endpoint",
		Long: `dispatch runs the consumer runtime for one system (its consumer group, per-key order, dedup on
Redis, retries, dead letters) and POSTs each event to --target as a CloudEvents binary-mode request:
the seed's JSON envelope as the body; ce-id, ce-type, ce-source, ce-time, ce-subject, ce-tenantid,
ce-correlationid and traceparent headers; and Hotelbus-Signature: t=<unix>,v2=<hex>, the
HMAC-SHA256 of the lines "<t>", ce-id, ce-type, ce-source, ce-tenantid and the body joined by "\n"
(see the dispatch package's Sign and Verify), under the first (newest) secret of --secret-file (one
secret per line) or ` + EnvSecret + ` (comma-separated), read at start. To rotate, give receivers the
new secret next to the old one, then list the new secret first here and restart, then drop the old
one. Given neither, a running ` + "`hotelbus dev`" + ` stack's secret is used (dispatchSecret in its
endpoints.json, for the receiver to verify with).

The target authenticates the dispatcher with the headers of --target-auth-file ("Name: value"
lines, e.g. "Authorization: Bearer <token>"), checked for a change every second and reread (a
reread that fails keeps the previous headers and is logged at error). Credentials in the --target
URL are refused; its query string is sent but shown nowhere (logs, metrics, errors, spans).
An event whose identifiers cannot be sent as headers (a control character, more than 4096 bytes)
is dead-lettered at once as an invalid event (hotelbus.dlq.dispatch.invalid-header names the
header); it never counts as a failure of the target.

2xx is done. 408, 429 (Retry-After honoured), 5xx, connection errors and timeouts are retried with
backoff up to --attempts; other answers, 3xx included (redirects are never followed), send the event to the system's dead-letter topic with the
status and the start of the answer in headers (hotelbus.dlq.http.status, hotelbus.dlq.http.response).
After --breaker-threshold consecutive transient failures the target counts as down: deliveries wait
(no dead letters, no busy loop) and one probe goes out after --probe-interval, doubling up to
--probe-max, until the target answers again; delivery then resumes in order.

SIGINT or SIGTERM finishes the deliveries in flight (within --shutdown-timeout), commits and leaves
the group.`,
		Example: `  HOTELBUS_DISPATCH_SECRET=$(cat /run/secrets/pms-hook) hotelbus dispatch --system hotel-pms --target https://pms.internal/hooks/hotelbus
  hotelbus dispatch --system hotel-saas --target http://localhost:3000/events --secret-file ./dev-secret
  hotelbus dispatch --system hotel-pms --target https://pms.internal/hooks --secret-file /run/secrets/signing --target-auth-file /run/secrets/pms-auth`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.system, "system", "", "the receiving system (required): its subscriptions are delivered")
	fl.StringVar(&o.target, "target", "", "the endpoint events are POSTed to (required), http:// or https://")
	fl.StringVar(&o.secretFile, "secret-file", "", "file holding the signing secrets, one per line, newest first (default: $"+EnvSecret+", comma-separated, or a running hotelbus dev stack's); each at least 16 bytes")
	fl.StringVar(&o.authFile, "target-auth-file", "", "file of \"Name: value\" header lines sent to the target, e.g. \"Authorization: Bearer <token>\" (reread on change)")
	fl.StringVar(&o.registry, "registry", "", "schema registry URL (env HOTELBUS_REGISTRY)")
	fl.StringVar(&o.redis, "redis", "", "Redis URL for dedup: "+cmdutil.RedisURLUsage)
	cmdutil.AddPrefixFlag(cmd, &o.prefix)
	fl.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long one delivery may take")
	fl.IntVar(&o.attempts, "attempts", 5, "deliveries of one event before it is dead-lettered (transient failures)")
	fl.IntVar(&o.threshold, "breaker-threshold", 5, "consecutive transient failures that open the circuit")
	fl.DurationVar(&o.probe, "probe-interval", time.Second, "first wait before probing a target that is down")
	fl.DurationVar(&o.probeMax, "probe-max", 30*time.Second, "longest wait between probes")
	fl.DurationVar(&o.lease, "dedup-lease", 30*time.Second, "dedup lease: how long another member waits for a delivery of a crashed one")
	fl.IntVar(&o.waitReplicas, "dedup-wait-replicas", 0, "replicas that must acknowledge every dedup done mark (Redis WAIT) before its offset is committed, so a Sentinel failover keeps it; 0: no WAIT; not with redis-cluster://")
	fl.DurationVar(&o.waitTimeout, "dedup-wait-timeout", 100*time.Millisecond, "longest WAIT for --dedup-wait-replicas")
	fl.BoolVar(&o.parkKey, "park-key", false, "after a dead letter, dead-letter the key's later events too until redrive (default: continue)")
	fl.IntVar(&o.maxInFlight, "max-in-flight", 256, "deliveries running at once (different keys)")
	fl.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a shutdown waits for deliveries in flight")
	fl.DurationVar(&o.sessionTimeout, "session-timeout", 45*time.Second, "how long the group waits for a silent member (a crashed replica) before its partitions move")
	fl.StringVar(&o.listen, "listen", "127.0.0.1:0", "address serving /metrics, /healthz and /readyz (`host:port`; port 0: a free one, printed at start)")
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	cmdutil.AddKeyFileFlag(cmd, &o.keyFile)
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	cat, err := cmdutil.Catalog(o.prefix)
	if err != nil {
		return err
	}
	sys, err := cmdutil.LookupSystem(cat, o.system)
	switch {
	case err != nil:
		return err
	case len(sys.Subscribes) == 0:
		return cmdutil.Usagef("--system: %s subscribes to nothing", o.system)
	case o.target == "":
		return cmdutil.Usagef("--target is required")
	}
	secrets, err := ReadSecrets(f, o.secretFile)
	if err != nil {
		return err
	}
	priv, err := f.PrivacyOptions(o.keyFile, o.kafka, cat, "personal-data fields are pushed sealed") // push bodies carry clear values
	if err != nil {
		return err
	}
	defer priv.Close()
	serde, err := f.Serde(o.registry, cat, false, priv.SerdeOptions...)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(f.ErrOut, nil))
	tp, stopTracing, err := f.Tracing(ctx, "dispatch")
	if err != nil {
		return err
	}
	defer stopTracing(context.Background())
	dopts := []dispatch.Option{dispatch.Secret(secrets...), dispatch.Timeout(o.timeout),
		dispatch.Breaker(o.threshold, o.probe, o.probeMax), dispatch.Logger(log), dispatch.Tracing(tp)}
	if o.authFile != "" {
		dopts = append(dopts, dispatch.TargetAuthFile(o.authFile))
	}
	d, err := dispatch.New(o.target, serde, dopts...)
	if err != nil {
		return cmdutil.Usagef("%v", err)
	}
	rdb, err := f.RedisClient(o.redis)
	if err != nil {
		return err
	}
	defer rdb.Close()
	dedup, err := streams.NewDedup(rdb, sys.Group, streams.DedupLease(o.lease), streams.DedupLogger(log),
		streams.DedupWaitReplicas(o.waitReplicas, o.waitTimeout))
	if err != nil {
		return cmdutil.Usagef("%v (--dedup-lease, --dedup-wait-replicas, --dedup-wait-timeout)", err)
	}
	seeds, kopts, err := f.KafkaOpts(o.kafka)
	if err != nil {
		return err
	}
	// Dead letters and audit records are written as the system, through the SDK's writer.
	w, err := streams.NewWriter(o.system, cat, streams.Brokers(seeds...), streams.KafkaOptions(kopts...), streams.Tracing(tp))
	if err != nil {
		return cmdutil.Usagef("%v", err)
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
		defer ccancel()
		_ = w.Close(cctx)
	}()
	if err := f.WarnUnreachable(ctx); err != nil {
		return err
	}
	dl, err := streams.NewDeadLetters(w, sys.DeadLetterTopic, streams.ParkKey(o.parkKey), streams.DeadLetterLogger(log))
	if err != nil {
		return err
	}
	ops := cmdutil.NewOps()
	metrics, err := streams.NewMetrics(ops.Registry)
	if err != nil {
		return err
	}
	metrics.ObserveDedup(dedup)
	ops.Registry.MustRegister(d.Collector(o.system))
	priv.Register(ops.Registry)
	ops.Ready(w.Ping)
	ops.Ready(func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	audit, err := streams.NewAuditLog(w, log)
	if err != nil {
		return err
	}
	c, err := streams.NewConsumer(o.system, serde, streams.Brokers(seeds...), streams.KafkaOptions(kopts...), streams.Logger(log),
		streams.MaxInFlight(o.maxInFlight), streams.ShutdownTimeout(o.shutdownTimeout), streams.SessionTimeout(o.sessionTimeout), streams.Tracing(tp),
		streams.UseStandard(streams.StandardChain{Metrics: metrics, Audit: audit, Dedup: dedup, DeadLetters: dl,
			Retry: []streams.RetryOption{streams.RetryMaxAttempts(o.attempts)}}))
	if err != nil {
		if errors.Is(err, streams.ErrConfig) {
			return cmdutil.Usagef("%v", err)
		}
		return err
	}
	d.HandleAll(c, sys.Subscribes)
	addr, err := ops.Serve(o.listen)
	if err != nil {
		return err
	}
	defer ops.Close(context.Background())
	fmt.Fprintf(f.ErrOut, "dispatching %s's events (group %s, topics %s) to %s; metrics on http://%s/metrics\n",
		o.system, c.Group(), strings.Join(c.Topics(), ", "), d.Target(), addr)
	if err := c.Run(ctx); err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := audit.Flush(fctx); err != nil {
		fmt.Fprintf(f.ErrOut, "audit log: %v\n", err)
	}
	st := d.Stats()
	fmt.Fprintf(f.ErrOut, "dispatch stopped: %d delivered, %d refused (dead-lettered), %d transient failures, circuit opened %d times\n",
		st.Delivered, st.Refused, st.Transient, st.Opened)
	return nil
}

// ReadSecrets returns the signing secrets, newest first: the lines of path (blank lines and lines
// starting with # skipped), or the comma-separated EnvSecret when path is "", or else the running
// dev stack's dispatchSecret; none is a usage error naming each. Errors never show a secret.
func ReadSecrets(f *cmdutil.Factory, path string) ([][]byte, error) {
	var parts []string
	if path == "" {
		s := f.Getenv(EnvSecret)
		if s == "" {
			e, file, err := f.DevStack("dispatch signing secret", func(e *cmdutil.Endpoints) bool { return e.DispatchSecret != "" })
			if err != nil {
				return nil, cmdutil.Usagef("no signing secret: pass --secret-file, set %s, or start `hotelbus dev`; %v", EnvSecret, err)
			}
			fmt.Fprintf(f.ErrOut, "using the dev stack's signing secret (dispatchSecret in %s)\n", file)
			s = e.DispatchSecret
		}
		parts = strings.Split(s, ",")
	} else {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, cmdutil.Usagef("--secret-file: %v", err)
		}
		for line := range strings.Lines(string(b)) {
			if !strings.HasPrefix(strings.TrimSpace(line), "#") {
				parts = append(parts, line)
			}
		}
	}
	var secrets [][]byte
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			secrets = append(secrets, []byte(p))
		}
	}
	if len(secrets) == 0 {
		return nil, cmdutil.Usagef("no signing secret in %s", cmp.Or(path, "$"+EnvSecret))
	}
	return secrets, nil
}

// Package dev implements `hotelbus dev`: the whole platform in one process on its embedded default.
package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	gwcmd "github.com/hotelbus/hotelbus/cmd/hotelbus/gateway"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	gw "github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/monitor"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/registry"
	"github.com/hotelbus/hotelbus/topics"
)

// Options configure a dev stack.
type Options struct {
	// DataDir holds the broker's log, the registry's schemas, dev-state.json and endpoints.json.
	DataDir string
	// Fresh wipes DataDir first.
	Fresh bool
	// Redis is an external Redis URL; "" starts an in-process one.
	Redis string
	// Host is the interface every endpoint listens on.
	Host string
	// KafkaPort, RegistryPort, MonitorPort and GatewayPort pin the ports (0: the port of the last
	// start when it is free, else any free port).
	KafkaPort, RegistryPort, MonitorPort, GatewayPort int
	// SchemasDir is the schema tree to register ("": the schemas built into the binary).
	SchemasDir string
	// Log receives the stack's notices (a remembered port taken) and the gateway's log. Default:
	// none.
	Log io.Writer
}

// Stack is a running dev platform.
type Stack struct {
	Endpoints cmdutil.Endpoints
	// Created lists the topics created at this start (none on a restart).
	Created []string

	kafka    *kfake.Cluster
	registry *registry.Registry
	redis    *miniredis.Miniredis
	dataDir  string
	state    *state
	log      io.Writer
	// monitor serves the dashboard; stopMonitor ends its polling and serving.
	monitor     *http.Server
	stopMonitor func()
	// stopGateway shuts the gateway down and closes its producers and clients.
	stopGateway func()
}

// Start brings up the broker, the registry and Redis, applies the dev topics, registers the
// schemas, serves the dashboard and the gateway, and writes <DataDir>/endpoints.json. Data
// persists across Close and Start with the same DataDir: records, committed offsets, schema ids,
// the gateway tokens, the dispatch signing secret and, when still free, the ports.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.DataDir == "" {
		return nil, cmdutil.Usagef("--data-dir must not be empty")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Fresh {
		if err := os.RemoveAll(o.DataDir); err != nil {
			return nil, fmt.Errorf("dev: --fresh: %w", err)
		}
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("dev: --data-dir: %w", err)
	}
	if e, err := cmdutil.ReadEndpoints(o.DataDir); err == nil && e.PID != 0 && !e.Stale() {
		return nil, fmt.Errorf("dev: a dev stack (pid %d) already runs on %s (its endpoints are in %s): use it, stop it, or give another --data-dir",
			e.PID, o.DataDir, filepath.Join(o.DataDir, cmdutil.EndpointsFile))
	}
	fsys := schemas.Embedded()
	if o.SchemasDir != "" {
		if st, err := os.Stat(o.SchemasDir); err != nil || !st.IsDir() {
			return nil, cmdutil.Usagef("--schemas-dir: %q is not a directory", o.SchemasDir)
		}
		fsys = os.DirFS(o.SchemasDir)
	}
	set, err := schemas.Load(fsys)
	if err != nil {
		return nil, err
	}
	cat, err := topics.Load(topics.Embedded(), "dev")
	if err != nil {
		return nil, err
	}
	st, err := loadState(o.DataDir, cat)
	if err != nil {
		return nil, err
	}
	s := &Stack{dataDir: o.DataDir, state: st, log: o.Log}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	kafkaLn, err := s.listen(o.Host, "kafka", o.KafkaPort)
	if err != nil {
		return nil, err
	}
	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(filepath.Join(o.DataDir, "kafka")), kfake.SyncWrites(),
		kfake.ListenFn(func(string, string) (net.Listener, error) { return kafkaLn, nil })}
	if s.kafka, err = kfake.NewCluster(kopts...); err != nil {
		_ = kafkaLn.Close()
		return nil, fmt.Errorf("dev: kafka: %w", err)
	}
	s.Endpoints.Kafka = s.kafka.ListenAddrs()[0]

	// The registry and miniredis listen themselves: their address is probed free, then given.
	regAddr, err := s.freeAddr(o.Host, "registry", o.RegistryPort)
	if err != nil {
		return nil, err
	}
	s.registry, err = registry.New(registry.DataDir(filepath.Join(o.DataDir, "registry")), registry.Listen(regAddr))
	if err != nil {
		return nil, fmt.Errorf("dev: registry: %w", err)
	}
	s.Endpoints.Registry = s.registry.URL()

	s.Endpoints.Redis = o.Redis
	if o.Redis == "" {
		addr, err := s.freeAddr(o.Host, "redis", 0)
		if err != nil {
			return nil, err
		}
		s.redis = miniredis.NewMiniRedis()
		if err := s.redis.StartAddr(addr); err != nil {
			s.redis = nil
			return nil, fmt.Errorf("dev: redis: %w", err)
		}
		s.Endpoints.Redis = "redis://" + s.redis.Addr()
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Endpoints.Kafka))
	if err != nil {
		return nil, fmt.Errorf("dev: kafka client: %w", err)
	}
	defer cl.Close()
	if s.Created, err = topics.Ensure(ctx, kadm.NewClient(cl), cat); err != nil {
		return nil, err
	}

	// The key file of guest-data protection: made once, kept across restarts (a new KEK would make
	// every event sealed so far unreadable); the other commands find it in endpoints.json.
	s.Endpoints.KeyFile = filepath.Join(o.DataDir, privacy.KeyFileName)
	if _, err := privacy.GenerateKeyFile(s.Endpoints.KeyFile); err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}

	src, err := sr.NewClient(sr.URLs(s.Endpoints.Registry))
	if err != nil {
		return nil, fmt.Errorf("dev: registry client: %w", err)
	}
	topicOf := func(et string) (string, bool) { t, ok := cat.TopicFor(et); return t.Name, ok }
	states, err := schemas.Compare(ctx, src, set, topicOf, schemas.DefaultLevel)
	if err != nil {
		return nil, err
	}
	if err := explainHistory(o, states); err != nil {
		return nil, err
	}
	if err := schemas.Register(ctx, src, states, schemas.DefaultLevel); err != nil {
		return nil, fmt.Errorf("dev: registering schemas: %w", err)
	}
	if err := s.startMonitor(o.Host, o.MonitorPort, cat); err != nil {
		return nil, err
	}
	if err := s.startGateway(o.Host, o.GatewayPort, cat, set, src); err != nil {
		return nil, err
	}
	s.Endpoints.Tokens = st.Tokens
	s.Endpoints.DispatchSecret = st.DispatchSecret
	s.Endpoints.PID = os.Getpid()
	addrs := map[string]string{"kafka": s.Endpoints.Kafka, "registry": s.Endpoints.Registry, "monitor": s.Endpoints.Monitor, "gateway": s.Endpoints.Gateway}
	if s.redis != nil { // an external --redis is not dev's port to take next time
		addrs["redis"] = s.Endpoints.Redis
	}
	if err := s.state.save(o.DataDir, addrs); err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	if err := cmdutil.WriteEndpoints(o.DataDir, s.Endpoints); err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	return s, nil
}

// listen listens on host at the port flag pins, else at the port name had at the last start when it
// is free (saying on Log when it is not: whatever still points to the old address must be
// restarted), else at any free port.
func (s *Stack) listen(host, name string, flag int) (net.Listener, error) {
	if flag != 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(flag)))
		if err != nil {
			return nil, fmt.Errorf("dev: --%s-port: %w", name, err)
		}
		return ln, nil
	}
	if p := s.state.Ports[name]; p != 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return ln, nil
		}
		fmt.Fprintf(s.log, "dev: %s: port %d of the last start is taken (%v); using a fresh port: restart what still points to the old one\n", name, p, err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("dev: %s: %w", name, err)
	}
	return ln, nil
}

// freeAddr is listen for a server that opens its own listener: the address is free when probed and
// taken again a moment later (another process may win that race, and the start then fails naming
// it; a dev stack accepts that).
func (s *Stack) freeAddr(host, name string, flag int) (string, error) {
	ln, err := s.listen(host, name, flag)
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// startMonitor serves the dashboard and lag metrics (hotelbus monitor) until Close.
func (s *Stack) startMonitor(host string, port int, cat *topics.Catalog) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Endpoints.Kafka))
	if err != nil {
		return fmt.Errorf("dev: monitor client: %w", err)
	}
	m, err := monitor.New(monitor.Config{Catalog: cat, Client: cl})
	if err != nil {
		cl.Close()
		return err
	}
	ln, err := s.listen(host, "monitor", port)
	if err != nil {
		cl.Close()
		return err
	}
	s.monitor = &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { _ = s.monitor.Serve(ln) }() // returns ErrServerClosed after Close
	go func() { _ = m.Run(ctx); close(ran) }()
	s.stopMonitor = func() {
		cancel()
		<-ran
		cl.Close()
	}
	s.Endpoints.Monitor = "http://" + ln.Addr().String()
	return nil
}

// startGateway serves the gateway (as `hotelbus gateway` does) until Close, authenticating the
// dev tokens, with the streams/gateway defaults for every limit: no rate limits (the command's
// --system-rate and --tenant-rate are off), 4 MiB bodies, 512 KiB events, 500 events a batch.
func (s *Stack) startGateway(host string, port int, cat *topics.Catalog, set *schemas.Set, src *sr.Client) (err error) {
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	systems := make([]string, len(cat.Systems))
	tokens := map[string][]string{}
	for i, sys := range cat.Systems {
		systems[i] = sys.Name
		tokens[sys.Name] = []string{s.state.Tokens[sys.Name]}
	}
	creds, err := gw.NewCredentials(systems, gw.CredentialSource{Tokens: tokens})
	if err != nil {
		return fmt.Errorf("dev: gateway: %w", err)
	}
	protector, closeKeys, err := cmdutil.StartProtector(s.Endpoints.KeyFile, []string{s.Endpoints.Kafka}, nil, cat, set)
	if err != nil {
		return fmt.Errorf("dev: gateway: %w", err)
	}
	closers = append(closers, closeKeys)
	serde, err := streams.NewSerde(src, set, cat, streams.WithFieldProtector(protector))
	if err != nil {
		return fmt.Errorf("dev: gateway: %w", err)
	}
	ropts, err := redis.ParseURL(s.Endpoints.Redis)
	if err != nil {
		return cmdutil.Usagef("--redis: %v", err)
	}
	rdb := redis.NewClient(ropts)
	closers = append(closers, func() { _ = rdb.Close() })
	kcl, err := kgo.NewClient(kgo.SeedBrokers(s.Endpoints.Kafka))
	if err != nil {
		return fmt.Errorf("dev: gateway client: %w", err)
	}
	closers = append(closers, kcl.Close)
	log := slog.New(slog.NewTextHandler(s.log, nil))
	privMetrics := prometheus.NewRegistry()
	privMetrics.MustRegister(protector.Collector())
	rt, err := gwcmd.Assemble(gw.Config{Credentials: creds, Redis: rdb, Kafka: kcl, Logger: log, Metrics: privMetrics}, cat, serde, streams.Brokers(s.Endpoints.Kafka))
	if err != nil {
		return fmt.Errorf("dev: gateway: %w", err)
	}
	closers = append(closers, func() { rt.Close(s.log) })
	ln, err := s.listen(host, "gateway", port)
	if err != nil {
		return err
	}
	served := make(chan struct{})
	go func() { _ = rt.Server.Serve(ln); close(served) }()
	s.stopGateway = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rt.Server.Shutdown(ctx)
		<-served
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	s.Endpoints.Gateway = "http://" + ln.Addr().String()
	return nil
}

// Close stops everything the stack started, saving the broker's state, and removes
// endpoints.json (the endpoints are gone).
func (s *Stack) Close() {
	if s.stopGateway != nil {
		s.stopGateway()
	}
	if s.monitor != nil {
		_ = s.monitor.Close()
		s.stopMonitor()
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
	if s.registry != nil {
		_ = s.registry.Close()
	}
	if s.redis != nil {
		s.redis.Close()
	}
	_ = os.Remove(filepath.Join(s.dataDir, cmdutil.EndpointsFile))
}

// Print writes one line per endpoint.
func (s *Stack) Print(w io.Writer) {
	file := filepath.Join(s.dataDir, cmdutil.EndpointsFile)
	fmt.Fprintf(w, "kafka     %s\n", s.Endpoints.Kafka)
	fmt.Fprintf(w, "registry  %s\n", s.Endpoints.Registry)
	fmt.Fprintf(w, "redis     %s\n", s.Endpoints.Redis)
	fmt.Fprintf(w, "monitor   %s\n", s.Endpoints.Monitor)
	fmt.Fprintf(w, "gateway   %s (a bearer token per system: tokens in %s)\n", s.Endpoints.Gateway, file)
	fmt.Fprintf(w, "endpoints %s (also the dispatch signing secret, dispatchSecret)\n", file)
}

// New returns the dev command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := Options{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the platform in one process on its embedded default (Kafka, registry, Redis, gateway)",
		Long: `dev starts an in-process Kafka broker (franz-go's kfake, data on disk), the embedded schema
registry (ids stable across restarts) and an in-process Redis, creates the dev topics, registers
every schema, serves the live dashboard and lag metrics (as ` + "`hotelbus monitor`" + `) and the HTTP
gateway (as ` + "`hotelbus gateway`" + `, with its rate limits off), prints one line per endpoint and
writes <data-dir>/endpoints.json (mode 0600): the addresses, a gateway bearer token per system and a
dispatch signing secret (dispatchSecret). The other commands given no --brokers/--registry/--redis
(produce, dispatch, simulate --via gateway, gateway, replay, ...) use the running stack's
endpoints, tokens and secret. Ctrl-C stops it cleanly; a restart with the same --data-dir keeps every
record, offset and schema id, the tokens and the secret, and the ports when they are still free (a
taken one is replaced by a fresh one, said in the log).

The data directory (--data-dir) is, in order: $` + cmdutil.EnvDataDir + ` when set; the nearest .hotelbus
directory in the current directory or a parent; in a clone of the hotelbus repository,
<repository root>/.hotelbus; else the per-user state directory ($XDG_STATE_HOME/hotelbus, by default
~/.local/state/hotelbus). The other commands look for a running stack in the same places: every
.hotelbus from the current directory up, then the per-user one ($` + cmdutil.EnvDataDir + ` alone when set),
and say where they looked when none runs; a stack on another --data-dir is found through
` + cmdutil.EnvDataDir + ` only.

dev refuses to start when the registry holds schema versions the schemas it registers lack (e.g.
after ` + "`hotelbus schemas register --dir <tree>`" + `), naming each subject and version and the fix:
--schemas-dir <tree> keeps the data, --fresh starts over.`,
		Example: `  go run ./cmd/hotelbus dev
  hotelbus dev --data-dir /tmp/hb --fresh
  export HOTELBUS_DATA_DIR=/tmp/hb; hotelbus dev   # commands with the same variable find it from anywhere
  hotelbus dev --kafka-port 9092 --registry-port 8081 --gateway-port 8080`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, f, o)
		},
	}
	cmd.Flags().StringVar(&o.DataDir, "data-dir", f.DataDir, "where the broker log, schemas, tokens and endpoints.json live (env "+cmdutil.EnvDataDir+"; see above)")
	cmd.Flags().BoolVar(&o.Fresh, "fresh", false, "wipe the data directory first")
	cmd.Flags().StringVar(&o.Redis, "redis", "", "use this Redis (redis://host:port) instead of the in-process one")
	cmd.Flags().StringVar(&o.Host, "host", "127.0.0.1", "interface to listen on")
	cmd.Flags().StringVar(&o.SchemasDir, "schemas-dir", "", "schema tree to register (default: the schemas built into the binary)")
	cmd.Flags().IntVar(&o.KafkaPort, "kafka-port", 0, "Kafka port (0: the last start's when free, else any free port)")
	cmd.Flags().IntVar(&o.RegistryPort, "registry-port", 0, "schema registry port (0: the last start's when free, else any free port)")
	cmd.Flags().IntVar(&o.MonitorPort, "monitor-port", 0, "dashboard and lag metrics port (0: the last start's when free, else any free port)")
	cmd.Flags().IntVar(&o.GatewayPort, "gateway-port", 0, "HTTP gateway port (0: the last start's when free, else any free port)")
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o Options) error {
	if o.Redis != "" && !strings.HasPrefix(o.Redis, "redis://") && !strings.HasPrefix(o.Redis, "rediss://") {
		return cmdutil.Usagef("--redis: %q is not a redis:// URL", o.Redis)
	}
	for flag, p := range map[string]int{"--kafka-port": o.KafkaPort, "--registry-port": o.RegistryPort, "--monitor-port": o.MonitorPort, "--gateway-port": o.GatewayPort} {
		if p < 0 || p > 65535 {
			return cmdutil.Usagef("%s: %d is not a port", flag, p)
		}
	}
	if abs, err := filepath.Abs(o.DataDir); err == nil {
		o.DataDir = abs
	}
	o.Log = f.ErrOut
	start := time.Now()
	s, err := Start(ctx, o)
	if err != nil {
		return err
	}
	defer s.Close()
	s.Print(f.Out)
	fmt.Fprintf(f.ErrOut, "hotelbus dev is up in %s (%d topics created); Ctrl-C stops it\n", time.Since(start).Round(time.Millisecond), len(s.Created))
	<-ctx.Done()
	fmt.Fprintln(f.ErrOut, "stopping")
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Package dev implements `hotelbus dev`: the whole platform in one process on its embedded default.
package dev

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/monitor"
	"github.com/hotelbus/hotelbus/streams/registry"
	"github.com/hotelbus/hotelbus/topics"
)

// Options configure a dev stack.
type Options struct {
	// DataDir holds the broker's log, the registry's schemas and endpoints.json.
	DataDir string
	// Fresh wipes DataDir first.
	Fresh bool
	// Redis is an external Redis URL; "" starts an in-process one.
	Redis string
	// Host is the interface every endpoint listens on.
	Host string
	// KafkaPort, RegistryPort and MonitorPort pin the ports (0: any free port).
	KafkaPort, RegistryPort, MonitorPort int
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
	// monitor serves the dashboard; stopMonitor ends its polling and serving.
	monitor     *http.Server
	stopMonitor func()
}

// Start brings up the broker, the registry and Redis, applies the dev topics, registers the
// schemas, and writes <DataDir>/endpoints.json. Data persists across Close and Start with the same
// DataDir: records, committed offsets and schema ids.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.DataDir == "" {
		return nil, cmdutil.Usagef("--data-dir must not be empty")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Fresh {
		if err := os.RemoveAll(o.DataDir); err != nil {
			return nil, fmt.Errorf("dev: --fresh: %w", err)
		}
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("dev: --data-dir: %w", err)
	}
	s := &Stack{dataDir: o.DataDir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(filepath.Join(o.DataDir, "kafka")), kfake.SyncWrites(),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(o.Host, strconv.Itoa(o.KafkaPort)))
		})}
	if s.kafka, err = kfake.NewCluster(kopts...); err != nil {
		return nil, fmt.Errorf("dev: kafka: %w", err)
	}
	s.Endpoints.Kafka = s.kafka.ListenAddrs()[0]

	s.registry, err = registry.New(registry.DataDir(filepath.Join(o.DataDir, "registry")),
		registry.Listen(net.JoinHostPort(o.Host, strconv.Itoa(o.RegistryPort))))
	if err != nil {
		return nil, fmt.Errorf("dev: registry: %w", err)
	}
	s.Endpoints.Registry = s.registry.URL()

	s.Endpoints.Redis = o.Redis
	if o.Redis == "" {
		if s.redis, err = miniredis.Run(); err != nil {
			return nil, fmt.Errorf("dev: redis: %w", err)
		}
		s.Endpoints.Redis = "redis://" + s.redis.Addr()
	}

	cat, err := topics.Load(topics.Embedded(), "dev")
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Endpoints.Kafka))
	if err != nil {
		return nil, fmt.Errorf("dev: kafka client: %w", err)
	}
	defer cl.Close()
	if s.Created, err = topics.Ensure(ctx, kadm.NewClient(cl), cat); err != nil {
		return nil, err
	}

	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		return nil, err
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
	if err := schemas.Register(ctx, src, states, schemas.DefaultLevel); err != nil {
		return nil, fmt.Errorf("dev: registering schemas: %w", err)
	}
	if err := s.startMonitor(cat, net.JoinHostPort(o.Host, strconv.Itoa(o.MonitorPort))); err != nil {
		return nil, err
	}
	if err := writeEndpoints(o.DataDir, s.Endpoints); err != nil {
		return nil, err
	}
	return s, nil
}

// startMonitor serves the dashboard and lag metrics (hotelbus monitor) on addr until Close.
func (s *Stack) startMonitor(cat *topics.Catalog, addr string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Endpoints.Kafka))
	if err != nil {
		return fmt.Errorf("dev: monitor client: %w", err)
	}
	m, err := monitor.New(monitor.Config{Catalog: cat, Client: cl})
	if err != nil {
		cl.Close()
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		cl.Close()
		return fmt.Errorf("dev: monitor: %w", err)
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

func writeEndpoints(dir string, e cmdutil.Endpoints) error {
	tmp := filepath.Join(dir, cmdutil.EndpointsFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	if err := cmdutil.WriteJSON(f, e); err != nil {
		f.Close()
		return fmt.Errorf("dev: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, cmdutil.EndpointsFile))
}

// Close stops everything the stack started, saving the broker's state, and removes
// endpoints.json (the endpoints are gone).
func (s *Stack) Close() {
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
	fmt.Fprintf(w, "kafka     %s\n", s.Endpoints.Kafka)
	fmt.Fprintf(w, "registry  %s\n", s.Endpoints.Registry)
	fmt.Fprintf(w, "redis     %s\n", s.Endpoints.Redis)
	fmt.Fprintf(w, "monitor   %s\n", s.Endpoints.Monitor)
	fmt.Fprintf(w, "endpoints %s\n", filepath.Join(s.dataDir, cmdutil.EndpointsFile))
}

// New returns the dev command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := Options{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the platform in one process on its embedded default (Kafka, registry, Redis)",
		Long: `dev starts an in-process Kafka broker (franz-go's kfake, data on disk), the embedded schema
registry (ids stable across restarts) and an in-process Redis, creates the dev topics, registers
every schema, serves the live dashboard and lag metrics (as ` + "`hotelbus monitor`" + `), prints one
line per endpoint and writes <data-dir>/endpoints.json, which the other commands read when given
no --brokers/--registry/--redis. Ctrl-C stops it cleanly; a restart with the same --data-dir keeps
every record, offset and schema id.`,
		Example: `  go run ./cmd/hotelbus dev
  hotelbus dev --data-dir /tmp/hb --fresh
  hotelbus dev --kafka-port 9092 --registry-port 8081`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return run(ctx, f, o)
		},
	}
	cmd.Flags().StringVar(&o.DataDir, "data-dir", f.DataDir, "where the broker log, schemas and endpoints.json live")
	cmd.Flags().BoolVar(&o.Fresh, "fresh", false, "wipe the data directory first")
	cmd.Flags().StringVar(&o.Redis, "redis", "", "use this Redis (redis://host:port) instead of the in-process one")
	cmd.Flags().StringVar(&o.Host, "host", "127.0.0.1", "interface to listen on")
	cmd.Flags().IntVar(&o.KafkaPort, "kafka-port", 0, "Kafka port (0: any free port)")
	cmd.Flags().IntVar(&o.RegistryPort, "registry-port", 0, "schema registry port (0: any free port)")
	cmd.Flags().IntVar(&o.MonitorPort, "monitor-port", 0, "dashboard and lag metrics port (0: any free port)")
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o Options) error {
	if o.Redis != "" && !strings.HasPrefix(o.Redis, "redis://") && !strings.HasPrefix(o.Redis, "rediss://") {
		return cmdutil.Usagef("--redis: %q is not a redis:// URL", o.Redis)
	}
	for flag, p := range map[string]int{"--kafka-port": o.KafkaPort, "--registry-port": o.RegistryPort, "--monitor-port": o.MonitorPort} {
		if p < 0 || p > 65535 {
			return cmdutil.Usagef("%s: %d is not a port", flag, p)
		}
	}
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

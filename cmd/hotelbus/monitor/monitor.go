// Package monitor implements `hotelbus monitor`: the lag exporter, /metrics and the live dashboard.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams/monitor"
)

type options struct {
	listen   string
	prefix   string
	groups   []string
	interval time.Duration
	kafka    *cmdutil.KafkaFlags
}

// New returns the monitor command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "monitor [--listen ADDR]",
		Short: "Serve the live dashboard, consumer group lag and /metrics",
		Long: `monitor watches the cluster and serves, on --listen:

  /               the live dashboard: the four systems and the event flow between them with live
                  rates, lag per consumer group (records and seconds), dead letters per system by
                  error class, a live tail of recent events (filter by tenant, type, correlation id)
                  and the journey of one correlation id; it updates itself (server-sent events)
  /metrics        hotelbus_consumer_group_lag, hotelbus_consumer_group_lag_seconds,
                  hotelbus_consumer_group_members, hotelbus_consumer_group_state, per group, topic
                  and partition, for Prometheus
  /healthz        the process serves
  /readyz         the last poll of the cluster succeeded

Lag is polled every --interval; the time lag is the age of the oldest record a group has not
consumed, as kafka-lag-exporter measures it.`,
		Example: `  hotelbus monitor
  hotelbus monitor --listen :9300 --brokers kafka:9092 --interval 10s
  curl -s localhost:9300/metrics | grep hotelbus_consumer_group_lag_seconds`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.listen, "listen", "127.0.0.1:9300", "address to serve the dashboard and /metrics on (`host:port`; :9300 for every interface)")
	fl.StringVar(&o.prefix, "prefix", "", "topic and group name prefix (an isolated copy, as `topics apply --prefix`)")
	fl.StringArrayVar(&o.groups, "group", nil, "consumer group to measure (repeatable; default: every system's group)")
	fl.DurationVar(&o.interval, "interval", 2*time.Second, "how often lag is polled and the dashboard updated")
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	if o.interval <= 0 {
		return cmdutil.Usagef("--interval must be positive")
	}
	cat, err := cmdutil.Catalog(o.prefix)
	if err != nil {
		return err
	}
	cl, err := f.KafkaClient(o.kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	m, err := monitor.New(monitor.Config{Catalog: cat, Client: cl, Groups: o.groups, Interval: o.interval,
		Logger: slog.New(slog.NewTextHandler(f.ErrOut, nil))})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return cmdutil.Usagef("--listen: %v", err)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln); stop() }()
	fmt.Fprintf(f.Out, "monitor listening on http://%s\n", ln.Addr())
	err = m.Run(ctx)
	// The dashboard's event streams never go idle, so there is nothing to wait for: Close ends them.
	_ = srv.Close()
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("monitor: serving: %w", serr)
	}
	return err
}

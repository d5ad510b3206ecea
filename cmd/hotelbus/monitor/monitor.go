// Package monitor implements `hotelbus monitor`: the lag exporter, /metrics and the live dashboard.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams/monitor"
)

type options struct {
	listen         string
	prefix         string
	groups         []string
	interval       time.Duration
	tokenFile      string
	trustedProxies []string
	userHeader     string
	allowedHosts   []string
	journeyRange   time.Duration
	journeyMax     int
	kafka          *cmdutil.KafkaFlags
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
consumed, as kafka-lag-exporter measures it.

Access: /metrics, /healthz and /readyz answer anyone (probes, the Prometheus scrape; names and
counts, no secret). The dashboard and its API need a Host that is an IP address, localhost or an
--allowed-host (421 otherwise: DNS rebinding), and authentication: the bearer token of
--token-file (Authorization: Bearer <token>; browsers sign in with it once and get a cookie),
reread when the file changes (an unreadable or empty file accepts no token), or the
--user-header of a request coming from a --trusted-proxy network (oauth2-proxy, an ingress).
With neither, only loopback clients are served (the default --listen, kubectl port-forward).
Every answer carries a Content-Security-Policy, X-Frame-Options DENY and nosniff. A journey reads
at most --journey-range of the audit topic, --journey-concurrency at once (429 beyond).`,
		Example: `  hotelbus monitor
  hotelbus monitor --listen :9300 --brokers kafka:9092 --interval 10s --token-file /run/secrets/monitor-token
  hotelbus monitor --listen :9300 --trusted-proxy 10.42.0.0/16 --allowed-host monitor.hotel.example
  curl -s localhost:9300/metrics | grep hotelbus_consumer_group_lag_seconds`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.listen, "listen", "127.0.0.1:9300", "address to serve the dashboard and /metrics on (`host:port`; :9300 for every interface)")
	cmdutil.AddPrefixFlag(cmd, &o.prefix)
	fl.StringArrayVar(&o.groups, "group", nil, "consumer group to measure (repeatable; default: every system's group)")
	fl.DurationVar(&o.interval, "interval", 2*time.Second, "how often lag is polled and the dashboard updated")
	fl.StringVar(&o.tokenFile, "token-file", "", "file holding the bearer token of the dashboard and its API (at least 16 bytes; reread on change)")
	fl.StringArrayVar(&o.trustedProxies, "trusted-proxy", nil, "network (`CIDR`) of an authenticating proxy whose --user-header is trusted (repeatable)")
	fl.StringVar(&o.userHeader, "user-header", "X-Forwarded-User", "header a trusted proxy sets to the authenticated user")
	fl.StringArrayVar(&o.allowedHosts, "allowed-host", nil, "Host name the dashboard answers besides IP addresses and localhost (repeatable)")
	fl.DurationVar(&o.journeyRange, "journey-range", 24*time.Hour, "how far back a journey reads the audit topic")
	fl.IntVar(&o.journeyMax, "journey-concurrency", 2, "journeys read at once (429 beyond)")
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	switch {
	case o.interval <= 0:
		return cmdutil.Usagef("--interval must be positive")
	case o.journeyRange <= 0:
		return cmdutil.Usagef("--journey-range must be positive")
	case o.journeyMax < 1:
		return cmdutil.Usagef("--journey-concurrency must be at least 1")
	case strings.TrimSpace(o.userHeader) == "":
		return cmdutil.Usagef("--user-header must not be empty")
	}
	var proxies []netip.Prefix
	for _, c := range o.trustedProxies {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return cmdutil.Usagef("--trusted-proxy %q: want a CIDR such as 10.42.0.0/16", c)
		}
		proxies = append(proxies, p.Masked())
	}
	if o.tokenFile != "" {
		if _, err := os.Stat(o.tokenFile); err != nil {
			return cmdutil.Usagef("--token-file: %v", err)
		}
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
	if err := f.WarnUnreachable(ctx); err != nil {
		return err
	}
	m, err := monitor.New(monitor.Config{Catalog: cat, Client: cl, Groups: o.groups, Interval: o.interval,
		TokenFile: o.tokenFile, TrustedProxies: proxies, UserHeader: o.userHeader, AllowedHosts: o.allowedHosts,
		JourneyMaxRange: o.journeyRange, JourneyConcurrency: o.journeyMax,
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
	if o.tokenFile == "" && len(proxies) == 0 {
		fmt.Fprintln(f.ErrOut, "monitor: no --token-file or --trusted-proxy: the dashboard serves loopback clients only (/metrics and the probes serve everyone)")
	}
	err = m.Run(ctx)
	// The dashboard's event streams never go idle, so there is nothing to wait for: Close ends them.
	_ = srv.Close()
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = fmt.Errorf("monitor: serving: %w", serr)
	}
	return err
}

// Package view implements `hotelbus view`: a system's local views (topics/views.yaml), kept on
// its own disk and served over HTTP while the other systems, Kafka or the registry are down.
package view

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/schemas"
	gw "github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/views"
	"github.com/hotelbus/hotelbus/topics"
)

// New returns the view command.
func New(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "view",
		Short: "Local views: each system keeps the data it needs and serves it when the others are down",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newServe(f))
	return cmd
}

type serveOptions struct {
	system, listen, dir, credentials, registry, prefix string
	keyFile                                            string
	names                                              []string
	reloadEvery, shutdownTimeout, offlineGrace         time.Duration
	kafka                                              *cmdutil.KafkaFlags
}

func newServe(f *cmdutil.Factory) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve --system S --dir DIR [--listen ADDR] [--view V ...] [--credentials F]",
		Short: "Keep a system's views on disk and serve them over HTTP",
		Long: `serve keeps the views of --system (topics/views.yaml) in a bbolt store under --dir, up to date from
the event topics, and serves them:

  GET /v1/views/{view}/{tenantId}/{key}                        one item: key, data, updatedAt, eventId
  GET /v1/views/{view}/{tenantId}?prefix=&limit=&cursor=       the tenant's items, paged (next = cursor)

Every answer carries Hotelbus-View-Staleness (seconds since the view was last confirmed caught up);
an absent item is 404 application/problem+json. /healthz, /readyz (ready once caught up with the
end offsets seen at start, or serving from disk while Kafka is unreachable) and /metrics
(hotelbus_view_lag_records, _staleness_seconds, _items, ...) are for operators.

Each view has a compacted changelog topic (hotelbus.views.<system>.<view>.changelog, created when
missing); a store that is empty (new volume, deleted file) is restored from it. With Kafka and the
registry down, serve starts from the store and answers from it; it catches up when they return.

Tokens are the gateway's (--credentials: "<system> <token or sha256:digest> [tenants=<patterns>]"
lines, reread when the file changes; or HOTELBUS_GATEWAY_TOKEN_<SYSTEM>; or a running dev stack's):
a token reads only its own system's views, and only the tenants of its scope.

Personal-data fields stay sealed in the store and the changelog as they are on Kafka; with the
guest-data protection key file (--key-file, ` + cmdutil.EnvKeyFile + `, or a running dev stack's) they are
opened as they are served, and an erased guest's read "[erased]". Without one they are served sealed.`,
		Example: `  hotelbus view serve --system hotel-saas --dir /var/lib/hotelbus/views --listen :8090 \
      --credentials /etc/hotelbus/tokens --brokers kafka:9092 --registry http://registry:8081
  curl -H "Authorization: Bearer $TOKEN" http://localhost:8090/v1/views/guests/sakura-hotels/cus_01JC9K1M3P5R7T9V1X3Z5B7D9F`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return serve(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.system, "system", "", "the system whose views to keep (required)")
	fl.StringVar(&o.dir, "dir", "", "directory of the view store (required; a volume of its own in Kubernetes)")
	fl.StringVar(&o.listen, "listen", "127.0.0.1:8090", "address to serve HTTP on (`host:port`; :8090 for every interface)")
	fl.StringSliceVar(&o.names, "view", nil, "a view to keep (repeatable; default: every view of --system)")
	fl.StringVar(&o.credentials, "credentials", "", "credentials file or directory, in the gateway's format")
	fl.DurationVar(&o.reloadEvery, "reload-interval", 5*time.Second, "how often --credentials is checked for changes")
	fl.StringVar(&o.registry, "registry", "", "schema registry URL (env HOTELBUS_REGISTRY)")
	fl.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a shutdown waits for requests in flight")
	fl.DurationVar(&o.offlineGrace, "offline-grace", 5*time.Second, "how long a view started from its store waits for Kafka before it is ready on what it has")
	cmdutil.AddPrefixFlag(cmd, &o.prefix)
	cmdutil.AddKeyFileFlag(cmd, &o.keyFile)
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	return cmd
}

func serve(ctx context.Context, f *cmdutil.Factory, o *serveOptions) error {
	if o.dir == "" {
		return cmdutil.Usagef("--dir is required")
	}
	if o.reloadEvery <= 0 || o.shutdownTimeout <= 0 || o.offlineGrace < 0 {
		return cmdutil.Usagef("--reload-interval and --shutdown-timeout must be positive, --offline-grace not negative")
	}
	cat, err := cmdutil.Catalog(o.prefix)
	if err != nil {
		return err
	}
	sys, err := cmdutil.LookupSystem(cat, o.system)
	if err != nil {
		return err
	}
	all, err := topics.LoadViews(topics.Embedded(), cat)
	if err != nil {
		return err
	}
	defs := all.ForSystem(sys.Name)
	if len(defs) == 0 {
		return cmdutil.Usagef("--system: %s has no views in %s", sys.Name, topics.ViewsFile)
	}
	if len(o.names) > 0 {
		var picked []topics.View
		var names []string
		for _, d := range defs {
			names = append(names, d.Name)
		}
		for _, n := range o.names {
			d, ok := all.Lookup(sys.Name, n)
			if !ok {
				return cmdutil.Usagef("--view: %s has no view %q%s (views: %s)", sys.Name, n, topics.DidYouMean(n, names), strings.Join(names, ", "))
			}
			if !slices.ContainsFunc(picked, func(v topics.View) bool { return v.Name == n }) {
				picked = append(picked, d)
			}
		}
		defs = picked
	}
	creds, err := credentials(f, cat, o.credentials)
	if err != nil {
		return err
	}
	seeds, kopts, err := f.KafkaOpts(o.kafka)
	if err != nil {
		return err
	}
	regURL, err := f.Registry(o.registry)
	if err != nil {
		return err
	}
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(f.ErrOut, nil))
	ops := cmdutil.NewOps()
	priv, err := f.PrivacyOptions(o.keyFile, o.kafka, cat, "personal-data fields are served sealed")
	if err != nil {
		return err
	}
	defer priv.Close()
	priv.Register(ops.Registry)
	cfg := views.Config{System: sys.Name, Dir: o.dir, Catalog: cat, Views: defs, Schemas: set, Prefix: o.prefix,
		Brokers: seeds, KafkaOptions: kopts, RegistryURLs: []string{regURL}, Logger: log, Metrics: ops.Registry, OfflineGrace: o.offlineGrace}
	if p := priv.Protector(); p != nil {
		cfg.Protector = p
	}
	local, err := views.Open(cfg)
	switch {
	case errors.Is(err, views.ErrConfig), errors.Is(err, views.ErrInvalid):
		return cmdutil.Usagef("%v", err)
	case err != nil:
		return err
	}
	defer local.Close()
	ops.Ready(func(context.Context) error { return local.Ready() })
	mux := http.NewServeMux()
	mux.Handle("/v1/", local.Handler(creds))
	mux.Handle("/", ops.Handler())
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return cmdutil.Usagef("--listen: %v", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go creds.Watch(wctx, o.reloadEvery, log)
	go func() { _ = f.WarnUnreachable(wctx) }() // serving from disk does not wait for Kafka or the registry
	fmt.Fprintf(f.ErrOut, "view server of %s (%s) listening on http://%s\n", sys.Name, strings.Join(local.Names(), ", "), ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("view: serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("view: shutdown: %w", err)
	}
	return nil
}

// credentials loads the gateway's credentials for every system of the catalog (a shared file
// works unchanged; the handler refuses other systems' tokens): --credentials, the
// HOTELBUS_GATEWAY_TOKEN_<SYSTEM> variables, or a running dev stack's tokens.
func credentials(f *cmdutil.Factory, cat *topics.Catalog, path string) (*gw.Credentials, error) {
	systems := make([]string, len(cat.Systems))
	for i, s := range cat.Systems {
		systems[i] = s.Name
	}
	src := gw.CredentialSource{Path: path, Getenv: f.Getenv}
	if path == "" {
		if ep, err := cmdutil.ReadEndpoints(f.DataDir); err == nil && len(ep.Tokens) > 0 {
			src.Tokens = map[string][]string{}
			for sys, tok := range ep.Tokens {
				src.Tokens[sys] = []string{tok}
			}
		}
	}
	creds, err := gw.NewCredentials(systems, src)
	if err != nil {
		return nil, cmdutil.Usagef("%v (--credentials)", err)
	}
	return creds, nil
}

package cmdutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Ops is the operations endpoint of a long-running command: /metrics (Prometheus, the command's
// registry plus Go and process collectors), /healthz (the process serves) and /readyz (every
// readiness check passes; 503 with the first failure otherwise).
type Ops struct {
	Registry *prometheus.Registry
	checks   []func(context.Context) error
	srv      *http.Server
}

// NewOps returns an Ops with a fresh registry holding the Go and process collectors.
func NewOps() *Ops {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Ops{Registry: reg}
}

// Ready adds a readiness check, called with a 2s timeout on each /readyz request.
func (o *Ops) Ready(check func(context.Context) error) { o.checks = append(o.checks, check) }

// Handler serves /metrics, /healthz and /readyz.
func (o *Ops) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		for _, c := range o.checks {
			if err := c(ctx); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// Serve listens on addr (--listen) and serves Handler until Close; it returns the bound address.
func (o *Ops) Serve(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", Usagef("--listen: %v", err)
	}
	o.srv = &http.Server{Handler: o.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = o.srv.Serve(ln) }() // returns ErrServerClosed after Close

	return ln.Addr().String(), nil
}

// Close stops serving.
func (o *Ops) Close(ctx context.Context) error {
	if o.srv == nil {
		return nil
	}
	return o.srv.Shutdown(ctx)
}

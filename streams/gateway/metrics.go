package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus series. Labels are bounded by the routes, status codes,
// systems and event types of the catalog: never a tenant or an event id.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec   // route, code
	duration *prometheus.HistogramVec // route
	inFlight prometheus.Gauge
	events   *prometheus.CounterVec // system, event_type, outcome
	replays  *prometheus.CounterVec // system
	limited  *prometheus.CounterVec // system, bucket (system, tenant): never the tenant itself
	busy     prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hotelbus_gateway_requests_total", Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hotelbus_gateway_request_duration_seconds", Help: "Time to answer a publishing request, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hotelbus_gateway_requests_in_flight", Help: "Publishing requests being processed.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hotelbus_gateway_events_total",
			Help: "Events by system, event type and outcome (published, spooled, refused, failed).",
		}, []string{"system", "event_type", "outcome"}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hotelbus_gateway_idempotent_replays_total", Help: "Answers replayed for a repeated Idempotency-Key, by system.",
		}, []string{"system"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hotelbus_gateway_rate_limited_total",
			Help: "Requests and events refused with 429 by a rate limit, by system and bucket (system or tenant).",
		}, []string{"system", "bucket"}),
		busy: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hotelbus_gateway_busy_total",
			Help: "Requests and events answered 503 because the body or parse budget stayed full (MaxBufferedBytes, MaxParseBytes).",
		}),
	}
	spool := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hotelbus_gateway_spool_depth", Help: "Events waiting in the durable spool, by system."}, []string{"system"})
	creds := s.cfg.Credentials
	m.reg.MustRegister(m.requests, m.duration, m.inFlight, m.events, m.replays, m.limited, m.busy,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hotelbus_gateway_credential_reloads_total", Help: "Successful loads of the credentials.",
		}, func() float64 { return float64(creds.reloads.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "hotelbus_gateway_credential_reload_failures_total", Help: "Failed loads of the credentials (the previous ones stayed in force).",
		}, func() float64 { return float64(creds.failures.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hotelbus_gateway_credentials_stale",
			Help: "1 while the last load of the credentials failed: the ones in force are older than the file.",
		}, func() float64 {
			if creds.stale.Load() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "hotelbus_gateway_credentials", Help: "Credentials in force (0: every publish is refused with 401).",
		}, func() float64 { return float64(creds.Count()) }),
		spoolCollector{s: s, desc: spool},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// spoolCollector reads the producers' spool depths at scrape time.
type spoolCollector struct {
	s    *Server
	desc *prometheus.GaugeVec
}

func (c spoolCollector) Describe(ch chan<- *prometheus.Desc) { c.desc.Describe(ch) }

func (c spoolCollector) Collect(ch chan<- prometheus.Metric) {
	for sys, p := range c.s.cfg.Producers {
		c.desc.WithLabelValues(sys).Set(float64(p.SpoolDepth()))
	}
	c.desc.Collect(ch)
}

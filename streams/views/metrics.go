package views

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the views' Prometheus series, labelled by system and view (never a tenant or key).
type metrics struct {
	applied        *prometheus.CounterVec // system, view, action
	skipped        *prometheus.CounterVec // system, view, reason
	restoreSeconds *prometheus.GaugeVec   // system, view
	requests       *prometheus.CounterVec // system, view, code
}

func newMetrics(l *Local, reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_view_applied_total",
			Help: "Events that changed a view's item, by action."}, []string{"system", "view", "action"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_view_skipped_total",
			Help: "Records of a view's types that could not be applied, by reason (undecodable, invalid-identifier, invalid-key)."},
			[]string{"system", "view", "reason"}),
		restoreSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hotelbus_view_restore_seconds",
			Help: "How long the last restore of a view from its changelog took."}, []string{"system", "view"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_view_requests_total",
			Help: "View reads over HTTP, by status code."}, []string{"system", "view", "code"}),
	}
	cs := []prometheus.Collector{m.applied, m.skipped, m.restoreSeconds, m.requests}
	for _, name := range l.names {
		v := l.views[name]
		labels := prometheus.Labels{"system": l.cfg.System, "view": name}
		cs = append(cs,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotelbus_view_lag_records", ConstLabels: labels,
				Help: "Records between a view's positions and its source partitions' end offsets (-1: not listed yet)."},
				func() float64 { return float64(v.Lag()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotelbus_view_staleness_seconds", ConstLabels: labels,
				Help: "Time since a view was last confirmed caught up with its source partitions."},
				func() float64 { return v.Staleness().Seconds() }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotelbus_view_items", ConstLabels: labels,
				Help: "Items a view holds."}, func() float64 { return float64(v.Size()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotelbus_view_ready", ConstLabels: labels,
				Help: "1 when a view is ready (caught up since start, or serving from disk while Kafka is unreachable)."},
				func() float64 {
					if v.Ready() {
						return 1
					}
					return 0
				}),
		)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

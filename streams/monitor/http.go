package monitor

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hotelbus/hotelbus/streams/lag"
	"github.com/hotelbus/hotelbus/streams/replay"
)

//go:embed assets
var assets embed.FS

// tailLimit is how many tail entries one snapshot carries.
const tailLimit = 100

// heartbeat is how often an idle event stream gets a comment, so proxies keep it open.
const heartbeat = 15 * time.Second

// States are the group states the state gauge always reports (1 for the current one, 0 for the
// others), so that an alert can test for "not Stable".
var States = []string{"Stable", "Empty", "PreparingRebalance", "CompletingRebalance", lag.StateDead}

// Handler returns the HTTP handler of the dashboard, its API and the metrics.
func (m *Monitor) Handler() http.Handler { return m.handler }

func (m *Monitor) initHTTP() {
	m.reg = prometheus.NewRegistry()
	m.pollErrs = prometheus.NewCounter(prometheus.CounterOpts{Name: "hotelbus_monitor_poll_errors_total",
		Help: "Polls of the consumer groups' lag and the topics' offsets that failed."})
	m.reg.MustRegister(m.pollErrs, lagCollector{m}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /events", m.serveEvents)
	mux.HandleFunc("GET /api/snapshot", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, m.Snapshot(ParseFilter(r.URL.Query()), tailLimit))
	})
	mux.HandleFunc("GET /api/journey", m.serveJourney)
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := m.ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unready", "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	m.handler = mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// serveEvents streams a "snapshot" event at once and after every update until the client leaves.
func (m *Monitor) serveEvents(w http.ResponseWriter, r *http.Request) {
	f := ParseFilter(r.URL.Query())
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	sent := ^uint64(0)
	for {
		version, changed := m.watch()
		if version != sent {
			b, err := json.Marshal(m.Snapshot(f, tailLimit))
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "event: snapshot\nid: %d\ndata: %s\n\n", version, b); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			sent = version
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-beat.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// serveJourney answers the journey of ?correlationId= read from the audit topic.
func (m *Monitor) serveJourney(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := strings.TrimSpace(q.Get("correlationId"))
	if id == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "monitor: correlationId is required"})
		return
	}
	var from time.Time
	if s := q.Get("from"); s != "" {
		var err error
		if from, err = replay.ParseTime(s, time.Now()); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "monitor: from: " + err.Error()})
			return
		}
	}
	if m.cfg.Catalog.AuditTopic == "" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "monitor: the catalog declares no audit topic"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), m.cfg.JourneyTimeout)
	defer cancel()
	j, err := ReadJourney(ctx, m.cfg.Client, m.cfg.Catalog, id, from)
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, context.DeadlineExceeded) {
			status = http.StatusGatewayTimeout
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// lagCollector exports the last lag report at scrape time: series of groups and partitions that
// are gone disappear with the report.
type lagCollector struct{ m *Monitor }

var (
	descLag = prometheus.NewDesc("hotelbus_consumer_group_lag",
		"Records a consumer group has not consumed on a partition (end offset minus committed offset).", []string{"group", "topic", "partition"}, nil)
	descLagSeconds = prometheus.NewDesc("hotelbus_consumer_group_lag_seconds",
		"Age of the oldest record a consumer group has not consumed on a partition, in seconds (0 when caught up).", []string{"group", "topic", "partition"}, nil)
	descMembers = prometheus.NewDesc("hotelbus_consumer_group_members",
		"Members of a consumer group.", []string{"group"}, nil)
	descState = prometheus.NewDesc("hotelbus_consumer_group_state",
		"1 for the consumer group's current state, 0 for the others (Dead: the cluster does not know the group).", []string{"group", "state"}, nil)
	descDeadLetters = prometheus.NewDesc("hotelbus_monitor_dead_letters",
		"Records on a system's dead-letter topic, by error class, as read by the monitor.", []string{"system", "error_class"}, nil)
)

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLag
	ch <- descLagSeconds
	ch <- descMembers
	ch <- descState
	ch <- descDeadLetters
}

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if rep := c.m.report; rep != nil {
		for _, g := range rep.Groups {
			if g.Error != "" {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(len(g.Members)), g.Group)
			known := false
			for _, s := range States {
				v := 0.0
				if s == g.State {
					v, known = 1, true
				}
				ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, g.Group, s)
			}
			if !known {
				ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, 1, g.Group, g.State)
			}
			for _, p := range g.Partitions {
				if p.Error != "" {
					continue
				}
				part := strconv.Itoa(int(p.Partition))
				ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(p.Lag), g.Group, p.Topic, part)
				ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, p.LagSeconds, g.Group, p.Topic, part)
			}
		}
	}
	for sys, d := range c.m.dlq {
		for class, n := range d.byClass {
			ch <- prometheus.MustNewConstMetric(descDeadLetters, prometheus.GaugeValue, float64(n), sys, class)
		}
	}
}

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
	"unicode"

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
	tokenErrs := prometheus.NewCounter(prometheus.CounterOpts{Name: "hotelbus_monitor_token_reload_errors_total",
		Help: "Reads of the token file that failed or found no usable token (no bearer token is accepted then)."})
	m.reg.MustRegister(m.pollErrs, tokenErrs, lagCollector{m}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.journeys = make(chan struct{}, m.cfg.JourneyConcurrency)

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
	m.handler = &access{cfg: &m.cfg, next: mux, reloadErrs: tokenErrs}
}

// writeProblem answers an RFC 9457 problem.
func writeProblem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": title, "status": status, "detail": detail})
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

// maxCorrelationID bounds the correlationId a journey is asked for (bytes).
const maxCorrelationID = 256

// serveJourney answers the journey of ?correlationId= read from the audit topic, within the
// journey bounds (see Config).
func (m *Monitor) serveJourney(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := strings.TrimSpace(q.Get("correlationId"))
	if id == "" || len(id) > maxCorrelationID || strings.ContainsFunc(id, unicode.IsControl) {
		writeProblem(w, http.StatusBadRequest, "Bad Request", fmt.Sprintf("monitor: correlationId is required: printable, at most %d bytes", maxCorrelationID))
		return
	}
	now := time.Now()
	oldest := now.Add(-m.cfg.JourneyMaxRange)
	from := oldest
	if s := q.Get("from"); s != "" {
		var err error
		if from, err = replay.ParseTime(s, now); err != nil {
			writeProblem(w, http.StatusBadRequest, "Bad Request", "monitor: from: want RFC 3339 or a negative duration such as -24h")
			return
		}
		if from.Before(oldest) {
			writeProblem(w, http.StatusBadRequest, "Bad Request", fmt.Sprintf("monitor: from: a journey reads at most %s back (the monitor's journey range)", m.cfg.JourneyMaxRange))
			return
		}
	}
	if m.cfg.Catalog.AuditTopic == "" {
		writeProblem(w, http.StatusNotFound, "Not Found", "monitor: the catalog declares no audit topic")
		return
	}
	wait := time.NewTimer(time.Second)
	defer wait.Stop()
	select {
	case m.journeys <- struct{}{}:
		defer func() { <-m.journeys }()
	case <-wait.C:
		w.Header().Set("Retry-After", "2")
		writeProblem(w, http.StatusTooManyRequests, "Too Many Requests", fmt.Sprintf("monitor: %d journeys are being read; try again shortly", cap(m.journeys)))
		return
	case <-r.Context().Done():
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
		writeProblem(w, status, http.StatusText(status), err.Error())
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
	descKeyTopicIssues = prometheus.NewDesc("hotelbus_privacy_key_topic_issues",
		"Settings of the privacy key topic that would delete data keys (cleanup.policy not compact, a retention other than -1); absent when it could not be described.", nil, nil)
)

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLag
	ch <- descLagSeconds
	ch <- descMembers
	ch <- descState
	ch <- descDeadLetters
	ch <- descKeyTopicIssues
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
	if c.m.keyIssues >= 0 {
		ch <- prometheus.MustNewConstMetric(descKeyTopicIssues, prometheus.GaugeValue, float64(c.m.keyIssues))
	}
}

// Package monitor watches a hotelbus cluster and serves what it sees: the live dashboard (the four
// systems and the event flow between them with live rates, lag per group in offsets and seconds,
// dead letters per system with their error classes, a live tail of recent events, and the journey
// of one correlation id), updated through server-sent events, and the lag metrics for Prometheus.
//
// A Monitor polls the consumer groups' lag and the event topics' end offsets every Interval (rates
// are the change of those offsets), reads the dead-letter topics from their start (counts by error
// class, from the hotelbus.dlq.error.class header), and tails the audit topic and the event topics
// from a little before their end. The tail shows the audit records (every publish and handling
// outcome); while the audit topic holds none, it shows the events themselves, from their headers.
//
// Routes (Handler):
//
//	GET /                  the dashboard (HTML, CSS and JS embedded in the binary)
//	GET /events            server-sent events: one "snapshot" event per update (query: tenant, type, correlationId filter the tail)
//	GET /api/snapshot      the current Snapshot as JSON (same query)
//	GET /api/journey       the Journey of ?correlationId= from the audit topic (&from= RFC 3339 or -24h, within JourneyMaxRange)
//	POST /login            form field token: sets the session cookie (browsers cannot send a bearer token on EventSource)
//	GET /metrics           Prometheus: hotelbus_consumer_group_lag, _lag_seconds, _members, _state
//	GET /healthz           the process serves requests
//	GET /readyz            the last poll of the cluster succeeded recently (503 otherwise)
//
// Access: every answer carries a Content-Security-Policy (own scripts, styles and connections
// only, frame-ancestors 'none'), X-Frame-Options DENY, X-Content-Type-Options nosniff and
// Referrer-Policy no-referrer. /metrics, /healthz and /readyz answer anyone (the probes and the
// Prometheus scrape; they show names and counts, no secret, no tenant). Every other route needs a
// Host that is an IP address, localhost or one of AllowedHosts (421 otherwise: DNS rebinding), and
// authentication: the bearer token of TokenFile (or its session cookie), or a request from one of
// TrustedProxies carrying UserHeader; with neither configured, only loopback clients are served
// (hotelbus dev, kubectl port-forward). Refusals are application/problem+json.
//
// Journeys are bounded: at most JourneyConcurrency read at once (429 when saturated), each over
// at most JourneyMaxRange of the audit topic and within JourneyTimeout (504).
package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/lag"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/topics"
)

// Config configures a Monitor.
type Config struct {
	// Catalog names the systems, their topics and groups (required).
	Catalog *topics.Catalog
	// Client reaches the cluster (required). The Monitor uses it for offsets and builds its
	// readers from its options; the caller closes it after Run returns.
	Client *kgo.Client
	// Groups are the consumer groups to measure; default: the group of every system in the catalog
	// that subscribes to something.
	Groups []string
	// Interval is how often lag and offsets are polled and the dashboard updated. Default 2s.
	Interval time.Duration
	// RateWindow is the span over which rates are averaged. Default 10s.
	RateWindow time.Duration
	// TailSize is how many recent events the tail keeps. Default 500.
	TailSize int
	// Backlog is how many records per partition of the event and audit topics the tail reads back
	// when the Monitor starts. Default 20.
	Backlog int64
	// JourneyTimeout bounds a journey read from the audit topic: past it the answer is 504.
	// Default 15s.
	JourneyTimeout time.Duration
	// JourneyMaxRange is how far back a journey reads the audit topic: the default and the oldest
	// accepted ?from= (older is 400). Default 24h.
	JourneyMaxRange time.Duration
	// JourneyConcurrency bounds the journeys read at once; a request that finds them all busy for
	// a second is answered 429 with Retry-After. Default 2.
	JourneyConcurrency int

	// TokenFile is a file holding the bearer token that authenticates requests to the dashboard
	// and its API (Authorization: Bearer <token>, or the session cookie POST /login sets for
	// browsers), at least 16 bytes. It is reread when it changes (checked every second); while it
	// is unreadable or too short no token is accepted. Default: none.
	TokenFile string
	// TrustedProxies are the networks of an authenticating proxy (oauth2-proxy, an ingress): a
	// request from one of them is authenticated when it carries UserHeader. Default: none.
	TrustedProxies []netip.Prefix
	// UserHeader is the header a trusted proxy sets to the authenticated user. Default
	// X-Forwarded-User.
	UserHeader string
	// AllowedHosts are the Host names (without port) the dashboard answers besides IP addresses
	// and localhost; any other Host is refused (421), against DNS rebinding. Default: none.
	AllowedHosts []string
	// Logger receives poll failures; default: discarded.
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	if c.Catalog == nil || c.Client == nil {
		return errors.New("monitor: Config.Catalog and Config.Client are required")
	}
	if c.Groups == nil {
		for _, s := range c.Catalog.Systems {
			if len(s.Subscribes) > 0 {
				c.Groups = append(c.Groups, s.Group)
			}
		}
	}
	c.Interval = cmp.Or(c.Interval, 2*time.Second)
	c.RateWindow = cmp.Or(c.RateWindow, 10*time.Second)
	c.TailSize = cmp.Or(c.TailSize, 500)
	c.Backlog = cmp.Or(c.Backlog, 20)
	c.JourneyTimeout = cmp.Or(c.JourneyTimeout, 15*time.Second)
	c.JourneyMaxRange = cmp.Or(c.JourneyMaxRange, 24*time.Hour)
	c.JourneyConcurrency = cmp.Or(c.JourneyConcurrency, 2)
	c.UserHeader = cmp.Or(c.UserHeader, "X-Forwarded-User")
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Interval < 0 || c.RateWindow < 0 || c.TailSize < 0 || c.Backlog < 0 || c.JourneyTimeout < 0 || c.JourneyMaxRange < 0 || c.JourneyConcurrency < 0 {
		return errors.New("monitor: Config durations and sizes must not be negative")
	}
	return nil
}

// Snapshot is what the dashboard shows at one instant.
type Snapshot struct {
	// Version increases with every update.
	Version uint64    `json:"version"`
	At      time.Time `json:"at"`
	// IntervalSeconds is the poll interval; RateWindowSeconds the span rates are averaged over.
	IntervalSeconds   float64 `json:"intervalSeconds"`
	RateWindowSeconds float64 `json:"rateWindowSeconds"`
	// Error is the last poll's failure ("" when it succeeded).
	Error       string           `json:"error,omitempty"`
	Systems     []SystemView     `json:"systems"`
	Flows       []Flow           `json:"flows"`
	Groups      []lag.Group      `json:"groups"`
	DeadLetters []DeadLetterView `json:"deadLetters"`
	// TailSource is "audit" when the tail shows audit records, "events" when it shows events read
	// from the event topics (the audit topic has none), "" when there is nothing to show.
	TailSource string      `json:"tailSource"`
	Tail       []TailEntry `json:"tail"`
}

// SystemView is one system's numbers.
type SystemView struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Published counts the records on the event topics the system owns (their end offsets);
	// PublishRate is their growth per second.
	Published   int64   `json:"published"`
	PublishRate float64 `json:"publishRate"`
	// Consumed counts the records of event topics its group has committed past; ConsumeRate its
	// growth per second.
	Consumed    int64   `json:"consumed"`
	ConsumeRate float64 `json:"consumeRate"`
	Group       string  `json:"group,omitempty"`
	GroupState  string  `json:"groupState,omitempty"`
	Members     int     `json:"members"`
	Lag         int64   `json:"lag"`
	LagSeconds  float64 `json:"lagSeconds"`
	DeadLetters int64   `json:"deadLetters"`
}

// Flow is the events of one publishing system read by one subscribing system's group, per the
// catalog.
type Flow struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Topics are the From system's topics the To system reads; EventTypes the types on them it
	// subscribes to.
	Topics     []string `json:"topics"`
	EventTypes []string `json:"eventTypes"`
	// Consumed counts the records committed past; Rate is its growth per second.
	Consumed   int64   `json:"consumed"`
	Rate       float64 `json:"rate"`
	Lag        int64   `json:"lag"`
	LagSeconds float64 `json:"lagSeconds"`
}

// DeadLetterView counts one system's dead letters.
type DeadLetterView struct {
	System string `json:"system"`
	Topic  string `json:"topic"`
	Total  int64  `json:"total"`
	// ByClass counts by the hotelbus.dlq.error.class header, largest first.
	ByClass []ClassCount `json:"byClass"`
	// Last is the time of the latest dead letter (zero when none).
	Last time.Time `json:"last,omitzero"`
}

// ClassCount is the number of dead letters of one error class.
type ClassCount struct {
	Class string `json:"class"`
	Count int64  `json:"count"`
}

// Monitor polls the cluster and serves the dashboard and metrics. Run it, and serve Handler.
type Monitor struct {
	cfg      Config
	lag      *lag.Reader
	adm      *kadm.Client
	flows    []Flow // static part from the catalog
	evTopics []string
	owner    map[string]string // event topic -> owning system
	dlqOf    map[string]string // dead-letter topic -> system
	handler  http.Handler
	reg      *prometheus.Registry
	pollErrs prometheus.Counter
	journeys chan struct{} // a slot per journey read at once

	mu      sync.Mutex
	report  *lag.Report
	ends    map[string]int64 // event topic -> sum of end offsets
	samples []sample
	lastErr error
	lastOK  time.Time
	// keyIssues is the number of settings of the privacy key topic that would delete data keys
	// (privacy.KeyTopicIssues) at the last poll; -1 when it could not be described.
	keyIssues int
	dlq       map[string]*dlqStats
	audit     ring
	events    ring
	version   uint64
	changed   chan struct{}
}

type sample struct {
	at        time.Time
	published map[string]int64 // system
	consumed  map[string]int64 // system
	flows     []int64          // by index into flows
}

type dlqStats struct {
	total   int64
	byClass map[string]int64
	last    time.Time
}

// New returns a Monitor; it does nothing until Run.
func New(cfg Config) (*Monitor, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	m := &Monitor{cfg: cfg, lag: lag.NewReader(cfg.Client, lag.CatalogTopics(cfg.Catalog)), adm: kadm.NewClient(cfg.Client), owner: map[string]string{},
		dlqOf: map[string]string{}, ends: map[string]int64{}, dlq: map[string]*dlqStats{}, keyIssues: -1,
		audit: newRing(cfg.TailSize), events: newRing(cfg.TailSize), changed: make(chan struct{})}
	cat := cfg.Catalog
	for _, t := range cat.Topics {
		if t.Kind == topics.KindEvents {
			m.evTopics = append(m.evTopics, t.Name)
			m.owner[t.Name] = t.Owner
		}
	}
	for _, s := range cat.Systems {
		if s.DeadLetterTopic != "" {
			m.dlqOf[s.DeadLetterTopic] = s.Name
			m.dlq[s.Name] = &dlqStats{byClass: map[string]int64{}}
		}
	}
	for _, to := range cat.Systems {
		byFrom := map[string]*Flow{}
		for _, et := range to.Subscribes {
			t, ok := cat.TopicFor(et)
			if !ok {
				continue
			}
			f := byFrom[t.Owner]
			if f == nil {
				f = &Flow{From: t.Owner, To: to.Name}
				byFrom[t.Owner] = f
			}
			if !slices.Contains(f.Topics, t.Name) {
				f.Topics = append(f.Topics, t.Name)
			}
			f.EventTypes = append(f.EventTypes, et)
		}
		for _, from := range slices.Sorted(maps.Keys(byFrom)) {
			slices.Sort(byFrom[from].Topics)
			m.flows = append(m.flows, *byFrom[from])
		}
	}
	m.initHTTP()
	return m, nil
}

// Run polls the cluster and tails its topics until ctx ends; it returns nil then, or an error if a
// reader could not be created.
func (m *Monitor) Run(ctx context.Context) error {
	base := m.cfg.Client.Opts()
	var tailTopics []string
	tailTopics = append(tailTopics, m.evTopics...)
	if m.cfg.Catalog.AuditTopic != "" {
		tailTopics = append(tailTopics, m.cfg.Catalog.AuditTopic)
	}
	tail, err := kgo.NewClient(append(slices.Clone(base), kgo.ConsumeTopics(tailTopics...),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtEnd().Relative(-m.cfg.Backlog)), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return fmt.Errorf("monitor: tail reader: %w", err)
	}
	defer tail.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { m.consume(ctx, tail, m.tailRecord) })
	if len(m.dlqOf) > 0 {
		dlq, err := kgo.NewClient(append(slices.Clone(base), kgo.ConsumeTopics(slices.Sorted(maps.Keys(m.dlqOf))...),
			kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
		if err != nil {
			return fmt.Errorf("monitor: dead-letter reader: %w", err)
		}
		defer dlq.Close()
		wg.Go(func() { m.consume(ctx, dlq, m.deadLetter) })
	}
	tick := time.NewTicker(m.cfg.Interval)
	defer tick.Stop()
	for {
		m.poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// consume hands every record cl fetches to fn until ctx ends.
func (m *Monitor) consume(ctx context.Context, cl *kgo.Client, fn func(*kgo.Record)) {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			m.cfg.Logger.Warn("monitor: reading", "topic", t, "partition", p, "err", err)
		})
		m.mu.Lock()
		for r := range fs.RecordsAll() {
			fn(r)
		}
		m.mu.Unlock()
	}
}

// tailRecord adds an event or audit record to the tail; m.mu is held.
func (m *Monitor) tailRecord(r *kgo.Record) {
	if r.Topic == m.cfg.Catalog.AuditTopic {
		e, err := auditEntry(r)
		if err != nil {
			m.cfg.Logger.Warn("monitor: undecodable audit record", "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		m.audit.add(e)
		return
	}
	m.events.add(TailEntry{Time: r.Timestamp.UTC(), Kind: streams.AuditPublished, Outcome: streams.OutcomePublished, System: streams.Header(r, streams.HeaderSource),
		EventID: streams.Header(r, streams.HeaderEventID), EventType: streams.Header(r, streams.HeaderEventType), TenantID: string(r.Key),
		CorrelationID: streams.Header(r, streams.HeaderCorrelationID), Topic: r.Topic, Partition: r.Partition, Offset: r.Offset})
}

// deadLetter counts a dead-letter record; m.mu is held.
func (m *Monitor) deadLetter(r *kgo.Record) {
	s := m.dlq[m.dlqOf[r.Topic]]
	if s == nil {
		return
	}
	class := streams.Header(r, streams.HeaderDLQErrorClass)
	if class == "" {
		class = "(unknown)"
	}
	s.total++
	s.byClass[class]++
	if r.Timestamp.After(s.last) {
		s.last = r.Timestamp.UTC()
	}
}

// poll measures lag and end offsets once and publishes a new snapshot.
func (m *Monitor) poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, max(m.cfg.Interval, 10*time.Second))
	defer cancel()
	rep, err := m.lag.Read(pctx, m.cfg.Groups...)
	var ends kadm.ListedOffsets
	if err == nil {
		ends, err = m.adm.ListEndOffsets(pctx, m.evTopics...)
		if err == nil {
			err = ends.Error()
		}
		if err != nil {
			err = fmt.Errorf("monitor: end offsets of the event topics: %w", err)
		}
	}
	keyIssues := -1
	if kt := m.cfg.Catalog.KeyTopic; kt != "" && err == nil {
		if issues, kerr := privacy.KeyTopicIssues(pctx, m.adm, kt); kerr == nil {
			keyIssues = len(issues)
		} else {
			m.cfg.Logger.Debug("monitor: the privacy key topic's settings", "err", kerr)
		}
	}
	if ctx.Err() != nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastErr = err
	m.keyIssues = keyIssues
	if err != nil {
		m.pollErrs.Inc()
		m.cfg.Logger.Warn("monitor: poll failed", "err", err)
	} else {
		m.lastOK = time.Now()
		m.report = rep
		clear(m.ends)
		ends.Each(func(o kadm.ListedOffset) { m.ends[o.Topic] += o.Offset })
		m.samples = append(m.samples, m.sampleLocked(rep.At))
		cut := 0
		for cut < len(m.samples)-2 && m.samples[cut+1].at.Before(rep.At.Add(-m.cfg.RateWindow)) {
			cut++
		}
		m.samples = slices.Delete(m.samples, 0, cut)
	}
	m.version++
	close(m.changed)
	m.changed = make(chan struct{})
}

// sampleLocked takes the cumulative counts of the current report and end offsets.
func (m *Monitor) sampleLocked(at time.Time) sample {
	s := sample{at: at, published: map[string]int64{}, consumed: map[string]int64{}, flows: make([]int64, len(m.flows))}
	for t, n := range m.ends {
		s.published[m.owner[t]] += n
	}
	for _, g := range m.report.Groups {
		sys := m.systemOfGroup(g.Group)
		for _, p := range g.Partitions {
			from, ok := m.owner[p.Topic]
			if !ok || p.Committed < 0 {
				continue
			}
			s.consumed[sys] += p.Committed
			for i, f := range m.flows {
				if f.From == from && f.To == sys {
					s.flows[i] += p.Committed
				}
			}
		}
	}
	return s
}

func (m *Monitor) systemOfGroup(group string) string {
	for _, s := range m.cfg.Catalog.Systems {
		if s.Group == group {
			return s.Name
		}
	}
	return ""
}

// rate is the growth per second of a count between the oldest and the newest sample.
func (m *Monitor) rate(count func(sample) int64) float64 {
	if len(m.samples) < 2 {
		return 0
	}
	first, last := m.samples[0], m.samples[len(m.samples)-1]
	dt := last.at.Sub(first.at).Seconds()
	if dt <= 0 {
		return 0
	}
	return max(0, float64(count(last)-count(first))/dt)
}

// Snapshot returns the current state, with the tail filtered by f (at most limit entries, newest
// first; limit <= 0 means all that are kept).
func (m *Monitor) Snapshot(f Filter, limit int) Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshotLocked(f, limit)
}

func (m *Monitor) snapshotLocked(f Filter, limit int) Snapshot {
	s := Snapshot{Version: m.version, IntervalSeconds: m.cfg.Interval.Seconds(), RateWindowSeconds: m.cfg.RateWindow.Seconds(),
		Systems: []SystemView{}, Flows: []Flow{}, Groups: []lag.Group{}, DeadLetters: []DeadLetterView{}, Tail: []TailEntry{}}
	if m.lastErr != nil {
		s.Error = m.lastErr.Error()
	}
	groups := map[string]lag.Group{}
	if m.report != nil {
		s.At = m.report.At
		s.Groups = m.report.Groups
		for _, g := range m.report.Groups {
			groups[g.Group] = g
		}
	}
	var cur sample
	if n := len(m.samples); n > 0 {
		cur = m.samples[n-1]
	}
	for _, sys := range m.cfg.Catalog.Systems {
		v := SystemView{Name: sys.Name, Description: sys.Description, Published: cur.published[sys.Name], Consumed: cur.consumed[sys.Name],
			PublishRate: m.rate(func(x sample) int64 { return x.published[sys.Name] }),
			ConsumeRate: m.rate(func(x sample) int64 { return x.consumed[sys.Name] })}
		if g, ok := groups[sys.Group]; ok {
			v.Group, v.GroupState, v.Members, v.Lag, v.LagSeconds = g.Group, g.State, len(g.Members), g.Lag, g.LagSeconds
		}
		if d := m.dlq[sys.Name]; d != nil {
			v.DeadLetters = d.total
		}
		s.Systems = append(s.Systems, v)
	}
	for i, f := range m.flows {
		if cur.flows != nil {
			f.Consumed = cur.flows[i]
		}
		f.Rate = m.rate(func(x sample) int64 { return x.flows[i] })
		for _, p := range groups[m.groupOf(f.To)].Partitions {
			if slices.Contains(f.Topics, p.Topic) && p.Lag > 0 {
				f.Lag += p.Lag
				f.LagSeconds = max(f.LagSeconds, p.LagSeconds)
			}
		}
		s.Flows = append(s.Flows, f)
	}
	for _, sys := range m.cfg.Catalog.Systems {
		d := m.dlq[sys.Name]
		if d == nil {
			continue
		}
		v := DeadLetterView{System: sys.Name, Topic: sys.DeadLetterTopic, Total: d.total, ByClass: []ClassCount{}, Last: d.last}
		for c, n := range d.byClass {
			v.ByClass = append(v.ByClass, ClassCount{Class: c, Count: n})
		}
		slices.SortFunc(v.ByClass, func(a, b ClassCount) int {
			return cmp.Or(cmp.Compare(b.Count, a.Count), strings.Compare(a.Class, b.Class))
		})
		s.DeadLetters = append(s.DeadLetters, v)
	}
	switch {
	case m.audit.len() > 0:
		s.TailSource, s.Tail = "audit", m.audit.newest(f, limit)
	case m.events.len() > 0:
		s.TailSource, s.Tail = "events", m.events.newest(f, limit)
	}
	return s
}

func (m *Monitor) groupOf(system string) string {
	if s, ok := m.cfg.Catalog.System(system); ok {
		return s.Group
	}
	return ""
}

// watch returns the current version and a channel closed at the next update.
func (m *Monitor) watch() (uint64, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.version, m.changed
}

// ready returns nil when the last poll succeeded within three intervals (and at least 30 s).
func (m *Monitor) ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.lastOK.IsZero() && m.lastErr == nil:
		return errors.New("monitor: the cluster has not been polled yet")
	case m.lastErr != nil:
		return m.lastErr
	case time.Since(m.lastOK) > max(3*m.cfg.Interval, 30*time.Second):
		return fmt.Errorf("monitor: no successful poll since %s", m.lastOK.UTC().Format(time.RFC3339))
	}
	return nil
}

package streams

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Metrics are the runtime's Prometheus metrics. Labels never carry tenantId or eventId.
//
//	hotelbus_events_published_total{system,event_type,outcome}   published | spooled | failed
//	hotelbus_events_consumed_total{group,event_type}             runs of the handler chain
//	hotelbus_events_handled_total{group,event_type,outcome}      handled | duplicate | dead-lettered | failed
//	hotelbus_handler_duration_seconds{group,event_type}          time in the chain (dedup, retries included)
//	hotelbus_end_to_end_latency_seconds{group,event_type}        handled time minus the event's timestamp
//	hotelbus_dedup_hits_total{group}
//	hotelbus_dedup_takeovers_total{group}, hotelbus_dedup_keys_lost_total{group},
//	hotelbus_dedup_redis_failures_total{group}                   (ObserveDedup)
//	hotelbus_retries_total{group,event_type}                     attempts after the first
//	hotelbus_dead_letters_total{group,error_class}
//	hotelbus_spool_depth_events{system}, hotelbus_spool_oldest_age_seconds{system}
//
// A Metrics is a PublishObserver (Observe) and provides the consumer middleware (Middleware,
// outermost in the chain). Safe for concurrent use.
type Metrics struct {
	reg prometheus.Registerer

	published              *prometheus.CounterVec
	consumed, retries      *prometheus.CounterVec
	handled                *prometheus.CounterVec
	duration, latency      *prometheus.HistogramVec
	dedupHits, deadLetters *prometheus.CounterVec
	spool                  *spoolCollector
	dedup                  *dedupCollector
	children               sync.Map // childKey -> *children
	publishChildren        sync.Map // publishKey -> prometheus.Counter
}

type childKey struct{ group, eventType string }

// children are the label-resolved metrics of one group and event type, so the hot path does not
// hash labels for every event.
type children struct {
	group, eventType  string
	consumed, retries prometheus.Counter
	duration, latency prometheus.Observer
	handled           sync.Map // outcome -> prometheus.Counter, for outcomes other than the usual
	handledOK, dup    prometheus.Counter
}

type publishKey struct{ system, eventType, outcome string }

// Latency buckets, in seconds: 1 ms to about 2 minutes.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2.5, 14)

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reg: reg,
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_events_published_total",
			Help: "Events a producer sent, by outcome (published, spooled, failed)."}, []string{"system", "event_type", "outcome"}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_events_consumed_total",
			Help: "Runs of a consumer's handler chain."}, []string{"group", "event_type"}),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_events_handled_total",
			Help: "Events a consumer finished, by outcome (handled, duplicate, dead-lettered, failed)."}, []string{"group", "event_type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hotelbus_handler_duration_seconds",
			Help: "Time in the handler chain, dedup and retries included.", Buckets: latencyBuckets}, []string{"group", "event_type"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hotelbus_end_to_end_latency_seconds",
			Help: "Handled time minus the event's timestamp.", Buckets: latencyBuckets}, []string{"group", "event_type"}),
		dedupHits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_dedup_hits_total",
			Help: "Events committed without the handler because dedup found them done."}, []string{"group"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_retries_total",
			Help: "Handler attempts after the first."}, []string{"group", "event_type"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_dead_letters_total",
			Help: "Events written to the dead-letter topic, by error class."}, []string{"group", "error_class"}),
		spool: &spoolCollector{
			depth: prometheus.NewDesc("hotelbus_spool_depth_events", "Events in a producer's durable spool.", []string{"system"}, nil),
			oldest: prometheus.NewDesc("hotelbus_spool_oldest_age_seconds", "Age of the oldest event in a producer's spool (0 when empty).",
				[]string{"system"}, nil),
		},
		dedup: &dedupCollector{
			takeOvers: prometheus.NewDesc("hotelbus_dedup_takeovers_total",
				"Expired leases of other owners taken over: events whose earlier attempt started and never finished (a possible repeat).", []string{"group"}, nil),
			keysLost: prometheus.NewDesc("hotelbus_dedup_keys_lost_total",
				"Leases Redis no longer had when extended, confirmed or given OnDone effects (a failover or restart lost them): another owner may have handled the event too.", []string{"group"}, nil),
			redisFailures: prometheus.NewDesc("hotelbus_dedup_redis_failures_total",
				"Redis calls of the dedup protocol that failed (unreachable, no primary during a failover, timeout).", []string{"group"}, nil),
		},
	}
	for _, c := range []prometheus.Collector{m.published, m.consumed, m.handled, m.duration, m.latency, m.dedupHits, m.retries, m.deadLetters, m.spool, m.dedup} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("streams: metrics: %w", err)
		}
	}
	return m, nil
}

// ObservePublish counts one published event (PublishObserver).
func (m *Metrics) ObservePublish(system string, rec *kgo.Record, res Result, err error) {
	k := publishKey{system, Header(rec, HeaderEventType), publishOutcome(res, err)}
	c, ok := m.publishChildren.Load(k)
	if !ok {
		c, _ = m.publishChildren.LoadOrStore(k, m.published.WithLabelValues(k.system, k.eventType, k.outcome))
	}
	c.(prometheus.Counter).Inc()
}

// ObserveSpool exports p's spool depth and oldest age, read at each scrape.
func (m *Metrics) ObserveSpool(p *Producer) {
	m.spool.mu.Lock()
	defer m.spool.mu.Unlock()
	m.spool.producers = append(m.spool.producers, p)
}

// ObserveDedup exports d's TakeOvers and KeysLost (the events a crash or a Redis failover may have
// handled twice) and RedisFailures, read at each scrape.
func (m *Metrics) ObserveDedup(d *Dedup) {
	m.dedup.mu.Lock()
	defer m.dedup.mu.Unlock()
	m.dedup.dedups = append(m.dedup.dedups, d)
}

// dedupCollector reads the counters of the observed Dedups when scraped.
type dedupCollector struct {
	takeOvers, keysLost, redisFailures *prometheus.Desc
	mu                                 sync.Mutex
	dedups                             []*Dedup
}

func (c *dedupCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.takeOvers
	ch <- c.keysLost
	ch <- c.redisFailures
}

func (c *dedupCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range c.dedups {
		ch <- prometheus.MustNewConstMetric(c.takeOvers, prometheus.CounterValue, float64(d.TakeOvers()), d.tag)
		ch <- prometheus.MustNewConstMetric(c.keysLost, prometheus.CounterValue, float64(d.KeysLost()), d.tag)
		ch <- prometheus.MustNewConstMetric(c.redisFailures, prometheus.CounterValue, float64(d.RedisFailures()), d.tag)
	}
}

// spoolCollector reads the spool gauges of the observed producers when scraped.
type spoolCollector struct {
	depth, oldest *prometheus.Desc
	mu            sync.Mutex
	producers     []*Producer
}

func (c *spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldest
}

func (c *spoolCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.producers {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(p.SpoolDepth()), p.system)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, p.SpoolOldestAge().Seconds(), p.system)
	}
}

// Middleware returns the consumer middleware that counts and times every run of the chain inside
// it. Put it outermost, so that it sees dedup's and the dead-letter middleware's outcomes. Runs
// abandoned by a shutdown or a lost partition are not counted as handled.
func (m *Metrics) Middleware() Middleware {
	return func(next Handler) Handler {
		var last atomic.Pointer[children] // a chain mostly sees one group and event type
		return func(ctx context.Context, msg *Message) error {
			obs, err, abandoned := observeChain(ctx, msg, next)
			if abandoned {
				return err
			}
			ch := last.Load()
			if ch == nil || ch.group != msg.Group || ch.eventType != obs.eventType {
				ch = m.childrenOf(msg.Group, obs.eventType)
				last.Store(ch)
			}
			ch.consumed.Inc()
			ch.duration.Observe(obs.took.Seconds())
			switch obs.outcome {
			case OutcomeHandled:
				ch.handledOK.Inc()
				if obs.latency > 0 {
					ch.latency.Observe(obs.latency.Seconds())
				}
			case OutcomeDuplicate:
				ch.dup.Inc()
				m.dedupHits.WithLabelValues(msg.Group).Inc()
			default:
				c, ok := ch.handled.Load(obs.outcome)
				if !ok {
					c, _ = ch.handled.LoadOrStore(obs.outcome, m.handled.WithLabelValues(msg.Group, obs.eventType, obs.outcome))
				}
				c.(prometheus.Counter).Inc()
				if obs.outcome == OutcomeDeadLettered {
					m.deadLetters.WithLabelValues(msg.Group, obs.detail).Inc()
				}
			}
			if msg.Attempt > 1 {
				ch.retries.Add(float64(msg.Attempt - 1))
			}
			return err
		}
	}
}

func (m *Metrics) childrenOf(group, eventType string) *children {
	k := childKey{group, eventType}
	if c, ok := m.children.Load(k); ok {
		return c.(*children)
	}
	c, _ := m.children.LoadOrStore(k, &children{
		group:     group,
		eventType: eventType,
		consumed:  m.consumed.WithLabelValues(group, eventType),
		retries:   m.retries.WithLabelValues(group, eventType),
		duration:  m.duration.WithLabelValues(group, eventType),
		latency:   m.latency.WithLabelValues(group, eventType),
		handledOK: m.handled.WithLabelValues(group, eventType, OutcomeHandled),
		dup:       m.handled.WithLabelValues(group, eventType, OutcomeDuplicate),
	})
	return c.(*children)
}

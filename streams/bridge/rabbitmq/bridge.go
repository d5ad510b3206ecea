package rabbitmq

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// Headers the bridge writes.
const (
	// HeaderOrigin marks what the bridge wrote: "kafka" on RabbitMQ messages, "rabbitmq" on Kafka
	// records. The bridge never takes a message back to the side it came from.
	HeaderOrigin = "hotelbus-origin"
	// HeaderReason is the reason a message was sent to the dead-letter exchange (one of the
	// Reason constants); HeaderDetail says more (at most 512 bytes, printable ASCII).
	HeaderReason = "hotelbus-dlx-reason"
	HeaderDetail = "hotelbus-dlx-detail"
	// HeaderTenantID repeats the envelope's tenantId on RabbitMQ.
	HeaderTenantID = "tenantId"
)

// Values of HeaderOrigin.
const (
	originKafka = "kafka"
	originRMQ   = "rabbitmq"
)

// Reasons a message goes to the dead-letter exchange.
const (
	ReasonUnmappedUser   = "unmapped-user"    // no user-id, or one the user map does not name
	ReasonNotOwner       = "not-owner"        // the user's system does not publish the event type (or the envelope names another source)
	ReasonInvalidEvent   = "invalid-event"    // not a valid envelope, or an unknown event type
	ReasonMissingEventID = "missing-event-id" // neither the envelope nor message-id has an eventId
	ReasonHeaderMismatch = "header-mismatch"  // message-id, tenantId header or routing key contradicts the envelope
	ReasonWrongExchange  = "wrong-exchange"   // published to an exchange that does not carry the type
)

// Bridge connects one RabbitMQ virtual host and Kafka (see the package documentation). Run keeps
// the connection up; Inbound and Outbound's handler use it. Safe for concurrent use.
type Bridge struct {
	serde *streams.Serde
	topo  *topics.RabbitMQ
	cfg   config
	link  *link
	pub   *publisher

	messages    *prometheus.CounterVec // direction, outcome
	confirms    *prometheus.CounterVec // result
	deadLetters *prometheus.CounterVec // reason
	connected   prometheus.GaugeFunc
	counts      sync.Map // "<direction>/<outcome>" -> *atomic.Int64

}

// New returns a bridge to the RabbitMQ at amqpURL (amqp://USER:PASS@HOST:PORT/VHOST) for the
// topology of cat (topics.RabbitMQ), the catalog serde was made with. It does not connect before
// Run.
func New(amqpURL string, serde *streams.Serde, cat *topics.Catalog, opts ...Option) (*Bridge, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrConfig)
		}
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if serde == nil || cat == nil || cat.RabbitMQ == nil {
		return nil, fmt.Errorf("%w: no serde, or the catalog declares no rabbitmq topology", ErrConfig)
	}
	l, err := newLink(amqpURL, cat.RabbitMQ, &cfg)
	if err != nil {
		return nil, err
	}
	b := &Bridge{serde: serde, topo: cat.RabbitMQ, cfg: cfg, link: l, pub: &publisher{link: l, wait: cfg.confirmWait},
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_bridge_rabbitmq_messages_total",
			Help: "Messages the RabbitMQ bridge disposed of, by direction (in: RabbitMQ to Kafka, out: Kafka to RabbitMQ, audit: the audit log to RabbitMQ) and outcome."},
			[]string{"direction", "outcome"}),
		confirms: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_bridge_rabbitmq_confirms_total",
			Help: "Publications to RabbitMQ by result: ack, nack, returned (unroutable), lost (channel closed or timeout)."},
			[]string{"result"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotelbus_bridge_rabbitmq_dead_letters_total",
			Help: "Messages sent to the dead-letter exchange, by reason."}, []string{"reason"}),
	}
	b.connected = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotelbus_bridge_rabbitmq_connected",
		Help: "1 while the bridge is connected to RabbitMQ."}, func() float64 {
		if l.err() == nil {
			return 1
		}
		return 0
	})
	return b, nil
}

// Run keeps the connection to RabbitMQ up (redialling with backoff) until ctx ends.
func (b *Bridge) Run(ctx context.Context) {
	b.link.run(ctx)
}

// Ready returns nil while the bridge is connected, else why it is not (for /readyz).
func (b *Bridge) Ready(context.Context) error { return b.link.err() }

// Addr is the RabbitMQ URL without its password, as logs show it.
func (b *Bridge) Addr() string { return b.link.redacted }

// Collectors returns the bridge's metrics, to register with a prometheus.Registry.
func (b *Bridge) Collectors() []prometheus.Collector {
	return []prometheus.Collector{b.messages, b.confirms, b.deadLetters, b.connected}
}

// Counts returns the messages disposed of so far, keyed "<direction>/<outcome>" (in/published,
// in/dead-lettered, in/loop-skipped, out/published, out/loop-skipped, audit/published,
// audit/unroutable, audit/skipped), for reports and tests.
func (b *Bridge) Counts() map[string]int64 {
	out := map[string]int64{}
	b.counts.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// count records one message disposed of.
func (b *Bridge) count(direction, outcome string) {
	b.messages.WithLabelValues(direction, outcome).Inc()
	v, _ := b.counts.LoadOrStore(direction+"/"+outcome, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// OriginHook is the franz-go hook to give the Producers of Inbound (streams.KafkaOptions): it adds
// hotelbus-origin: rabbitmq to every record they write, so that Outbound does not send the event
// back to RabbitMQ. franz-go documents OnProduceRecordBuffered as the place to change a record's
// headers before it is produced; it runs again for a spooled record drained later, so it adds the
// header only once.
func OriginHook() kgo.Opt { return kgo.WithHooks(originHook{}) }

type originHook struct{}

func (originHook) OnProduceRecordBuffered(r *kgo.Record) {
	if streams.Header(r, HeaderOrigin) == "" {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderOrigin, Value: []byte(originRMQ)})
	}
}

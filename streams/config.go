package streams

import (
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// SerdeOption configures a Serde.
type SerdeOption func(*serdeConfig)

type serdeConfig struct {
	autoRegister bool
	protector    FieldProtector
}

func defaultSerdeConfig() serdeConfig {
	return serdeConfig{autoRegister: false}
}

func (c *serdeConfig) validate() error { return nil }

// AutoRegister makes the Serde register a schema version under its subject the first time it
// encodes with it, instead of only looking its id up. Default: false (production subjects are
// registered by `hotelbus schemas register`, which enforces compatibility first); `hotelbus dev`
// turns it on. Maps to the Confluent serializer setting auto.register.schemas.
func AutoRegister(on bool) SerdeOption {
	return func(c *serdeConfig) { c.autoRegister = on }
}

// ProducerOption configures a Producer.
type ProducerOption func(*producerConfig)

type producerConfig struct {
	brokers            []string
	kafkaOpts          []kgo.Opt
	linger             time.Duration
	batchMaxBytes      int32
	compression        []kgo.CompressionCodec
	maxBufferedRecords int
	maxBufferedBytes   int
	requestTimeout     time.Duration
	deliveryTimeout    time.Duration
	spoolDir           string
	spoolMaxBytes      int64
	spoolAfter         time.Duration
	drainBatch         int
	drainBackoff       time.Duration
	now                func() time.Time
	observers          []PublishObserver
	audit              bool
	tracer             trace.Tracer
}

func defaultProducerConfig() producerConfig {
	return producerConfig{
		linger:             5 * time.Millisecond,
		batchMaxBytes:      1_000_000,
		compression:        []kgo.CompressionCodec{kgo.SnappyCompression(), kgo.NoCompression()},
		maxBufferedRecords: 50_000,
		requestTimeout:     10 * time.Second,
		deliveryTimeout:    30 * time.Second,
		audit:              true,
		spoolMaxBytes:      1 << 30,
		spoolAfter:         15 * time.Second,
		drainBatch:         500,
		drainBackoff:       time.Second,
		now:                time.Now,
	}
}

func (c *producerConfig) validate() error {
	switch {
	case len(c.brokers) == 0:
		return fmt.Errorf("%w: Brokers: at least one seed broker is required", ErrConfig)
	case c.linger < 0:
		return fmt.Errorf("%w: Linger: must not be negative", ErrConfig)
	case c.batchMaxBytes < 1024:
		return fmt.Errorf("%w: BatchMaxBytes: %d is below 1 KiB", ErrConfig, c.batchMaxBytes)
	case c.maxBufferedRecords < 1:
		return fmt.Errorf("%w: MaxBufferedRecords: must be at least 1", ErrConfig)
	case c.maxBufferedBytes < 0:
		return fmt.Errorf("%w: MaxBufferedBytes: must not be negative", ErrConfig)
	case c.requestTimeout < time.Second:
		return fmt.Errorf("%w: RequestTimeout: %s is below 1s", ErrConfig, c.requestTimeout)
	case c.deliveryTimeout < c.linger+time.Second:
		return fmt.Errorf("%w: DeliveryTimeout: %s must exceed the linger by at least 1s", ErrConfig, c.deliveryTimeout)
	case c.spoolDir != "" && c.spoolAfter < c.linger+time.Second:
		return fmt.Errorf("%w: SpoolAfter: %s must exceed the linger by at least 1s", ErrConfig, c.spoolAfter)
	case c.spoolMaxBytes < 1:
		return fmt.Errorf("%w: SpoolMaxBytes: must be positive", ErrConfig)
	}
	return nil
}

// Observe adds observers told the outcome of every event the producer sends (metrics, the audit
// log; see PublishObserver). Default: none.
func Observe(obs ...PublishObserver) ProducerOption {
	return func(c *producerConfig) { c.observers = append(c.observers, obs...) }
}

// Tracing makes the producer or consumer record OpenTelemetry spans with tp: a producer span
// "publish <eventType>" per event (its context goes out in the traceparent header), and a consumer
// span "handle <eventType>" per run of the handler chain, child of the publisher's span and carried
// in the handler's context, so events published while handling continue the trace. Default: off
// (nil), and then no span is created at all.
func Tracing(tp trace.TracerProvider) ProducerOption {
	return func(c *producerConfig) {
		if tp != nil {
			c.tracer = tp.Tracer("github.com/hotelbus/hotelbus/streams")
		}
	}
}

// Brokers sets the seed brokers. Required. Maps to bootstrap.servers.
func Brokers(addrs ...string) ProducerOption {
	return func(c *producerConfig) { c.brokers = append([]string(nil), addrs...) }
}

// KafkaOptions passes extra franz-go options (SASL, TLS, client id, logging) to the client; they
// are applied after hotelbus's own, so they win. Default: none.
func KafkaOptions(opts ...kgo.Opt) ProducerOption {
	return func(c *producerConfig) { c.kafkaOpts = append(c.kafkaOpts, opts...) }
}

// Linger is how long a partition's batch waits for more records before it is sent. Default 5ms.
// Maps to linger.ms.
func Linger(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.linger = d }
}

// BatchMaxBytes caps one partition batch. Default 1,000,000 (below the broker's default
// message.max.bytes of 1,048,588). Maps to batch.size (franz-go: ProducerBatchMaxBytes).
func BatchMaxBytes(n int32) ProducerOption {
	return func(c *producerConfig) { c.batchMaxBytes = n }
}

// Compression sets the batch compression codecs in preference order. Default snappy, falling back
// to none for brokers that lack it. Maps to compression.type.
func Compression(codecs ...kgo.CompressionCodec) ProducerOption {
	return func(c *producerConfig) { c.compression = codecs }
}

// MaxBufferedRecords bounds the records waiting in memory for the broker. When it is reached,
// events go to the spool when one is configured, and otherwise fail with an error that
// IsRetryable reports as retryable. Default 50,000. Maps to buffer.memory (by count).
func MaxBufferedRecords(n int) ProducerOption {
	return func(c *producerConfig) { c.maxBufferedRecords = n }
}

// MaxBufferedBytes bounds the bytes waiting in memory, like MaxBufferedRecords. Default 0
// (bounded by count only). Maps to buffer.memory.
func MaxBufferedBytes(n int) ProducerOption {
	return func(c *producerConfig) { c.maxBufferedBytes = n }
}

// RequestTimeout is how long the broker may take to answer one produce request. Default 10s.
// Maps to request.timeout.ms (franz-go: ProduceRequestTimeout).
func RequestTimeout(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.requestTimeout = d }
}

// clientOpts returns the franz-go options of a producer or writer of system. The delivery
// timeout is bounded by the record's context (see deliveryDeadlines), not with
// RecordDeliveryTimeout, which counts from the record's timestamp: a replayed record keeps its
// original one.
func (c *producerConfig) clientOpts(system string) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(c.brokers...),
		kgo.ClientID("hotelbus-" + system),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(c.linger),
		kgo.ProducerBatchMaxBytes(c.batchMaxBytes),
		kgo.ProducerBatchCompression(c.compression...),
		kgo.MaxBufferedRecords(c.maxBufferedRecords),
		kgo.MaxBufferedBytes(c.maxBufferedBytes),
		kgo.ProduceRequestTimeout(c.requestTimeout),
	}, c.kafkaOpts...)
}

// PublishAudit turns the producer's publish audit records on or off. Default on: the outcome of
// every event the producer sends (published, spooled or failed) is written as an AuditRecord to
// the catalog's audit topic (topics.Catalog.AuditTopic; none when the catalog has none) through the
// producer's own client, without waiting, so `hotelbus trace` and the dashboard's journeys see
// every publish.
func PublishAudit(on bool) ProducerOption {
	return func(c *producerConfig) { c.audit = on }
}

// DeliveryTimeout bounds how long a producer without a spool waits for the broker to acknowledge
// an event: Publish then fails with ErrDeliveryTimeout (PublishAsync's done gets it), also while
// no broker can be reached at all, never earlier and at most 1% later. Default 30s. Maps to delivery.timeout.ms (franz-go's
// RecordDeliveryTimeout). With a spool, SpoolAfter applies instead: the event is spooled.
func DeliveryTimeout(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.deliveryTimeout = d }
}

// SpoolDir enables the durable offline spool in dir (one file per producer; two producers must not
// share it). Default "" (no spool: Publish waits for the broker until its context ends).
func SpoolDir(dir string) ProducerOption {
	return func(c *producerConfig) { c.spoolDir = dir }
}

// SpoolMaxBytes bounds the spool's payload bytes; past it Publish fails with spool.ErrFull.
// Default 1 GiB.
func SpoolMaxBytes(n int64) ProducerOption {
	return func(c *producerConfig) { c.spoolMaxBytes = n }
}

// SpoolAfter is how long an unacknowledged record waits for the broker before it (and every record
// behind it in its partition) goes to the spool. Only with SpoolDir. Default 15s. Maps to
// delivery.timeout.ms (franz-go: RecordDeliveryTimeout).
func SpoolAfter(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.spoolAfter = d }
}

// DrainBackoff is how long the drainer waits between attempts to reach the broker while events
// are spooled. Default 1s.
func DrainBackoff(d time.Duration) ProducerOption {
	return func(c *producerConfig) { c.drainBackoff = d }
}

// --- Consumer options ---

// ConsumerOption configures a Consumer. Brokers and KafkaOptions, the producer options that say
// how to reach Kafka, and Tracing are consumer options too; NewConsumer refuses every other
// producer option.
type ConsumerOption interface{ applyConsumer(*consumerConfig) }

type consumerOptionFunc func(*consumerConfig)

func (f consumerOptionFunc) applyConsumer(c *consumerConfig) { f(c) }

// applyConsumer takes the brokers, franz-go options and tracer a ProducerOption sets; any other
// setting makes NewConsumer fail with ErrConfig.
func (o ProducerOption) applyConsumer(c *consumerConfig) {
	var p producerConfig
	o(&p)
	if p.brokers != nil {
		c.brokers = p.brokers
	}
	if p.tracer != nil {
		c.tracer = p.tracer
	}
	c.kafkaOpts = append(c.kafkaOpts, p.kafkaOpts...)
	p.brokers, p.kafkaOpts, p.tracer = nil, nil, nil
	if !reflect.DeepEqual(p, producerConfig{}) {
		c.errs = append(c.errs, "a producer option other than Brokers and KafkaOptions was given to NewConsumer")
	}
}

// Start says where a consumer group that has no committed offset for a partition begins reading.
type Start int

const (
	// StartEarliest reads the partition from its oldest retained record.
	StartEarliest Start = iota
	// StartLatest reads only records written after the group first fetched the partition.
	StartLatest
)

type consumerConfig struct {
	brokers          []string
	kafkaOpts        []kgo.Opt
	maxInFlight      int
	maxInFlightPart  int
	maxPending       int
	middleware       []Middleware
	preparers        []BatchPreparer
	logger           *slog.Logger
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	fetchMaxBytes    int32
	commitInterval   time.Duration
	lazyDecode       bool
	start            Start
	shutdownTimeout  time.Duration
	tracer           trace.Tracer
	group            string
	errs             []string
}

func defaultConsumerConfig() consumerConfig {
	return consumerConfig{
		maxInFlight:      256,
		maxInFlightPart:  64,
		maxPending:       10_000,
		logger:           slog.Default(),
		sessionTimeout:   45 * time.Second,
		rebalanceTimeout: 60 * time.Second,
		fetchMaxBytes:    50 << 20,
		commitInterval:   time.Second,
		start:            StartEarliest,
		shutdownTimeout:  30 * time.Second,
	}
}

func (c *consumerConfig) validate() error {
	switch {
	case len(c.errs) > 0:
		return fmt.Errorf("%w: %s", ErrConfig, c.errs[0])
	case len(c.brokers) == 0:
		return fmt.Errorf("%w: Brokers: at least one seed broker is required", ErrConfig)
	case c.maxInFlight < 1:
		return fmt.Errorf("%w: MaxInFlight: must be at least 1", ErrConfig)
	case c.maxInFlightPart < 1:
		return fmt.Errorf("%w: MaxInFlightPerPartition: must be at least 1", ErrConfig)
	case c.maxPending < 1:
		return fmt.Errorf("%w: MaxPending: must be at least 1", ErrConfig)
	case slices.ContainsFunc(c.middleware, func(m Middleware) bool { return m == nil }):
		return fmt.Errorf("%w: Use: nil middleware", ErrConfig)
	case slices.Contains(c.preparers, nil):
		return fmt.Errorf("%w: UsePreparer: nil preparer", ErrConfig)
	case c.sessionTimeout < 100*time.Millisecond:
		return fmt.Errorf("%w: SessionTimeout: %s is below 100ms", ErrConfig, c.sessionTimeout)
	case c.rebalanceTimeout < 100*time.Millisecond:
		return fmt.Errorf("%w: RebalanceTimeout: %s is below 100ms", ErrConfig, c.rebalanceTimeout)
	case c.fetchMaxBytes < 1024:
		return fmt.Errorf("%w: FetchMaxBytes: %d is below 1 KiB", ErrConfig, c.fetchMaxBytes)
	case c.commitInterval < 10*time.Millisecond:
		return fmt.Errorf("%w: CommitInterval: %s is below 10ms", ErrConfig, c.commitInterval)
	case c.start != StartEarliest && c.start != StartLatest:
		return fmt.Errorf("%w: StartFrom: unknown start %d", ErrConfig, c.start)
	case c.shutdownTimeout <= 0 || c.shutdownTimeout >= c.rebalanceTimeout:
		return fmt.Errorf("%w: ShutdownTimeout: %s must be positive and below the RebalanceTimeout (%s)", ErrConfig, c.shutdownTimeout, c.rebalanceTimeout)
	}
	return nil
}

// Group makes the consumer read through group instead of its system's consumer group
// (System.Group), for a service that reads a system's subscriptions on its own account (the
// RabbitMQ bridge). The system's redrive topic, whose records are addressed to the system's group,
// is then not read. Default: the system's group. Maps to group.id.
func Group(group string) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) {
		if group == "" {
			c.errs = append(c.errs, "Group: empty consumer group")
		}
		c.group = group
	})
}

// MaxInFlight bounds the handler calls running at once in one Consumer, over all its partitions
// (each is a goroutine). Default 256.
func MaxInFlight(n int) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.maxInFlight = n })
}

// MaxInFlightPerPartition bounds the handler calls running at once for one partition (each for a
// different ordering key). 1 handles a partition one record at a time, in offset order. Default 64:
// with handlers that wait on I/O for milliseconds, a partition holding many keys is handled up to
// 64 times faster than one record at a time.
func MaxInFlightPerPartition(n int) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.maxInFlightPart = n })
}

// MaxPending bounds the records fetched and not yet finished (running, waiting for their key, or
// waiting for a slot); the consumer stops polling while the bound is reached. Default 10,000.
// Maps to max.poll.records (franz-go: PollRecords).
func MaxPending(n int) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.maxPending = n })
}

// LazyDecode leaves the records of handlers registered with HandleType undecoded until the
// handler asks for the event with Message.Decode: m.Envelope is nil when the chain starts, and a
// handler that needs only the headers, the key and the raw value (a forwarder, a counter, a
// filter) never pays for decoding. Records are still routed, skipped and deduplicated by their
// headers, and the standard middleware reads the headers (the metrics' event latency is then the
// record's timestamp's). Only a handler that decodes learns that a record does not decode, or that
// its envelope's eventId or source differs from its headers: it should return Decode's error,
// which is permanent (dead-lettered) or retryable (the registry is unreachable). Typed handlers
// (Handle), records without envelope headers, and records whose ordering key is a data field of a
// Serde with a FieldProtector are decoded before the chain as without it. Default: off (every record is decoded before its chain).
func LazyDecode() ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.lazyDecode = true })
}

// Use appends middleware to the handler chain, outermost first: Use(a, b) calls a, which calls b,
// which calls the handler. Default: none (a handler error is then logged and the event skipped).
func Use(mw ...Middleware) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.middleware = append(c.middleware, mw...) })
}

// UsePreparer registers a BatchPreparer (typically middleware that is also passed to Use, such as
// dedup): its Prepare is called with every polled batch before any of the batch's messages enters
// the chain, in registration order. Default: none.
func UsePreparer(p BatchPreparer) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.preparers = append(c.preparers, p) })
}

// Logger sets where the consumer logs (events without a handler, handler failures, rebalances,
// commit failures). Default slog.Default(); nil keeps the default.
func Logger(l *slog.Logger) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) {
		if l != nil {
			c.logger = l
		}
	})
}

// SessionTimeout is how long the group coordinator waits for a heartbeat before it evicts a member
// and hands its partitions to others. Default 45s. Maps to session.timeout.ms.
func SessionTimeout(d time.Duration) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.sessionTimeout = d })
}

// RebalanceTimeout is how long a member may take to rejoin the group during a rebalance,
// including the wait for the in-flight handlers of revoked partitions. Default 60s. Maps to
// max.poll.interval.ms (franz-go: RebalanceTimeout).
func RebalanceTimeout(d time.Duration) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.rebalanceTimeout = d })
}

// FetchMaxBytes bounds the bytes one fetch response may carry. Default 50 MiB. Maps to
// fetch.max.bytes.
func FetchMaxBytes(n int32) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.fetchMaxBytes = n })
}

// CommitInterval is how often the offsets of finished records are committed; they are also
// committed when partitions are revoked and on shutdown. Default 1s. Maps to
// auto.commit.interval.ms.
func CommitInterval(d time.Duration) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.commitInterval = d })
}

// StartFrom says where the group begins a partition it has no committed offset for. Default
// StartEarliest. Maps to auto.offset.reset.
func StartFrom(s Start) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.start = s })
}

// ShutdownTimeout bounds the graceful shutdown (finishing the records already fetched) and, on a
// rebalance, the wait for the in-flight handlers of revoked partitions; handlers still running
// then are abandoned (their context is canceled and their records are not committed). It must be
// below the RebalanceTimeout. Default 30s.
func ShutdownTimeout(d time.Duration) ConsumerOption {
	return consumerOptionFunc(func(c *consumerConfig) { c.shutdownTimeout = d })
}

// --- Middleware options: dedup, retry, dead letters ---

// DedupOption configures a Dedup (see NewDedup).
type DedupOption func(*dedupConfig)

type dedupConfig struct {
	lease          time.Duration
	doneTTL        time.Duration
	failOpen       bool
	backoffInitial time.Duration
	backoffMax     time.Duration
	logger         *slog.Logger
	waitReplicas   int
	waitTimeout    time.Duration
	maxUnmarked    int
}

func defaultDedupConfig() dedupConfig {
	return dedupConfig{
		lease:          30 * time.Second,
		doneTTL:        30 * 24 * time.Hour,
		backoffInitial: 100 * time.Millisecond,
		backoffMax:     5 * time.Second,
		logger:         slog.Default(),
		maxUnmarked:    512,
	}
}

func (c *dedupConfig) validate() error {
	switch {
	case c.lease < 10*time.Millisecond:
		return fmt.Errorf("%w: DedupLease: %s is below 10ms", ErrConfig, c.lease)
	case c.doneTTL <= c.lease:
		return fmt.Errorf("%w: DedupDoneTTL: %s must be longer than the lease %s", ErrConfig, c.doneTTL, c.lease)
	case c.backoffInitial <= 0 || c.backoffMax < c.backoffInitial:
		return fmt.Errorf("%w: DedupBackoff: want 0 < initial (%s) <= max (%s)", ErrConfig, c.backoffInitial, c.backoffMax)
	case c.logger == nil:
		return fmt.Errorf("%w: DedupLogger: nil logger", ErrConfig)
	case c.maxUnmarked < 1:
		return fmt.Errorf("%w: DedupMaxUnmarked: %d is below 1", ErrConfig, c.maxUnmarked)
	case c.waitReplicas < 0 || c.waitReplicas > 0 && c.waitTimeout <= 0:
		return fmt.Errorf("%w: DedupWaitReplicas: want replicas >= 0 (%d) and a positive timeout (%s)", ErrConfig, c.waitReplicas, c.waitTimeout)
	}
	return nil
}

// DedupLease sets how long an event's lease lasts in Redis before another owner may take it: the
// bound on how long a crashed consumer blocks redelivered copies of the events it held. A handler
// that runs longer keeps its lease by extension, between a third and a half of the lease after it
// was taken or last extended. Default: 30s; at least 10ms.
func DedupLease(d time.Duration) DedupOption {
	return func(c *dedupConfig) { c.lease = d }
}

// DedupDoneTTL sets how long an event stays "done" in Redis, so that copies delivered again within
// that time are committed without calling the handler. It should exceed the retention of every
// topic the group reads (a copy older than that cannot be redelivered). Default: 30 days; longer
// than the lease.
func DedupDoneTTL(d time.Duration) DedupOption {
	return func(c *dedupConfig) { c.doneTTL = d }
}

// DedupFailOpen makes the dedup middleware handle events without deduplication while Redis is
// unreachable, logging at error level once per batch, instead of waiting for Redis. Default: false
// (fail closed: nothing is handled without dedup; the consumer pauses and backs off).
func DedupFailOpen(on bool) DedupOption {
	return func(c *dedupConfig) { c.failOpen = on }
}

// DedupBackoff sets the exponential backoff used while Redis is unreachable (when failing closed)
// and while waiting for another owner's lease: the first wait is initial, each next one doubles, up
// to max. Default: 100ms, 5s.
func DedupBackoff(initial, max time.Duration) DedupOption {
	return func(c *dedupConfig) { c.backoffInitial, c.backoffMax = initial, max }
}

// DedupMaxUnmarked bounds the events of a Consumer that a Dedup lets be handled while their done
// marks are not acknowledged yet (queued for the next flush, or failing while Redis is
// unreachable); the next handler waits until one is. It bounds what a crash leaves handled and
// not marked (their leases are taken over after they expire, logged) and what runs on after
// Redis went away. Default: 512.
func DedupMaxUnmarked(n int) DedupOption {
	return func(c *dedupConfig) { c.maxUnmarked = n }
}

// DedupLogger sets the logger for Redis outages and lost leases. Default: slog.Default().
func DedupLogger(l *slog.Logger) DedupOption {
	return func(c *dedupConfig) { c.logger = l }
}

// DedupWaitReplicas makes every done mark (and OnDone transaction) wait, with Redis's WAIT in the
// same round trip, until replicas replicas acknowledged it or timeout passed, before the handler's
// success is reported and the offset can be committed: a failover to one of those replicas then
// keeps the done marks of every event reported handled (see Dedup, "Failover"). A WAIT that times
// out is logged; the event stays handled. Not available with a Redis Cluster client (go-redis
// sends a pipeline's WAIT, which has no key, to any node): NewDedup refuses it. Default: 0 (no
// WAIT).
func DedupWaitReplicas(replicas int, timeout time.Duration) DedupOption {
	return func(c *dedupConfig) { c.waitReplicas, c.waitTimeout = replicas, timeout }
}

// RetryOption configures the retry middleware (see Retry).
type RetryOption func(*retryConfig)

type retryConfig struct {
	maxAttempts    int
	backoffInitial time.Duration
	backoffMax     time.Duration
}

func defaultRetryConfig() retryConfig {
	return retryConfig{maxAttempts: 5, backoffInitial: 200 * time.Millisecond, backoffMax: 30 * time.Second}
}

func (c *retryConfig) validate() error {
	switch {
	case c.maxAttempts < 1:
		return fmt.Errorf("%w: RetryMaxAttempts: %d is below 1", ErrConfig, c.maxAttempts)
	case c.backoffInitial <= 0 || c.backoffMax < c.backoffInitial:
		return fmt.Errorf("%w: RetryBackoff: want 0 < initial (%s) <= max (%s)", ErrConfig, c.backoffInitial, c.backoffMax)
	}
	return nil
}

// RetryMaxAttempts sets how many times the handler is called for one message, the first call
// included, before a retryable error is given up on (and the message dead-lettered). Default: 5;
// 1 disables retries.
func RetryMaxAttempts(n int) RetryOption {
	return func(c *retryConfig) { c.maxAttempts = n }
}

// RetryBackoff sets the exponential backoff between attempts: before attempt n+1 the middleware
// waits a uniformly random time in [0, min(max, initial*2^(n-1))) ("full jitter"). Default: 200ms,
// 30s.
func RetryBackoff(initial, max time.Duration) RetryOption {
	return func(c *retryConfig) { c.backoffInitial, c.backoffMax = initial, max }
}

// DeadLetterOption configures the dead-letter middleware (see NewDeadLetters).
type DeadLetterOption func(*deadLetterConfig)

type deadLetterConfig struct {
	parkKey bool
	logger  *slog.Logger
}

func defaultDeadLetterConfig() deadLetterConfig {
	return deadLetterConfig{logger: slog.Default()}
}

func (c *deadLetterConfig) validate() error {
	if c.logger == nil {
		return fmt.Errorf("%w: DeadLetterLogger: nil logger", ErrConfig)
	}
	return nil
}

// ParkKey selects the policy for the records that follow a dead-lettered record with the same key
// in the same partition: false (the default) handles them normally; true parks the key, sending
// every later record of it to the dead-letter topic with error class "parked", without calling the
// handler, until DeadLetters.Unpark. Parking is held in memory by this consumer process.
func ParkKey(on bool) DeadLetterOption {
	return func(c *deadLetterConfig) { c.parkKey = on }
}

// DeadLetterLogger sets the logger that records every dead-lettered message at warn level.
// Default: slog.Default().
func DeadLetterLogger(l *slog.Logger) DeadLetterOption {
	return func(c *deadLetterConfig) { c.logger = l }
}

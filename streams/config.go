package streams

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// SerdeOption configures a Serde.
type SerdeOption func(*serdeConfig)

type serdeConfig struct {
	autoRegister bool
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
	spoolDir           string
	spoolMaxBytes      int64
	spoolAfter         time.Duration
	drainBatch         int
	drainBackoff       time.Duration
	now                func() time.Time
}

func defaultProducerConfig() producerConfig {
	return producerConfig{
		linger:             5 * time.Millisecond,
		batchMaxBytes:      1_000_000,
		compression:        []kgo.CompressionCodec{kgo.SnappyCompression(), kgo.NoCompression()},
		maxBufferedRecords: 50_000,
		requestTimeout:     10 * time.Second,
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
	case c.spoolDir != "" && c.spoolAfter < c.linger+time.Second:
		return fmt.Errorf("%w: SpoolAfter: %s must exceed the linger by at least 1s", ErrConfig, c.spoolAfter)
	case c.spoolMaxBytes < 1:
		return fmt.Errorf("%w: SpoolMaxBytes: must be positive", ErrConfig)
	}
	return nil
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

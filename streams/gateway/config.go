package gateway

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/streams"
)

// Config is what a Server is built from. Producers, Credentials and Redis are required; every
// limit and timeout left zero takes its default (see the field comments).
type Config struct {
	// Producers holds one producer per system the gateway publishes for, keyed by system name. The
	// caller owns them: it closes them after Shutdown returned.
	Producers map[string]*streams.Producer
	// Credentials authenticates requests and names their system.
	Credentials *Credentials
	// Redis stores Idempotency-Key answers.
	Redis redis.UniversalClient
	// Kafka and Registry are pinged by /readyz; nil skips that check.
	Kafka    *kgo.Client
	Registry *sr.Client
	// Logger receives server-side failures (never request bodies). Default slog.Default().
	Logger *slog.Logger
	// Metrics are served on /metrics beside the gateway's own (the producers' streams.Metrics
	// registry). Default: none.
	Metrics prometheus.Gatherer
	// TracerProvider, when set, records a server span per publish request, child of the request's
	// traceparent; the producers' publish spans (streams.Tracing) become its children. Default:
	// off.
	TracerProvider trace.TracerProvider

	// MaxBodyBytes bounds a request body. Default 4 MiB.
	MaxBodyBytes int64
	// MaxEventBytes bounds one event's JSON (the body of /v1/events, an item of a batch). Default
	// 512 KiB, at most MaxBodyBytes.
	MaxEventBytes int64
	// MaxBatchEvents bounds the events of one batch. Default 500.
	MaxBatchEvents int
	// MaxJSONDepth bounds the nesting of objects and arrays in a body. Default 32.
	MaxJSONDepth int
	// MaxBufferedBytes bounds the request bodies held at once, from before their reading until
	// their events are parsed and handed to the producer (a body of unknown length counts as its
	// limit). A request waits up to 10s for room, then gets 503. Default 2 × MaxBodyBytes, at
	// least MaxBodyBytes.
	MaxBufferedBytes int64
	// MaxParseBytes bounds the bytes of the events parsed at once (JSON decoding and schema
	// validation). A parse's memory grows with its event: up to about 75 times the event's bytes
	// for an event of long arrays of invalid items, one field error each. An event waits up to
	// 10s for room, then gets 503. Default MaxEventBytes (one largest event, or many small ones,
	// at a time), at least MaxEventBytes.
	MaxParseBytes int64
	// Limits are the rate limits per system and per tenant. Default: none.
	Limits Limits

	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the http.Server's. Defaults
	// 5s, 30s, 45s, 120s.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// PublishTimeout bounds the wait for the broker's acknowledgement (or the spool) of one
	// request's events; it must be below WriteTimeout. Default 30s.
	PublishTimeout time.Duration

	// IdempotencyTTL is how long the first answer to an Idempotency-Key is kept. Default 24h.
	IdempotencyTTL time.Duration
	// IdempotencyLease is how long a request holds its key while it is processed; a concurrent
	// request with the same key waits for the answer up to this long, and a crashed holder blocks
	// the key no longer than this. Default PublishTimeout + 15s.
	IdempotencyLease time.Duration

	// RetryAfter is the Retry-After given with 429 and 503 answers. Default 5s.
	RetryAfter time.Duration
	// ReadyTimeout bounds each /readyz check. Default 2s.
	ReadyTimeout time.Duration
}

func (c *Config) withDefaults() Config {
	d := *c
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.MaxBodyBytes == 0 {
		d.MaxBodyBytes = 4 << 20
	}
	if d.MaxEventBytes == 0 {
		d.MaxEventBytes = min(512<<10, d.MaxBodyBytes)
	}
	if d.MaxBatchEvents == 0 {
		d.MaxBatchEvents = 500
	}
	if d.MaxJSONDepth == 0 {
		d.MaxJSONDepth = 32
	}
	if d.MaxBufferedBytes == 0 {
		d.MaxBufferedBytes = 2 * d.MaxBodyBytes
	}
	if d.MaxParseBytes == 0 {
		d.MaxParseBytes = d.MaxEventBytes
	}
	d.Limits = d.Limits.withDefaults(d.MaxBatchEvents)
	set(&d.ReadHeaderTimeout, 5*time.Second)
	set(&d.ReadTimeout, 30*time.Second)
	set(&d.WriteTimeout, 45*time.Second)
	set(&d.IdleTimeout, 120*time.Second)
	set(&d.PublishTimeout, 30*time.Second)
	set(&d.IdempotencyTTL, 24*time.Hour)
	set(&d.IdempotencyLease, d.PublishTimeout+15*time.Second)
	set(&d.RetryAfter, 5*time.Second)
	set(&d.ReadyTimeout, 2*time.Second)
	return d
}

// validate checks a Config after withDefaults.
func (c *Config) validate() error {
	for sys, p := range c.Producers {
		if p == nil {
			return fmt.Errorf("gateway: Producers: nil producer for %s", sys)
		}
	}
	switch {
	case len(c.Producers) == 0:
		return fmt.Errorf("gateway: Producers: at least one is required")
	case c.Credentials == nil:
		return fmt.Errorf("gateway: Credentials: required")
	case c.Redis == nil:
		return fmt.Errorf("gateway: Redis: required (Idempotency-Key answers)")
	case c.MaxBodyBytes < 1024:
		return fmt.Errorf("gateway: MaxBodyBytes: %d is below 1 KiB", c.MaxBodyBytes)
	case c.MaxEventBytes < 256 || c.MaxEventBytes > c.MaxBodyBytes:
		return fmt.Errorf("gateway: MaxEventBytes: %d must be between 256 and MaxBodyBytes (%d)", c.MaxEventBytes, c.MaxBodyBytes)
	case c.MaxBatchEvents < 1:
		return fmt.Errorf("gateway: MaxBatchEvents: must be at least 1")
	case c.MaxBufferedBytes < c.MaxBodyBytes:
		return fmt.Errorf("gateway: MaxBufferedBytes: %d is below MaxBodyBytes (%d): a largest body could never be read", c.MaxBufferedBytes, c.MaxBodyBytes)
	case c.MaxParseBytes < c.MaxEventBytes:
		return fmt.Errorf("gateway: MaxParseBytes: %d is below MaxEventBytes (%d): a largest event could never be parsed", c.MaxParseBytes, c.MaxEventBytes)
	case c.Limits.SystemRate < 0 || c.Limits.TenantRate < 0 || math.IsNaN(c.Limits.SystemRate) || math.IsNaN(c.Limits.TenantRate):
		return fmt.Errorf("gateway: Limits: rates must not be negative (0 = unlimited)")
	case c.Limits.SystemBurst < 1 || c.Limits.TenantBurst < 1:
		return fmt.Errorf("gateway: Limits: bursts must be at least 1")
	case c.Limits.TenantBuckets < 1:
		return fmt.Errorf("gateway: Limits: TenantBuckets must be at least 1")
	case c.MaxJSONDepth < 4:
		return fmt.Errorf("gateway: MaxJSONDepth: %d is below 4 (an envelope nests at least 3 deep)", c.MaxJSONDepth)
	case c.ReadHeaderTimeout < 0 || c.ReadTimeout < 0 || c.IdleTimeout < 0:
		return fmt.Errorf("gateway: timeouts must not be negative")
	case c.PublishTimeout < 0 || c.PublishTimeout >= c.WriteTimeout:
		return fmt.Errorf("gateway: PublishTimeout: %s must be positive and below WriteTimeout (%s)", c.PublishTimeout, c.WriteTimeout)
	case c.IdempotencyLease <= c.PublishTimeout:
		return fmt.Errorf("gateway: IdempotencyLease: %s must exceed PublishTimeout (%s)", c.IdempotencyLease, c.PublishTimeout)
	case c.IdempotencyTTL <= c.IdempotencyLease:
		return fmt.Errorf("gateway: IdempotencyTTL: %s must exceed IdempotencyLease (%s)", c.IdempotencyTTL, c.IdempotencyLease)
	case c.RetryAfter < time.Second:
		return fmt.Errorf("gateway: RetryAfter: %s is below 1s (Retry-After counts whole seconds)", c.RetryAfter)
	case c.ReadyTimeout <= 0:
		return fmt.Errorf("gateway: ReadyTimeout: must be positive")
	}
	return nil
}

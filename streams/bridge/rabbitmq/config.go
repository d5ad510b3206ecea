package rabbitmq

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/hotelbus/hotelbus/streams"
)

// Option configures a Bridge.
type Option func(*config)

type config struct {
	inbound     bool
	userMap     map[string]string
	prefetch    int
	dialTimeout time.Duration
	heartbeat   time.Duration
	confirmWait time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration
	logger      *slog.Logger
}

func defaultConfig() config {
	return config{prefetch: 256, dialTimeout: 10 * time.Second, heartbeat: 10 * time.Second, confirmWait: 30 * time.Second,
		backoffMin: 200 * time.Millisecond, backoffMax: 10 * time.Second, logger: slog.Default()}
}

func (c *config) validate() error {
	switch {
	case c.inbound && len(c.userMap) == 0:
		return fmt.Errorf("%w: UserMap: the RabbitMQ → Kafka direction needs at least one mapped user", ErrConfig)
	case c.prefetch < 1 || c.prefetch > 65535:
		return fmt.Errorf("%w: Prefetch: %d is not between 1 and 65535", ErrConfig, c.prefetch)
	case c.dialTimeout <= 0 || c.confirmWait <= 0 || c.heartbeat < 0:
		return fmt.Errorf("%w: DialTimeout and ConfirmTimeout must be positive, Heartbeat not negative", ErrConfig)
	case c.backoffMin <= 0 || c.backoffMax < c.backoffMin:
		return fmt.Errorf("%w: Backoff: want 0 < min (%s) <= max (%s)", ErrConfig, c.backoffMin, c.backoffMax)
	}
	return nil
}

// UserMap enables the RabbitMQ → Kafka direction (Inbound) with the map from RabbitMQ user (the
// message's user-id) to the system it publishes as (see ParseUserMap). Default: none (Inbound
// refuses to run; the bridge's queue is not declared).
func UserMap(m map[string]string) Option {
	return func(c *config) {
		c.inbound = true
		c.userMap = make(map[string]string, len(m))
		for k, v := range m {
			c.userMap[k] = v
		}
	}
}

// Prefetch bounds the messages Inbound holds unacknowledged (AMQP basic.qos prefetch-count): the
// messages being published to Kafka, one per tenant at a time, and those waiting for their
// tenant's turn. Default 256.
func Prefetch(n int) Option { return func(c *config) { c.prefetch = n } }

// DialTimeout bounds connecting and the AMQP handshake. Default 10s.
func DialTimeout(d time.Duration) Option { return func(c *config) { c.dialTimeout = d } }

// Heartbeat is the AMQP heartbeat interval: a silent peer is taken for dead after two. Default 10s.
func Heartbeat(d time.Duration) Option { return func(c *config) { c.heartbeat = d } }

// ConfirmTimeout bounds the wait for RabbitMQ's confirm of one publication; past it the
// publication counts as not confirmed (retried). It also bounds how long a shutdown waits for a
// message being taken into Kafka. Default 30s.
func ConfirmTimeout(d time.Duration) Option { return func(c *config) { c.confirmWait = d } }

// Backoff sets the first and the longest wait between reconnection attempts and between attempts
// to publish a message to Kafka that failed for a retryable reason. Default 200ms and 10s.
func Backoff(initial, max time.Duration) Option {
	return func(c *config) { c.backoffMin, c.backoffMax = initial, max }
}

// backoff returns a new backoff of the waits between attempts: backoffMin, doubling up to
// backoffMax.
func (c *config) backoff() *streams.Backoff {
	return &streams.Backoff{Initial: c.backoffMin, Max: c.backoffMax}
}

// Logger sets where the bridge logs. Default slog.Default(); nil keeps the default.
func Logger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

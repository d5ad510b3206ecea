package dispatch

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Option configures a Dispatcher.
type Option func(*config)

type config struct {
	secret          []byte
	timeout         time.Duration
	client          *http.Client
	threshold       int
	probeInitial    time.Duration
	probeMax        time.Duration
	maxRetryAfter   time.Duration
	responseExcerpt int
	logger          *slog.Logger
	tracer          trace.Tracer
	errs            []string
}

func defaultConfig() config {
	return config{
		timeout:         10 * time.Second,
		threshold:       5,
		probeInitial:    time.Second,
		probeMax:        30 * time.Second,
		maxRetryAfter:   5 * time.Minute,
		responseExcerpt: 512,
		logger:          slog.Default(),
	}
}

func (c *config) validate(target string) error {
	u, err := url.Parse(target)
	switch {
	case len(c.errs) > 0:
		return fmt.Errorf("%w: %s", ErrConfig, c.errs[0])
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("%w: target %q: want an http:// or https:// URL", ErrConfig, target)
	case len(c.secret) < 16:
		return fmt.Errorf("%w: Secret: the signing secret must have at least 16 bytes (got %d)", ErrConfig, len(c.secret))
	case c.timeout <= 0:
		return fmt.Errorf("%w: Timeout: must be positive", ErrConfig)
	case c.threshold < 1:
		return fmt.Errorf("%w: Breaker: threshold must be at least 1", ErrConfig)
	case c.probeInitial <= 0 || c.probeMax < c.probeInitial:
		return fmt.Errorf("%w: Breaker: want 0 < probe initial (%s) <= max (%s)", ErrConfig, c.probeInitial, c.probeMax)
	case c.responseExcerpt < 0:
		return fmt.Errorf("%w: ResponseExcerpt: must not be negative", ErrConfig)
	}
	return nil
}

// Secret sets the key of the HMAC-SHA256 signature sent with every delivery (see Sign); the
// receiver verifies it with the same key (Verify). Required, at least 16 bytes.
func Secret(key []byte) Option {
	return func(c *config) { c.secret = append([]byte(nil), key...) }
}

// Timeout bounds one delivery: connecting, sending and reading the answer. A delivery that times
// out is retried. Default 10s.
func Timeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// HTTPClient sets the client deliveries are sent with (its Timeout is left alone; Timeout bounds
// each delivery through its context). Default: a client of its own with keep-alive connections.
func HTTPClient(cl *http.Client) Option {
	return func(c *config) {
		if cl == nil {
			c.errs = append(c.errs, "HTTPClient: nil client")
		}
		c.client = cl
	}
}

// Breaker sets the circuit breaker: after threshold consecutive transient failures (408, 429, 5xx,
// connection errors, timeouts) the target counts as down; deliveries wait, and one probe is sent
// after initial, then after twice as long after each failed probe, up to max. Default 5, 1s, 30s.
func Breaker(threshold int, initial, max time.Duration) Option {
	return func(c *config) { c.threshold, c.probeInitial, c.probeMax = threshold, initial, max }
}

// MaxRetryAfter caps how long a target's Retry-After answer makes deliveries wait. Default 5m.
func MaxRetryAfter(d time.Duration) Option { return func(c *config) { c.maxRetryAfter = d } }

// ResponseExcerpt sets how many bytes of a refusing target's answer are kept (in the error and the
// dead-letter header HeaderHTTPResponse). Default 512.
func ResponseExcerpt(n int) Option { return func(c *config) { c.responseExcerpt = n } }

// Logger sets where the dispatcher logs breaker changes. Default slog.Default(); nil keeps it.
func Logger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// Tracing records an OpenTelemetry client span "deliver <eventType>" per delivery with tp, child
// of the consumer's span in the handler's context, and sends its context in the traceparent
// header. Default: off (nil): no span, and traceparent is the record's own.
func Tracing(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp != nil {
			c.tracer = tp.Tracer("github.com/hotelbus/hotelbus/streams/dispatch")
		}
	}
}

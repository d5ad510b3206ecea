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
	secrets         [][]byte
	authFile        string
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

func (c *config) validate(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		// url's errors quote the whole URL, credentials included.
		return nil, fmt.Errorf("%w: target: not a URL", ErrConfig)
	}
	switch {
	case len(c.errs) > 0:
		return nil, fmt.Errorf("%w: %s", ErrConfig, c.errs[0])
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("%w: target %s: want an http:// or https:// URL", ErrConfig, redact(u))
	case u.User != nil:
		return nil, fmt.Errorf("%w: target %s: credentials in the URL are refused (they would show wherever the URL does); put an Authorization header in TargetAuthFile", ErrConfig, redact(u))
	case len(c.secrets) == 0:
		return nil, fmt.Errorf("%w: Secret: a signing secret is required", ErrConfig)
	case c.timeout <= 0:
		return nil, fmt.Errorf("%w: Timeout: must be positive", ErrConfig)
	case c.threshold < 1:
		return nil, fmt.Errorf("%w: Breaker: threshold must be at least 1", ErrConfig)
	case c.probeInitial <= 0 || c.probeMax < c.probeInitial:
		return nil, fmt.Errorf("%w: Breaker: want 0 < probe initial (%s) <= max (%s)", ErrConfig, c.probeInitial, c.probeMax)
	case c.responseExcerpt < 0:
		return nil, fmt.Errorf("%w: ResponseExcerpt: must not be negative", ErrConfig)
	}
	for i, s := range c.secrets {
		if len(s) < 16 {
			return nil, fmt.Errorf("%w: Secret: signing secret #%d must have at least 16 bytes (got %d)", ErrConfig, i+1, len(s))
		}
	}
	return u, nil
}

// redact is u without userinfo, query and fragment: the form of the target shown in logs,
// metrics, errors, dead letters and spans (a token in the query must not leak there).
func redact(u *url.URL) string {
	r := *u
	r.User, r.RawQuery, r.ForceQuery, r.Fragment, r.RawFragment = nil, "", false, "", ""
	return r.String()
}

// Secret sets the keys of the HMAC-SHA256 signature sent with every delivery (see Sign): the
// dispatcher signs with the first, the newest; the receiver verifies with every key it accepts
// (Verify). To rotate, give receivers the new key next to the old one, then put the new key first
// here, then drop the old one everywhere. Required: at least one key, each at least 16 bytes.
func Secret(keys ...[]byte) Option {
	return func(c *config) {
		c.secrets = nil
		for _, k := range keys {
			c.secrets = append(c.secrets, append([]byte(nil), k...))
		}
	}
}

// TargetAuthFile sends the headers of the file at path with every delivery: "Name: value" lines
// (blank lines and # comments skipped), typically "Authorization: Bearer <token>". It is how the
// target authenticates the dispatcher; credentials in the target URL are refused. The file is
// checked for a change at most once a second and reread (a Kubernetes Secret volume's update is
// picked up); a reread that fails keeps the previous headers and is logged at error. Headers the
// dispatcher sets (ce-*, Content-Type, Hotelbus-Signature, traceparent...) are refused. Errors
// name the line, never its value. Default: none.
func TargetAuthFile(path string) Option { return func(c *config) { c.authFile = path } }

// Timeout bounds one delivery: connecting, sending and reading the answer. A delivery that times
// out is retried. Default 10s.
func Timeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// HTTPClient sets the client deliveries are sent with (its Timeout is left alone; Timeout bounds
// each delivery through its context). Its CheckRedirect is replaced: redirects are never followed
// (a 3xx answer is a refusal), so the body and its signature never go to another address. Default:
// a client of its own with keep-alive connections.
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

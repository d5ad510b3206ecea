package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpguts"

	"github.com/hotelbus/hotelbus/streams"
)

// Dispatcher delivers events to one HTTP target (see the package documentation). It is safe for
// concurrent use; its counters are for metrics.
type Dispatcher struct {
	target   string // as given: the address requests go to
	redacted string // target without userinfo and query: the form every output shows
	serde    *streams.Serde
	cfg      config
	client   *http.Client
	auth     *authFile // nil: no TargetAuthFile
	br       *breaker

	delivered, refused, transient, invalid atomic.Int64
	byClass                                [5]atomic.Int64 // answers by statusClasses
}

// statusClasses label hotelbus_dispatch_deliveries_total: the target's answer by class, or
// "error" when there was none (connection refused, timeout).
var statusClasses = [5]string{"2xx", "3xx", "4xx", "5xx", "error"}

func classOf(status int) int {
	switch {
	case status == 0:
		return 4
	case status < 300:
		return 0
	case status < 400:
		return 1
	case status < 500:
		return 2
	}
	return 3
}

// New returns a dispatcher POSTing to target, rendering envelopes as JSON with serde.
func New(target string, serde *streams.Serde, opts ...Option) (*Dispatcher, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil option", ErrConfig)
		}
		o(&cfg)
	}
	u, err := cfg.validate(target)
	if err != nil {
		return nil, err
	}
	if serde == nil {
		return nil, fmt.Errorf("%w: nil serde", ErrConfig)
	}
	var cl http.Client
	if cfg.client != nil {
		cl = *cfg.client
	} else {
		// One target, up to the consumer's MaxInFlight deliveries at once: keep that many
		// connections (DefaultTransport keeps 100 in all, so bursts would close and dial again).
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256
		cl.Transport = tr
	}
	// A redirect would send the body, its signature and the authentication headers elsewhere.
	cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	d := &Dispatcher{target: target, redacted: redact(u), serde: serde, cfg: cfg, client: &cl,
		br: newBreaker(cfg.threshold, cfg.probeInitial, cfg.probeMax, cfg.logger)}
	if cfg.authFile != "" {
		if d.auth, err = loadAuthFile(cfg.authFile, cfg.logger); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
	}
	return d, nil
}

// Target returns the target URL without userinfo and query, as logs and metrics show it.
func (d *Dispatcher) Target() string { return d.redacted }

// Handler returns the final handler of the consumer chain: it delivers m, waiting while the
// circuit is open, and returns nil (delivered), a retryable error (transient failure with the
// circuit closed), a permanent *TargetError (refused) or a permanent *InvalidHeaderError (the
// event cannot be sent; checked before the breaker, which never sees it).
func (d *Dispatcher) Handler() streams.Handler {
	return func(ctx context.Context, m *streams.Message) error {
		body, err := d.serde.JSON(m.Envelope)
		if err != nil {
			return streams.Permanent(fmt.Errorf("dispatch: rendering %s as JSON: %w", cut(m.Envelope.EventID, 64), err))
		}
		h, err := eventHeaders(m)
		if err != nil {
			d.invalid.Add(1)
			return err
		}
		for {
			probe, err := d.br.acquire(ctx)
			if err != nil {
				return fmt.Errorf("dispatch: waiting for the target to recover: %w", err)
			}
			// A delivery that has started is not canceled with ctx (the partition revoked or lost, a
			// shutdown): the target may already have acted on it, so its answer must reach dedup's
			// done mark; otherwise the partition's next owner delivers the event again. Timeout
			// bounds it.
			err = d.deliver(context.WithoutCancel(ctx), m, h, body)
			var te *TargetError
			switch {
			case err == nil:
				d.delivered.Add(1)
				d.br.success(probe)
				return nil
			case errors.As(err, &te) && !te.Retryable():
				d.refused.Add(1)
				d.br.success(probe) // the target answered: it is up
				return streams.Permanent(err)
			}
			d.transient.Add(1)
			var after time.Duration
			if te != nil {
				after = te.After
			}
			d.logTransient(m, err)
			if !d.br.failure(probe, after) {
				return err
			}
		}
	}
}

// HandleAll registers the dispatcher's handler on c for every local major version of each of
// eventTypes (normally the system's subscriptions, topics.System.Subscribes), so that events of
// every version are delivered; with dedup in the chain a dual-published event is delivered once,
// in the version of its first copy on the partition: the newest major (see Producer.PublishDual).
func (d *Dispatcher) HandleAll(c *streams.Consumer, eventTypes []string) {
	h := d.Handler()
	for _, sub := range d.serde.Schemas().Subjects {
		if slices.Contains(eventTypes, sub.EventType) {
			c.Handle(sub.EventType, sub.Major, h)
		}
	}
}

// eventHeaders returns the CloudEvents headers of m, or an *InvalidHeaderError when one of them
// cannot be sent (Go's HTTP client would refuse the request).
func eventHeaders(m *streams.Message) (http.Header, error) {
	env := m.Envelope
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("ce-specversion", "1.0")
	h.Set("ce-id", env.EventID)
	h.Set("ce-type", env.EventType)
	h.Set("ce-source", "/hotelbus/"+env.Metadata.Source)
	h.Set("ce-time", env.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"))
	h.Set("ce-subject", string(m.Record.Key))
	h.Set("ce-tenantid", env.Metadata.TenantID)
	if env.Metadata.CorrelationID != "" {
		h.Set("ce-correlationid", env.Metadata.CorrelationID)
	}
	if tp := streams.Header(m.Record, streams.HeaderTraceparent); tp != "" {
		h.Set("traceparent", tp)
	}
	for k, vs := range h {
		for _, v := range vs {
			reason := ""
			switch {
			case len(v) > maxHeaderValue:
				reason = fmt.Sprintf("is longer than %d bytes (%d)", maxHeaderValue, len(v))
			case !httpguts.ValidHeaderFieldValue(v):
				reason = "holds a control character (CR, LF, NUL...)"
			default:
				continue
			}
			return nil, &InvalidHeaderError{EventID: env.EventID, Header: strings.ToLower(k), Reason: reason}
		}
	}
	return h, nil
}

// deliver sends one CloudEvents binary-mode request with the event's headers h.
func (d *Dispatcher) deliver(ctx context.Context, m *streams.Message, h http.Header, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.target, bytes.NewReader(body))
	if err != nil {
		// Unreachable with a validated target and a constant method; never the URL's error, which
		// quotes the whole URL.
		return streams.Permanent(fmt.Errorf("dispatch: building a request to %s failed", d.redacted))
	}
	env := m.Envelope
	req.Header = h.Clone()
	if d.auth != nil {
		for k, vs := range d.auth.headers() {
			req.Header[k] = vs
		}
	}
	var span trace.Span
	if d.cfg.tracer != nil {
		ctx, span = d.cfg.tracer.Start(ctx, "deliver "+env.EventType, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("http.request.method", http.MethodPost), attribute.String("url.full", d.redacted),
			attribute.String("messaging.message.id", env.EventID), attribute.String("hotelbus.event_type", env.EventType)))
		defer span.End()
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	req.Header.Set(HeaderSignature, Sign(d.cfg.secrets[0], time.Now(), req.Header, body))
	var wrote atomic.Bool
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) { wrote.Store(i.Err == nil) }}))
	resp, err := d.client.Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = d.redacted // the client's error shows the query
	}
	if span != nil {
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		default:
			span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
			if resp.StatusCode >= 300 {
				span.SetStatus(codes.Error, resp.Status)
			}
		}
	}
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			d.byClass[classOf(0)].Add(1)
		}
		return &DeliveryError{EventID: env.EventID, Target: d.redacted, Sent: wrote.Load(), Err: err}
	}
	d.byClass[classOf(resp.StatusCode)].Add(1)
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, int64(d.cfg.responseExcerpt)))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &TargetError{Status: resp.StatusCode, Excerpt: string(bytes.ToValidUTF8(excerpt, nil)),
		After: min(retryAfter(resp.Header.Get("Retry-After"), time.Now()), d.cfg.maxRetryAfter)}
}

// logTransient logs one transient delivery failure with its class (see failureClass), so that
// every retry of an event can be traced to its cause. A failure whose outcome is unknown (the
// request was sent and no answer came) is logged at warn: the target may have acted on it, and
// the retry may run the side effect again; receivers deduplicate on ce-id.
func (d *Dispatcher) logTransient(m *streams.Message, err error) {
	class := failureClass(err)
	level := slog.LevelInfo
	msg := "dispatch: transient delivery failure, retrying"
	if class == ClassUnknownOutcome {
		level = slog.LevelWarn
		msg = "dispatch: delivery outcome unknown (request sent, no answer), retrying: the target may see this event twice"
	}
	d.cfg.logger.Log(context.Background(), level, msg, "class", class, "eventId", m.Envelope.EventID,
		"topic", m.Record.Topic, "partition", m.Record.Partition, "offset", m.Record.Offset, "err", err)
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date (0 when absent or invalid).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// State returns the circuit breaker's state.
func (d *Dispatcher) State() State { return d.br.current() }

// Stats are the dispatcher's counters since New.
type Stats struct {
	Delivered, Refused, Transient int64 // 2xx answers; permanent refusals; transient failures
	Invalid                       int64 // events not sent: an *InvalidHeaderError
	Opened, Probes                int64 // times the circuit opened; probe deliveries sent
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() Stats {
	d.br.mu.Lock()
	defer d.br.mu.Unlock()
	return Stats{Delivered: d.delivered.Load(), Refused: d.refused.Load(), Transient: d.transient.Load(),
		Invalid: d.invalid.Load(), Opened: d.br.opened, Probes: d.br.probesSent}
}

// Collector returns the dispatcher's metrics for system, read at each scrape:
//
//	hotelbus_dispatch_circuit_state{system,target}          0 closed, 1 open, 2 probing (target: Target, redacted)
//	hotelbus_dispatch_deliveries_total{system,status_class} 2xx | 3xx | 4xx | 5xx | error
//	hotelbus_dispatch_invalid_events_total{system}          events not sent (InvalidHeaderError)
func (d *Dispatcher) Collector(system string) prometheus.Collector {
	return &collector{d: d, system: system,
		state: prometheus.NewDesc("hotelbus_dispatch_circuit_state", "The dispatcher's circuit: 0 closed, 1 open, 2 probing.",
			nil, prometheus.Labels{"system": system, "target": d.redacted}),
		deliveries: prometheus.NewDesc("hotelbus_dispatch_deliveries_total", "Delivery attempts by the class of the target's answer.",
			[]string{"status_class"}, prometheus.Labels{"system": system}),
		invalid: prometheus.NewDesc("hotelbus_dispatch_invalid_events_total", "Events not sent because a request header would be invalid (dead-lettered as invalid events).",
			nil, prometheus.Labels{"system": system})}
}

type collector struct {
	d                          *Dispatcher
	system                     string
	state, deliveries, invalid *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.deliveries
	ch <- c.invalid
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, float64(c.d.State()))
	ch <- prometheus.MustNewConstMetric(c.invalid, prometheus.CounterValue, float64(c.d.invalid.Load()))
	for i, class := range statusClasses {
		ch <- prometheus.MustNewConstMetric(c.deliveries, prometheus.CounterValue, float64(c.d.byClass[i].Load()), class)
	}
}

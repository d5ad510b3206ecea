package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/hotelbus/hotelbus/topics"
)

// Writer is the one write path of hotelbus: every Kafka record the platform writes goes through a
// Writer bound to the system that writes it. A Producer writes its events (publish, dual publish,
// the spool's drain) through its own; DeadLetters writes dead letters, and AuditLog audit records,
// through the one they are given; `hotelbus dlq redrive` and `hotelbus replay --to-topic` write
// through Write. Every record thus gets the same Kafka settings (acks=all, idempotent, Brokers,
// KafkaOptions, DeliveryTimeout), the ownership check (ErrNotOwner: an event topic only by its
// owner, a dead-letter or redrive topic only by its system; the audit topic and topics outside the
// catalog by anyone), a producer span (Tracing), the observers (Observe) and the publish audit
// record (PublishAudit; audit records themselves are neither observed, traced nor audited).
//
// Write takes a record already in hotelbus form (a redriven dead letter, a replayed event): its key
// is a tenantId and the envelope headers it carries follow the identifier grammar
// (ErrInvalidIdentifier). A record of state, whose key is the caller's own (a view's changelog
// entry), is written by a NewStateWriter. Its producer span is a child of the record's traceparent
// (which it then carries). Keys, values and the other headers are written as given.
//
// A Writer is safe for concurrent use.
type Writer struct {
	system string
	cat    *topics.Catalog
	cfg    producerConfig // observers with the built-in ones
	client atomic.Pointer[kgo.Client]
	state  bool // records of state, not events (NewStateWriter): checked by mayWriteState
	// deadlines bound the wait for the broker (DeliveryTimeout)
	deadlines *deliveryDeadlines
}

// NewWriter returns a writer for system, which must be in cat. Of the ProducerOptions it uses the
// Kafka ones, DeliveryTimeout, Observe, Tracing and PublishAudit; SpoolDir is refused.
func NewWriter(system string, cat *topics.Catalog, opts ...ProducerOption) (*Writer, error) {
	cfg := defaultProducerConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.spoolDir != "" {
		return nil, fmt.Errorf("%w: SpoolDir: a Writer has no spool", ErrConfig)
	}
	return newWriter(system, cat, cfg, cfg.clientOpts(system))
}

// newWriter returns the writer of system with a client made of kopts.
func newWriter(system string, cat *topics.Catalog, cfg producerConfig, kopts []kgo.Opt) (*Writer, error) {
	if _, ok := cat.System(system); !ok {
		return nil, fmt.Errorf("%w: system %q is not in the catalog", ErrConfig, system)
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: kafka client: %v", ErrConfig, err)
	}
	w := &Writer{system: system, cat: cat, cfg: cfg, deadlines: newDeliveryDeadlines(cfg.deliveryTimeout)}
	w.client.Store(cl)
	w.cfg.observers = slices.Clone(cfg.observers)
	if cfg.tracer != nil {
		w.cfg.observers = append(w.cfg.observers, endPublishSpan{})
	}
	if cfg.audit && cat.AuditTopic != "" {
		w.cfg.observers = append(w.cfg.observers, newAuditLog(w, slog.Default()))
	}
	return w, nil
}

// writeMode says what the write path checks and traces of a record.
type writeMode uint8

const (
	// writeEvent: a Producer's event, built from an envelope it prepared and checked (ownership by
	// event type, identifiers by the encoder), its publish span started and in rec.Context.
	writeEvent writeMode = iota
	// writeRecord: a record in hotelbus form written again (Write): ownership and identifiers are
	// checked, and a "write <topic>" span is started, child of the record's traceparent.
	writeRecord
	// writeAsIs: a dead letter: ownership is checked, not its headers (they may be why it was
	// dead-lettered); its span is a child of ctx's span (the consumer's), else of its traceparent.
	writeAsIs
)

// Write checks rec and sends it without waiting; done is called exactly once with the outcome
// (from a franz-go goroutine; keep it short), also when rec is refused before sending.
func (w *Writer) Write(ctx context.Context, rec *kgo.Record, done func(Result, error)) {
	w.write(ctx, rec, writeRecord, done)
}

// WriteSync writes recs and waits for every outcome; the error is the first failure.
func (w *Writer) WriteSync(ctx context.Context, recs ...*kgo.Record) ([]Result, error) {
	return w.writeSync(ctx, writeRecord, recs...)
}

func (w *Writer) writeSync(ctx context.Context, mode writeMode, recs ...*kgo.Record) ([]Result, error) {
	results := make([]Result, len(recs))
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for i, rec := range recs {
		w.write(ctx, rec, mode, func(r Result, err error) { results[i], errs[i] = r, err; wg.Done() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return results, fmt.Errorf("writing to %s (eventId %s): %w", recs[i].Topic, Header(recs[i], HeaderEventID), err)
		}
	}
	return results, nil
}

// write is the write path: the checks and the span mode says, then the delivery bound, the
// client and, with the outcome, the observers; done runs exactly once, after the observers. A
// refused record is not observed.
func (w *Writer) write(ctx context.Context, rec *kgo.Record, mode writeMode, done func(Result, error)) {
	if mode != writeEvent {
		if err := w.check(rec, mode); err != nil {
			done(Result{}, err)
			return
		}
		rec.Context = w.startSpan(ctx, rec, mode)
	}
	bound := w.deadlines.bound(rec)
	// The caller's ctx is franz-go's produce context: it ends a blocked Produce and, like the
	// record's context (the delivery bound), fails the record while it may still be failed.
	w.send(ctx, rec, false, func(r *kgo.Record, err error) {
		var res Result
		if err == nil {
			res = Result{EventID: Header(r, HeaderEventID), Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
		} else if errors.Is(err, kgo.ErrRecordTimeout) || errors.Is(context.Cause(bound), ErrDeliveryTimeout) {
			err = fmt.Errorf("%w: no acknowledgement within %s (DeliveryTimeout): %v", ErrDeliveryTimeout, w.deadlines.d, err)
		}
		w.observe(rec, res, err)
		done(res, err)
	})
}

// deliveryDeadlines bounds how long a Writer's records wait for the broker: each record gets a
// context that ends DeliveryTimeout after it was written, or up to one slot (1% of the timeout)
// later, with the cause ErrDeliveryTimeout. franz-go fails a record whose context ends even while
// no broker is reachable, when its RecordDeliveryTimeout is not evaluated. Records written within
// one slot share one deadline context, so the writer arms one timer per slot instead of one per
// record (a timer per record cost a tenth of the publish path's CPU), and at most 101 deadlines
// wait at a time, however long the timeout.
type deliveryDeadlines struct {
	d, slot time.Duration
	cur     atomic.Pointer[deliveryDeadline]
	mu      sync.Mutex // serializes making the next deadline
}

// deliveryDeadline is one slot's deadline: ctx ends at at with the cause ErrDeliveryTimeout.
type deliveryDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc // never called: the context ends at its deadline, which frees its timer
	at     time.Time
}

func newDeliveryDeadlines(d time.Duration) *deliveryDeadlines {
	return &deliveryDeadlines{d: d, slot: d / 100}
}

// at returns the deadline context of a record written at now.
func (dd *deliveryDeadlines) at(now time.Time) context.Context {
	earliest := now.Add(dd.d)
	if c := dd.cur.Load(); c != nil && !c.at.Before(earliest) {
		return c.ctx
	}
	dd.mu.Lock()
	defer dd.mu.Unlock()
	if c := dd.cur.Load(); c != nil && !c.at.Before(earliest) {
		return c.ctx
	}
	next := &deliveryDeadline{at: earliest.Add(dd.slot)}
	next.ctx, next.cancel = context.WithDeadlineCause(context.Background(), next.at, ErrDeliveryTimeout)
	dd.cur.Store(next)
	return next.ctx
}

// bound gives rec its delivery deadline, keeping the values of its context (the caller's, its
// span), and returns the deadline's context.
func (dd *deliveryDeadlines) bound(rec *kgo.Record) context.Context {
	deadline := dd.at(time.Now())
	if rec.Context == nil || rec.Context == context.Background() {
		rec.Context = deadline
	} else {
		rec.Context = boundContext{Context: deadline, values: rec.Context}
	}
	return deadline
}

// boundContext is a record's context: the deadline, done channel and error of its delivery
// deadline, and the values of the context it was written with (whose own end franz-go sees as
// the produce context). context.Cause of it is the deadline's.
type boundContext struct {
	context.Context // the delivery deadline
	values          context.Context
}

// Value answers the context package's own keys from the deadline (so Cause is the deadline's)
// and every other key from the values.
func (c boundContext) Value(key any) any {
	if v := c.Context.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}

// check refuses a record the writer's system may not write (see Writer), and one carrying envelope
// headers or a key that break the identifier grammar unless mode is writeAsIs; a state writer's records are
// checked by mayWriteState instead.
func (w *Writer) check(rec *kgo.Record, mode writeMode) error {
	if w.state {
		return mayWriteState(w.cat, rec)
	}
	if t, ok := w.cat.Topic(rec.Topic); ok && t.Owner != "" && t.Owner != w.system {
		return fmt.Errorf("%w: %s writes %s, not %s", ErrNotOwner, t.Owner, rec.Topic, w.system)
	}
	if mode == writeAsIs {
		return nil
	}
	return recordIdentifiers(w.cat, rec, nil)
}

// startSpan starts the "write <topic>" producer span of rec with Tracing and puts its context in
// rec's traceparent; it returns the context rec is written with.
func (w *Writer) startSpan(ctx context.Context, rec *kgo.Record, mode writeMode) context.Context {
	if w.cfg.tracer == nil {
		return ctx
	}
	if mode != writeAsIs || !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = traceContext.Extract(ctx, headerCarrier{rec})
	}
	ctx, _ = w.cfg.tracer.Start(ctx, "write "+rec.Topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.message.id", Header(rec, HeaderEventID)),
		attribute.String("hotelbus.event_type", Header(rec, HeaderEventType))))
	traceContext.Inject(ctx, headerCarrier{rec}) // ended by endPublishSpan, an observer of every traced writer
	return ctx
}

// observed wraps done to tell the observers first.
func (w *Writer) observed(rec *kgo.Record, done func(Result, error)) func(Result, error) {
	if len(w.cfg.observers) == 0 {
		return done
	}
	return func(r Result, err error) {
		w.observe(rec, r, err)
		done(r, err)
	}
}

// observe tells the observers the outcome of rec.
func (w *Writer) observe(rec *kgo.Record, r Result, err error) {
	for _, o := range w.cfg.observers {
		o.ObservePublish(w.system, rec, r, err)
	}
}

// send hands rec to the client, without blocking when try is set (ErrMaxBuffered when the buffer
// is full). It is the only call of a franz-go produce method in hotelbus.
func (w *Writer) send(ctx context.Context, rec *kgo.Record, try bool, promise func(*kgo.Record, error)) {
	if try {
		w.client.Load().TryProduce(ctx, rec, promise)
		return
	}
	w.client.Load().Produce(ctx, rec, promise)
}

// Ping reaches a broker (a readiness check).
func (w *Writer) Ping(ctx context.Context) error { return w.client.Load().Ping(ctx) }

// Flush waits until ctx ends for the records written so far to be acknowledged or fail.
func (w *Writer) Flush(ctx context.Context) error { return w.client.Load().Flush(ctx) }

// Close flushes (until ctx ends) and closes the client.
func (w *Writer) Close(ctx context.Context) error {
	cl := w.client.Load()
	err := cl.Flush(ctx)
	cl.Close()
	return err
}

package streams

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/hotelbus/hotelbus/topics"
)

// Writer writes records that already exist in hotelbus form (a redriven dead letter, a replayed
// event) as one system, with what a Producer applies to a new event's record: the system must be
// allowed to write the topic (ErrNotOwner: an event topic only by its owner, a dead-letter or
// redrive topic only by its system; the audit topic and topics outside the catalog by anyone), the
// envelope headers it carries must follow the identifier grammar (ErrInvalidIdentifier), the same Kafka
// settings (acks=all, idempotent, Brokers, KafkaOptions, DeliveryTimeout), a producer span child of
// the record's traceparent (which it then carries, with Tracing), the observers (Observe) and the
// publish audit record (PublishAudit). Keys, values and the other headers are written as given.
//
// A Writer is safe for concurrent use.
type Writer struct {
	system string
	cat    *topics.Catalog
	cfg    producerConfig
	cl     *kgo.Client
	check  func(cat *topics.Catalog, system string, rec *kgo.Record) error // mayWrite; mayWriteState (NewStateWriter)
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
	if _, ok := cat.System(system); !ok {
		return nil, fmt.Errorf("%w: system %q is not in the catalog", ErrConfig, system)
	}
	cl, err := kgo.NewClient(cfg.clientOpts(system)...)
	if err != nil {
		return nil, fmt.Errorf("%w: kafka client: %v", ErrConfig, err)
	}
	w := &Writer{system: system, cat: cat, cfg: cfg, cl: cl, check: mayWrite}
	w.cfg.observers = cfg.withBuiltins(system, cat, func() *kgo.Client { return cl })
	return w, nil
}

// Write checks rec and sends it without waiting; done is called exactly once with the outcome
// (from a franz-go goroutine; keep it short), also when rec is refused before sending.
func (w *Writer) Write(ctx context.Context, rec *kgo.Record, done func(Result, error)) {
	if err := w.check(w.cat, w.system, rec); err != nil {
		done(Result{}, err)
		return
	}
	if w.cfg.tracer != nil {
		ctx = traceContext.Extract(ctx, headerCarrier{rec})
		var span trace.Span
		ctx, span = w.cfg.tracer.Start(ctx, "write "+rec.Topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.message.id", Header(rec, HeaderEventID)),
			attribute.String("hotelbus.event_type", Header(rec, HeaderEventType))))
		traceContext.Inject(ctx, headerCarrier{rec})
		_ = span // ended by endPublishSpan, an observer of every traced writer
	}
	rec.Context = ctx
	observers := w.cfg.observers
	finish := boundDelivery(rec, w.cfg.deliveryTimeout, func(res Result, err error) {
		for _, o := range observers {
			o.ObservePublish(w.system, rec, res, err)
		}
		done(res, err)
	})
	w.cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
		var res Result
		if err == nil {
			res = Result{EventID: eventIDOf(r), Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
		}
		finish(res, err)
	})
}

// WriteSync writes recs and waits for every outcome; the error is the first failure.
func (w *Writer) WriteSync(ctx context.Context, recs ...*kgo.Record) ([]Result, error) {
	results := make([]Result, len(recs))
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for i, rec := range recs {
		w.Write(ctx, rec, func(r Result, err error) { results[i], errs[i] = r, err; wg.Done() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return results, fmt.Errorf("writing to %s (eventId %s): %w", recs[i].Topic, eventIDOf(recs[i]), err)
		}
	}
	return results, nil
}

// Flush waits until ctx ends for the records written so far to be acknowledged or fail.
func (w *Writer) Flush(ctx context.Context) error { return w.cl.Flush(ctx) }

// Close flushes (until ctx ends) and closes the client.
func (w *Writer) Close(ctx context.Context) error {
	err := w.cl.Flush(ctx)
	w.cl.Close()
	return err
}

// mayWrite refuses a record system may not write (see Writer) or whose envelope headers break the
// identifier grammar.
func mayWrite(cat *topics.Catalog, system string, rec *kgo.Record) error {
	if t, ok := cat.Topic(rec.Topic); ok && t.Owner != "" && t.Owner != system {
		return fmt.Errorf("%w: %s writes %s, not %s", ErrNotOwner, t.Owner, rec.Topic, system)
	}
	return recordIdentifiers(cat, rec, nil)
}

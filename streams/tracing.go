package streams

import (
	"context"
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceContext is the W3C propagator hotelbus uses for the traceparent header.
var traceContext = propagation.TraceContext{}

// headerCarrier adapts a record's headers to OpenTelemetry propagation.
type headerCarrier struct{ r *kgo.Record }

func (c headerCarrier) Get(key string) string { return Header(c.r, key) }

func (c headerCarrier) Set(key, value string) {
	for i := range c.r.Headers {
		if c.r.Headers[i].Key == key {
			c.r.Headers[i].Value = []byte(value)
			return
		}
	}
	c.r.Headers = append(c.r.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(c.r.Headers))
	for i, h := range c.r.Headers {
		keys[i] = h.Key
	}
	return keys
}

// startPublishSpan starts the producer span of env, child of ctx's span, or of the event's own
// trace id when ctx has none and the envelope names one, so the span joins the event's trace.
func startPublishSpan(ctx context.Context, tracer trace.Tracer, env *Envelope) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() && env.Metadata.TraceID != "" {
		if tid, err := trace.TraceIDFromHex(env.Metadata.TraceID); err == nil {
			var sid trace.SpanID
			binary.BigEndian.PutUint64(sid[:], eventSpanID(env.EventID))
			ctx = trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid,
				TraceFlags: trace.FlagsSampled, Remote: true}))
		}
	}
	return tracer.Start(ctx, "publish "+env.EventType, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(
		attribute.String("messaging.system", "kafka"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.message.id", env.EventID),
		attribute.String("hotelbus.event_type", env.EventType),
		attribute.String("hotelbus.tenant_id", env.Metadata.TenantID),
		attribute.String("hotelbus.correlation_id", env.Metadata.CorrelationID)))
}

// endPublishSpan ends the span a record carries in its context (PublishObserver of a traced
// producer).
type endPublishSpan struct{}

func (endPublishSpan) ObservePublish(_ string, rec *kgo.Record, res Result, err error) {
	if rec.Context == nil {
		return
	}
	span := trace.SpanFromContext(rec.Context)
	span.SetAttributes(attribute.String("messaging.destination.name", rec.Topic), attribute.String("hotelbus.outcome", publishOutcome(res, err)))
	if !res.Spooled && err == nil {
		span.SetAttributes(attribute.Int("messaging.destination.partition.id", int(res.Partition)), attribute.Int64("messaging.kafka.offset", res.Offset))
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// traceMiddleware starts the consumer span of each run of the chain, child of the span in the
// record's traceparent header, and hands it to the chain in ctx.
func traceMiddleware(tracer trace.Tracer) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			ctx = traceContext.Extract(ctx, headerCarrier{m.Record})
			et := messageEventType(m)
			ctx, span := tracer.Start(ctx, "handle "+et, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.consumer.group.name", m.Group),
				attribute.String("messaging.destination.name", m.Record.Topic),
				attribute.Int("messaging.destination.partition.id", int(m.Record.Partition)),
				attribute.Int64("messaging.kafka.offset", m.Record.Offset),
				attribute.String("messaging.message.id", Header(m.Record, HeaderEventID)),
				attribute.String("hotelbus.event_type", et)))
			defer span.End()
			err := next(ctx, m)
			outcome, _ := m.Outcome(err)
			span.SetAttributes(attribute.String("hotelbus.outcome", outcome), attribute.Int("hotelbus.attempts", max(m.Attempt, 1)))
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			return err
		}
	}
}

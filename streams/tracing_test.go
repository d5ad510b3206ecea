package streams_test

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestTracingFollowsTheEvent: a request span publishes service.ordered; hotel-pms handles it and,
// inside the handler, publishes reservation.updated. The spans form one trace through the Kafka
// headers: request -> publish service.ordered -> handle service.ordered -> publish
// reservation.updated, and the follow-up event's metadata.traceId is that trace.
func TestTracingFollowsTheEvent(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			serde, _ := isolated(t, b)
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			defer tp.Shutdown(context.Background())
			saas, err := streams.NewProducer("hotel-saas", serde, streams.Brokers(b.Brokers...), streams.Tracing(tp))
			if err != nil {
				t.Fatal(err)
			}
			defer saas.Close(context.Background())
			pms, err := streams.NewProducer("hotel-pms", serde, streams.Brokers(b.Brokers...), streams.Tracing(tp))
			if err != nil {
				t.Fatal(err)
			}
			defer pms.Close(context.Background())

			followUp := make(chan *streams.Envelope, 1)
			r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
				c.HandleType("service.ordered", func(ctx context.Context, m *streams.Message) error {
					env := example(t, serde, "reservation.updated")
					env.EventID, env.Metadata.Source, env.Metadata.TraceID = "", "", ""
					if _, err := pms.Publish(ctx, env); err != nil {
						return err
					}
					followUp <- env
					return nil
				})
			}, streams.Tracing(tp))
			ctx, request := tp.Tracer("test").Start(context.Background(), "request")
			env := example(t, serde, "service.ordered")
			env.EventID, env.Metadata.Source, env.Metadata.TraceID = "", "", ""
			if _, err := saas.Publish(ctx, env); err != nil {
				t.Fatal(err)
			}
			request.End()
			var next *streams.Envelope
			select {
			case next = <-followUp:
			case <-time.After(time.Minute):
				t.Fatal("the handler never ran")
			}
			r.stop(t)

			spans := map[string]sdktrace.ReadOnlySpan{}
			for _, s := range rec.Ended() {
				spans[s.Name()] = s
			}
			chain := []struct {
				name string
				kind trace.SpanKind
			}{{"request", trace.SpanKindInternal}, {"publish service.ordered", trace.SpanKindProducer},
				{"handle service.ordered", trace.SpanKindConsumer}, {"publish reservation.updated", trace.SpanKindProducer}}
			traceID := request.SpanContext().TraceID()
			for i, want := range chain {
				s, ok := spans[want.name]
				if !ok {
					t.Fatalf("no span %q among %d ended spans", want.name, len(rec.Ended()))
				}
				if s.SpanContext().TraceID() != traceID || s.SpanKind() != want.kind {
					t.Errorf("%s: trace %s kind %s, want trace %s kind %s", want.name, s.SpanContext().TraceID(), s.SpanKind(), traceID, want.kind)
				}
				if i > 0 && s.Parent().SpanID() != spans[chain[i-1].name].SpanContext().SpanID() {
					t.Errorf("%s: parent %s, want %s", want.name, s.Parent().SpanID(), chain[i-1].name)
				}
			}
			if env.Metadata.TraceID != traceID.String() || next.Metadata.TraceID != traceID.String() {
				t.Errorf("metadata.traceId %s and %s, want the trace %s", env.Metadata.TraceID, next.Metadata.TraceID, traceID)
			}
		})
	}
}

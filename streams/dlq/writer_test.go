package dlq_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/dlq"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// written records what the observers of a writer are told: "<system> <topic> <eventId>".
type written struct {
	mu  sync.Mutex
	got []string
}

func (w *written) ObservePublish(system string, rec *kgo.Record, _ streams.Result, err error) {
	if err == nil {
		w.mu.Lock()
		w.got = append(w.got, system+" "+rec.Topic+" "+streams.Header(rec, streams.HeaderEventID))
		w.mu.Unlock()
	}
}

// TestRedriveWritesLikeAPublish: a redrive writes through the SDK's writer as the system, as a
// publish does: every redriven record keeps its dead letter's envelope headers (eventType,
// version, eventId, source, correlationId), carries a new producer span "write <redrive topic>"
// in the event's trace, child of the dead letter's traceparent (same trace id, its own span in the
// record's traceparent), and the writer's
// observers are told of it as the system's write. (The writer's ownership check is
// TestWriterWritesLikeAPublish's in package streams.)
func TestRedriveWritesLikeAPublish(t *testing.T) {
	b := streamstest.Kfake(t)
	ctx := testCtx(t)
	f := newFixture(t, b)
	f.deadLetter(t, specs(f.t0)[:2]...)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	obs := &written{}
	q := f.open(t, dlq.Config{Brokers: b.Brokers, WriterOptions: []streams.ProducerOption{streams.Tracing(tp), streams.Observe(obs)}})
	if rep, err := q.Redrive(ctx, dlq.RedriveOptions{RunID: "run-1"}); err != nil || rep.Redriven != 2 {
		t.Fatalf("redrive: %+v, %v", rep, err)
	}
	recs := redriveRecords(t, f, 2)
	tp2 := func(r *kgo.Record) []string { return strings.Split(streams.Header(r, streams.HeaderTraceparent), "-") }
	traceOf := func(r *kgo.Record) string { return tp2(r)[1] }
	for _, l := range f.dead {
		got := recs[l.ref.String()][0]
		for _, h := range []string{streams.HeaderEventType, streams.HeaderVersion, streams.HeaderEventID, streams.HeaderSource, streams.HeaderCorrelationID} {
			if streams.Header(got, h) != streams.Header(l.rec, h) {
				t.Errorf("%s: header %s = %q, dead letter %q", l.ref, h, streams.Header(got, h), streams.Header(l.rec, h))
			}
		}
		if traceOf(got) != traceOf(l.rec) || streams.Header(got, streams.HeaderTraceparent) == streams.Header(l.rec, streams.HeaderTraceparent) {
			t.Errorf("%s: traceparent %q, dead letter %q: want a new span in the same trace", l.ref,
				streams.Header(got, streams.HeaderTraceparent), streams.Header(l.rec, streams.HeaderTraceparent))
		}
		var named []string
		for _, s := range spans.Ended() {
			if s.SpanContext().TraceID().String() == traceOf(got) && s.Parent().SpanID().String() == tp2(l.rec)[2] && s.SpanKind() == trace.SpanKindProducer {
				named = append(named, s.Name())
			}
		}
		if len(named) != 1 || named[0] != "write "+f.sys.RedriveTopic || len(spans.Ended()) != len(f.dead) {
			t.Errorf("%s: producer spans in the event's trace: %v", l.ref, named)
		}
		want := f.sys.Name + " " + f.sys.RedriveTopic + " " + l.eventID
		obs.mu.Lock()
		if !strings.Contains(strings.Join(obs.got, "\n"), want) {
			t.Errorf("%s: the observers saw %v, want %q", l.ref, obs.got, want)
		}
		obs.mu.Unlock()
	}
}

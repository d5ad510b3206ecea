package streams_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestWriterWritesLikeAPublish: a record written again by the Writer (as `dlq redrive` and
// `replay --to-topic` do) gets what a publish gets: the ownership check (another system's redrive
// or event topic is refused), the identifier grammar of its envelope headers, a producer span in
// the event's trace whose context the record then carries, and a publish audit record; its key,
// value and other headers are kept. A record without envelope headers keeps its caller's key.
func TestWriterWritesLikeAPublish(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, cat := isolated(t, b)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	ctx := context.Background()
	p := newProducer(t, "hotel-pms", b, serde, streams.Tracing(tp))
	res, err := p.Publish(ctx, example(t, serde, "reservation.created"))
	if err != nil {
		t.Fatal(err)
	}
	published := consume(t, b, 1, res.Topic)[0]

	w, err := streams.NewWriter("hotel-member", cat, streams.Brokers(b.Brokers...), streams.Tracing(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	member, _ := cat.System("hotel-member")
	pms, _ := cat.System("hotel-pms")
	copyOf := func(topic string, extra ...kgo.RecordHeader) *kgo.Record {
		return &kgo.Record{Topic: topic, Key: published.Key, Value: published.Value,
			Headers: append(append([]kgo.RecordHeader(nil), published.Headers...), extra...)}
	}
	redriveID := kgo.RecordHeader{Key: streams.HeaderRedriveID, Value: []byte("0193a4b2-7c1d-7e8f-9a0b-1c2d3e4f5a6b")}
	written, err := w.WriteSync(ctx, copyOf(member.RedriveTopic, redriveID))
	if err != nil {
		t.Fatal(err)
	}
	got := consume(t, b, 1, member.RedriveTopic)[0]
	if string(got.Key) != string(published.Key) || string(got.Value) != string(published.Value) || written[0].EventID != res.EventID ||
		streams.Header(got, streams.HeaderRedriveID) != string(redriveID.Value) {
		t.Errorf("written record key %q eventId %s headers %v", got.Key, written[0].EventID, got.Headers)
	}
	for _, h := range []string{streams.HeaderEventType, streams.HeaderVersion, streams.HeaderEventID, streams.HeaderSource, streams.HeaderCorrelationID} {
		if streams.Header(got, h) != streams.Header(published, h) {
			t.Errorf("header %s = %q, published %q", h, streams.Header(got, h), streams.Header(published, h))
		}
	}
	traceOf := func(r *kgo.Record) string { return strings.Split(streams.Header(r, streams.HeaderTraceparent), "-")[1] }
	if traceOf(got) != traceOf(published) || streams.Header(got, streams.HeaderTraceparent) == streams.Header(published, streams.HeaderTraceparent) {
		t.Errorf("traceparent %q, published %q: want a new span in the same trace", streams.Header(got, streams.HeaderTraceparent), streams.Header(published, streams.HeaderTraceparent))
	}
	var kinds []string
	for _, s := range spans.Ended() {
		if s.SpanContext().TraceID().String() == traceOf(published) && s.SpanKind() == trace.SpanKindProducer {
			kinds = append(kinds, s.Name())
		}
	}
	if len(kinds) != 2 || kinds[0] != "publish reservation.created" || kinds[1] != "write "+member.RedriveTopic {
		t.Errorf("producer spans in the event's trace: %v", kinds)
	}
	audit := map[string]string{}
	for _, r := range consume(t, b, 2, cat.AuditTopic) {
		ar, err := streams.ParseAuditRecord(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		audit[ar.System+" "+ar.Topic] = ar.EventID
	}
	if audit["hotel-pms "+res.Topic] != res.EventID || audit["hotel-member "+member.RedriveTopic] != res.EventID {
		t.Errorf("audit records %v", audit)
	}

	badID := copyOf(member.RedriveTopic)
	for i := range badID.Headers {
		if badID.Headers[i].Key == streams.HeaderEventID {
			badID.Headers[i].Value = []byte("not-a-uuid\r\n")
		}
	}
	for name, c := range map[string]struct {
		rec  *kgo.Record
		want error
	}{
		"another system's redrive topic":  {copyOf(pms.RedriveTopic), streams.ErrNotOwner},
		"another system's event topic":    {copyOf(res.Topic), streams.ErrNotOwner},
		"an eventId breaking the grammar": {badID, streams.ErrInvalidIdentifier},
	} {
		if _, err := w.WriteSync(ctx, c.rec); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

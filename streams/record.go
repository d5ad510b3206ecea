package streams

import (
	"bytes"
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Kafka header names. Every hotelbus record repeats these envelope fields in headers so that
// routers and tools can skip records without decoding the value.
const (
	HeaderEventType     = "eventType"
	HeaderVersion       = "version"
	HeaderEventID       = "eventId"
	HeaderSource        = "source"
	HeaderCorrelationID = "correlationId"
	// HeaderTraceparent carries the W3C trace context: 00-<traceId>-<spanId>-01.
	HeaderTraceparent = "traceparent"
)

// Record encodes env as the Kafka record hotelbus writes: topic from the catalog, key = tenantId,
// value in the Confluent wire format, and the envelope headers.
func (s *Serde) Record(ctx context.Context, env *Envelope) (*kgo.Record, error) {
	return s.record(ctx, env, nil)
}

// record is Record with the data taken from typed instead of env.Data when it is set.
func (s *Serde) record(ctx context.Context, env *Envelope, typed Event) (*kgo.Record, error) {
	topic, value, err := s.appendEncode(ctx, nil, env, typed)
	if err != nil {
		return nil, err
	}
	return &kgo.Record{Topic: topic, Key: []byte(env.Metadata.TenantID), Value: value, Headers: Headers(env)}, nil
}

// Headers returns the envelope headers of env. The traceparent's span id is derived from the
// eventId (FNV-1a), so the same event always carries the same parent span.
func Headers(env *Envelope) []kgo.RecordHeader {
	h := eventSpanID(env.EventID)
	var tp [55]byte // 00-<32 hex trace id>-<16 hex span id>-01
	b := append(append(tp[:0], "00-"...), env.Metadata.TraceID...)
	b = append(b, '-')
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, hexDigits[h>>uint(shift)&0xf])
	}
	b = append(b, "-01"...)
	return []kgo.RecordHeader{
		{Key: HeaderEventType, Value: []byte(env.EventType)},
		{Key: HeaderVersion, Value: []byte(env.Version)},
		{Key: HeaderEventID, Value: []byte(env.EventID)},
		{Key: HeaderSource, Value: []byte(env.Metadata.Source)},
		{Key: HeaderCorrelationID, Value: []byte(env.Metadata.CorrelationID)},
		{Key: HeaderTraceparent, Value: bytes.Clone(b)},
	}
}

// eventSpanID derives the parent span id of an event's traceparent from its eventId (FNV-1a).
func eventSpanID(eventID string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(eventID); i++ {
		h ^= uint64(eventID[i])
		h *= 1099511628211
	}
	return h
}

// Header returns the value of the first header named key in r ("" when absent).
func Header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

const hexDigits = "0123456789abcdef"

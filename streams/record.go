package streams

import (
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
	// One allocation holds the record and its headers, one the key and every header value.
	r := &struct {
		kgo.Record
		headers [len(headerKeys)]kgo.RecordHeader
	}{}
	tenant := env.Metadata.TenantID
	buf := append(make([]byte, 0, len(tenant)+headersLen(env)), tenant...)
	r.Topic, r.Key, r.Value = topic, buf[:len(tenant):len(tenant)], value
	r.Headers = r.headers[:]
	putHeaders(r.Headers, buf, env)
	return &r.Record, nil
}

// headerKeys are the envelope headers, in the order hotelbus writes them.
var headerKeys = [...]string{HeaderEventType, HeaderVersion, HeaderEventID, HeaderSource, HeaderCorrelationID, HeaderTraceparent}

// Headers returns the envelope headers of env. The traceparent's span id is derived from the
// eventId (FNV-1a), so the same event always carries the same parent span.
func Headers(env *Envelope) []kgo.RecordHeader {
	hs := make([]kgo.RecordHeader, len(headerKeys))
	putHeaders(hs, make([]byte, 0, headersLen(env)), env)
	return hs
}

// headersLen is the length of env's header values.
func headersLen(env *Envelope) int {
	return len(env.EventType) + len(env.Version) + len(env.EventID) + len(env.Metadata.Source) + len(env.Metadata.CorrelationID) +
		len("00-") + len(env.Metadata.TraceID) + len("-0123456789abcdef-01")
}

// putHeaders sets hs (len(headerKeys) long) to env's headers, their values appended to buf, which
// has room for them (headersLen).
func putHeaders(hs []kgo.RecordHeader, buf []byte, env *Envelope) {
	vals := [...]string{env.EventType, env.Version, env.EventID, env.Metadata.Source, env.Metadata.CorrelationID}
	for i, v := range vals {
		buf = append(buf, v...)
		hs[i] = kgo.RecordHeader{Key: headerKeys[i], Value: buf[len(buf)-len(v) : len(buf) : len(buf)]}
	}
	start := len(buf) // 00-<32 hex trace id>-<16 hex span id>-01
	buf = append(append(buf, "00-"...), env.Metadata.TraceID...)
	buf = append(buf, '-')
	h := eventSpanID(env.EventID)
	for shift := 60; shift >= 0; shift -= 4 {
		buf = append(buf, hexDigits[h>>uint(shift)&0xf])
	}
	hs[5] = kgo.RecordHeader{Key: HeaderTraceparent, Value: append(buf, "-01"...)[start:]}
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

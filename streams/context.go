package streams

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

type ctxKey int

const (
	traceKey ctxKey = iota
	correlationKey
)

// ContextWithTraceparent returns a context carrying a W3C traceparent
// ("00-<trace-id>-<parent-id>-<flags>"); events published with it take its trace id. A malformed
// value is ignored, so a bad incoming header never fails a publish.
func ContextWithTraceparent(ctx context.Context, traceparent string) context.Context {
	id, ok := parseTraceparent(traceparent)
	if !ok {
		return ctx
	}
	return context.WithValue(ctx, traceKey, id)
}

// TraceID returns the trace id carried by ctx ("" when none).
func TraceID(ctx context.Context) string {
	s, _ := ctx.Value(traceKey).(string)
	return s
}

// ContextWithCorrelationID returns a context whose events carry correlationID, tying the events of
// one business flow together (a consumer handling an event passes its correlationId on).
func ContextWithCorrelationID(ctx context.Context, correlationID string) context.Context {
	return context.WithValue(ctx, correlationKey, correlationID)
}

// CorrelationID returns the correlation id carried by ctx ("" when none).
func CorrelationID(ctx context.Context) string {
	s, _ := ctx.Value(correlationKey).(string)
	return s
}

// newTraceID returns a random W3C trace id.
func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

package streams

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// PublishObserver is told the outcome of each event a Producer sends (Observe), before the
// caller's result: res for an event the broker acknowledged or the spool took, err otherwise. rec
// is the record as sent (topic, key = tenantId, headers). Called from franz-go's promise
// goroutines or the caller's: it must not block.
type PublishObserver interface {
	ObservePublish(system string, rec *kgo.Record, res Result, err error)
}

// publishOutcome names a publish result.
func publishOutcome(res Result, err error) string {
	switch {
	case err != nil:
		return OutcomeFailed
	case res.Spooled:
		return OutcomeSpooled
	}
	return OutcomePublished
}

// observation is what the handling observers (Metrics, AuditLog) learn about one run of the chain.
type observation struct {
	eventType       string
	outcome, detail string
	took            time.Duration
	latency         time.Duration // handled time minus the event's timestamp (0: unknown)
}

// observeChain runs next and describes the run; abandoned is true when ctx ended with an error
// (shutdown, lost partition): the record is delivered again and the run is not an outcome.
func observeChain(ctx context.Context, m *Message, next Handler) (obs observation, err error, abandoned bool) {
	start := time.Now()
	err = next(ctx, m)
	if err != nil && ctx.Err() != nil {
		return obs, err, true
	}
	now := time.Now()
	obs.eventType = messageEventType(m)
	obs.outcome, obs.detail = m.Outcome(err)
	obs.took = now.Sub(start)
	switch {
	case m.Envelope != nil && !m.Envelope.Timestamp.IsZero():
		obs.latency = now.Sub(m.Envelope.Timestamp)
	case m.Envelope == nil && m.DecodeErr == nil && m.Record != nil && !m.Record.Timestamp.IsZero():
		obs.latency = now.Sub(m.Record.Timestamp) // not decoded (LazyDecode): the producer's record time
	}
	return obs, err, false
}

// messageEventType is the message's event type: the envelope's, else the record's header.
func messageEventType(m *Message) string {
	if m.Envelope != nil {
		return m.Envelope.EventType
	}
	if m.Record != nil {
		return Header(m.Record, HeaderEventType)
	}
	return ""
}

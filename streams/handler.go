package streams

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Message is one record handed to a consumer's handler chain.
type Message struct {
	// Envelope is the decoded event in the reader's schema version (nil for an undecodable record;
	// then DecodeErr is set and the record goes to the dead-letter topic).
	Envelope  *Envelope
	DecodeErr error
	// Record is the Kafka record as fetched (topic, partition, offset, key, headers, value).
	Record *kgo.Record
	// Group is the consumer group handling the message.
	Group string
	// Attempt counts calls of the handler for this message, from 1 (set by the retry middleware).
	Attempt int
	// FirstFailure and LastFailure are set by the retry middleware when an attempt failed.
	FirstFailure, LastFailure time.Time

	// event is the typed value of a typed handler's record (see Handle); nil otherwise.
	event Event
	// job is the Consumer's record, for holdCommit; nil for a message made elsewhere.
	job *job

	// state is per-message scratch space for middleware, keyed by the middleware's own key (a
	// message carries one or two: a slice searched in order costs less than a map per message).
	state []stateEntry
	// outcome and detail: see SetOutcome.
	outcome, detail string
}

// Outcomes of publishing and handling, as metrics and the audit log report them.
const (
	OutcomePublished    = "published"     // the broker acknowledged the event
	OutcomeSpooled      = "spooled"       // the event is in the durable spool, delivered later
	OutcomeFailed       = "failed"        // publishing failed, or the chain returned an error
	OutcomeHandled      = "handled"       // the chain returned nil after calling the handler
	OutcomeDuplicate    = "duplicate"     // dedup found the event done: committed without the handler
	OutcomeDeadLettered = "dead-lettered" // written to the dead-letter topic (detail: the error class)
)

// SetOutcome records how the chain disposed of m, for the observers outside it (metrics, the audit
// log): middleware that commits a message without handling it sets OutcomeDuplicate (dedup) or
// OutcomeDeadLettered with the error class as detail (dead letters). A later call wins.
func (m *Message) SetOutcome(outcome, detail string) { m.outcome, m.detail = outcome, detail }

// Outcome returns what the chain's middleware recorded with SetOutcome, or, when none did,
// OutcomeHandled for a nil err and OutcomeFailed otherwise.
func (m *Message) Outcome(err error) (outcome, detail string) {
	switch {
	case m.outcome != "":
		return m.outcome, m.detail
	case err == nil:
		return OutcomeHandled, ""
	}
	return OutcomeFailed, ""
}

// Value returns middleware state stored under key (nil when none).
func (m *Message) Value(key any) any {
	for _, e := range m.state {
		if e.key == key {
			return e.v
		}
	}
	return nil
}

// SetValue stores middleware state under key. Not safe for concurrent use on one Message; the
// consumer hands a message to one goroutine at a time.
func (m *Message) SetValue(key, v any) {
	for i := range m.state {
		if m.state[i].key == key {
			m.state[i].v = v
			return
		}
	}
	m.state = append(m.state, stateEntry{key, v})
}

type stateEntry struct{ key, v any }

// Handler handles one message. Returning nil marks the event done (its offset may be committed);
// an error is classified by IsRetryable: retryable errors are retried by the retry middleware, the
// rest go to the dead-letter topic. A handler must be idempotent in its side effects for events
// delivered again after a crash; the dedup middleware makes that rare, not impossible.
type Handler func(ctx context.Context, m *Message) error

// Middleware wraps a Handler: dedup, retry and dead letters are middleware, one file each.
type Middleware func(Handler) Handler

// BatchPreparer is implemented by middleware that needs to see each polled batch before its
// messages are handled (dedup checks the whole batch in one Redis round trip).
//
// Prepare is called once per polled batch with every message of the batch, before any of them
// reaches the chain; it may block (for example while Redis is unreachable, when failing closed).
//
// Release is called with prepared messages that will never reach the chain, because their
// partition was revoked or lost or the consumer shut down before their turn, so that what Prepare
// took for them (dedup leases) is given back at once instead of making the partition's next owner
// wait for it to expire. None of the messages is in the chain during the call, nor enters it
// afterwards. It must not block for long; an error is logged, not retried.
type BatchPreparer interface {
	Prepare(ctx context.Context, batch []*Message) error
	Release(ctx context.Context, batch []*Message) error
}

// ErrPermanent marks an error as not retryable, whatever it wraps: wrap with Permanent.
var ErrPermanent = errors.New("streams: permanent failure")

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// Permanent marks err as not retryable: the retry middleware sends the message to the dead-letter
// topic at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

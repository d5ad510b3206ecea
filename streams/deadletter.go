package streams

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter headers, added to the original record's headers when it is written to the
// dead-letter topic. Times are RFC 3339 UTC with milliseconds ("2026-11-27T09:15:00.000Z").
const (
	HeaderDLQTopic        = "hotelbus.dlq.topic"     // original topic
	HeaderDLQPartition    = "hotelbus.dlq.partition" // original partition, decimal
	HeaderDLQOffset       = "hotelbus.dlq.offset"    // original offset, decimal
	HeaderDLQTimestamp    = "hotelbus.dlq.timestamp" // original record timestamp
	HeaderDLQGroup        = "hotelbus.dlq.group"     // consumer group that gave up
	HeaderDLQErrorClass   = "hotelbus.dlq.error.class"
	HeaderDLQErrorMessage = "hotelbus.dlq.error.message"
	HeaderDLQAttempts     = "hotelbus.dlq.attempts" // handler calls, decimal (0: never called)
	HeaderDLQFirstFailure = "hotelbus.dlq.first-failure"
	HeaderDLQLastFailure  = "hotelbus.dlq.last-failure"
)

// Headers of a redriven record (written by `hotelbus dlq redrive` to the system's redrive topic,
// beside the original key, value and headers).
const (
	// HeaderRedriveID identifies one redrive of one dead letter. Dedup keys a redriven event by
	// eventId and redrive id, so the redrive is handled even though the dead-lettered delivery
	// marked the eventId done, and the same redrive delivered twice is handled once.
	HeaderRedriveID     = "hotelbus.redrive.id"
	HeaderRedriveSource = "hotelbus.redrive.source" // the dead letter: "<topic>/<partition>@<offset>"
	HeaderRedriveAt     = "hotelbus.redrive.at"     // when it was redriven, RFC 3339 millis UTC
)

// DeadLetterHeaderer is implemented by errors that add headers to the dead-letter record of the
// message that failed with them (found with errors.As in the chain's final error); the dispatcher's
// target errors add the HTTP status and an excerpt of the answer. Header keys should start with
// "hotelbus.dlq.".
type DeadLetterHeaderer interface {
	DeadLetterHeaders() []kgo.RecordHeader
}

// Error classes written in HeaderDLQErrorClass.
const (
	// ClassDecode: the record could not be decoded (Message.DecodeErr: bad magic byte, unknown
	// schema id, corrupt body; or a transient decoding failure that outlasted the retries); the
	// user handler was not called.
	ClassDecode = "decode"
	// ClassInvalidIdentifier: the record's key, envelope headers or envelope identifiers break the
	// identifier grammar (ErrInvalidIdentifier: written around the producer); the user handler was
	// not called, and the record is never retried.
	ClassInvalidIdentifier = "invalid-identifier"
	// ClassInvalidEvent: the handler failed with ErrInvalidEvent.
	ClassInvalidEvent = "invalid-event"
	// ClassUnknownEventType: the handler failed with ErrUnknownEventType.
	ClassUnknownEventType = "unknown-event-type"
	// ClassPermanent: the handler failed with any other error IsRetryable rejects (Permanent, ...).
	ClassPermanent = "permanent"
	// ClassRetriesExhausted: the handler failed with a retryable error on its last attempt.
	ClassRetriesExhausted = "retries-exhausted"
	// ClassParked: an earlier record with the same key was dead-lettered and the key is parked
	// (ParkKey); the handler was not called.
	ClassParked = "parked"
)

// maxErrorMessage bounds HeaderDLQErrorMessage (bytes); longer messages are cut.
const maxErrorMessage = 4096

// DeadLetters is the dead-letter middleware of one consumer: it writes the messages the consumer
// gives up on to the system's dead-letter topic and lets their offsets be committed, so that a
// poison record or a permanently failing event never stops its partition.
//
// A message is dead-lettered when it has a non-retryable DecodeErr (a poison record, or one whose
// identifiers break the grammar: the inner handler is not called), or when the inner handler (the retry middleware, then the consumer's
// final handler, which decodes again a record whose DecodeErr was retryable, then the user
// handler) returns an error, unless ctx has ended
// (shutdown or lost partition: the error is returned as is, the record stays uncommitted and is
// delivered again). The dead-letter record keeps the original key, value and headers (earlier
// hotelbus.dlq.* headers of a redriven record are replaced; with Tracing on the writer, the
// traceparent names the dead-letter write's span, child of the handler's) and adds the HeaderDLQ*
// headers. It is written through the consuming system's Writer (NewDeadLetters). The
// middleware waits for the broker's acknowledgement and then returns nil, so the consumer commits;
// if the write fails it returns the error (retryable), so the record is not committed.
//
// Policy for the records after a dead-lettered one with the same key (in the same topic and
// partition):
//   - default (ParkKey(false)): continue. Later records are handled normally; the dead-lettered
//     one can be redriven later, out of order with them.
//   - ParkKey(true): park the key. Every later record with that key reaching the middleware is
//     dead-lettered too, class "parked", without calling the handler, until Unpark(key); a redrive
//     of the parked records then replays the key in its original order. The key is the Kafka
//     record key (the tenant), not a finer ordering key: records of the key already running when
//     the key is parked are not affected. Parking lives in this process's memory: it is forgotten
//     on restart and does not follow a partition to another group member.
//
// Chain order: Dedup, DeadLetter, Retry, handler. A DeadLetters is safe for concurrent use.
type DeadLetters struct {
	w     *Writer
	topic string
	cfg   deadLetterConfig

	mu     sync.Mutex
	counts map[string]int64
	parked map[parkedKey]string // -> why: "<topic>/<partition>@<offset> (<class>)"
}

type parkedKey struct {
	topic     string
	partition int32
	key       string
}

// NewDeadLetters returns the dead-letter middleware writing to topic (the system's dead-letter
// topic, topics.System.DeadLetterTopic) through w, the writer of the consuming system (which the
// caller owns and closes). A dead letter is written as any record of w (ownership, acks, span,
// observers, publish audit), its headers as they are.
func NewDeadLetters(w *Writer, topic string, opts ...DeadLetterOption) (*DeadLetters, error) {
	cfg := defaultDeadLetterConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if w == nil || topic == "" {
		return nil, fmt.Errorf("%w: NewDeadLetters: a writer and a topic are required", ErrConfig)
	}
	return &DeadLetters{w: w, topic: topic, cfg: cfg, counts: map[string]int64{}, parked: map[parkedKey]string{}}, nil
}

// DeadLetter returns NewDeadLetters(w, topic, opts...).Middleware(). It panics on an invalid
// argument (a programming error); use NewDeadLetters for the counters and Unpark.
func DeadLetter(w *Writer, topic string, opts ...DeadLetterOption) Middleware {
	d, err := NewDeadLetters(w, topic, opts...)
	if err != nil {
		panic(err)
	}
	return d.Middleware()
}

// DeadLettered returns how many messages were written to the dead-letter topic, by error class.
func (d *DeadLetters) DeadLettered() map[string]int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.counts)
}

// Unpark ends the parking of key in every partition (see ParkKey); it reports whether the key was
// parked.
func (d *DeadLetters) Unpark(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	found := false
	for k := range d.parked {
		if k.key == key {
			delete(d.parked, k)
			found = true
		}
	}
	return found
}

// Middleware returns the dead-letter middleware. See DeadLetters.
func (d *DeadLetters) Middleware() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			pk := parkedKey{topic: m.Record.Topic, partition: m.Record.Partition, key: string(m.Record.Key)}
			if d.cfg.parkKey {
				d.mu.Lock()
				why, parked := d.parked[pk]
				d.mu.Unlock()
				if parked {
					now := time.Now()
					return d.send(ctx, m, ClassParked, "streams: key parked since "+why+" was dead-lettered", 0, now, now)
				}
			}
			if m.DecodeErr != nil && !IsRetryable(m.DecodeErr) {
				now := time.Now()
				return d.park(ctx, m, pk, decodeClass(m.DecodeErr), m.DecodeErr.Error(), 0, now, now)
			}
			err := next(ctx, m)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return err
			}
			attempts, first, last := m.Attempt, m.FirstFailure, m.LastFailure
			var re *RetryError
			if errors.As(err, &re) {
				attempts, first, last = re.Attempts, re.FirstFailure, re.LastFailure
			}
			if attempts == 0 {
				attempts = 1 // no retry middleware: the handler ran once
			}
			if first.IsZero() {
				first = time.Now()
			}
			if last.IsZero() {
				last = first
			}
			class := errorClass(err)
			if m.DecodeErr != nil {
				class = decodeClass(m.DecodeErr)
			}
			var extra []kgo.RecordHeader
			var dh DeadLetterHeaderer
			if errors.As(err, &dh) {
				extra = dh.DeadLetterHeaders()
			}
			return d.park(ctx, m, pk, class, err.Error(), attempts, first, last, extra...)
		}
	}
}

// park dead-letters m and, under ParkKey, parks its key once the write is acknowledged.
func (d *DeadLetters) park(ctx context.Context, m *Message, pk parkedKey, class, msg string, attempts int, first, last time.Time, extra ...kgo.RecordHeader) error {
	if err := d.send(ctx, m, class, msg, attempts, first, last, extra...); err != nil {
		return err
	}
	if d.cfg.parkKey {
		d.mu.Lock()
		d.parked[pk] = fmt.Sprintf("%s/%d@%d (%s)", m.Record.Topic, m.Record.Partition, m.Record.Offset, class)
		d.mu.Unlock()
	}
	return nil
}

// send writes m's record to the dead-letter topic and waits for the acknowledgement.
func (d *DeadLetters) send(ctx context.Context, m *Message, class, msg string, attempts int, first, last time.Time, extra ...kgo.RecordHeader) error {
	r := m.Record
	headers := make([]kgo.RecordHeader, 0, len(r.Headers)+10+len(extra))
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, "hotelbus.dlq.") {
			headers = append(headers, h)
		}
	}
	if len(msg) > maxErrorMessage {
		msg = strings.ToValidUTF8(msg[:maxErrorMessage], "")
	}
	add := func(k, v string) { headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderDLQTopic, r.Topic)
	add(HeaderDLQPartition, strconv.FormatInt(int64(r.Partition), 10))
	add(HeaderDLQOffset, strconv.FormatInt(r.Offset, 10))
	add(HeaderDLQTimestamp, formatMillis(r.Timestamp))
	add(HeaderDLQGroup, m.Group)
	add(HeaderDLQErrorClass, class)
	add(HeaderDLQErrorMessage, msg)
	add(HeaderDLQAttempts, strconv.Itoa(attempts))
	add(HeaderDLQFirstFailure, formatMillis(first))
	add(HeaderDLQLastFailure, formatMillis(last))
	headers = append(headers, extra...)
	out := &kgo.Record{Topic: d.topic, Key: r.Key, Value: r.Value, Headers: headers}
	if _, err := d.w.writeSync(ctx, writeAsIs, out); err != nil {
		return fmt.Errorf("streams: dead letter %s/%d@%d to %s: %w", r.Topic, r.Partition, r.Offset, d.topic, err)
	}
	d.mu.Lock()
	d.counts[class]++
	d.mu.Unlock()
	m.SetOutcome(OutcomeDeadLettered, class)
	d.cfg.logger.Warn("streams: dead-lettered", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
		"group", m.Group, "class", class, "attempts", attempts, "err", msg, "dlq", d.topic)
	return nil
}

// errorClass names the reason a handler error is dead-lettered.
func errorClass(err error) string {
	switch {
	case errors.Is(err, ErrInvalidIdentifier):
		return ClassInvalidIdentifier
	case errors.Is(err, ErrInvalidEvent):
		return ClassInvalidEvent
	case errors.Is(err, ErrUnknownEventType):
		return ClassUnknownEventType
	case IsRetryable(err):
		return ClassRetriesExhausted
	}
	return ClassPermanent
}

// decodeClass names the reason a message whose DecodeErr is set is dead-lettered.
func decodeClass(err error) string {
	if errors.Is(err, ErrInvalidIdentifier) {
		return ClassInvalidIdentifier
	}
	return ClassDecode
}

func formatMillis(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

package dispatch

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
)

// ErrConfig: an option or the target is invalid.
var ErrConfig = errors.New("dispatch: invalid configuration")

// ErrBadSignature: Verify found the signature header missing, malformed, too old or not matching.
var ErrBadSignature = errors.New("dispatch: bad signature")

// Dead-letter headers added for an event the target refused (see TargetError) or that could not
// be sent (see InvalidHeaderError).
const (
	HeaderHTTPStatus    = "hotelbus.dlq.http.status"             // the target's HTTP status, decimal
	HeaderHTTPResponse  = "hotelbus.dlq.http.response"           // the start of the target's answer
	HeaderInvalidHeader = "hotelbus.dlq.dispatch.invalid-header" // the request header that could not be sent
)

// TargetError is a delivery the target answered with a status other than 2xx. 408, 429 and 5xx
// are retryable (Retryable); other statuses, 3xx included (redirects are never followed), are
// permanent: the event goes to the dead-letter topic with HeaderHTTPStatus and HeaderHTTPResponse.
type TargetError struct {
	Status  int
	Excerpt string        // the start of the answer's body
	After   time.Duration // the answer's Retry-After (0: none)
}

func (e *TargetError) Error() string {
	return fmt.Sprintf("dispatch: target answered %d: %q", e.Status, e.Excerpt)
}

// Retryable reports whether the status is worth trying again (streams.IsRetryable asks).
func (e *TargetError) Retryable() bool { return transientStatus(e.Status) }

// RetryAfter is the wait the target asked for (streams' retry middleware honours it).
func (e *TargetError) RetryAfter() time.Duration { return e.After }

// DeadLetterHeaders adds the status and the answer's start to the dead-letter record.
func (e *TargetError) DeadLetterHeaders() []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: HeaderHTTPStatus, Value: []byte(strconv.Itoa(e.Status))},
		{Key: HeaderHTTPResponse, Value: []byte(e.Excerpt)},
	}
}

func transientStatus(s int) bool { return s == 408 || s == 429 || s >= 500 }

// maxHeaderValue bounds one request header value the dispatcher sends (bytes).
const maxHeaderValue = 4096

// InvalidHeaderError is an event whose identifiers (eventId, eventType, source, tenantId,
// correlationId, the record's key or traceparent) cannot be sent as a request header: a control
// character (CR, LF, NUL...) that Go's HTTP client refuses, or more than 4096 bytes. It is
// permanent, never retried and never counted by the circuit breaker (no request was made, so it
// says nothing about the target): the event goes to the dead-letter topic as an invalid event
// (errors.Is(err, streams.ErrInvalidEvent), class streams.ClassInvalidEvent) with
// HeaderInvalidHeader naming the header. The error names the header and the reason, never the
// value.
type InvalidHeaderError struct {
	EventID string
	Header  string // the request header, e.g. ce-tenantid
	Reason  string
}

func (e *InvalidHeaderError) Error() string {
	return fmt.Sprintf("dispatch: event %s cannot be sent: request header %s %s", cut(e.EventID, 64), e.Header, e.Reason)
}

// Is makes errors.Is(err, streams.ErrInvalidEvent) true.
func (e *InvalidHeaderError) Is(target error) bool { return target == streams.ErrInvalidEvent }

// Retryable reports false: the same event can never be sent.
func (e *InvalidHeaderError) Retryable() bool { return false }

// DeadLetterHeaders names the header in the dead-letter record.
func (e *InvalidHeaderError) DeadLetterHeaders() []kgo.RecordHeader {
	return []kgo.RecordHeader{{Key: HeaderInvalidHeader, Value: []byte(e.Header)}}
}

// Classes of transient delivery failures, as logged by the dispatcher (key "class").
const (
	// ClassStatus: the target answered 408, 429 or 5xx.
	ClassStatus = "status"
	// ClassNotSent: the request failed before it was completely written (connection refused,
	// DNS, a reset while writing): the target cannot have acted on it.
	ClassNotSent = "not-sent"
	// ClassUnknownOutcome: the request was written and no answer came (timeout, connection
	// broken while waiting): the target may have acted on it.
	ClassUnknownOutcome = "unknown-outcome"
)

// DeliveryError is a delivery that got no answer from the target. It is retryable.
type DeliveryError struct {
	EventID string
	Target  string // redacted: no userinfo, no query
	// Sent: the request was completely written before the failure, so its outcome is unknown.
	Sent bool
	Err  error
}

func (e *DeliveryError) Error() string {
	state := "not sent"
	if e.Sent {
		state = "sent, no answer"
	}
	return fmt.Sprintf("dispatch: delivering %s to %s (%s): %v", e.EventID, e.Target, state, e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Retryable reports true: a delivery without an answer is tried again.
func (e *DeliveryError) Retryable() bool { return true }

// failureClass names the class of a transient delivery failure.
func failureClass(err error) string {
	var de *DeliveryError
	if errors.As(err, &de) {
		if de.Sent {
			return ClassUnknownOutcome
		}
		return ClassNotSent
	}
	return ClassStatus
}

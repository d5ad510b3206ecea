package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/hotelbus/hotelbus/streams/spool"
)

// Sentinel errors. Test with errors.Is; the returned errors wrap them with detail.
var (
	// ErrInvalidEvent: the envelope or its data does not match the schema (a field missing, of the
	// wrong type, an unknown field or enum symbol). The error is an *InvalidEventError naming every
	// bad field by path. Not retryable: the same input fails the same way.
	ErrInvalidEvent = errors.New("streams: invalid event")

	// ErrUnknownEventType: no schema (or no catalog entry) for the envelope's eventType and version.
	// Not retryable.
	ErrUnknownEventType = errors.New("streams: unknown event type or version")

	// ErrNotRegistered: the schema version exists locally but is not registered under its subject in
	// the registry (run `hotelbus schemas register`, or enable auto-registration in development).
	// Not retryable until someone registers it.
	ErrNotRegistered = errors.New("streams: schema not registered")

	// ErrMalformedRecord: a Kafka record value is not in the Confluent wire format or its body does
	// not decode with the schema its id names. Not retryable: redelivery reads the same bytes.
	ErrMalformedRecord = errors.New("streams: malformed record")

	// ErrRegistry: the schema registry could not be reached or answered with a server error.
	// Retryable.
	ErrRegistry = errors.New("streams: schema registry unavailable")

	// ErrNotOwner: the producer's system does not own (publish) the event type, or the envelope
	// names another system as its source. Refused before anything is sent. Not retryable.
	ErrNotOwner = errors.New("streams: not the owner of the event type")

	// ErrMissingTenant: the envelope has no metadata.tenantId, the record key. Refused before
	// anything is sent. Not retryable.
	ErrMissingTenant = errors.New("streams: missing tenantId")

	// ErrSpoolFull: the broker is unreachable (or the in-memory buffer is full) and the spool has
	// reached its size bound; the event was not accepted. Retryable once the spool drains.
	ErrSpoolFull = spool.ErrFull

	// ErrInvalidIdentifier: a consumed record carries an identifier that breaks the envelope
	// identifier grammar (see identifiers.go): its key, an envelope identifier (eventId, tenantId,
	// source, correlationId, userId, traceId) or a header repeating one (eventId, source,
	// correlationId, version, traceparent). Such a record was written around the producer, which
	// refuses these events as ErrInvalidEvent. Not retryable: the consumer never calls the handler
	// with it; the dead-letter middleware writes it with class "invalid-identifier".
	ErrInvalidIdentifier = errors.New("streams: invalid identifier")

	// ErrConfig: an option has an invalid value; the message names the option. Not retryable.
	ErrConfig = errors.New("streams: invalid configuration")

	// ErrDeliveryTimeout: a producer without a spool did not get the broker's acknowledgement of an
	// event within DeliveryTimeout (the broker is unreachable, or too slow). The event may or may
	// not have been written. Retryable: publishing it again is safe, consumers deduplicate by
	// eventId.
	ErrDeliveryTimeout = errors.New("streams: delivery timed out")

	// ErrClosed: the producer or consumer was closed. Not retryable.
	ErrClosed = errors.New("streams: closed")
)

// IsRetryable reports whether an operation that failed with err may succeed if tried again
// unchanged. It is the one place that decides retries.
func IsRetryable(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrPermanent), errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, ErrInvalidEvent), errors.Is(err, ErrUnknownEventType),
		errors.Is(err, ErrNotRegistered), errors.Is(err, ErrMalformedRecord),
		errors.Is(err, ErrNotOwner), errors.Is(err, ErrMissingTenant), errors.Is(err, ErrInvalidIdentifier),
		errors.Is(err, ErrConfig), errors.Is(err, ErrClosed):
		return false
	case errors.Is(err, ErrRegistry), errors.Is(err, ErrSpoolFull), errors.Is(err, ErrDeliveryTimeout):
		return true
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable
	}
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	return true
}

// FieldError is one bad field: its JSON path within the envelope ("data.price.amount") and what is
// wrong with it.
type FieldError struct {
	Path    string
	Message string
}

func (e FieldError) String() string { return e.Path + ": " + e.Message }

// InvalidEventError lists every bad field of one event. It matches ErrInvalidEvent with errors.Is.
type InvalidEventError struct {
	Fields []FieldError
}

func (e *InvalidEventError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.String()
	}
	return "streams: invalid event: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalidEvent) true.
func (e *InvalidEventError) Is(target error) bool { return target == ErrInvalidEvent }

// fieldErrs collects field errors while a value is walked.
type fieldErrs struct{ list []FieldError }

func (f *fieldErrs) add(path, format string, a ...any) {
	f.list = append(f.list, FieldError{Path: path, Message: fmt.Sprintf(format, a...)})
}

func (f *fieldErrs) err() error {
	if len(f.list) == 0 {
		return nil
	}
	return &InvalidEventError{Fields: f.list}
}

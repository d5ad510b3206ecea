package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/hotelbus/hotelbus/streams"
)

// Problem is an RFC 9457 problem details object (application/problem+json). Type is a URN naming
// the kind of problem ("urn:hotelbus:problem:not-owner"); Errors lists every bad field by JSON
// path when the problem is about the request's content.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError is one bad field: its JSON path in the event ("data.price.amount", "$" for the
// whole document) and what is wrong with it.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

const problemPrefix = "urn:hotelbus:problem:"

// problem kinds: type suffix, status, title.
type kind struct {
	slug   string
	status int
	title  string
}

var (
	kindMalformed    = kind{"malformed", http.StatusBadRequest, "Malformed request"}
	kindUnauthorized = kind{"unauthorized", http.StatusUnauthorized, "Missing or invalid credential"}
	kindNotOwner     = kind{"not-owner", http.StatusForbidden, "Not the owner of the event type"}
	kindNotFound     = kind{"not-found", http.StatusNotFound, "No such resource"}
	kindMethod       = kind{"method-not-allowed", http.StatusMethodNotAllowed, "Method not allowed"}
	kindTooLarge     = kind{"too-large", http.StatusRequestEntityTooLarge, "Request or event too large"}
	kindMediaType    = kind{"unsupported-media-type", http.StatusUnsupportedMediaType, "Body is not JSON"}
	kindInvalid      = kind{"invalid-event", http.StatusUnprocessableEntity, "Event does not match its schema"}
	kindUnknownType  = kind{"unknown-event-type", http.StatusUnprocessableEntity, "Unknown event type or version"}
	kindKeyReused    = kind{"idempotency-key-reused", http.StatusUnprocessableEntity, "Idempotency-Key reused for a different request"}
	kindSpoolFull    = kind{"spool-full", http.StatusTooManyRequests, "Broker unreachable and spool full"}
	kindInternal     = kind{"internal", http.StatusInternalServerError, "Internal error"}
	kindUnavailable  = kind{"unavailable", http.StatusServiceUnavailable, "Temporarily unavailable"}
)

func (k kind) problem(detail string, fields ...FieldError) *Problem {
	return &Problem{Type: problemPrefix + k.slug, Title: k.title, Status: k.status, Detail: detail, Errors: fields}
}

// problemFor maps an error of the producer (ParseJSON, Publish) to the answer for that event. Every
// refusal the producer makes before sending is a 4xx; what may succeed when retried is 429 or 503.
func problemFor(err error) *Problem {
	var inv *streams.InvalidEventError
	var ke *kerr.Error
	switch {
	case errors.Is(err, streams.ErrNotOwner):
		return kindNotOwner.problem(trimPkg(err))
	case errors.Is(err, streams.ErrMissingTenant):
		return kindMalformed.problem(trimPkg(err), FieldError{"metadata.tenantId", "required field is missing"})
	case errors.As(err, &inv):
		fields := make([]FieldError, len(inv.Fields))
		envelope := false
		for i, f := range inv.Fields {
			fields[i] = FieldError{f.Path, f.Message}
			envelope = envelope || !inData(f.Path)
		}
		if errors.Is(err, streams.ErrUnknownEventType) {
			fields = append(fields, FieldError{"eventType", unknownTypeMessage(err)})
		}
		if envelope {
			return kindMalformed.problem("the envelope is malformed or misses required fields", fields...)
		}
		return kindInvalid.problem("the event does not match its schema", fields...)
	case errors.Is(err, streams.ErrUnknownEventType):
		return kindUnknownType.problem(trimPkg(err), FieldError{"eventType", unknownTypeMessage(err)})
	case errors.Is(err, streams.ErrSpoolFull):
		return kindSpoolFull.problem("the broker is unreachable and the gateway's spool is full; retry later")
	case errors.As(err, &ke) && ke == kerr.MessageTooLarge:
		return kindTooLarge.problem("the encoded event exceeds the broker's record size limit")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, streams.ErrClosed), streams.IsRetryable(err):
		return kindUnavailable.problem("the event was not accepted: " + trimPkg(err) + "; retry later")
	}
	return kindInternal.problem(trimPkg(err))
}

// inData reports whether a field path lies inside the event's data (a schema violation) rather
// than in the envelope around it.
func inData(path string) bool {
	return strings.HasPrefix(path, "data.") || strings.HasPrefix(path, "data[")
}

func unknownTypeMessage(err error) string {
	msg := trimPkg(err)
	if i := strings.IndexByte(msg, '\n'); i >= 0 { // a joined error: the first line is the lookup's
		msg = msg[:i]
	}
	return msg
}

// trimPkg drops the "streams: " prefixes from an error text shown to clients.
func trimPkg(err error) string {
	return strings.ReplaceAll(err.Error(), "streams: ", "")
}

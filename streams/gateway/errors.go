package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

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
	kindTenantScope  = kind{"tenant-not-allowed", http.StatusForbidden, "Tenant outside the credential's scope"}
	kindRateLimited  = kind{"rate-limited", http.StatusTooManyRequests, "Rate limit exceeded"}
	kindHeaderLarge  = kind{"headers-too-large", http.StatusRequestHeaderFieldsTooLarge, "Request header fields too large"}
	kindSpoolFull    = kind{"spool-full", http.StatusTooManyRequests, "Broker unreachable and spool full"}
	kindInternal     = kind{"internal", http.StatusInternalServerError, "Internal error"}
	kindNotImpl      = kind{"not-implemented", http.StatusNotImplemented, "Not implemented"}
	kindUnavailable  = kind{"unavailable", http.StatusServiceUnavailable, "Temporarily unavailable"}
)

// Bounds of a problem's text: a refusal names what is wrong without echoing the input back, so a
// 100 KB field gives a short answer.
const (
	// maxFieldErrors is the most field errors one problem lists; the rest are counted.
	maxFieldErrors = 10
	// maxProblemText bounds the detail and each field error's path and message, in bytes.
	maxProblemText = 256
	// maxExcerpt bounds a client value quoted in a detail, in bytes.
	maxExcerpt = 64
)

// problem returns a problem of kind k, its detail and fields cut to the bounds above.
func (k kind) problem(detail string, fields ...FieldError) *Problem {
	if len(fields) > maxFieldErrors+1 {
		fields = append(fields[:maxFieldErrors:maxFieldErrors], moreErrors(len(fields)-maxFieldErrors))
	}
	for i, f := range fields {
		fields[i] = FieldError{cut(f.Path, maxProblemText), cut(f.Message, maxProblemText)}
	}
	return &Problem{Type: problemPrefix + k.slug, Title: k.title, Status: k.status, Detail: cut(detail, maxProblemText), Errors: fields}
}

func moreErrors(n int) FieldError {
	return FieldError{"$", strconv.Itoa(n) + " more errors not shown"}
}

// cut returns s when it has at most n bytes, or its first bytes up to n (on a UTF-8 boundary)
// followed by how many bytes were left out.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…(" + strconv.Itoa(len(s)-i) + " more bytes)"
}

// excerpt quotes a client value for a detail: at most maxExcerpt bytes of it, control characters
// escaped.
func excerpt(s string) string {
	return strconv.Quote(cut(s, maxExcerpt))
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
		// An event with a long array of bad items has an error per item: copy only what is shown.
		fields := make([]FieldError, 0, min(len(inv.Fields), maxFieldErrors)+2)
		envelope := false
		for i, f := range inv.Fields {
			if i < maxFieldErrors {
				fields = append(fields, FieldError{f.Path, f.Message})
			}
			envelope = envelope || !inData(f.Path)
		}
		if n := len(inv.Fields) - maxFieldErrors; n > 0 {
			fields = append(fields, moreErrors(n))
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

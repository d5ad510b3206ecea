package streams

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/topics"
)

// Envelope identifiers have one grammar, defined here and checked twice: where records are
// written (Serde.AppendEncode, which Producer, and through it the gateway and `hotelbus produce`,
// and `hotelbus replay --to-topic` use) and where they are read (the Consumer, for records other
// clients wrote around the producer). These values become Kafka keys and headers, HTTP headers of
// push deliveries (ce-id, ce-tenantid, ce-correlationid, traceparent), Redis keys, metric labels,
// log fields and file cells, so none of them is free text:
//
//	metadata.tenantId       ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$ (ASCII: no space, slash, brace,
//	                        wildcard, control or non-ASCII character; the Kafka record key)
//	eventId                 a UUID in its canonical 8-4-4-4-12 hex form, either case (a Producer
//	                        assigns a UUIDv7 when it is absent and lowercases a given one)
//	metadata.traceId        a W3C trace-id: 32 lowercase hex digits, not all zeros
//	metadata.correlationId  1 to 128 bytes of printable ASCII without space (RFC 9110 VCHAR,
//	metadata.userId         0x21-0x7E); userId may be absent
//	metadata.source         a system of the catalog (a Producer sets it from its own identity)
//
// correlationId and userId are client text, kept to visible ASCII on purpose: every byte of it is
// legal unchanged in an HTTP field value, it stays one token in a log line, and there is nothing a
// terminal or an editor would reorder or hide (no control, format or bidi-override character,
// which printable UTF-8 would still have to be filtered for). The bound is a length, not a
// format, so UUIDs, ULIDs, W3C traceparents and "usr_frontdesk_0142" all fit.
//
// A Consumer also checks what it takes from a record besides the envelope: the key (a tenantId)
// and the headers repeating the envelope (eventId, source, correlationId, version "major.minor",
// and traceparent, a W3C traceparent of version 00 with non-zero trace and parent ids), and a
// redriven record's HeaderRedriveID (a UUID, part of its dedup key).
//
// A refusal by the writer is an *InvalidEventError (ErrInvalidEvent) naming the field's path; a
// refusal by the Consumer is ErrInvalidIdentifier, dead-lettered without calling the handler.
// Either quotes at most 32 bytes of the value, escaped, never the whole input.
const (
	// MaxTenantIDLen is the longest tenantId, in bytes.
	MaxTenantIDLen = 128
	// MaxTextIDLen is the longest correlationId or userId, in bytes.
	MaxTextIDLen = 128

	identifierExcerpt = 32
)

// The grammar is a byte class and a length, checked by hand rather than with regexp: it runs for
// every event published and every record consumed, and a loop over at most 128 bytes stays off
// the profile where a regexp match would not.

// checkIdentifiers adds a field error for every identifier of env that breaks the grammar.
func checkIdentifiers(env *Envelope, errs *fieldErrs) {
	for _, f := range []struct {
		path, problem string
	}{
		{"eventId", eventIDProblem(env.EventID)},
		{"metadata.tenantId", tenantIDProblem(env.Metadata.TenantID)},
		{"metadata.correlationId", textIDProblem(env.Metadata.CorrelationID)},
		{"metadata.traceId", traceIDProblem(env.Metadata.TraceID)},
	} {
		if f.problem != "" {
			errs.list = append(errs.list, FieldError{Path: f.path, Message: f.problem})
		}
	}
	if env.Metadata.UserID != "" {
		if p := textIDProblem(env.Metadata.UserID); p != "" {
			errs.add("metadata.userId", "%s", p)
		}
	}
}

// tenantIDProblem returns what is wrong with s as a tenantId ("" when nothing).
func tenantIDProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxTenantIDLen:
		return tooLong(s, MaxTenantIDLen)
	case !isAlnum(s[0]):
		return "must start with an ASCII letter or digit, got " + excerpt(s)
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return "may hold only ASCII letters, digits and . _ : - (byte " + strconv.Itoa(i) + " is not one), got " + excerpt(s)
		}
	}
	return ""
}

// eventIDProblem returns what is wrong with s as an eventId ("" when nothing).
func eventIDProblem(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if !isUUID(s) {
		return "must be a UUID like 0193a5f2-7c41-7d3e-9b1a-4c2f8e6d5a10, got " + excerpt(s)
	}
	return ""
}

// isUUID reports whether s is a UUID in canonical 8-4-4-4-12 form, hex digits of either case.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// traceIDProblem returns what is wrong with s as a W3C trace-id ("" when nothing).
func traceIDProblem(s string) string {
	if s == "" {
		return "must not be empty"
	}
	zero := true
	ok := len(s) == 32
	for i := 0; ok && i < len(s); i++ {
		ok = isHex(s[i]) && (s[i] < 'A' || s[i] > 'F')
		zero = zero && s[i] == '0'
	}
	switch {
	case !ok:
		return "must be a W3C trace-id (32 lowercase hex digits), got " + excerpt(s)
	case zero:
		return "must not be all zeros (an invalid W3C trace-id)"
	}
	return ""
}

// textIDProblem returns what is wrong with s as a correlationId or userId ("" when nothing).
func textIDProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > MaxTextIDLen:
		return tooLong(s, MaxTextIDLen)
	}
	for i := range len(s) {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return "may hold only printable ASCII without space (byte " + strconv.Itoa(i) + " is not), got " + excerpt(s)
		}
	}
	return ""
}

func tooLong(s string, limit int) string {
	return fmt.Sprintf("must be at most %d bytes, got %d bytes: %s", limit, len(s), excerpt(s))
}

// excerpt quotes s for an error message: escaped (strconv.Quote escapes control, format and
// invalid bytes) and cut to identifierExcerpt bytes.
func excerpt(s string) string {
	if len(s) <= identifierExcerpt {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:identifierExcerpt]) + "..."
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// recordIdentifiers checks what a consumer takes from a record it did not write: the key, the
// envelope headers present, and, when the record decoded (env non-nil), every envelope identifier,
// the source against the catalog included, and the eventId and source headers against the
// envelope's (a consumer deduplicates by the headers before it decodes). The error wraps
// ErrInvalidIdentifier and names every bad field.
func recordIdentifiers(cat *topics.Catalog, r *kgo.Record, env *Envelope) error {
	errs := &fieldErrs{}
	if p := tenantIDProblem(string(r.Key)); p != "" {
		errs.add("key", "%s", p)
	}
	for _, h := range r.Headers {
		var p string
		switch v := string(h.Value); h.Key {
		case HeaderEventID, HeaderRedriveID:
			p = eventIDProblem(v)
		case HeaderSource:
			p = sourceProblem(cat, v)
		case HeaderCorrelationID:
			p = textIDProblem(v)
		case HeaderVersion:
			if majorOf(v) < 0 || len(v) > 16 {
				p = "must be a schema version like 1.0, got " + excerpt(v)
			}
		case HeaderTraceparent:
			if _, ok := parseTraceparent(v); !ok {
				p = "must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>), got " + excerpt(v)
			}
		default:
			continue
		}
		if p != "" {
			errs.add("header "+h.Key, "%s", p)
		}
	}
	envelopeIdentifiers(cat, r, env, errs)
	return errs.identifierErr(r)
}

// decodedIdentifiers is recordIdentifiers for a record whose key and headers were checked before
// it was decoded into env.
func decodedIdentifiers(cat *topics.Catalog, r *kgo.Record, env *Envelope) error {
	errs := &fieldErrs{}
	envelopeIdentifiers(cat, r, env, errs)
	return errs.identifierErr(r)
}

func envelopeIdentifiers(cat *topics.Catalog, r *kgo.Record, env *Envelope, errs *fieldErrs) {
	if env == nil {
		return
	}
	checkIdentifiers(env, errs)
	if p := sourceProblem(cat, env.Metadata.Source); p != "" {
		errs.add("metadata.source", "%s", p)
	}
	if v := Header(r, HeaderEventID); v != "" && v != env.EventID {
		errs.add("header "+HeaderEventID, "must be the envelope's eventId %s, got %s", excerpt(env.EventID), excerpt(v))
	}
	if v := Header(r, HeaderSource); v != "" && v != env.Metadata.Source {
		errs.add("header "+HeaderSource, "must be the envelope's metadata.source %s, got %s", excerpt(env.Metadata.Source), excerpt(v))
	}
}

// identifierErr is the error naming every bad field of r (nil when none).
func (errs *fieldErrs) identifierErr(r *kgo.Record) error {
	if len(errs.list) == 0 {
		return nil
	}
	parts := make([]string, len(errs.list))
	for i, f := range errs.list {
		parts[i] = f.String()
	}
	return fmt.Errorf("%w: %s/%d@%d: %s", ErrInvalidIdentifier, r.Topic, r.Partition, r.Offset, strings.Join(parts, "; "))
}

// sourceProblem returns what is wrong with s as a metadata.source ("" when nothing).
func sourceProblem(cat *topics.Catalog, s string) string {
	if s == "" {
		return "must not be empty"
	}
	if _, ok := cat.System(s); !ok {
		return "must be a system of the catalog, got " + excerpt(s)
	}
	return ""
}

// parseTraceparent returns the trace id of a W3C traceparent of version 00
// ("00-<trace-id>-<parent-id>-<flags>", lowercase hex) whose trace and parent ids are not all
// zeros; ok is false for anything else.
func parseTraceparent(s string) (traceID string, ok bool) {
	if len(s) != 55 || s[0] != '0' || s[1] != '0' || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return "", false
	}
	zeroTrace, zeroParent := true, true
	for i := 3; i < 55; i++ {
		switch c := s[i]; {
		case i == 35 || i == 52:
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
			zeroTrace = zeroTrace && (i >= 35 || c == '0')
			zeroParent = zeroParent && (i < 36 || i > 51 || c == '0')
		default:
			return "", false
		}
	}
	if zeroTrace || zeroParent {
		return "", false
	}
	return s[3:35], true
}

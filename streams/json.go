package streams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/hamba/avro/v2"
)

// The JSON shape at the HTTP edges is the seed's envelope plus eventId:
//
//	{"eventId": "...", "eventType": "reservation.created", "version": "1.0",
//	 "timestamp": "2026-11-27T09:15:00.000Z", "data": {...},
//	 "metadata": {"tenantId", "source", "correlationId", "userId", "traceId"}}
//
// Decimals are strings ("12000.00"), dates "YYYY-MM-DD", timestamps RFC 3339. The canonical form
// written by AppendJSON has keys in schema order, every field present (null when absent), decimals
// with exactly the schema's scale and timestamps in UTC with millisecond precision, so JSON that is
// already canonical round-trips through Avro byte for byte.

var decimalRe = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// jsonTimeLayout is the canonical timestamp layout (RFC 3339, UTC, milliseconds).
const jsonTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// DataSchema finds the data record for an event type and version; version "" asks for the newest.
// It returns the version it resolved.
type DataSchema func(eventType, version string) (data *avro.RecordSchema, resolved string, err error)

// ParseJSON decodes one JSON envelope. The input must be I-JSON (RFC 7493): valid UTF-8, no
// escaped lone surrogate, no object with the same key twice at any depth; anything else is refused
// at path "$" (malformed JSON) instead of being repaired, because encoding/json would replace bad
// bytes with U+FFFD (two identifiers collapse into one) and keep the last of two keys (the value
// checked is not the value used). Structural problems and every field that does not match the
// data schema are reported together in an *InvalidEventError (ErrInvalidEvent) naming JSON paths.
// eventType, data and metadata.tenantId are required. What a Producer fills in may be absent:
// eventId, timestamp, metadata.source, correlationId and traceId ("" or zero in the result), and
// version (the newest is used). An unknown eventType or version yields ErrUnknownEventType.
func ParseJSON(b []byte, lookup DataSchema) (*Envelope, error) {
	if err := checkStrictJSON(b); err != nil {
		return nil, err
	}
	return parseJSON(b, lookup)
}

// parseJSON is ParseJSON for input checkStrictJSON accepted.
func parseJSON(b []byte, lookup DataSchema) (*Envelope, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, &InvalidEventError{Fields: []FieldError{{Path: "$", Message: "malformed JSON: " + err.Error()}}}
	}
	if dec.More() {
		return nil, &InvalidEventError{Fields: []FieldError{{Path: "$", Message: "trailing data after the JSON object"}}}
	}
	top, ok := raw.(map[string]any)
	if !ok {
		return nil, &InvalidEventError{Fields: []FieldError{{Path: "$", Message: "expected a JSON object, got " + describe(raw)}}}
	}
	errs := &fieldErrs{}
	unknownKeys(top, envelopeKeys, "", errs)
	env := &Envelope{}
	md, hasMetadata := top["metadata"].(map[string]any)
	field := func(f envelopeField, from map[string]any, path string) {
		if f.required {
			f.set(env, reqString(from, f.name, path, errs))
		} else {
			f.set(env, optString(from, f.name, path, errs))
		}
	}
	for _, f := range envelopeFields {
		if !f.meta {
			field(f, top, "")
		}
	}
	if ts, ok := top["timestamp"]; ok && ts != nil {
		env.Timestamp, _ = jsonTime(ts, "timestamp", errs)
	}
	if hasMetadata {
		unknownKeys(md, metadataKeys, "metadata", errs)
		for _, f := range envelopeFields {
			if f.meta {
				field(f, md, "metadata")
			}
		}
	} else {
		errs.add("metadata", "expected an object, got %s", describe(top["metadata"]))
	}
	data, hasData := top["data"].(map[string]any)
	if !hasData {
		errs.add("data", "expected an object, got %s", describe(top["data"]))
	}
	if env.EventType != "" && hasData {
		schema, version, err := lookup(env.EventType, env.Version)
		if err != nil {
			if e := errs.err(); e != nil {
				return nil, errors.Join(err, e)
			}
			return nil, err
		}
		env.Data, _ = fromJSON(schema, data, "data", errs).(map[string]any)
		hintVersion(errs, env.EventType, env.Version, version, lookup)
		env.Version = version
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return env, nil
}

// checkStrictJSON refuses, at path "$", b that is not one I-JSON value; it lets through what
// encoding/json reports itself (trailing data after the value). jsontext is the JSON v2
// tokenizer, which refuses invalid UTF-8, lone surrogates and duplicate keys by default.
func checkStrictJSON(b []byte) error {
	_, err := jsontext.NewDecoder(bytes.NewReader(b)).ReadValue()
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) {
		return nil
	}
	msg := "malformed JSON: " + cut(se.Err.Error())
	if errors.Is(se.Err, jsontext.ErrDuplicateName) {
		msg = "malformed JSON: duplicate key"
	}
	if se.JSONPointer != "" {
		msg += " at " + cut(string(se.JSONPointer))
	}
	return &InvalidEventError{Fields: []FieldError{{Path: "$", Message: msg}}}
}

// cut quotes s (escaped) when it is longer than identifierExcerpt bytes or holds a byte that is
// not printable ASCII, cutting it to identifierExcerpt bytes; otherwise it returns s as is. Error
// messages show client input only through it or excerpt, never whole.
func cut(s string) string {
	if len(s) <= identifierExcerpt && textIDProblem(s) == "" {
		return s
	}
	return excerpt(s)
}

func unknownKeys(m map[string]any, known []string, path string, errs *fieldErrs) {
	for k := range m {
		found := false
		for _, kk := range known {
			found = found || k == kk
		}
		if !found {
			errs.add(join(path, cut(k)), "unknown field")
		}
	}
}

func reqString(m map[string]any, key, path string, errs *fieldErrs) string {
	s, ok := m[key].(string)
	switch {
	case !ok && m[key] == nil:
		errs.add(join(path, key), "required field is missing")
	case !ok:
		errs.add(join(path, key), "expected string, got %s", describe(m[key]))
	case s == "":
		errs.add(join(path, key), "must not be empty")
	}
	return s
}

func optString(m map[string]any, key, path string, errs *fieldErrs) string {
	v, present := m[key]
	if !present || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		errs.add(join(path, key), "expected string or null, got %s", describe(v))
	}
	return s
}

func jsonTime(v any, path string, errs *fieldErrs) (time.Time, bool) {
	s, ok := v.(string)
	if !ok {
		errs.add(path, "expected an RFC 3339 timestamp string, got %s", describe(v))
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		errs.add(path, "expected an RFC 3339 timestamp like 2026-11-27T09:15:00.000Z, got %s", excerpt(s))
		return time.Time{}, false
	}
	return t.UTC().Truncate(time.Millisecond), true
}

// fromJSON converts a JSON value (decoded with UseNumber) to the generic values of Envelope.Data.
func fromJSON(s avro.Schema, v any, path string, errs *fieldErrs) any {
	return conform(s, v, path, errs, leaf.fromJSON, false)
}

// AppendJSON appends the canonical JSON form of env, whose data follows the data record schema.
func AppendJSON(b []byte, env *Envelope, data *avro.RecordSchema) ([]byte, error) {
	b = append(b, '{')
	for _, f := range envelopeFields {
		switch {
		case f.name == "tenantId": // the first metadata field: timestamp and data come before metadata
			b = append(b, `,"timestamp":`...)
			b = appendString(b, env.Timestamp.UTC().Format(jsonTimeLayout))
			b = append(b, `,"data":`...)
			var err error
			if b, err = appendValue(b, data, env.Data, "data"); err != nil {
				return nil, err
			}
			b = append(b, `,"metadata":{`...)
		case len(b) > 0 && b[len(b)-1] != '{':
			b = append(b, ',')
		}
		b = appendString(b, f.name)
		b = append(b, ':')
		if v := f.get(env); f.nullable && v == "" {
			b = append(b, "null"...)
		} else {
			b = appendString(b, v)
		}
	}
	return append(b, "}}"...), nil
}

// appendValue appends the canonical JSON form of v, a value of s in the map form.
func appendValue(b []byte, s avro.Schema, v any, path string) ([]byte, error) {
	return compiled(s).json(b, v, path)
}

func mismatch(path, want string, v any) error {
	return &InvalidEventError{Fields: []FieldError{{Path: path, Message: fmt.Sprintf("expected %s, got %s", want, describe(v))}}}
}

// appendString appends s as a JSON string escaped exactly as encoding/json does by default.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

package contract

import (
	"fmt"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

// decimalPattern is the decimal string the gateway accepts (streams.ParseJSON).
const decimalPattern = `^-?[0-9]+(\.[0-9]+)?$`

// gatewayMessage is a major version's message at the gateway: the JSON envelope, described by a
// JSON Schema (AsyncAPI's default schema format) of the gateway's JSON form, with the golden
// example as its example.
func gatewayMessage(et EventType, sub *schemas.Subject) (map[string]any, error) {
	v := sub.Latest()
	data, err := jsonSchema(v.Data, v.File)
	if err != nil {
		return nil, err
	}
	ex, err := example(sub)
	if err != nil {
		return nil, err
	}
	str := func(doc string) map[string]any { return map[string]any{"type": "string", "description": doc} }
	nullable := func(doc string) map[string]any {
		return map[string]any{"type": []string{"string", "null"}, "description": doc}
	}
	version := str("major.minor of the data schema; absent: the newest")
	version["pattern"] = fmt.Sprintf(`^%d\.(0|[1-9][0-9]*)$`, sub.Major)
	eventType := str("the event type")
	eventType["const"] = et.Name
	ts := nullable("when the event happened (RFC 3339); absent: now")
	ts["format"] = "date-time"
	userID := nullable("the user who caused the event")
	userID["x-pii"] = true
	payload := map[string]any{
		"type":                 "object",
		"description":          "The JSON envelope of " + et.Name + " v" + fmt.Sprint(sub.Major) + ", as POSTed to the gateway and pushed by the dispatcher.",
		"required":             []string{"eventType", "data", "metadata"},
		"additionalProperties": false,
		"properties": map[string]any{
			"eventId":   nullable("UUID; the deduplication key (absent: the gateway assigns one)"),
			"eventType": eventType,
			"version":   version,
			"timestamp": ts,
			"data":      data,
			"metadata": map[string]any{
				"type":                 "object",
				"required":             []string{"tenantId"},
				"additionalProperties": false,
				"properties": map[string]any{
					"tenantId":      str("the tenant (hotel or hotel group); the Kafka record key"),
					"source":        nullable("must be " + et.Owner + " when present: the token decides it"),
					"correlationId": nullable("ties the events of one business flow together (absent: X-Correlation-Id, or a new one)"),
					"userId":        userID,
					"traceId":       nullable("W3C trace id (absent: from traceparent, or a new one)"),
				},
			},
		},
	}
	return map[string]any{
		"name":        TypeName(sub.EventType, sub.Major) + "Json",
		"title":       fmt.Sprintf("%s v%d (JSON)", sub.EventType, sub.Major),
		"summary":     fmt.Sprintf("%s v%d as the gateway's JSON envelope (decimals as strings, dates and timestamps as ISO 8601)", sub.EventType, sub.Major),
		"contentType": jsonContentType,
		"payload":     payload,
		"tags":        []any{map[string]any{"name": et.Owner}},
		"examples": []any{map[string]any{
			"name":    "golden",
			"summary": "schemas/events/" + sub.EventType + fmt.Sprintf("/v%d/example.json", sub.Major),
			"payload": ex,
		}},
	}, nil
}

// dateFormat marks the string of a date string field's JSON Schema (schemas.IsDateString), or of
// its anyOf's non-null branch, "format": "date".
func dateFormat(fs map[string]any) {
	if branches, ok := fs["anyOf"].([]any); ok {
		for _, b := range branches {
			if bs, _ := b.(map[string]any); bs["type"] == "string" {
				bs["format"] = "date"
			}
		}
		return
	}
	fs["format"] = "date"
}

// jsonSchema is the JSON Schema (draft 7) of s in the gateway's JSON form (streams.ParseJSON): a
// union ["null", T] is T or null and may be absent, as may a field with a default; decimals are
// strings, dates (Avro dates and date strings) "YYYY-MM-DD", timestamps RFC 3339. Personal data
// carries "x-pii": true.
func jsonSchema(s avro.Schema, file string) (map[string]any, error) {
	if r, ok := s.(*avro.RefSchema); ok {
		s = r.Schema()
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		props := map[string]any{}
		required := []string{}
		for _, f := range s.Fields() {
			fs, err := jsonSchema(f.Type(), file)
			if err != nil {
				return nil, err
			}
			if schemas.IsDateString(f) {
				dateFormat(fs)
			}
			fs = withDoc(fs, f.Doc())
			if schemas.IsPII(f) {
				fs["x-pii"] = true
			}
			props[f.Name()] = fs
			if f.Type().Type() != avro.Union && !f.HasDefault() {
				required = append(required, f.Name())
			}
		}
		return withDoc(map[string]any{"type": "object", "required": required, "additionalProperties": false, "properties": props}, s.Doc()), nil
	case *avro.UnionSchema:
		t, err := nonNull(s, file)
		if err != nil {
			return nil, err
		}
		inner, err := jsonSchema(t, file)
		if err != nil {
			return nil, err
		}
		return map[string]any{"anyOf": []any{map[string]any{"type": "null"}, inner}}, nil
	case *avro.EnumSchema:
		return withDoc(map[string]any{"type": "string", "enum": s.Symbols()}, s.Doc()), nil
	case *avro.ArraySchema:
		items, err := jsonSchema(s.Items(), file)
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": items}, nil
	case *avro.MapSchema:
		values, err := jsonSchema(s.Values(), file)
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "object", "additionalProperties": values}, nil
	case *avro.PrimitiveSchema:
		switch logical(s) {
		case "":
			if s.Logical() != nil {
				return nil, noJSONForm(s, file)
			}
		case avro.Decimal:
			return map[string]any{"type": "string", "pattern": decimalPattern}, nil
		case avro.Date:
			return map[string]any{"type": "string", "format": "date"}, nil
		case avro.TimestampMillis:
			return map[string]any{"type": "string", "format": "date-time"}, nil
		}
		switch s.Type() {
		case avro.String:
			return map[string]any{"type": "string"}, nil
		case avro.Boolean:
			return map[string]any{"type": "boolean"}, nil
		case avro.Int, avro.Long:
			return map[string]any{"type": "integer"}, nil
		case avro.Float, avro.Double:
			return map[string]any{"type": "number"}, nil
		}
	}
	return nil, noJSONForm(s, file)
}

func withDoc(m map[string]any, doc string) map[string]any {
	if doc != "" {
		m["description"] = doc
	}
	return m
}

// logical is the logical type of s that the gateway's JSON form knows, or "".
func logical(s *avro.PrimitiveSchema) avro.LogicalType {
	if l := s.Logical(); l != nil {
		switch l.Type() {
		case avro.Decimal, avro.Date, avro.TimestampMillis:
			return l.Type()
		}
	}
	return ""
}

// nonNull is the branch of a union the gateway's JSON form uses: the first that is not null.
func nonNull(u *avro.UnionSchema, file string) (avro.Schema, error) {
	for _, t := range u.Types() {
		if t.Type() != avro.Null {
			return t, nil
		}
	}
	return nil, noJSONForm(u, file)
}

func noJSONForm(s avro.Schema, file string) error {
	what := string(s.Type())
	if p, ok := s.(*avro.PrimitiveSchema); ok && p.Logical() != nil {
		what += " with logicalType " + string(p.Logical().Type())
	}
	return fmt.Errorf("%w: %s: Avro type %s has no JSON form at the gateway", ErrInconsistent, file, what)
}

package streams_test

import (
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/streams"
)

// TestShapeOf checks the shape the compiled walker gives of a schema: references resolved to the
// same Shape, a union of null and one type as that type with Optional, a union of more types as
// itself, a recursive type as a cycle, the pii marks on fields.
func TestShapeOf(t *testing.T) {
	s, err := avro.Parse(`{"type": "record", "name": "R", "fields": [
		{"name": "guest", "type": {"type": "record", "name": "Guest", "fields": [
			{"name": "name", "type": "string", "pii": true}]}},
		{"name": "other", "type": ["null", "Guest"], "default": null},
		{"name": "tags", "type": {"type": "array", "items": ["null", "string"]}},
		{"name": "amounts", "type": {"type": "map", "values": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}}},
		{"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
		{"name": "next", "type": ["null", "R"], "default": null},
		{"name": "either", "type": ["long", "null", "string"]}]}`)
	if err != nil {
		t.Fatal(err)
	}
	sh := streams.ShapeOf(s)
	if sh != streams.ShapeOf(s) {
		t.Error("ShapeOf returns a new Shape for the same schema")
	}
	field := func(sh *streams.Shape, name string) streams.ShapeField {
		t.Helper()
		for _, f := range sh.Fields {
			if f.Name == name {
				return f
			}
		}
		t.Fatalf("no field %s in %v", name, sh.Schema)
		return streams.ShapeField{}
	}
	typeOf := func(sh *streams.Shape) avro.Type { return sh.Schema.Type() }

	if len(sh.Fields) != 7 || sh.Optional || typeOf(sh) != avro.Record {
		t.Errorf("root: %d fields, optional %v, %s", len(sh.Fields), sh.Optional, typeOf(sh))
	}
	guest, other := field(sh, "guest").Shape, field(sh, "other").Shape
	if guest.Optional || !other.Optional || typeOf(other) != avro.Record || len(other.Fields) != 1 {
		t.Errorf("guest optional %v; other (a reference in a union) optional %v, %s, %d fields", guest.Optional, other.Optional, typeOf(other), len(other.Fields))
	}
	if f := field(guest, "name"); !f.PII || typeOf(f.Shape) != avro.String || field(sh, "guest").PII {
		t.Errorf("guest.name pii %v, %s; guest pii %v", f.PII, typeOf(f.Shape), field(sh, "guest").PII)
	}
	if tags := field(sh, "tags").Shape; typeOf(tags) != avro.Array || !tags.Elem.Optional || typeOf(tags.Elem) != avro.String {
		t.Errorf("tags: %s of %v", typeOf(tags), tags.Elem)
	}
	amounts := field(sh, "amounts").Shape
	if p, ok := amounts.Elem.Schema.(*avro.PrimitiveSchema); typeOf(amounts) != avro.Map || !ok || p.Logical() == nil || p.Logical().Type() != avro.Decimal {
		t.Errorf("amounts: %s of %v", typeOf(amounts), amounts.Elem.Schema)
	}
	if typeOf(field(sh, "kind").Shape) != avro.Enum {
		t.Errorf("kind: %s", typeOf(field(sh, "kind").Shape))
	}
	next := field(sh, "next").Shape
	if !next.Optional || len(next.Fields) != 7 || field(next, "next").Shape != next {
		t.Errorf("next (recursive): optional %v, %d fields, its own next the same Shape: %v", next.Optional, len(next.Fields), field(next, "next").Shape == next)
	}
	if either := field(sh, "either").Shape; !either.Optional || typeOf(either) != avro.Union {
		t.Errorf("either (a union of two non-null types): optional %v, %s", either.Optional, typeOf(either))
	}
}

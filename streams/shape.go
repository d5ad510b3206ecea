package streams

import "github.com/hamba/avro/v2"

// Shape is a schema as the map form (see Envelope) holds its values, for the packages that lay
// events out in formats of their own (replay's CSV and Parquet columns) and so need the schema's
// structure rather than its Avro text. It is read from the one compiled walker (compile), so it
// describes exactly the values the map form holds, with the schema's details already resolved:
//
//   - references and named types are resolved: Schema is never an *avro.RefSchema, and a
//     recursive type is a cycle of Shapes (a reader that descends must bound its depth);
//   - a union of null and one other type is the Shape of that type with Optional set; a union of
//     more types stays its *avro.UnionSchema (the map form writes its first non-null type but
//     decodes any: event schemas hold no such union, the schema lint refuses them);
//   - a primitive type, with its logical type, stays its *avro.PrimitiveSchema; the map form holds
//     values of schemas.LeafTypes only (the schema lint refuses any other), so a reader maps those.
//
// Shapes are shared by every caller and must not be modified.
type Shape struct {
	// Schema is the type: an *avro.RecordSchema, *avro.EnumSchema, *avro.ArraySchema,
	// *avro.MapSchema, *avro.PrimitiveSchema, *avro.NullSchema (also a union of null alone) or
	// *avro.UnionSchema (a union of more than one other type, or of none).
	Schema avro.Schema
	// Optional reports that nil is a value: the type is a union that has null among its types.
	// Fields and Elem are those of the other type.
	Optional bool
	// Fields are a record's fields, in the schema's order.
	Fields []ShapeField
	// Elem is an array's items, or a map's values (a map's keys are strings).
	Elem *Shape
}

// ShapeField is one field of a record's Shape.
type ShapeField struct {
	Name string
	// PII reports that the field is marked as personal data (schemas.IsPII).
	PII   bool
	Shape *Shape
}

// ShapeOf returns the Shape of s.
func ShapeOf(s avro.Schema) *Shape { return compiled(s).shape }

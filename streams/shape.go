package streams

import "github.com/hamba/avro/v2"

// Shape is a schema as the map form (see Envelope) holds its values, for the packages that lay
// events out in formats of their own (replay's CSV and Parquet columns) and so need the schema's
// structure rather than its Avro text. It is read from the one compiled walker (compile), so it
// describes exactly the values the map form holds, with the schema's details already resolved:
//
//   - references and named types are resolved: Schema is never an *avro.RefSchema, and a
//     recursive type is a cycle of Shapes (a reader that descends must bound its depth);
//   - a union is what the map form makes of it: nil when null is one of its types (Optional), else
//     a value of its first other type, whose Shape it is;
//   - a primitive type, with its logical type, stays its *avro.PrimitiveSchema; the map form holds
//     values of schemas.LeafTypes only (the schema lint refuses any other), so a reader maps those.
//
// Shapes are shared by every caller and must not be modified.
type Shape struct {
	// Schema is the type: an *avro.RecordSchema, *avro.EnumSchema, *avro.ArraySchema,
	// *avro.MapSchema, *avro.PrimitiveSchema or *avro.NullSchema (a union's first other type, or
	// the null type when the union has no other; an empty union stays itself).
	Schema avro.Schema
	// Optional reports that nil is a value: the type is a union that has null among its types.
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

package schemas

import "github.com/hamba/avro/v2"

// LeafTypes are the primitive types, with their logical types, that every part of the platform
// maps: the SDK's map form and its JSON edges (streams/leaf.go), the generated Go types
// (streams/events), the contract's JSON Schema and TypeScript (streams/contract) and replay's
// Parquet columns (streams/replay). Lint refuses any other primitive or logical type (rule
// "type"), so no event schema can hold a value that one of them would not know; each of those
// packages tests that it maps every entry, so a type added here fails the tests of every place
// that has yet to learn it. float and double are mapped although the float rule keeps them out of
// event schemas. Plain bytes are not a leaf type: the JSON edges have no form for them.
var LeafTypes = []string{
	`"string"`,
	`"boolean"`,
	`"int"`,
	`"long"`,
	`"float"`,
	`"double"`,
	`{"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}`,
	`{"type": "int", "logicalType": "date"}`,
	`{"type": "long", "logicalType": "timestamp-millis"}`,
}

// IsLeafType reports whether s is one of LeafTypes (a decimal of any precision and scale).
func IsLeafType(s *avro.PrimitiveSchema) bool {
	if l := s.Logical(); l != nil {
		switch l.Type() {
		case avro.Decimal:
			return s.Type() == avro.Bytes
		case avro.Date:
			return s.Type() == avro.Int
		case avro.TimestampMillis:
			return s.Type() == avro.Long
		}
		return false
	}
	return s.Type() != avro.Bytes
}

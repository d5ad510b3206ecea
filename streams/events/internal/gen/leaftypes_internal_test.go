package gen

import (
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

// TestGoTypeOfEveryLeafType: each of the types event schemas may hold (schemas.LeafTypes) has a
// Go type in the generated code, so a type added there fails here until it is mapped.
func TestGoTypeOfEveryLeafType(t *testing.T) {
	for _, text := range schemas.LeafTypes {
		s, err := avro.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		g := &generator{defs: map[string]*def{}, file: "x.avsc"}
		if typ, err := g.goType(s); err != nil || typ == "" {
			t.Errorf("%s: Go type %q, %v", text, typ, err)
		}
	}
}

package contract

import (
	"bytes"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

// TestContractMapsEveryLeafType: each of the types event schemas may hold (schemas.LeafTypes) has
// a JSON Schema and a TypeScript type, so a type added there fails here until it is mapped.
func TestContractMapsEveryLeafType(t *testing.T) {
	for _, text := range schemas.LeafTypes {
		s, err := avro.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		if js, err := jsonSchema(s, "x.avsc"); err != nil || js["type"] == nil {
			t.Errorf("%s: JSON Schema %v, %v", text, js, err)
		}
		g := &tsGen{file: "x.avsc", shared: map[string]string{}, sharedBy: map[string]string{}}
		if ts, err := g.ref(&bytes.Buffer{}, s); err != nil || ts == "" {
			t.Errorf("%s: TypeScript %q, %v", text, ts, err)
		}
	}
}

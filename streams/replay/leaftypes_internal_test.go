package replay

import (
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

// TestParquetMapsEveryLeafType: each of the types event schemas may hold (schemas.LeafTypes) has
// a Parquet column and a converter, so a type added there fails here until it is mapped.
func TestParquetMapsEveryLeafType(t *testing.T) {
	for _, text := range schemas.LeafTypes {
		s, err := avro.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		node, plan, err := pqField("x", s, "x")
		if err != nil || node == nil || plan.leaf == nil {
			t.Errorf("%s: Parquet node %v, converter %v, error %v", text, node, plan != nil && plan.leaf != nil, err)
		}
	}
}

package replay

import (
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
)

// TestParquetMapsEveryLeafType: each of the types event schemas may hold (schemas.LeafTypes) has
// a Parquet column and a converter, so a type added there fails here until it is mapped.
func TestParquetMapsEveryLeafType(t *testing.T) {
	for _, text := range schemas.LeafTypes {
		s, err := avro.Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		node, plan, err := pqField("x", streams.ShapeOf(s), "x", 0)
		if err != nil || node == nil || plan.leaf == nil {
			t.Errorf("%s: Parquet node %v, converter %v, error %v", text, node, plan != nil && plan.leaf != nil, err)
		}
	}
}

// TestRecursiveTypeIsRefused: a recursive type has no finite Parquet schema or CSV columns; the
// plans refuse it with an error instead of descending without end.
func TestRecursiveTypeIsRefused(t *testing.T) {
	s, err := avro.Parse(`{"type": "record", "name": "Node", "fields": [
		{"name": "label", "type": "string"},
		{"name": "next", "type": ["null", "Node"], "default": null}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pqField("x", streams.ShapeOf(s), "x", 0); err == nil || !strings.Contains(err.Error(), "x.next.next") {
		t.Errorf("parquet: %v, want an error naming x.next.next...", err)
	}
	p := &plan{csvRecords: map[string]bool{}}
	if err := p.csvColumns("x", streams.ShapeOf(s), 0); err == nil || !strings.Contains(err.Error(), "x.next.next") {
		t.Errorf("csv: %v, want an error naming x.next.next...", err)
	}
}

// TestParquetRefusesUnionsOfTwoTypes: a Parquet column has one type, and a union of two non-null
// types may hold either (the map form decodes any branch), so the plan refuses it by name.
func TestParquetRefusesUnionsOfTwoTypes(t *testing.T) {
	s, err := avro.Parse(`{"type": "record", "name": "R", "fields": [{"name": "either", "type": ["null", "long", "string"]}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pqField("x", streams.ShapeOf(s), "x", 0); err == nil || !strings.Contains(err.Error(), "x.either: only unions of null and one other type") {
		t.Errorf("parquet: %v, want an error naming x.either", err)
	}
}

package streams

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/hamba/avro/v2"
)

// DecodeData decodes data, one event's data in the JSON shape the SDK writes (Serde.JSON's "data",
// a local view's item), into a new PT, the generated type (package streams/events) of its event
// type and version. The data is checked against the type's schema as ParseJSON checks an event's
// (I-JSON, unknown fields, missing required fields, enum symbols, decimals: ErrInvalidEvent naming
// the paths), then decoded by hamba/avro as Handle decodes a record. ErrConfig when s has no
// schema PT was generated from.
func DecodeData[T any, PT interface {
	*T
	Event
}](s *Serde, data []byte) (PT, error) {
	out := PT(new(T))
	v, ok := s.set.Version(out.EventType(), out.EventVersion())
	if !ok || v.DataCanonical() != out.Schema() {
		return nil, fmt.Errorf("%w: %T: the Serde has no schema %s %s as the type was generated from (run go generate ./streams/events)",
			ErrConfig, out, out.EventType(), out.EventVersion())
	}
	if err := checkStrictJSON(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, &InvalidEventError{Fields: []FieldError{{Path: "data", Message: "malformed JSON: " + err.Error()}}}
	}
	errs := &fieldErrs{}
	native := fromJSON(v.Data, raw, "data", errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	body, err := compiled(v.Data).enc(nil, native)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if err := avro.Unmarshal(v.Data, body, out); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return out, nil
}

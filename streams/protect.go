package streams

import (
	"context"
	"fmt"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

// FieldProtector seals the personal-data fields of an event's data before a Serde encodes it and
// opens them after it decodes one, so records on Kafka carry ciphertext while handlers, dispatch
// bodies and replay see clear values. streams/privacy implements it (field-level encryption with a
// data key per data subject); the SDK only calls it.
//
// Seal returns the data to encode in place of env.Data (v's data shape, in the map form of
// Envelope.Data) and must not modify env.Data, which belongs to the caller. Open replaces the sealed
// values of env.Data in place (a subject whose key was destroyed reads back as the protector's
// erasure marker). An error of Seal fails the publish; an error of Open fails the decode, and
// IsRetryable decides whether the record is retried or dead-lettered.
type FieldProtector interface {
	Seal(ctx context.Context, env *Envelope, v *schemas.Version) (map[string]any, error)
	Open(ctx context.Context, env *Envelope, v *schemas.Version) error
}

// WithFieldProtector makes the Serde seal the data of every event it encodes and open the data of
// every event it decodes with p. Default: none (data is written and read as given). Typed events
// (Publish, Handle) pass through the map form when a protector is set, which costs one extra Avro
// encode and decode of their data.
func WithFieldProtector(p FieldProtector) SerdeOption {
	return func(c *serdeConfig) { c.protector = p }
}

// sealed returns env with its data sealed by the Serde's protector (env itself without one). The
// data of typed, when set, is taken to the map form first.
func (s *Serde) sealed(ctx context.Context, env *Envelope, v *schemas.Version, typed Event) (*Envelope, error) {
	p := s.cfg.protector
	if p == nil {
		return env, nil
	}
	if typed != nil {
		if err := checkTypedSchema(typed, v); err != nil {
			return nil, err
		}
		body, err := avro.Marshal(v.Data, typed)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
		}
		r := &binReader{buf: body}
		data, _ := s.codec(v.Data).dec(r).(map[string]any)
		if r.err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, r.err)
		}
		c := *env
		c.Data = data
		env = &c
	}
	data, err := p.Seal(ctx, env, v)
	if err != nil {
		return nil, err
	}
	c := *env
	c.Data = data
	return &c, nil
}

// opened opens env's data with the Serde's protector (a no-op without one); v is the version the
// data follows.
func (s *Serde) opened(ctx context.Context, env *Envelope, v *schemas.Version) error {
	if s.cfg.protector == nil || v == nil {
		return nil
	}
	return s.cfg.protector.Open(ctx, env, v)
}

// intoTyped sets out from the map-form data of env, written with v.
func (s *Serde) intoTyped(env *Envelope, v *schemas.Version, out Event) error {
	body, err := s.codec(v.Data).enc(nil, env.Data)
	if err != nil {
		return fmt.Errorf("%w: re-encoding opened data of %s %s: %v", ErrMalformedRecord, v.EventType, v, err)
	}
	if err := avro.Unmarshal(v.Data, body, out); err != nil {
		return fmt.Errorf("%w: re-decoding opened data of %s %s: %v", ErrMalformedRecord, v.EventType, v, err)
	}
	return nil
}

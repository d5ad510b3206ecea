package streams

import (
	"context"
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

// FieldProtector seals the personal-data fields of an event's data as a Serde encodes it and
// opens them after it decodes one, so records on Kafka carry ciphertext while handlers, dispatch
// bodies and replay see clear values. streams/privacy implements it (field-level encryption with a
// data key per data subject); the SDK only calls it.
//
// Seal appends to dst the Avro body of env written with v's envelope schema, body (which it must
// not modify: it is the Serde's), with the personal-data values of its data replaced by sealed
// ones of the same Avro types, so the record is still valid for v. env.Data is nil for a typed
// event (Publish): its data is only in body. Open replaces the sealed values of env.Data in place
// (a subject whose key was destroyed reads back as the protector's erasure marker). OpenBody is
// Open for a body written with v's envelope schema, before it is decoded (a typed event, Handle):
// it appends to dst the body with the sealed values of its data replaced by their clear ones,
// without modifying body. An error of Seal fails the
// publish; an error of Open or OpenBody fails the decode, and IsRetryable decides whether the
// record is retried or dead-lettered.
type FieldProtector interface {
	Seal(ctx context.Context, env *Envelope, v *schemas.Version, dst, body []byte) ([]byte, error)
	Open(ctx context.Context, env *Envelope, v *schemas.Version) error
	OpenBody(ctx context.Context, v *schemas.Version, dst, body []byte) ([]byte, error)
}

// WithFieldProtector makes the Serde seal the data of every event it encodes and open the data of
// every event it decodes with p. Default: none (data is written and read as given). A typed event
// (Handle) written with a schema that is no local version passes through the map form to be
// opened, which costs one extra Avro encode and decode of its data.
func WithFieldProtector(p FieldProtector) SerdeOption {
	return func(c *serdeConfig) { c.protector = p }
}

// sealed appends to b the body of env written with v (its data typed's when typed is set), sealed
// by the Serde's protector. The clear body is encoded in a buffer of clearBody.
func (s *Serde) sealed(ctx context.Context, b []byte, env *Envelope, v *schemas.Version, typed Event) ([]byte, error) {
	buf, release := clearBody()
	defer release()
	body, err := s.encodeBody((*buf)[:0], env, v, typed)
	if err != nil {
		return nil, err
	}
	*buf = body
	return s.cfg.protector.Seal(ctx, env, v, b, body)
}

var clearBodies = sync.Pool{New: func() any { return new([]byte) }}

// clearBody returns a buffer for an event's clear body (keep in it what is appended) and the
// func that wipes it and puts it back in the pool.
func clearBody() (*[]byte, func()) {
	buf := clearBodies.Get().(*[]byte)
	return buf, func() {
		clear((*buf)[:cap(*buf)])
		clearBodies.Put(buf)
	}
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
	body, err := compiled(v.Data).enc(nil, env.Data)
	if err != nil {
		return fmt.Errorf("%w: re-encoding opened data of %s %s: %v", ErrMalformedRecord, v.EventType, v, err)
	}
	if err := avro.Unmarshal(v.Data, body, out); err != nil {
		return fmt.Errorf("%w: re-decoding opened data of %s %s: %v", ErrMalformedRecord, v.EventType, v, err)
	}
	return nil
}

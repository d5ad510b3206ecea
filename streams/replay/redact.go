package replay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math/big"
	"slices"
	"strconv"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/privacy"
)

// redactSchema returns the shape of s once its pii fields are redacted: each becomes a string, or
// ["null", "string"] when it was optional. Subtrees without pii fields are s itself.
func redactSchema(s avro.Schema) (avro.Schema, error) {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		changed := false
		fields := make([]*avro.Field, len(s.Fields()))
		for i, f := range s.Fields() {
			t := f.Type()
			var err error
			if schemas.IsPII(f) {
				t = avro.NewPrimitiveSchema(avro.String, nil)
				if f.Type().Type() == avro.Union {
					t, err = avro.NewUnionSchema([]avro.Schema{avro.NewNullSchema(), t})
				}
			} else {
				t, err = redactSchema(t)
			}
			if err != nil {
				return nil, err
			}
			changed = changed || t != f.Type()
			if fields[i], err = avro.NewField(f.Name(), t); err != nil {
				return nil, fmt.Errorf("replay: redacted schema of %s: %w", s.FullName(), err)
			}
		}
		if !changed {
			return s, nil
		}
		rec, err := avro.NewRecordSchema(s.Name(), s.Namespace(), fields)
		if err != nil {
			return nil, fmt.Errorf("replay: redacted schema of %s: %w", s.FullName(), err)
		}
		return rec, nil
	case *avro.UnionSchema:
		types := slices.Clone(s.Types())
		changed := false
		for i, b := range types {
			r, err := redactSchema(b)
			if err != nil {
				return nil, err
			}
			changed = changed || r != b
			types[i] = r
		}
		if !changed {
			return s, nil
		}
		return avro.NewUnionSchema(types)
	case *avro.ArraySchema:
		items, err := redactSchema(s.Items())
		if err != nil || items == s.Items() {
			return s, err
		}
		return avro.NewArraySchema(items), nil
	case *avro.MapSchema:
		values, err := redactSchema(s.Values())
		if err != nil || values == s.Values() {
			return s, err
		}
		return avro.NewMapSchema(values), nil
	}
	return s, nil
}

// redactor replaces pii values by their keyed hash. Not safe for concurrent use (one per worker).
type redactor struct {
	mac hash.Hash
	buf []byte
	sum []byte
}

func newRedactor(key []byte) *redactor { return &redactor{mac: hmac.New(sha256.New, key)} }

// redactEnvelope replaces, in place, the pii values of env, an event of version v: its data as
// the data record marks them, and its metadata as the envelope's metadata record does (userId;
// see schemas.PIIMarksFile).
func (r *redactor) redactEnvelope(v *schemas.Version, env *streams.Envelope) {
	streams.ReplacePII(v.Data, env.Data, r.replace)
	for _, f := range v.Envelope.Fields() {
		md, ok := f.Type().(*avro.RecordSchema)
		if f.Name() != "metadata" || !ok {
			continue
		}
		for _, mf := range md.Fields() {
			if p := env.Field(mf.Name()); p != nil && *p != "" && schemas.IsPII(mf) {
				*p = r.hash(*p)
			}
		}
	}
}

// replace is the redacted form of a pii value: its keyed hash, or Erased as it is (an erased
// guest's value says so, hashed or not).
func (r *redactor) replace(v any) any {
	if v == privacy.Erased {
		return v
	}
	return r.hash(v)
}

// hash returns "h:" and the first 16 bytes of HMAC-SHA256(key, canonical form of v) in hex.
func (r *redactor) hash(v any) string {
	r.buf = canonical(r.buf[:0], v)
	r.mac.Reset()
	r.mac.Write(r.buf)
	r.sum = r.mac.Sum(r.sum[:0])
	return "h:" + hex.EncodeToString(r.sum[:16])
}

// canonical appends an unambiguous encoding of a generic value: a string is its bytes, so the same
// name or e-mail address hashes equally wherever it appears; anything else is tagged by its kind.
func canonical(b []byte, v any) []byte {
	switch x := v.(type) {
	case string:
		return append(b, x...)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, "\x00{"...)
		for _, k := range keys {
			b = strconv.AppendQuote(b, k)
			b = append(b, ':')
			b = canonicalElem(b, x[k])
		}
		return append(b, '}')
	case []any:
		b = append(b, "\x00["...)
		for _, e := range x {
			b = canonicalElem(b, e)
		}
		return append(b, ']')
	case time.Time:
		return x.UTC().AppendFormat(append(b, "\x00t"...), time.RFC3339Nano)
	case *big.Rat:
		return append(append(b, "\x00d"...), x.RatString()...)
	}
	return fmt.Appendf(append(b, "\x00v"...), "%T:%v", v, v)
}

// canonicalElem encodes a value nested in a map or array, where strings are quoted.
func canonicalElem(b []byte, v any) []byte {
	if s, ok := v.(string); ok {
		return append(strconv.AppendQuote(b, s), ',')
	}
	return append(canonical(b, v), ',')
}

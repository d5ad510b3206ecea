package streams

import (
	"encoding/json"
	"math"
	"math/big"
	"reflect"
	"time"

	"github.com/hamba/avro/v2"
)

// toAvro validates a generic value (see Envelope) against schema and returns it in the form
// hamba/avro's generic encoder takes: union branches other than null and primitives wrapped as
// {branchName: value}, record defaults filled in. Every problem is added to errs under path.
func toAvro(s avro.Schema, v any, path string, errs *fieldErrs) any {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		m, ok := v.(map[string]any)
		if !ok {
			errs.add(path, "expected a record (object), got %s", describe(v))
			return nil
		}
		out := make(map[string]any, len(s.Fields()))
		for _, f := range s.Fields() {
			fv, present := m[f.Name()]
			if !present || (fv == nil && f.Type().Type() != avro.Union) {
				if f.HasDefault() {
					out[f.Name()] = toAvro(f.Type(), f.Default(), join(path, f.Name()), errs)
					continue
				}
				errs.add(join(path, f.Name()), "required field is missing")
				continue
			}
			out[f.Name()] = toAvro(f.Type(), fv, join(path, f.Name()), errs)
		}
		if len(m) > len(out) || len(m) > len(s.Fields()) {
			for k := range m {
				if _, known := out[k]; !known && !hasField(s, k) {
					errs.add(join(path, k), "unknown field (not in schema %s)", s.FullName())
				}
			}
		}
		return out
	case *avro.UnionSchema:
		if v == nil {
			if !s.Nullable() {
				errs.add(path, "null is not allowed")
			}
			return nil
		}
		for _, branch := range s.Types() {
			if branch.Type() == avro.Null {
				continue
			}
			inner := toAvro(branch, v, path, errs)
			if isPrimitive(branch) {
				return inner
			}
			return map[string]any{unionName(branch): inner}
		}
		errs.add(path, "no branch of the union takes %s", describe(v))
		return nil
	case *avro.EnumSchema:
		str, ok := v.(string)
		if !ok {
			errs.add(path, "expected an enum symbol of %s, got %s", s.FullName(), describe(v))
			return nil
		}
		for _, sym := range s.Symbols() {
			if sym == str {
				return str
			}
		}
		errs.add(path, "%q is not a symbol of %s %v", str, s.FullName(), s.Symbols())
		return nil
	case *avro.ArraySchema:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice || rv.Type().Elem().Kind() == reflect.Uint8 {
			errs.add(path, "expected an array, got %s", describe(v))
			return nil
		}
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = toAvro(s.Items(), rv.Index(i).Interface(), index(path, i), errs)
		}
		return out
	case *avro.MapSchema:
		m, ok := v.(map[string]any)
		if !ok {
			errs.add(path, "expected a map (object), got %s", describe(v))
			return nil
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = toAvro(s.Values(), e, join(path, k), errs)
		}
		return out
	case *avro.PrimitiveSchema:
		return primitiveToAvro(s, v, path, errs)
	}
	errs.add(path, "schema type %s is not supported", s.Type())
	return nil
}

func primitiveToAvro(s *avro.PrimitiveSchema, v any, path string, errs *fieldErrs) any {
	if l := s.Logical(); l != nil {
		switch l.Type() {
		case avro.Decimal:
			ds := l.(*avro.DecimalLogicalSchema)
			switch d := v.(type) {
			case *big.Rat:
				if d == nil {
					break
				}
				return checkDecimal(d, ds, path, errs)
			case string:
				r, ok := new(big.Rat).SetString(d)
				if !ok || !decimalRe.MatchString(d) {
					errs.add(path, "expected a decimal string like \"1234.50\", got %q", d)
					return nil
				}
				return checkDecimal(r, ds, path, errs)
			}
			errs.add(path, "expected a decimal (*big.Rat or decimal string), got %s", describe(v))
			return nil
		case avro.Date, avro.TimestampMillis:
			t, ok := v.(time.Time)
			if !ok {
				errs.add(path, "expected a time.Time for %s, got %s", l.Type(), describe(v))
				return nil
			}
			if l.Type() == avro.Date {
				return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
			}
			return t.UTC().Truncate(time.Millisecond)
		}
	}
	switch s.Type() {
	case avro.String:
		if str, ok := v.(string); ok {
			return str
		}
	case avro.Boolean:
		if b, ok := v.(bool); ok {
			return b
		}
	case avro.Int:
		if n, ok := asInt64(v); ok {
			if n < math.MinInt32 || n > math.MaxInt32 {
				errs.add(path, "%d does not fit in an int (32 bits)", n)
				return nil
			}
			return int(n)
		}
	case avro.Long:
		if n, ok := asInt64(v); ok {
			return n
		}
	case avro.Double, avro.Float:
		switch f := v.(type) {
		case float64:
			return f
		case float32:
			return f
		}
	case avro.Bytes:
		if b, ok := v.([]byte); ok {
			return b
		}
	case avro.Null:
		if v == nil {
			return nil
		}
	}
	errs.add(path, "expected %s, got %s", s.Type(), describe(v))
	return nil
}

func checkDecimal(r *big.Rat, ds *avro.DecimalLogicalSchema, path string, errs *fieldErrs) *big.Rat {
	scaled := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(ds.Scale())), nil)))
	if !scaled.IsInt() {
		errs.add(path, "%s has more than %d decimal places", r.FloatString(ds.Scale()+4), ds.Scale())
		return nil
	}
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(ds.Precision())), nil)
	if new(big.Int).Abs(scaled.Num()).Cmp(limit) >= 0 {
		errs.add(path, "%s exceeds decimal(%d,%d)", r.FloatString(ds.Scale()), ds.Precision(), ds.Scale())
		return nil
	}
	return r
}

func asInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

// fromAvro turns hamba/avro's generic decoding of schema into the generic values of Envelope:
// unions unwrapped, nulls as nil.
func fromAvro(s avro.Schema, v any) any {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		m, _ := v.(map[string]any)
		for _, f := range s.Fields() {
			if needsWalk(f.Type()) {
				m[f.Name()] = fromAvro(f.Type(), m[f.Name()])
			}
		}
		return m
	case *avro.UnionSchema:
		if v == nil {
			return nil
		}
		if w, ok := v.(map[string]any); ok && len(w) == 1 {
			for _, branch := range s.Types() {
				if inner, ok := w[unionName(branch)]; ok && !isPrimitive(branch) {
					return fromAvro(branch, inner)
				}
			}
		}
		for _, branch := range s.Types() {
			if branch.Type() != avro.Null {
				return fromAvro(branch, v)
			}
		}
		return v
	case *avro.ArraySchema:
		a, _ := v.([]any)
		if needsWalk(s.Items()) {
			for i := range a {
				a[i] = fromAvro(s.Items(), a[i])
			}
		}
		return a
	case *avro.MapSchema:
		m, _ := v.(map[string]any)
		if needsWalk(s.Values()) {
			for k, e := range m {
				m[k] = fromAvro(s.Values(), e)
			}
		}
		return m
	}
	return v
}

// needsWalk reports whether a decoded value of s may contain wrapped unions.
func needsWalk(s avro.Schema) bool {
	switch s.Type() {
	case avro.Record, avro.Union, avro.Array, avro.Map, avro.Ref:
		return true
	}
	return false
}

func isPrimitive(s avro.Schema) bool {
	_, ok := s.(*avro.PrimitiveSchema)
	return ok
}

// unionName is the key hamba/avro uses for a wrapped union branch.
func unionName(s avro.Schema) string {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	return string(s.Type())
}

func hasField(s *avro.RecordSchema, name string) bool {
	for _, f := range s.Fields() {
		if f.Name() == name {
			return true
		}
	}
	return false
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func index(path string, i int) string {
	return path + "[" + itoa(i) + "]"
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }

func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case float64, float32, json.Number:
		return "number"
	}
	return reflect.TypeOf(v).String()
}

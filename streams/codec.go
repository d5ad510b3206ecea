package streams

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/internal/decimal"
)

// conform is the one structural walker of generic values (see Envelope) against a schema, for
// Go values (validate) and JSON values (fromJSON): records (missing, null and unknown fields,
// defaults), unions (null, or the first non-null branch), enum symbols, arrays and maps are
// checked the same way, every problem added to errs under its path; leaf checks or converts a
// primitive value; with dates, date strings (schemas.IsDateString) must be YYYY-MM-DD, as data about
// to be published must (Serde.checkNew). It returns the value with every leaf as leaf returned it
// and every absent optional field nil (nil where there was a problem).
func conform(s avro.Schema, v any, path string, errs *fieldErrs, leaf func(*avro.PrimitiveSchema, any, string, *fieldErrs) any, dates bool) any {
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
			switch {
			case (!present || fv == nil) && f.Type().Type() == avro.Union:
				out[f.Name()] = nil
			case !present && f.HasDefault():
				out[f.Name()] = fromAvro(f.Type(), f.Default())
			case !present || fv == nil:
				errs.add(join(path, f.Name()), "required field is missing")
			default:
				fv = conform(f.Type(), fv, join(path, f.Name()), errs, leaf, dates)
				if str, ok := fv.(string); ok && dates && schemas.IsDateString(f) {
					checkDateString(str, join(path, f.Name()), errs)
				}
				out[f.Name()] = fv
			}
		}
		for k := range m {
			if !hasField(s, k) {
				errs.add(join(path, cut(k)), "unknown field (not in schema %s)", s.FullName())
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
			if branch.Type() != avro.Null {
				return conform(branch, v, path, errs, leaf, dates)
			}
		}
		errs.add(path, "no branch of the union takes %s", describe(v))
	case *avro.EnumSchema:
		str, ok := v.(string)
		if !ok {
			errs.add(path, "expected an enum symbol of %s %v, got %s", s.FullName(), s.Symbols(), describe(v))
			return nil
		}
		if slices.Contains(s.Symbols(), str) {
			return str
		}
		errs.add(path, "%s is not a symbol of %s %v", excerpt(str), s.FullName(), s.Symbols())
	case *avro.ArraySchema:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice || rv.Type().Elem().Kind() == reflect.Uint8 {
			errs.add(path, "expected an array, got %s", describe(v))
			return nil
		}
		out := make([]any, rv.Len())
		for i := range rv.Len() {
			out[i] = conform(s.Items(), rv.Index(i).Interface(), index(path, i), errs, leaf, dates)
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
			out[k] = conform(s.Values(), e, join(path, cut(k)), errs, leaf, dates)
		}
		return out
	case *avro.PrimitiveSchema:
		return leaf(s, v, path, errs)
	case *avro.NullSchema:
		if v != nil {
			errs.add(path, "expected null, got %s", describe(v))
		}
	default:
		errs.add(path, "schema type %s is not supported", s.Type())
	}
	return nil
}

// validate checks a generic value against schema and adds every problem to errs under its path.
// It names what the compiled codec only refuses.
func validate(s avro.Schema, v any, path string, errs *fieldErrs) {
	conform(s, v, path, errs, validatePrimitive, false)
}

// validatePrimitive checks a Go value of s (see Envelope) and returns it, as it is.
func validatePrimitive(s *avro.PrimitiveSchema, v any, path string, errs *fieldErrs) any {
	if l := s.Logical(); l != nil {
		switch l.Type() {
		case avro.Decimal:
			ds := l.(*avro.DecimalLogicalSchema)
			switch d := v.(type) {
			case *big.Rat:
				if d != nil {
					checkDecimal(d, ds, path, errs)
					return v
				}
			case string:
				r, ok := new(big.Rat).SetString(d)
				if !ok || !decimalRe.MatchString(d) {
					errs.add(path, "expected a decimal string like \"1234.50\", got %q", d)
					return v
				}
				checkDecimal(r, ds, path, errs)
				return v
			}
			errs.add(path, "expected a decimal (*big.Rat or decimal string), got %s", describe(v))
			return v
		case avro.Date, avro.TimestampMillis:
			if _, ok := v.(time.Time); !ok {
				errs.add(path, "expected a time.Time for %s, got %s", l.Type(), describe(v))
			}
			return v
		}
	}
	ok := false
	switch s.Type() {
	case avro.String:
		_, ok = v.(string)
	case avro.Boolean:
		_, ok = v.(bool)
	case avro.Int:
		var n int64
		if n, ok = asInt64(v); ok && (n < math.MinInt32 || n > math.MaxInt32) {
			errs.add(path, "%d does not fit in an int (32 bits)", n)
			return v
		}
	case avro.Long:
		_, ok = asInt64(v)
	case avro.Double:
		_, ok = v.(float64)
	case avro.Float:
		_, ok = v.(float32)
	case avro.Bytes:
		_, ok = v.([]byte)
	}
	if !ok {
		errs.add(path, "expected %s, got %s", s.Type(), describe(v))
	}
	return v
}

// checkDateString names a string date field (schemas.IsDateString) that is not YYYY-MM-DD, a day of
// the calendar. The value is not repeated: such fields are personal data.
func checkDateString(s, path string, errs *fieldErrs) {
	if !isDateString(s) {
		errs.add(path, "must be an ISO 8601 calendar date, YYYY-MM-DD (%d bytes given)", len(s))
	}
}

// isDateString reports whether s is a date as time.DateOnly writes it.
func isDateString(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

func checkDecimal(r *big.Rat, ds *avro.DecimalLogicalSchema, path string, errs *fieldErrs) *big.Rat {
	spec := decimal.New(ds.Precision(), ds.Scale())
	if spec.Fits(r) {
		return r
	}
	switch _, err := spec.Unscaled(r); {
	case errors.Is(err, decimal.ErrScale):
		errs.add(path, "%s has more than %d decimal places", r.FloatString(ds.Scale()+4), ds.Scale())
		return nil
	case err != nil:
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
	return path + "[" + strconv.Itoa(i) + "]"
}

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

package streams

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/internal/decimal"
)

// leaf is a primitive Avro type, with its logical type, as the map form (see Envelope) holds it.
// It is every operation on such a value, in one place: the compiled codec (avrocodec.go) reaches a
// primitive value only through its leaf (conform through check or fromJSON, the JSON form through
// appendJSON, the binary form through enc and dec), so a new primitive or logical type is an entry
// of schemas.LeafTypes, one leaf and one case of leafOf.
//
// The Go value of each leaf is what check accepts and what dec returns; appendJSON and enc accept
// what check accepts.
type leaf interface {
	// check adds the problems of a Go value to errs under path and returns the value as it is.
	check(v any, path string, errs *fieldErrs) any
	// fromJSON converts a JSON value (decoded with UseNumber) to the leaf's Go value, or adds its
	// problems to errs and returns nil.
	fromJSON(v any, path string, errs *fieldErrs) any
	// appendJSON appends the canonical JSON form of a Go value (see json.go), or returns an
	// *InvalidEventError naming path.
	appendJSON(b []byte, v any, path string) ([]byte, error)
	// enc appends the Avro binary form of a Go value, or returns errEncode; dec reads one value.
	enc(b []byte, v any) ([]byte, error)
	dec(r *binReader) any
}

// leafOf returns the leaf of s: one for each of schemas.LeafTypes, which Lint holds event schemas
// to.
func leafOf(s *avro.PrimitiveSchema) leaf {
	if !schemas.IsLeafType(s) {
		return unsupportedLeaf{fmt.Errorf("%s is not one of the types the platform maps (schemas.LeafTypes)", s)}
	}
	if l := s.Logical(); l != nil {
		switch l.Type() {
		case avro.Decimal:
			ds := l.(*avro.DecimalLogicalSchema)
			return &decimalLeaf{ds: ds, spec: decimal.New(ds.Precision(), ds.Scale())}
		case avro.Date:
			return dateLeaf
		case avro.TimestampMillis:
			return timestampMillisLeaf
		}
		return unsupportedLeaf{fmt.Errorf("%s has no leaf", s)}
	}
	switch s.Type() {
	case avro.String:
		return stringLeaf
	case avro.Boolean:
		return booleanLeaf
	case avro.Int:
		return intLeaf{}
	case avro.Long:
		return longLeaf{}
	case avro.Float:
		return floatLeaf
	case avro.Double:
		return doubleLeaf
	}
	return unsupportedLeaf{fmt.Errorf("%s has no leaf", s)}
}

// expected adds "expected want, got <v's JSON type>" to errs under path and returns nil.
func expected(want string, v any, path string, errs *fieldErrs) any {
	errs.add(path, "expected %s, got %s", want, describe(v))
	return nil
}

// typedLeaf is a leaf whose Go value is exactly a T (string, bool, float32, float64, time.Time for
// a date or a timestamp-millis), named name in messages: the checks they share, and per type its
// JSON and binary forms.
type typedLeaf[T any] struct {
	name            string
	parseJSON       func(v any, path string, errs *fieldErrs) any // fromJSON
	appendCanonical func(b []byte, x T) []byte                    // the canonical JSON form
	appendAvro      func(b []byte, x T) []byte                    // the Avro binary form
	readAvro        func(r *binReader) T
}

var (
	stringLeaf = typedLeaf[string]{
		name:            "string",
		parseJSON:       jsonAs[string]("string"),
		appendCanonical: appendString,
		appendAvro:      appendBytes,
		readAvro:        (*binReader).str,
	}
	booleanLeaf = typedLeaf[bool]{
		name:            "boolean",
		parseJSON:       jsonAs[bool]("boolean"),
		appendCanonical: strconv.AppendBool,
		appendAvro: func(b []byte, x bool) []byte {
			if x {
				return append(b, 1)
			}
			return append(b, 0)
		},
		readAvro: func(r *binReader) bool { return r.byte() == 1 },
	}
	floatLeaf = typedLeaf[float32]{
		name: "float",
		parseJSON: func(v any, path string, errs *fieldErrs) any {
			n, ok := v.(json.Number)
			if f, err := strconv.ParseFloat(string(n), 32); ok && err == nil {
				return float32(f)
			}
			return expected("float", v, path, errs)
		},
		appendCanonical: func(b []byte, x float32) []byte {
			return strconv.AppendFloat(b, float64(x), 'g', -1, 32)
		},
		appendAvro: func(b []byte, x float32) []byte {
			return binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		},
		readAvro: func(r *binReader) float32 {
			return math.Float32frombits(binary.LittleEndian.Uint32(r.next(4)))
		},
	}
	doubleLeaf = typedLeaf[float64]{
		name: "double",
		parseJSON: func(v any, path string, errs *fieldErrs) any {
			n, ok := v.(json.Number)
			if f, err := n.Float64(); ok && err == nil {
				return f
			}
			return expected("double", v, path, errs)
		},
		appendCanonical: func(b []byte, x float64) []byte { return strconv.AppendFloat(b, x, 'g', -1, 64) },
		appendAvro: func(b []byte, x float64) []byte {
			return binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		},
		readAvro: func(r *binReader) float64 {
			return math.Float64frombits(binary.LittleEndian.Uint64(r.next(8)))
		},
	}
	// dateLeaf: an int date, its calendar day in the Go value, a JSON "YYYY-MM-DD".
	dateLeaf = typedLeaf[time.Time]{
		name: "a time.Time for date",
		parseJSON: func(v any, path string, errs *fieldErrs) any {
			str, ok := v.(string)
			if !ok {
				return expected("a date string YYYY-MM-DD", v, path, errs)
			}
			t, err := time.Parse(time.DateOnly, str)
			if err != nil {
				errs.add(path, "expected a date YYYY-MM-DD, got %s", excerpt(str))
				return nil
			}
			return t
		},
		appendCanonical: func(b []byte, t time.Time) []byte { return appendString(b, t.Format(time.DateOnly)) },
		appendAvro: func(b []byte, t time.Time) []byte {
			return appendLong(b, time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC).Unix()/86400)
		},
		readAvro: func(r *binReader) time.Time { return time.Unix(r.long()*86400, 0).UTC() },
	}
	// timestampMillisLeaf: a long timestamp-millis, a JSON RFC 3339 string (written in UTC with
	// milliseconds).
	timestampMillisLeaf = typedLeaf[time.Time]{
		name: "a time.Time for timestamp-millis",
		parseJSON: func(v any, path string, errs *fieldErrs) any {
			if t, ok := jsonTime(v, path, errs); ok {
				return t
			}
			return nil
		},
		appendCanonical: func(b []byte, t time.Time) []byte { return appendString(b, t.UTC().Format(jsonTimeLayout)) },
		appendAvro:      func(b []byte, t time.Time) []byte { return appendLong(b, t.UnixMilli()) },
		readAvro:        func(r *binReader) time.Time { return time.UnixMilli(r.long()).UTC() },
	}
)

// jsonAs returns the parseJSON of a leaf whose JSON value is its Go value, a T named name.
func jsonAs[T any](name string) func(v any, path string, errs *fieldErrs) any {
	return func(v any, path string, errs *fieldErrs) any {
		if x, ok := v.(T); ok {
			return x
		}
		return expected(name, v, path, errs)
	}
}

func (l typedLeaf[T]) check(v any, path string, errs *fieldErrs) any {
	if _, ok := v.(T); !ok {
		expected(l.name, v, path, errs)
	}
	return v
}

func (l typedLeaf[T]) fromJSON(v any, path string, errs *fieldErrs) any {
	return l.parseJSON(v, path, errs)
}

func (l typedLeaf[T]) appendJSON(b []byte, v any, path string) ([]byte, error) {
	if x, ok := v.(T); ok {
		return l.appendCanonical(b, x), nil
	}
	return nil, mismatch(path, l.name, v)
}

func (l typedLeaf[T]) enc(b []byte, v any) ([]byte, error) {
	if x, ok := v.(T); ok {
		return l.appendAvro(b, x), nil
	}
	return nil, errEncode
}

func (l typedLeaf[T]) dec(r *binReader) any { return l.readAvro(r) }

// intLeaf: int (int32 and int64 accepted when they fit in 32 bits), a JSON whole number.
type intLeaf struct{}

func (intLeaf) check(v any, path string, errs *fieldErrs) any {
	n, ok := asInt64(v)
	switch {
	case !ok:
		expected("int", v, path, errs)
	case n != int64(int32(n)):
		errs.add(path, "%d does not fit in an int (32 bits)", n)
	}
	return v
}

func (intLeaf) fromJSON(v any, path string, errs *fieldErrs) any {
	i, ok := wholeFromJSON("int", v, path, errs)
	if !ok {
		return nil
	}
	if i != int64(int32(i)) {
		errs.add(path, "%d does not fit in an int (32 bits)", i)
		return nil
	}
	return int(i)
}

func (intLeaf) appendJSON(b []byte, v any, path string) ([]byte, error) {
	if n, ok := asInt64(v); ok && n == int64(int32(n)) {
		return strconv.AppendInt(b, n, 10), nil
	}
	return nil, mismatch(path, "int", v)
}

func (intLeaf) enc(b []byte, v any) ([]byte, error) {
	n, ok := asInt64(v)
	if !ok || n != int64(int32(n)) {
		return nil, errEncode
	}
	return appendLong(b, n), nil
}

func (intLeaf) dec(r *binReader) any { return int(r.long()) }

// longLeaf: int64 (int and int32 accepted), a JSON whole number.
type longLeaf struct{}

func (longLeaf) check(v any, path string, errs *fieldErrs) any {
	if _, ok := asInt64(v); !ok {
		expected("long", v, path, errs)
	}
	return v
}

func (longLeaf) fromJSON(v any, path string, errs *fieldErrs) any {
	if i, ok := wholeFromJSON("long", v, path, errs); ok {
		return i
	}
	return nil
}

func (longLeaf) appendJSON(b []byte, v any, path string) ([]byte, error) {
	if n, ok := asInt64(v); ok {
		return strconv.AppendInt(b, n, 10), nil
	}
	return nil, mismatch(path, "long", v)
}

func (longLeaf) enc(b []byte, v any) ([]byte, error) {
	n, ok := asInt64(v)
	if !ok {
		return nil, errEncode
	}
	return appendLong(b, n), nil
}

func (longLeaf) dec(r *binReader) any { return r.long() }

// wholeFromJSON reads a JSON whole number for a leaf named want.
func wholeFromJSON(want string, v any, path string, errs *fieldErrs) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		expected(want, v, path, errs)
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	if err != nil {
		errs.add(path, "expected a whole number, got %s", cut(string(n)))
		return 0, false
	}
	return i, true
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

// decimalLeaf: a bytes-backed decimal, *big.Rat (a decimal string like "1234.50" is accepted as
// well), a JSON decimal string; in Avro the unscaled value as big-endian two's complement.
type decimalLeaf struct {
	ds   *avro.DecimalLogicalSchema
	spec decimal.Spec
}

func (l *decimalLeaf) check(v any, path string, errs *fieldErrs) any {
	r := l.rat(v)
	switch str, isString := v.(string); {
	case r != nil:
		checkDecimal(r, l.ds, path, errs)
	case isString:
		errs.add(path, "expected a decimal string like \"1234.50\", got %s", excerpt(str))
	default:
		errs.add(path, "expected a decimal (*big.Rat or decimal string), got %s", describe(v))
	}
	return v
}

func (l *decimalLeaf) fromJSON(v any, path string, errs *fieldErrs) any {
	str, ok := v.(string)
	if !ok {
		return expected("decimal string", v, path, errs)
	}
	r := l.rat(str)
	if r == nil {
		errs.add(path, "expected decimal string like \"1234.50\", got %s", excerpt(str))
		return nil
	}
	return checkDecimal(r, l.ds, path, errs)
}

func (l *decimalLeaf) appendJSON(b []byte, v any, path string) ([]byte, error) {
	if r := l.rat(v); r != nil {
		return appendString(b, r.FloatString(l.ds.Scale())), nil
	}
	return nil, mismatch(path, "decimal", v)
}

func (l *decimalLeaf) enc(b []byte, v any) ([]byte, error) {
	r := l.rat(v)
	if r == nil {
		return nil, errEncode
	}
	unscaled, err := l.spec.Unscaled(r)
	if err != nil {
		return nil, errEncode
	}
	raw := decimal.TwosComplement(unscaled)
	return append(appendLong(b, int64(len(raw))), raw...), nil
}

func (l *decimalLeaf) dec(r *binReader) any {
	return l.spec.Rat(decimal.FromTwosComplement(r.bytes()))
}

// rat returns the number of a Go value of the leaf, nil when v is not one.
func (*decimalLeaf) rat(v any) *big.Rat {
	switch d := v.(type) {
	case *big.Rat:
		return d
	case string:
		if decimalRe.MatchString(d) {
			r, _ := new(big.Rat).SetString(d)
			return r
		}
	}
	return nil
}

// checkDecimal adds to errs the problem of r as a value of ds (too many places or digits) and
// returns r, or nil when it has one.
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

// unsupportedLeaf is a primitive type the platform has no leaf for: every operation fails with err.
type unsupportedLeaf struct{ err error }

func (l unsupportedLeaf) check(v any, path string, errs *fieldErrs) any {
	errs.add(path, "%v", l.err)
	return v
}

func (l unsupportedLeaf) fromJSON(_ any, path string, errs *fieldErrs) any {
	errs.add(path, "%v", l.err)
	return nil
}

func (l unsupportedLeaf) appendJSON(_ []byte, _ any, path string) ([]byte, error) {
	return nil, &InvalidEventError{Fields: []FieldError{{Path: path, Message: l.err.Error()}}}
}

func (l unsupportedLeaf) enc([]byte, any) ([]byte, error) { return nil, l.err }

func (l unsupportedLeaf) dec(r *binReader) any { r.fail(l.err); return nil }

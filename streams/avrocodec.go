package streams

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

// codec is a schema compiled into every operation on the generic values of Envelope.Data (the
// map form): Avro binary encode and decode, the canonical JSON form, conform (checking a Go value,
// or converting a JSON one, naming every bad field), unwrap (hamba/avro's generic decoding into
// the map form) and the replacement of personal data (ReplacePII). compile is the one walker of a
// schema for the map form: it resolves references, named and recursive types, unions, defaults
// and the field marks once, and each operation then runs without looking at the schema again; a
// primitive value goes to its leaf (leaf.go).
//
// Typed events (package streams/events) go through hamba/avro's struct codec. The binary half
// earns its place over hamba/avro's generic codec: BenchmarkCodecReservationCreated measures
// encode+decode of reservation.created at about 6.8µs for it against 24.8µs for hamba/avro on the
// same generic map (and 4.2-4.9µs for hamba/avro on the generated type; two shared cores). On any
// encoding problem the caller conforms the value to name every bad field, and data written with
// another schema version is decoded through hamba/avro's resolution, then unwrapped.
type codec struct {
	enc func(b []byte, v any) ([]byte, error)
	dec func(r *binReader) any
	// json appends the canonical JSON form of a value (see json.go), or an error naming path.
	json func(b []byte, v any, path string) ([]byte, error)
	// conform is described at conform.
	conform func(v any, path string, errs *fieldErrs, op leafOp, dates bool) any
	// unwrap turns hamba/avro's generic decoding of a value into the map form, in place: unions
	// unwrapped, nulls as nil. nil where the two forms are the same (see native).
	unwrap func(v any) any
	// pii is ReplacePII for a non-null value of the node; nil where no field of it is marked pii.
	pii func(v any, fn func(any) any)
	// shape is ShapeOf; a union's is filled in once the whole schema is compiled.
	shape *Shape
}

// ReplacePII replaces, in place, the value of every field marked as personal data
// (schemas.IsPII) in v, a value of s in the map form (see Envelope), by what fn returns for it;
// null values are left as they are. It is how replay's --redact hashes personal data.
func ReplacePII(s avro.Schema, v any, fn func(any) any) {
	if c := compiled(s); c.pii != nil && v != nil {
		c.pii(v, fn)
	}
}

// mayHoldPII reports whether a value of c may hold a field marked pii: c has a pii operation, or
// is a recursive type still being compiled.
func mayHoldPII(c *codec) bool { return c.pii != nil || c.enc == nil }

// native returns v, decoded generically by hamba/avro, in the map form.
func (c *codec) native(v any) any {
	if c.unwrap == nil {
		return v
	}
	return c.unwrap(v)
}

// leafOp is what conform does to a primitive value: leaf.check or leaf.fromJSON.
type leafOp func(leaf, any, string, *fieldErrs) any

var errEncode = errors.New("value does not match the schema")

// compiledSchemas caches compiled's codecs by the schema itself (its identity), not by its
// fingerprint: two schemas of one canonical form may differ in their defaults.
var (
	compiledSchemas sync.Map // avro.Schema -> *codec
	compiledCount   atomic.Int64
)

// maxCompiled bounds compiledSchemas: a process that parses schemas without end (each registry
// answer anew) compiles them again after this many.
const maxCompiled = 1024

// compiled returns the codec of s, compiling it once.
func compiled(s avro.Schema) *codec {
	if c, ok := compiledSchemas.Load(s); ok {
		return c.(*codec)
	}
	if compiledCount.Add(1) > maxCompiled {
		compiledSchemas.Clear()
		compiledCount.Store(1)
	}
	c, _ := compiledSchemas.LoadOrStore(s, compile(s))
	return c.(*codec)
}

// conform checks a value of the map form (see Envelope) against schema s, or converts a JSON
// value to it (op leaf.check or leaf.fromJSON), adding every problem to errs under its path:
// records (missing, null and unknown fields, defaults), unions (null, or the first non-null
// branch), enum symbols, arrays and maps are checked the same way for both, and op checks or
// converts each primitive value. With dates, date strings (schemas.IsDateString) must be
// YYYY-MM-DD, as data about to be published must (Serde.checkNew). It returns the value with every
// primitive value as op returned it, every absent optional field nil and every other absent field
// with a default a copy of the default (nil where there was a problem).
func conform(s avro.Schema, v any, path string, errs *fieldErrs, op leafOp, dates bool) any {
	return compiled(s).conform(v, path, errs, op, dates)
}

// validate checks a generic value against schema and adds every problem to errs under its path.
// It names what the compiled codec only refuses.
func validate(s avro.Schema, v any, path string, errs *fieldErrs) {
	conform(s, v, path, errs, leaf.check, false)
}

// compile builds the codec of s.
func compile(s avro.Schema) *codec {
	cp := &compiler{named: map[string]*codec{}}
	c := cp.node(s)
	for _, f := range cp.after {
		f()
	}
	return c
}

// compiler is the state of one compile. Named types are compiled once, so recursive schemas
// terminate; what needs the codecs of a whole recursive type (the defaults) waits in after.
type compiler struct {
	named map[string]*codec
	after []func()
}

func (cp *compiler) node(s avro.Schema) *codec {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	if n, ok := s.(avro.NamedSchema); ok {
		if c, ok := cp.named[n.FullName()]; ok {
			return c
		}
	}
	c := &codec{shape: &Shape{Schema: s}}
	switch s := s.(type) {
	case *avro.RecordSchema:
		cp.named[s.FullName()] = c
		cp.record(c, s)
	case *avro.EnumSchema:
		cp.named[s.FullName()] = c
		compileEnum(c, s)
	case *avro.UnionSchema:
		cp.union(c, s)
	case *avro.ArraySchema:
		item := cp.node(s.Items())
		compileArray(c, item)
		c.shape.Elem = item.shape
	case *avro.MapSchema:
		value := cp.node(s.Values())
		compileMap(c, value)
		c.shape.Elem = value.shape
	case *avro.PrimitiveSchema:
		compileLeaf(c, leafOf(s))
	case *avro.NullSchema:
		compileNull(c)
	default:
		compileLeaf(c, unsupportedLeaf{fmt.Errorf("schema type %s is not supported", s.Type())})
	}
	return c
}

// record compiles a record. An absent field with a default is written as the default's Avro
// form, encoded once, and conformed to a fresh decoding of it (a value of its own per event).
func (cp *compiler) record(c *codec, s *avro.RecordSchema) {
	type field struct {
		name       string
		codec      *codec
		opt        bool   // has a default
		def        []byte // the default's Avro form
		defErr     error  // the default does not encode
		union      bool   // absent or null is null
		dateString bool   // schemas.IsDateString
		pii        bool   // schemas.IsPII
	}
	fields := make([]field, len(s.Fields()))
	index := make(map[string]int, len(fields))
	for i, f := range s.Fields() {
		fields[i] = field{name: f.Name(), codec: cp.node(f.Type()), opt: f.HasDefault(),
			union: f.Type().Type() == avro.Union, dateString: schemas.IsDateString(f), pii: schemas.IsPII(f)}
		if f.HasDefault() {
			cp.after = append(cp.after, func() {
				fc := &fields[i]
				fc.def, fc.defErr = fc.codec.enc(nil, fc.codec.native(f.Default()))
			})
		}
		index[f.Name()] = i
		c.shape.Fields = append(c.shape.Fields, ShapeField{Name: f.Name(), PII: fields[i].pii, Shape: fields[i].codec.shape})
	}
	c.enc = func(b []byte, v any) ([]byte, error) {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, errEncode
		}
		known := 0
		var err error
		for _, f := range fields {
			fv, present := m[f.name]
			switch {
			case present:
				known++
				if b, err = f.codec.enc(b, fv); err != nil {
					return nil, err
				}
			case f.opt && f.defErr == nil:
				b = append(b, f.def...)
			default:
				return nil, errEncode
			}
		}
		if known != len(m) {
			return nil, errEncode // unknown fields
		}
		return b, nil
	}
	c.dec = func(r *binReader) any {
		m := make(map[string]any, len(fields))
		for _, f := range fields {
			m[f.name] = f.codec.dec(r)
		}
		return m
	}
	c.json = func(b []byte, v any, path string) ([]byte, error) {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, mismatch(path, "record", v)
		}
		b = append(b, '{')
		var err error
		for i, f := range fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, f.name), ':')
			if b, err = f.codec.json(b, m[f.name], join(path, f.name)); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	c.conform = func(v any, path string, errs *fieldErrs, op leafOp, dates bool) any {
		m, ok := v.(map[string]any)
		if !ok {
			errs.add(path, "expected a record (object), got %s", describe(v))
			return nil
		}
		out := make(map[string]any, len(fields))
		for _, f := range fields {
			fv, present := m[f.name]
			switch {
			case (!present || fv == nil) && f.union:
				out[f.name] = nil
			case !present && f.opt && f.defErr != nil:
				errs.add(join(path, f.name), "the schema's default does not encode: %v", f.defErr)
			case !present && f.opt:
				out[f.name] = f.codec.dec(&binReader{buf: f.def})
			case !present || fv == nil:
				errs.add(join(path, f.name), "required field is missing")
			default:
				fv = f.codec.conform(fv, join(path, f.name), errs, op, dates)
				if str, ok := fv.(string); ok && dates && f.dateString {
					checkDateString(str, join(path, f.name), errs)
				}
				out[f.name] = fv
			}
		}
		for k := range m {
			if _, known := index[k]; !known {
				errs.add(join(path, cut(k)), unknownFieldMessage+"%s)", s.FullName())
			}
		}
		return out
	}
	c.unwrap = func(v any) any {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		for _, f := range fields {
			if fv, ok := m[f.name]; ok {
				m[f.name] = f.codec.native(fv)
			}
		}
		return m
	}
	// A record whose subtree holds no pii field (the usual case) has no pii operation.
	if slices.ContainsFunc(fields, func(f field) bool { return f.pii || mayHoldPII(f.codec) }) {
		c.pii = func(v any, fn func(any) any) {
			m, _ := v.(map[string]any)
			for _, f := range fields {
				switch fv := m[f.name]; {
				case fv == nil:
				case f.pii:
					m[f.name] = fn(fv)
				case f.codec.pii != nil:
					f.codec.pii(fv, fn)
				}
			}
		}
	}
}

func compileEnum(c *codec, s *avro.EnumSchema) {
	symbols := s.Symbols()
	index := make(map[string]int, len(symbols))
	boxed := make([]any, len(symbols)) // decoded symbols, boxed once instead of once per value
	for i, sym := range symbols {
		index[sym] = i
		boxed[i] = sym
	}
	c.enc = func(b []byte, v any) ([]byte, error) {
		str, ok := v.(string)
		i, known := index[str]
		if !ok || !known {
			return nil, errEncode
		}
		return appendLong(b, int64(i)), nil
	}
	c.dec = func(r *binReader) any {
		i := r.long()
		if i < 0 || i >= int64(len(symbols)) {
			r.fail(fmt.Errorf("enum %s index %d out of range", s.FullName(), i))
			return nil
		}
		return boxed[i]
	}
	c.json = func(b []byte, v any, path string) ([]byte, error) {
		str, ok := v.(string)
		if _, known := index[str]; !ok || !known {
			return nil, mismatch(path, "a symbol of "+s.FullName(), v)
		}
		return appendString(b, str), nil
	}
	c.conform = func(v any, path string, errs *fieldErrs, _ leafOp, _ bool) any {
		str, ok := v.(string)
		if !ok {
			errs.add(path, "expected an enum symbol of %s %v, got %s", s.FullName(), symbols, describe(v))
			return nil
		}
		if _, known := index[str]; !known {
			errs.add(path, "%s is not a symbol of %s %v", excerpt(str), s.FullName(), symbols)
			return nil
		}
		return str
	}
}

// union compiles the unions of the map form: a value is null (nil) or of the first
// non-null branch. Decoding takes any branch.
func (cp *compiler) union(c *codec, s *avro.UnionSchema) {
	types := s.Types()
	branches := make([]*codec, len(types))
	wrapped := map[string]*codec{} // the branches hamba/avro wraps, by the name it wraps them in
	nullIdx, valueIdx := -1, -1
	for i, t := range types {
		if t.Type() == avro.Null {
			nullIdx = i
		} else if valueIdx < 0 {
			valueIdx = i
		}
		branches[i] = cp.node(t)
		if !isPrimitive(t) {
			wrapped[unionName(t)] = branches[i]
		}
	}
	// The branch may be a recursive type still being compiled: its shape is copied at the end.
	cp.after = append(cp.after, func() {
		nonNull := len(types)
		if nullIdx >= 0 {
			nonNull--
		}
		switch {
		case nonNull == 1:
			*c.shape = *branches[valueIdx].shape
		case nonNull == 0 && nullIdx >= 0:
			*c.shape = Shape{Schema: types[nullIdx]}
		}
		c.shape.Optional = nullIdx >= 0
	})
	c.enc = func(b []byte, v any) ([]byte, error) {
		if v == nil {
			if nullIdx < 0 {
				return nil, errEncode
			}
			return appendLong(b, int64(nullIdx)), nil
		}
		if valueIdx < 0 {
			return nil, errEncode
		}
		return branches[valueIdx].enc(appendLong(b, int64(valueIdx)), v)
	}
	c.dec = func(r *binReader) any {
		i := r.long()
		if i < 0 || i >= int64(len(branches)) {
			r.fail(fmt.Errorf("union index %d out of range", i))
			return nil
		}
		return branches[i].dec(r)
	}
	c.json = func(b []byte, v any, path string) ([]byte, error) {
		switch {
		case v == nil && nullIdx >= 0:
			return append(b, "null"...), nil
		case v != nil && valueIdx >= 0:
			return branches[valueIdx].json(b, v, path)
		}
		return nil, mismatch(path, "union", v)
	}
	c.conform = func(v any, path string, errs *fieldErrs, op leafOp, dates bool) any {
		switch {
		case v == nil && nullIdx < 0:
			errs.add(path, "null is not allowed")
		case v == nil:
		case valueIdx < 0:
			errs.add(path, "no branch of the union takes %s", describe(v))
		default:
			return branches[valueIdx].conform(v, path, errs, op, dates)
		}
		return nil
	}
	c.unwrap = func(v any) any {
		if v == nil {
			return nil
		}
		if w, ok := v.(map[string]any); ok && len(w) == 1 {
			for name, inner := range w {
				if b, ok := wrapped[name]; ok {
					return b.native(inner)
				}
			}
		}
		if valueIdx < 0 {
			return v
		}
		return branches[valueIdx].native(v)
	}
	if valueIdx >= 0 && mayHoldPII(branches[valueIdx]) {
		b := branches[valueIdx]
		c.pii = func(v any, fn func(any) any) {
			if b.pii != nil {
				b.pii(v, fn)
			}
		}
	}
}

// compileArray compiles arrays: []any, or a typed slice ([]string, []int ...) from Go callers.
func compileArray(c *codec, item *codec) {
	c.enc = func(b []byte, v any) ([]byte, error) {
		a, ok := v.([]any)
		if !ok {
			return encodeSlice(b, v, item)
		}
		if len(a) > 0 {
			b = appendLong(b, int64(len(a)))
			var err error
			for _, e := range a {
				if b, err = item.enc(b, e); err != nil {
					return nil, err
				}
			}
		}
		return append(b, 0), nil
	}
	c.dec = func(r *binReader) any {
		out := []any{}
		for n := r.blockLen(); n > 0 && r.err == nil; n = r.blockLen() {
			for range n {
				out = append(out, item.dec(r))
			}
		}
		return out
	}
	c.json = func(b []byte, v any, path string) ([]byte, error) {
		rv := reflect.ValueOf(v)
		if !isArray(rv) {
			return nil, mismatch(path, "array", v)
		}
		b = append(b, '[')
		var err error
		for i := range rv.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = item.json(b, rv.Index(i).Interface(), index(path, i)); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	c.conform = func(v any, path string, errs *fieldErrs, op leafOp, dates bool) any {
		rv := reflect.ValueOf(v)
		if !isArray(rv) {
			errs.add(path, "expected an array, got %s", describe(v))
			return nil
		}
		out := make([]any, rv.Len())
		for i := range rv.Len() {
			out[i] = item.conform(rv.Index(i).Interface(), index(path, i), errs, op, dates)
		}
		return out
	}
	if mayHoldPII(item) {
		c.pii = func(v any, fn func(any) any) {
			a, _ := v.([]any)
			for _, e := range a {
				if e != nil && item.pii != nil {
					item.pii(e, fn)
				}
			}
		}
	}
	c.unwrap = func(v any) any {
		a, _ := v.([]any)
		for i := range a {
			if item.unwrap == nil {
				break
			}
			a[i] = item.native(a[i])
		}
		return v
	}
}

// isArray reports whether v holds a value of an Avro array: a slice other than []byte.
func isArray(v reflect.Value) bool {
	return v.Kind() == reflect.Slice && v.Type().Elem().Kind() != reflect.Uint8
}

// encodeSlice encodes typed slices ([]string, []int ...) given by Go callers.
func encodeSlice(b []byte, v any, item *codec) ([]byte, error) {
	rv := reflect.ValueOf(v)
	if !isArray(rv) {
		return nil, errEncode
	}
	if rv.Len() > 0 {
		b = appendLong(b, int64(rv.Len()))
		var err error
		for i := range rv.Len() {
			if b, err = item.enc(b, rv.Index(i).Interface()); err != nil {
				return nil, err
			}
		}
	}
	return append(b, 0), nil
}

// compileMap compiles maps, whose keys are written in sorted order.
func compileMap(c *codec, value *codec) {
	c.enc = func(b []byte, v any) ([]byte, error) {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, errEncode
		}
		if len(m) > 0 {
			b = appendLong(b, int64(len(m)))
			var err error
			for _, k := range sortedKeys(m) {
				b = appendBytes(b, k)
				if b, err = value.enc(b, m[k]); err != nil {
					return nil, err
				}
			}
		}
		return append(b, 0), nil
	}
	c.dec = func(r *binReader) any {
		out := map[string]any{}
		for n := r.blockLen(); n > 0 && r.err == nil; n = r.blockLen() {
			for range n {
				k := r.str()
				out[k] = value.dec(r)
			}
		}
		return out
	}
	c.json = func(b []byte, v any, path string) ([]byte, error) {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, mismatch(path, "map", v)
		}
		b = append(b, '{')
		var err error
		for i, k := range sortedKeys(m) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, k), ':')
			if b, err = value.json(b, m[k], join(path, k)); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	c.conform = func(v any, path string, errs *fieldErrs, op leafOp, dates bool) any {
		m, ok := v.(map[string]any)
		if !ok {
			errs.add(path, "expected a map (object), got %s", describe(v))
			return nil
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = value.conform(e, join(path, cut(k)), errs, op, dates)
		}
		return out
	}
	if mayHoldPII(value) {
		c.pii = func(v any, fn func(any) any) {
			m, _ := v.(map[string]any)
			for _, e := range m {
				if e != nil && value.pii != nil {
					value.pii(e, fn)
				}
			}
		}
	}
	c.unwrap = func(v any) any {
		m, _ := v.(map[string]any)
		for k, e := range m {
			if value.unwrap == nil {
				break
			}
			m[k] = value.native(e)
		}
		return v
	}
}

func compileLeaf(c *codec, l leaf) {
	c.enc, c.dec, c.json = l.enc, l.dec, l.appendJSON
	c.conform = func(v any, path string, errs *fieldErrs, op leafOp, _ bool) any { return op(l, v, path, errs) }
}

// compileNull compiles the null type, whose one value is nil.
func compileNull(c *codec) {
	c.enc = func(b []byte, v any) ([]byte, error) {
		if v != nil {
			return nil, errEncode
		}
		return b, nil
	}
	c.dec = func(*binReader) any { return nil }
	c.json = func(b []byte, v any, path string) ([]byte, error) {
		if v != nil {
			return nil, mismatch(path, "null", v)
		}
		return append(b, "null"...), nil
	}
	c.conform = func(v any, path string, errs *fieldErrs, _ leafOp, _ bool) any {
		if v != nil {
			errs.add(path, "expected null, got %s", describe(v))
		}
		return nil
	}
}

func appendLong(b []byte, n int64) []byte {
	return binary.AppendUvarint(b, uint64((n<<1)^(n>>63)))
}

func appendBytes(b []byte, s string) []byte {
	return append(appendLong(b, int64(len(s))), s...)
}

// binReader reads Avro binary; the first error sticks and later reads return zero values.
type binReader struct {
	buf []byte
	err error
	// text is the whole input as one string, when the reader was made by newTextReader; its
	// strings are then substrings of it, not copies of their own.
	text string
}

// newTextReader returns a reader of buf whose strings share one copy of buf: one allocation per
// record instead of one per string field. A string kept from the record keeps the whole copy,
// which is the size of the record, alive.
func newTextReader(buf []byte) *binReader {
	return &binReader{buf: buf, text: string(buf)}
}

func (r *binReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *binReader) long() int64 {
	if r.err != nil {
		return 0
	}
	u, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail(errors.New("truncated or overlong varint"))
		return 0
	}
	r.buf = r.buf[n:]
	return int64(u>>1) ^ -int64(u&1)
}

func (r *binReader) next(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.buf) {
		r.fail(fmt.Errorf("truncated: need %d bytes, have %d", n, len(r.buf)))
		return make([]byte, max(n, 8))
	}
	out := r.buf[:n:n]
	r.buf = r.buf[n:]
	return out
}

func (r *binReader) byte() byte { return r.next(1)[0] }

func (r *binReader) bytes() []byte {
	n := r.long()
	if n > int64(len(r.buf)) {
		r.fail(fmt.Errorf("truncated: length %d, have %d bytes", n, len(r.buf)))
		return nil
	}
	return r.next(int(n))
}

func (r *binReader) str() string {
	b := r.bytes()
	if r.text == "" || r.err != nil {
		return string(b)
	}
	end := len(r.text) - len(r.buf)
	return r.text[end-len(b) : end]
}

// blockLen reads an array or map block header; a negative count is followed by the block's size.
func (r *binReader) blockLen() int64 {
	n := r.long()
	if n < 0 {
		r.long()
		n = -n
	}
	if n > int64(len(r.buf)) {
		r.fail(fmt.Errorf("block of %d items in %d bytes", n, len(r.buf)))
		return 0
	}
	return n
}

// envelopeCodec encodes an Envelope straight from its fields, and decodes one straight into them,
// without building the generic map of the envelope (its data record is still in the map form).
type envelopeCodec struct {
	enc func(b []byte, env *Envelope, version string) ([]byte, error)
	// dec reads an envelope written with the schema; r.err is set when the body does not parse.
	dec func(r *binReader) *Envelope
}

// compileEnvelope returns the direct codec of an envelope schema, or nil when the schema's fields
// are not exactly envelope.avsc's (by name and type); callers then use the generic codec. A
// decoded envelope holds what the generic decoding and envelopeFromMap give (null userId as "",
// the timestamp in UTC).
func compileEnvelope(s *avro.RecordSchema) *envelopeCodec {
	type part struct {
		enc func(b []byte, env *Envelope, version string) ([]byte, error)
		dec func(r *binReader, env *Envelope)
	}
	isString := func(t avro.Schema) bool {
		p, ok := t.(*avro.PrimitiveSchema)
		return ok && p.Type() == avro.String && p.Logical() == nil
	}
	byName := map[string]envelopeField{}
	for _, f := range envelopeFields {
		byName[f.name] = f
	}
	var fields func(rec *avro.RecordSchema, top bool) []part
	fields = func(rec *avro.RecordSchema, top bool) []part {
		var parts []part
		for _, f := range rec.Fields() {
			name, t := f.Name(), f.Type()
			ef, known := byName[name]
			switch {
			case name == "version" && top && isString(t): // the version encoded with, which Prepare may have filled in
				parts = append(parts, part{
					enc: func(b []byte, _ *Envelope, version string) ([]byte, error) { return appendBytes(b, version), nil },
					dec: func(r *binReader, env *Envelope) { env.Version = r.str() },
				})
			case known && !ef.nullable && isString(t) && ef.meta != top:
				ptr := ef.ptr
				parts = append(parts, part{
					enc: func(b []byte, env *Envelope, _ string) ([]byte, error) { return appendBytes(b, *ptr(env)), nil },
					dec: func(r *binReader, env *Envelope) { *ptr(env) = r.str() },
				})
			case top && name == "timestamp":
				p, ok := t.(*avro.PrimitiveSchema)
				if !ok || p.Logical() == nil || p.Logical().Type() != avro.TimestampMillis {
					return nil
				}
				parts = append(parts, part{
					enc: func(b []byte, env *Envelope, _ string) ([]byte, error) {
						return appendLong(b, env.Timestamp.UnixMilli()), nil
					},
					dec: func(r *binReader, env *Envelope) { env.Timestamp = time.UnixMilli(r.long()).UTC() },
				})
			case top && name == "data":
				data := compiled(t)
				parts = append(parts, part{
					enc: func(b []byte, env *Envelope, _ string) ([]byte, error) { return data.enc(b, env.Data) },
					dec: func(r *binReader, env *Envelope) { env.Data, _ = data.dec(r).(map[string]any) },
				})
			case top && name == "metadata":
				md, ok := t.(*avro.RecordSchema)
				if !ok {
					return nil
				}
				sub := fields(md, false)
				if sub == nil {
					return nil
				}
				parts = append(parts, sub...)
			case known && ef.nullable && ef.meta && !top:
				u, ok := t.(*avro.UnionSchema)
				if !ok || len(u.Types()) != 2 {
					return nil
				}
				nullIdx, strIdx := int64(0), int64(1)
				if u.Types()[1].Type() == avro.Null {
					nullIdx, strIdx = 1, 0
				}
				if u.Types()[nullIdx].Type() != avro.Null || !isString(u.Types()[strIdx]) {
					return nil
				}
				ptr := ef.ptr
				parts = append(parts, part{
					enc: func(b []byte, env *Envelope, _ string) ([]byte, error) {
						v := *ptr(env)
						if v == "" {
							return appendLong(b, nullIdx), nil
						}
						return appendBytes(appendLong(b, strIdx), v), nil
					},
					dec: func(r *binReader, env *Envelope) {
						switch i := r.long(); i {
						case strIdx:
							*ptr(env) = r.str()
						case nullIdx:
						default:
							r.fail(fmt.Errorf("union index %d out of range", i))
						}
					},
				})
			default:
				return nil
			}
		}
		return parts
	}
	parts := fields(s, true)
	if parts == nil {
		return nil
	}
	return &envelopeCodec{
		enc: func(b []byte, env *Envelope, version string) ([]byte, error) {
			var err error
			for _, p := range parts {
				if b, err = p.enc(b, env, version); err != nil {
					return nil, err
				}
			}
			return b, nil
		},
		dec: func(r *binReader) *Envelope {
			env := &Envelope{}
			for _, p := range parts {
				p.dec(r, env)
			}
			return env
		},
	}
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

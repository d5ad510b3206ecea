package streams

import (
	"context"
	"fmt"
	"math/big"
	"reflect"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/internal/decimal"
)

// Event is a typed event: the data record of one event type at one schema version, as generated
// into package streams/events (events.ReservationCreatedV1 and the others). Typed events are
// encoded and decoded by hamba/avro's struct codec through their avro tags; Publish, PublishDual
// and Handle take them.
type Event interface {
	// EventType is the catalog's event type, e.g. "reservation.created".
	EventType() string
	// EventVersion is the "major.minor" schema version the type was generated from.
	EventVersion() string
	// Schema is the data record's schema in Parsing Canonical Form; it must equal the Serde's
	// schema of that version (the generated code and the schema set come from the same schemas/).
	Schema() string
}

// avroEnvelope is the envelope as hamba/avro's struct codec reads and writes it, the data record
// being a typed Event.
type avroEnvelope struct {
	EventID   string       `avro:"eventId"`
	EventType string       `avro:"eventType"`
	Version   string       `avro:"version"`
	Timestamp time.Time    `avro:"timestamp"`
	Data      any          `avro:"data"`
	Metadata  avroMetadata `avro:"metadata"`
}

type avroMetadata struct {
	TenantID      string  `avro:"tenantId"`
	Source        string  `avro:"source"`
	CorrelationID string  `avro:"correlationId"`
	UserID        *string `avro:"userId"`
	TraceID       string  `avro:"traceId"`
}

// Publish publishes the typed event e for tenantID and returns after the broker acknowledged it
// or it was spooled, like Producer.Publish: eventId, timestamp, correlationId and traceId are
// filled in the same way (the latter two from ctx), ownership is checked, and data the schema
// refuses (an enum symbol it does not have, a nil or too precise decimal) is ErrInvalidEvent.
func Publish(ctx context.Context, p *Producer, tenantID string, e Event) (Result, error) {
	env := typedEnvelope(tenantID, e)
	rec, err := p.recordOf(ctx, env, e)
	if err != nil {
		return Result{}, err
	}
	rs, err := p.send(ctx, []*kgo.Record{rec})
	if err != nil {
		return Result{}, err
	}
	return rs[0], nil
}

// PublishAsync publishes the typed event e for tenantID without waiting, like
// Producer.PublishAsync: done is called exactly once with the result, from a franz-go goroutine
// (keep it short), and refusals are reported through done before PublishAsync returns.
func PublishAsync(ctx context.Context, p *Producer, tenantID string, e Event, done func(Result, error)) {
	rec, err := p.recordOf(ctx, typedEnvelope(tenantID, e), e)
	if err != nil {
		done(Result{}, err)
		return
	}
	p.produce(ctx, rec, done)
}

// PublishDual publishes one event in several major versions (a migration's dual publishing), like
// Producer.PublishDual: every copy carries the same eventId, timestamp, correlation and trace. All
// events must be of one event type.
func PublishDual(ctx context.Context, p *Producer, tenantID string, es ...Event) ([]Result, error) {
	envs := make([]*Envelope, len(es))
	for i, e := range es {
		envs[i] = typedEnvelope(tenantID, e)
	}
	return p.publishDual(ctx, envs, es)
}

func typedEnvelope(tenantID string, e Event) *Envelope {
	return &Envelope{EventType: e.EventType(), Version: e.EventVersion(), Metadata: Metadata{TenantID: tenantID}}
}

// Handle registers h for the events of PT's event type and major version (Consumer.Handle):
// records are decoded straight into a new *T (in the version T was generated from) by hamba/avro,
// and m.Envelope holds the envelope fields with a nil Data. Registering two majors of one event
// type (events.XV1 and events.XV2) is dual subscription.
func Handle[T any, PT interface {
	*T
	Event
}](c *Consumer, h func(ctx context.Context, m *Message, e PT) error) {
	HandleEvent(c, func() Event { return PT(new(T)) }, func(ctx context.Context, m *Message, e Event) error {
		return h(ctx, m, e.(PT))
	})
}

// HandleEvent is Handle for code that picks its types at run time: newEvent returns a new zero
// value of one generated type (a pointer to a struct, such as what events.New returns), and h gets
// each event of that type's event type and major version decoded into a value newEvent returned.
// A newEvent whose values are not pointers to structs makes Run fail with ErrConfig.
func HandleEvent(c *Consumer, newEvent func() Event, h func(ctx context.Context, m *Message, e Event) error) {
	zero := newEvent()
	t := reflect.TypeOf(zero)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		c.failRegistration(fmt.Errorf("%w: handler for %T: a typed event is a pointer to a generated struct", ErrConfig, zero))
		return
	}
	reader, ok := c.serde.set.Version(zero.EventType(), zero.EventVersion())
	if !ok || reader.DataCanonical() != zero.Schema() {
		c.failRegistration(fmt.Errorf("%w: handler for %T: the Serde has no schema %s %s as the type was generated from (run go generate ./streams/events)",
			ErrConfig, zero, zero.EventType(), zero.EventVersion()))
		return
	}
	typed := &typedRoute{reader: reader, new: newEvent}
	if f := c.cat.OrderingKey(reader.EventType); f != "" {
		typed.key = stringField(t.Elem(), f)
	}
	c.handle(reader.EventType, reader.Major, func(ctx context.Context, m *Message) error {
		e := m.event
		if e == nil || reflect.TypeOf(e) != t {
			// Decoded generically (a record without headers): decode it again, typed.
			e = newEvent()
			env, err := c.serde.decodeTyped(ctx, m.Record.Value, reader, e)
			if err != nil {
				return Permanent(err)
			}
			m.Envelope, m.event = env, e
		}
		return h(ctx, m, e)
	}, typed)
}

// typedRoute is how a typed handler's records are decoded.
type typedRoute struct {
	reader *schemas.Version
	new    func() Event
	key    func(Event) string // the ordering key field's value (nil: the record key)
}

// stringField returns a function reading the string or *string field of a struct whose avro tag
// is name (nil when there is none).
func stringField(t reflect.Type, name string) func(Event) string {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get("avro") != name {
			continue
		}
		idx := f.Index
		switch {
		case f.Type.Kind() == reflect.String:
			return func(e Event) string { return reflect.ValueOf(e).Elem().FieldByIndex(idx).String() }
		case f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.String:
			return func(e Event) string {
				v := reflect.ValueOf(e).Elem().FieldByIndex(idx)
				if v.IsNil() {
					return ""
				}
				return v.Elem().String()
			}
		}
	}
	return nil
}

// encodeTyped appends the Avro body of env with typed as its data, written with v by hamba/avro.
func (s *Serde) encodeTyped(b []byte, env *Envelope, v *schemas.Version, typed Event) ([]byte, error) {
	if err := checkTypedSchema(typed, v); err != nil {
		return nil, err
	}
	errs := &fieldErrs{}
	s.checkEnvelope(env, errs)
	if rv := reflect.ValueOf(typed); rv.IsNil() {
		errs.add("data", "must be set")
	} else if check := valueChecker(v.Data, rv.Type()); check != nil && !check(rv, "", nil) {
		check(rv, "data", errs)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	ae := avroEnvelope{EventID: env.EventID, EventType: env.EventType, Version: v.String(), Timestamp: env.Timestamp, Data: typed,
		Metadata: avroMetadata{TenantID: env.Metadata.TenantID, Source: env.Metadata.Source, CorrelationID: env.Metadata.CorrelationID,
			TraceID: env.Metadata.TraceID}}
	if env.Metadata.UserID != "" {
		ae.Metadata.UserID = &env.Metadata.UserID
	}
	w := typedWriters.Get().(*avro.Writer)
	w.Reset(nil)
	w.Error = nil
	w.WriteVal(v.Envelope, &ae)
	err := w.Error
	if err == nil {
		b = append(b, w.Buffer()...)
	}
	if cap(w.Buffer()) <= maxValueHint {
		typedWriters.Put(w)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return b, nil
}

// typedWriters recycles hamba/avro writers for encodeTyped, which appends a writer's bytes to the
// record's value: avro.Marshal would return them in a copy of its own. A writer grown past
// maxValueHint is not kept.
var typedWriters = sync.Pool{New: func() any { return avro.NewWriter(nil, 1024) }}

// checkTypedSchema refuses a typed event generated from another schema than v's data.
func checkTypedSchema(typed Event, v *schemas.Version) error {
	if typed.Schema() != v.DataCanonical() {
		return fmt.Errorf("%w: %T was generated from another %s %s schema than the Serde's (run go generate ./streams/events)",
			ErrUnknownEventType, typed, v.EventType, v)
	}
	return nil
}

// decodeTyped decodes a wire-format value into out, in reader's version, and returns its envelope
// (Data nil).
func (s *Serde) decodeTyped(ctx context.Context, value []byte, reader *schemas.Version, out Event) (*Envelope, error) {
	id, body, w, err := s.wire(ctx, value)
	if err != nil {
		return nil, err
	}
	if s.cfg.protector != nil {
		if w.version == nil { // no local plan of its personal data: opened in the map form, then into out
			env, err := s.DecodeAs(ctx, value, reader)
			if err != nil {
				return nil, err
			}
			if err := s.intoTyped(env, reader, out); err != nil {
				return nil, err
			}
			env.Data = nil
			return env, nil
		}
		buf, release := clearBody()
		defer release()
		if body, err = s.cfg.protector.OpenBody(ctx, w.version, (*buf)[:0], body); err != nil {
			return nil, err
		}
		*buf = body[:0]
	}
	var schema avro.Schema = w.schema
	if w.schema.Fingerprint() != reader.Envelope.Fingerprint() {
		if schema, err = s.resolve(id, w, reader); err != nil {
			return nil, err
		}
	}
	ae := avroEnvelope{Data: out}
	if err := avro.Unmarshal(schema, body, &ae); err != nil {
		return nil, fmt.Errorf("%w: schema id %d: %v", ErrMalformedRecord, id, err)
	}
	env := &Envelope{EventID: ae.EventID, EventType: ae.EventType, Version: reader.String(), Timestamp: ae.Timestamp.UTC(),
		Metadata: Metadata{TenantID: ae.Metadata.TenantID, Source: ae.Metadata.Source, CorrelationID: ae.Metadata.CorrelationID,
			TraceID: ae.Metadata.TraceID}}
	if ae.Metadata.UserID != nil {
		env.Metadata.UserID = *ae.Metadata.UserID
	}
	return env, nil
}

// valueCheck names the values of a typed value that the SDK refuses beyond the types hamba/avro
// checks: a nil *big.Rat where the schema requires a decimal (hamba would panic), a decimal with
// more decimal places or digits than the schema's (hamba would round silently), and a date string
// (schemas.IsDateString) that is not YYYY-MM-DD. It reports whether all are fine. With errs nil it
// builds no path and returns at the first bad value: the check of every publish, repeated with
// errs only when it fails. nil: the value holds nothing to check.
type valueCheck func(v reflect.Value, path string, errs *fieldErrs) bool

type checkKey struct {
	s avro.Schema
	t reflect.Type
}

var (
	valueChecks sync.Map   // checkKey -> valueCheck, every one complete
	valueMu     sync.Mutex // held while compiling
)

// valueChecker returns the valueCheck of Go values of type t written with schema s, compiled once
// per (s, t): a typed publish walks only the fields that can hold a value to check, with the
// struct fields matched to the schema's beforehand.
func valueChecker(s avro.Schema, t reflect.Type) valueCheck {
	if c, ok := valueChecks.Load(checkKey{s, t}); ok {
		return c.(valueCheck)
	}
	valueMu.Lock()
	defer valueMu.Unlock()
	building := map[checkKey]*valueCheck{}
	c := compileChecks(s, t, building)
	for k, c := range building {
		valueChecks.Store(k, *c)
	}
	return c
}

// compileChecks compiles the check of (s, t); building holds the checks being compiled, which a
// recursive schema refers to through their pointer.
func compileChecks(s avro.Schema, t reflect.Type, building map[checkKey]*valueCheck) valueCheck {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	if holding(s) == 0 {
		return nil
	}
	key := checkKey{s, t}
	if c, ok := valueChecks.Load(key); ok {
		return c.(valueCheck)
	}
	if c, ok := building[key]; ok {
		return func(v reflect.Value, path string, errs *fieldErrs) bool {
			return *c == nil || (*c)(v, path, errs)
		}
	}
	c := new(valueCheck)
	building[key] = c
	*c = compileChecksOf(s, t, building)
	return *c
}

func compileChecksOf(s avro.Schema, t reflect.Type, building map[checkKey]*valueCheck) valueCheck {
	if t.Kind() == reflect.Interface { // the dynamic type's check, found at run time
		return func(v reflect.Value, path string, errs *fieldErrs) bool {
			if v.IsNil() {
				return true
			}
			c := valueChecker(s, v.Elem().Type())
			return c == nil || c(v.Elem(), path, errs)
		}
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		derefs := 0
		for ; t.Kind() == reflect.Pointer; derefs++ {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		type field struct {
			index int
			name  string
			check valueCheck
		}
		var fields []field
		for i := range t.NumField() {
			name := t.Field(i).Tag.Get("avro")
			for _, f := range s.Fields() {
				if f.Name() != name {
					continue
				}
				var c valueCheck
				if schemas.IsDateString(f) {
					c = compileDateString(t.Field(i).Type)
				} else {
					c = compileChecks(f.Type(), t.Field(i).Type, building)
				}
				if c != nil {
					fields = append(fields, field{i, name, c})
				}
			}
		}
		if len(fields) == 0 {
			return nil
		}
		return func(v reflect.Value, path string, errs *fieldErrs) bool {
			for range derefs {
				if v.IsNil() {
					return true
				}
				v = v.Elem()
			}
			ok := true
			for _, f := range fields {
				var at string
				if errs != nil {
					at = join(path, f.name)
				}
				if stopAt(&ok, f.check(v.Field(f.index), at, errs), errs) {
					return false
				}
			}
			return ok
		}
	case *avro.UnionSchema:
		for _, branch := range s.Types() {
			if branch.Type() == avro.Null {
				continue
			}
			deref := t.Kind() == reflect.Pointer && branch.Type() != avro.Bytes
			inner := t
			if deref {
				inner = t.Elem()
			}
			c := compileChecks(branch, inner, building)
			if c == nil {
				return nil
			}
			nilable := t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice
			return func(v reflect.Value, path string, errs *fieldErrs) bool {
				if nilable && v.IsNil() {
					return true
				}
				if deref {
					v = v.Elem()
				}
				return c(v, path, errs)
			}
		}
	case *avro.ArraySchema:
		deref := t.Kind() == reflect.Pointer
		if deref {
			t = t.Elem()
		}
		if t.Kind() != reflect.Slice {
			return nil
		}
		c := compileChecks(s.Items(), t.Elem(), building)
		if c == nil {
			return nil
		}
		return func(v reflect.Value, path string, errs *fieldErrs) bool {
			if deref {
				if v.IsNil() {
					return true
				}
				v = v.Elem()
			}
			ok := true
			for i := range v.Len() {
				var at string
				if errs != nil {
					at = index(path, i)
				}
				if stopAt(&ok, c(v.Index(i), at, errs), errs) {
					return false
				}
			}
			return ok
		}
	case *avro.MapSchema:
		if t.Kind() != reflect.Map {
			return nil
		}
		c := compileChecks(s.Values(), t.Elem(), building)
		if c == nil {
			return nil
		}
		return func(v reflect.Value, path string, errs *fieldErrs) bool {
			ok := true
			for it := v.MapRange(); it.Next(); {
				var at string
				if errs != nil {
					at = join(path, it.Key().String())
				}
				if stopAt(&ok, c(it.Value(), at, errs), errs) {
					return false
				}
			}
			return ok
		}
	case *avro.PrimitiveSchema:
		ds, ok := s.Logical().(*avro.DecimalLogicalSchema)
		if !ok {
			return nil
		}
		isRat := t == reflect.TypeFor[*big.Rat]()
		spec := decimal.New(ds.Precision(), ds.Scale())
		return func(v reflect.Value, path string, errs *fieldErrs) bool {
			var r *big.Rat
			if isRat {
				r = v.Interface().(*big.Rat)
			}
			switch {
			case r != nil && spec.Fits(r):
				return true
			case errs == nil:
			case r == nil:
				errs.add(path, "required decimal is nil")
			default:
				checkDecimal(r, ds, path, errs)
			}
			return false
		}
	}
	return nil
}

// compileDateString is the check of a date string field (schemas.IsDateString) held in a Go string
// or *string (nil when t is neither).
func compileDateString(t reflect.Type) valueCheck {
	ptr := t.Kind() == reflect.Pointer
	if ptr {
		t = t.Elem()
	}
	if t.Kind() != reflect.String {
		return nil
	}
	return func(v reflect.Value, path string, errs *fieldErrs) bool {
		if ptr {
			if v.IsNil() {
				return true
			}
			v = v.Elem()
		}
		if isDateString(v.String()) {
			return true
		}
		if errs != nil {
			checkDateString(v.String(), path, errs)
		}
		return false
	}
}

// stopAt records the outcome of a part of a value in ok and reports whether the check stops
// there: without errs the first bad part decides.
func stopAt(ok *bool, fine bool, errs *fieldErrs) bool {
	if !fine {
		*ok = false
	}
	return !fine && errs == nil
}

// What values of a schema may contain that the SDK checks beyond their type (holding).
const (
	holdsDecimal    = 1 << iota // a decimal: its precision and scale
	holdsDateString             // a date string field (schemas.IsDateString): YYYY-MM-DD
)

// holdings caches holding by schema.
var holdings sync.Map // avro.Schema -> int

// holding returns what values of s may contain, of holdsDecimal and holdsDateString.
func holding(s avro.Schema) int {
	if h, ok := holdings.Load(s); ok {
		return h.(int)
	}
	h := holdingSeen(s, map[string]bool{})
	holdings.Store(s, h)
	return h
}

func holdingSeen(s avro.Schema, seen map[string]bool) int {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	h := 0
	switch s := s.(type) {
	case *avro.RecordSchema:
		if seen[s.FullName()] {
			return 0
		}
		seen[s.FullName()] = true
		for _, f := range s.Fields() {
			if h |= holdingSeen(f.Type(), seen); schemas.IsDateString(f) {
				h |= holdsDateString
			}
		}
	case *avro.UnionSchema:
		for _, b := range s.Types() {
			h |= holdingSeen(b, seen)
		}
	case *avro.ArraySchema:
		h = holdingSeen(s.Items(), seen)
	case *avro.MapSchema:
		h = holdingSeen(s.Values(), seen)
	case *avro.PrimitiveSchema:
		if _, ok := s.Logical().(*avro.DecimalLogicalSchema); ok {
			h = holdsDecimal
		}
	}
	return h
}

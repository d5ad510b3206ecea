package streams

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"golang.org/x/sync/singleflight"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/internal/avrobin"
	"github.com/hotelbus/hotelbus/topics"
)

// Serde turns envelopes into Kafka record values in the Confluent wire format (magic byte 0, 4-byte
// big-endian schema id, Avro body) and back, with schema ids from a Confluent-compatible registry.
//
// Encoding uses the local schema of the envelope's eventType and Version, registered under
// "<topic>-<record full name>" (TopicRecordNameStrategy); ids are looked up once and cached.
// Decoding reads any registered writer version and resolves it into the newest local minor of the
// same major version (Avro schema resolution), so old and new consumers both work.
//
// A Serde is safe for concurrent use.
type Serde struct {
	set    *schemas.Set
	cat    *topics.Catalog
	client *sr.Client
	cfg    serdeConfig
	header sr.ConfluentHeader

	mu        sync.RWMutex
	ids       map[*schemas.Version]int
	writers   map[int]*writerSchema
	resolved  map[resolveKey]avro.Schema
	byName    map[string]*schemas.Subject
	fetching  singleflight.Group // the one registry request, parse or resolution of what is not cached yet
	envelopes sync.Map           // *avro.RecordSchema -> *envelopeCodec (nil when not direct)
	sizes     sync.Map           // *schemas.Version -> *atomic.Int64: the largest value Record encoded with it
}

type writerSchema struct {
	schema  *avro.RecordSchema
	subject *schemas.Subject // nil when the record is not known locally
	version *schemas.Version // the local version that is this schema, nil when none is
	text    string
}

type resolveKey struct {
	writer int
	reader *schemas.Version
}

// NewSerde returns a Serde over a schema set, the catalog (for topics) and a registry client.
func NewSerde(client *sr.Client, set *schemas.Set, cat *topics.Catalog, opts ...SerdeOption) (*Serde, error) {
	cfg := defaultSerdeConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Serde{set: set, cat: cat, client: client, cfg: cfg,
		ids: map[*schemas.Version]int{}, writers: map[int]*writerSchema{}, resolved: map[resolveKey]avro.Schema{}, byName: map[string]*schemas.Subject{}}
	for _, sub := range set.Subjects {
		for _, v := range sub.Versions {
			s.byName[v.FullName()] = sub
		}
	}
	return s, nil
}

// Schemas returns the schema set the Serde encodes with.
func (s *Serde) Schemas() *schemas.Set { return s.set }

// Registry returns the schema registry client the Serde resolves ids with (for health checks).
func (s *Serde) Registry() *sr.Client { return s.client }

// DataSchema implements the lookup ParseJSON needs, from the Serde's schema set.
func (s *Serde) DataSchema(eventType, version string) (*avro.RecordSchema, string, error) {
	v, err := s.version(eventType, version)
	if err != nil {
		return nil, "", err
	}
	return v.Data, v.String(), nil
}

func (s *Serde) version(eventType, version string) (*schemas.Version, error) {
	var v *schemas.Version
	var ok bool
	if version == "" {
		v, ok = s.set.Latest(eventType)
	} else {
		v, ok = s.set.Version(eventType, version)
	}
	if !ok {
		return nil, fmt.Errorf("%w: no schema for %q version %q", ErrUnknownEventType, eventType, version)
	}
	return v, nil
}

// Topic returns the topic an event type is routed to.
func (s *Serde) Topic(eventType string) (string, error) {
	t, ok := s.cat.TopicFor(eventType)
	if !ok {
		return "", fmt.Errorf("%w: %q is not in the catalog", ErrUnknownEventType, eventType)
	}
	return t.Name, nil
}

// AppendEncode validates env (its identifiers against the grammar of identifiers.go, its data
// against the schema) and appends its wire-format value to b. It returns the topic the event
// is routed to. It blocks on the registry only the first time a schema version is used.
func (s *Serde) AppendEncode(ctx context.Context, b []byte, env *Envelope) (topic string, out []byte, err error) {
	return s.appendEncode(ctx, b, env, nil)
}

// appendEncode is AppendEncode with the data taken from typed instead of env.Data when it is set.
func (s *Serde) appendEncode(ctx context.Context, b []byte, env *Envelope, typed Event) (topic string, out []byte, err error) {
	v, err := s.version(env.EventType, env.Version)
	if err != nil {
		return "", nil, err
	}
	if topic, err = s.Topic(env.EventType); err != nil {
		return "", nil, err
	}
	id, err := s.schemaID(ctx, topic, v)
	if err != nil {
		return "", nil, err
	}
	var size *atomic.Int64
	if b == nil { // a record's value: sized as the largest of the version so far, so encoding appends without growing
		sz, _ := s.sizes.LoadOrStore(v, new(atomic.Int64))
		size = sz.(*atomic.Int64)
		b = make([]byte, 0, min(size.Load(), maxValueHint))
	}
	if b, err = s.header.AppendEncode(b, id, nil); err != nil {
		return "", nil, fmt.Errorf("streams: wire header: %w", err)
	}
	if s.cfg.protector != nil {
		b, err = s.sealed(ctx, b, env, v, typed)
	} else {
		b, err = s.encodeBody(b, env, v, typed)
	}
	if err != nil {
		return "", nil, err
	}
	if size != nil && int64(len(b)) > size.Load() {
		size.Store(int64(len(b)))
	}
	return topic, b, nil
}

// encodeBody appends the Avro body of env written with v, its data typed's when typed is set.
func (s *Serde) encodeBody(b []byte, env *Envelope, v *schemas.Version, typed Event) ([]byte, error) {
	if typed != nil {
		return s.encodeTyped(b, env, v, typed)
	}
	return s.encode(b, env, v)
}

// maxValueHint bounds the capacity a value buffer is given ahead of encoding (bytes).
const maxValueHint = 64 << 10

// checkEnvelope adds the problems of env's envelope fields (not its data) to errs.
func (s *Serde) checkEnvelope(env *Envelope, errs *fieldErrs) {
	checkIdentifiers(env, errs)
	if env.Timestamp.IsZero() {
		errs.add("timestamp", "must be set")
	}
	if p := sourceProblem(s.cat, env.Metadata.Source); p != "" {
		errs.add("metadata.source", "%s", p)
	}
}

// checkNew refuses generic data about to be published whose date strings (schemas.IsDateString)
// are not YYYY-MM-DD, naming every bad field. Only publishing checks them: data read back, and
// re-encoded by replay, may hold there the markers of sealed or erased personal data.
func (s *Serde) checkNew(env *Envelope) error {
	v, err := s.version(env.EventType, env.Version)
	if err != nil || holding(v.Data)&holdsDateString == 0 {
		return nil // an unknown version is refused by the encoding
	}
	errs := &fieldErrs{}
	conform(v.Data, env.Data, "data", errs, leaf.check, true)
	return errs.err()
}

// encode appends the Avro body of env written with v. On any problem it names every bad field.
func (s *Serde) encode(b []byte, env *Envelope, v *schemas.Version) ([]byte, error) {
	errs := &fieldErrs{}
	s.checkEnvelope(env, errs)
	if env.Data == nil {
		errs.add("data", "must be set")
	}
	if len(errs.list) > 0 {
		if env.Data != nil {
			validate(v.Data, env.Data, "data", errs)
			hintVersion(errs, env.EventType, env.Version, v.String(), s.DataSchema)
		}
		return nil, errs.err()
	}
	var out []byte
	var err error
	if direct := s.envelopeCodec(v.Envelope); direct != nil {
		out, err = direct.enc(b, env, v.String())
	} else {
		out, err = compiled(v.Envelope).enc(b, env.Map(v.String(), env.Data))
	}
	if err == nil {
		return out, nil
	}
	validate(v.Data, env.Data, "data", errs)
	hintVersion(errs, env.EventType, env.Version, v.String(), s.DataSchema)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
}

// envelopeCodec returns the direct envelope codec of a schema (nil when it has other fields),
// compiling it once.
func (s *Serde) envelopeCodec(schema *avro.RecordSchema) *envelopeCodec {
	if e, ok := s.envelopes.Load(schema); ok {
		return e.(*envelopeCodec)
	}
	e, _ := s.envelopes.LoadOrStore(schema, compileEnvelope(schema))
	return e.(*envelopeCodec)
}

// schemaID returns the registered id of v under its subject on topic, registering it first when
// auto-registration is on; the first events of a version published at the same time share one
// registry request.
func (s *Serde) schemaID(ctx context.Context, topic string, v *schemas.Version) (int, error) {
	s.mu.RLock()
	id, ok := s.ids[v]
	s.mu.RUnlock()
	if ok {
		return id, nil
	}
	subject := v.Subject(topic)
	got, err, _ := s.fetching.Do("id "+subject+" "+v.String(), func() (any, error) {
		schema := sr.Schema{Schema: v.Text, Type: sr.TypeAvro}
		var ss sr.SubjectSchema
		var err error
		if s.cfg.autoRegister {
			ss, err = s.client.CreateSchema(ctx, subject, schema)
		} else {
			ss, err = s.client.LookupSchema(ctx, subject, schema)
		}
		if err != nil {
			return 0, registryErr(err, fmt.Sprintf("subject %s (%s %s)", subject, v.EventType, v))
		}
		s.mu.Lock()
		s.ids[v] = ss.ID
		s.mu.Unlock()
		return ss.ID, nil
	})
	if err != nil {
		return 0, err
	}
	return got.(int), nil
}

func registryErr(err error, what string) error {
	var re *sr.ResponseError
	if errors.As(err, &re) && re.StatusCode < http.StatusInternalServerError {
		if re.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%w: %s: %v", ErrNotRegistered, what, err)
		}
		return fmt.Errorf("streams: registry refused %s: %w", what, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrRegistry, what, err)
}

// Decode decodes a wire-format value into the newest local minor version of the writer's major
// version. Data written with an unknown major is decoded in the writer's own schema.
func (s *Serde) Decode(ctx context.Context, value []byte) (*Envelope, error) {
	return s.DecodeAs(ctx, value, nil)
}

// DecodeAs decodes a wire-format value into reader's shape (nil: as Decode). The returned envelope's
// Version is the version its Data follows.
func (s *Serde) DecodeAs(ctx context.Context, value []byte, reader *schemas.Version) (*Envelope, error) {
	id, body, w, err := s.wire(ctx, value)
	if err != nil {
		return nil, err
	}
	if reader == nil && w.subject != nil {
		reader = w.subject.Latest()
	}
	var env *Envelope
	if reader == nil || w.schema.Fingerprint() == reader.Envelope.Fingerprint() {
		r := newTextReader(body)
		if direct := s.envelopeCodec(w.schema); direct != nil {
			env = direct.dec(r)
		} else {
			decoded, _ := compiled(w.schema).dec(r).(map[string]any)
			env = envelopeFromMap(decoded)
		}
		if r.err == nil && len(r.buf) != 0 {
			r.err = fmt.Errorf("%d bytes after the record", len(r.buf))
		}
		if r.err != nil {
			return nil, fmt.Errorf("%w: schema id %d: %v", ErrMalformedRecord, id, r.err)
		}
	} else {
		schema, err := s.resolve(id, w, reader)
		if err != nil {
			return nil, err
		}
		var raw map[string]any
		if err := avro.Unmarshal(schema, body, &raw); err != nil {
			return nil, fmt.Errorf("%w: schema id %d: %v", ErrMalformedRecord, id, err)
		}
		decoded, _ := compiled(reader.Envelope).native(raw).(map[string]any)
		env = envelopeFromMap(decoded)
	}
	if reader != nil {
		env.Version = reader.String()
	}
	if err := s.opened(ctx, env, reader); err != nil {
		return nil, err
	}
	return env, nil
}

// dataString returns the string data field of a wire-format value (a null reads as ""), read from
// its encoding without decoding the record. ok is false when the value does not parse as its
// writer schema says, or the writer schema has no such string field: decode the value instead.
func (s *Serde) dataString(ctx context.Context, value []byte, field string) (v string, ok bool) {
	_, body, w, err := s.wire(ctx, value)
	if err != nil {
		return "", false
	}
	r := avrobin.Reader{Src: body}
	v, ok, err = r.StringAt(w.schema, "data", field)
	return v, ok && err == nil
}

// wire splits a wire-format value into its schema id and body and returns the writer schema.
func (s *Serde) wire(ctx context.Context, value []byte) (int, []byte, *writerSchema, error) {
	id, body, err := s.header.DecodeID(value)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%w: %v", ErrMalformedRecord, err)
	}
	w, err := s.writer(ctx, id)
	return id, body, w, err
}

// writer returns the writer schema for a registry id, fetching and parsing it once: the records
// of a new schema decoded at the same time by many workers share one registry request.
func (s *Serde) writer(ctx context.Context, id int) (*writerSchema, error) {
	s.mu.RLock()
	w, ok := s.writers[id]
	s.mu.RUnlock()
	if ok {
		return w, nil
	}
	v, err, _ := s.fetching.Do(strconv.Itoa(id), func() (any, error) {
		s.mu.RLock()
		w, ok := s.writers[id]
		s.mu.RUnlock()
		if ok {
			return w, nil
		}
		sch, err := s.client.SchemaByID(ctx, id)
		if err != nil {
			var re *sr.ResponseError
			if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
				return nil, fmt.Errorf("%w: schema id %d is not in the registry", ErrMalformedRecord, id)
			}
			return nil, registryErr(err, fmt.Sprintf("schema id %d", id))
		}
		parsed, err := avro.ParseWithCache(sch.Schema, "", &avro.SchemaCache{})
		if err != nil {
			return nil, fmt.Errorf("%w: schema id %d does not parse: %v", ErrMalformedRecord, id, err)
		}
		rec, ok := parsed.(*avro.RecordSchema)
		if !ok {
			return nil, fmt.Errorf("%w: schema id %d is not a record", ErrMalformedRecord, id)
		}
		w = &writerSchema{schema: rec, subject: s.byName[rec.FullName()], text: sch.Schema}
		if w.subject != nil {
			for _, v := range w.subject.Versions {
				if v.Envelope.Fingerprint() == rec.Fingerprint() {
					w.version = v
				}
			}
		}
		s.mu.Lock()
		s.writers[id] = w
		s.mu.Unlock()
		return w, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*writerSchema), nil
}

// resolve returns the schema that reads w's data in reader's shape, resolving it once.
func (s *Serde) resolve(id int, w *writerSchema, reader *schemas.Version) (avro.Schema, error) {
	k := resolveKey{writer: id, reader: reader}
	s.mu.RLock()
	r, ok := s.resolved[k]
	s.mu.RUnlock()
	if ok {
		return r, nil
	}
	v, err, _ := s.fetching.Do(fmt.Sprintf("resolve %d %s %s", id, reader.EventType, reader), func() (any, error) {
		r, err := avro.NewSchemaCompatibility().Resolve(reader.Envelope, w.schema)
		if err != nil {
			return nil, fmt.Errorf("%w: schema id %d cannot be read as %s %s: %v", ErrMalformedRecord, id, reader.EventType, reader, err)
		}
		s.mu.Lock()
		s.resolved[k] = r
		s.mu.Unlock()
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(avro.Schema), nil
}

// JSON returns the canonical JSON form of env, using the schema of its eventType and Version.
func (s *Serde) JSON(env *Envelope) ([]byte, error) {
	v, err := s.version(env.EventType, env.Version)
	if err != nil {
		return nil, err
	}
	return AppendJSON(nil, env, v.Data)
}

// DataJSON returns the canonical JSON form of env's data alone: the "data" of what JSON returns.
func (s *Serde) DataJSON(env *Envelope) ([]byte, error) {
	v, err := s.version(env.EventType, env.Version)
	if err != nil {
		return nil, err
	}
	return appendValue(nil, v.Data, env.Data, "data")
}

// ParseJSON decodes a JSON envelope with the Serde's schemas (see the package function ParseJSON).
func (s *Serde) ParseJSON(b []byte) (*Envelope, error) { return ParseJSON(b, s.DataSchema) }

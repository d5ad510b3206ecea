package registry

import (
	"slices"
	"sort"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// Schema types the registry stores. Only Avro is parsed and checked; the others are kept as text.
const (
	typeAvro     = "AVRO"
	typeJSON     = "JSON"
	typeProtobuf = "PROTOBUF"
)

// schemaTypes is GET /schemas/types, in Confluent's order.
var schemaTypes = []string{typeJSON, typeProtobuf, typeAvro}

// stored is one schema id: its text as first registered, its references and where it is used.
type stored struct {
	id   int
	typ  string
	text string
	refs []sr.SchemaReference
	key  string
	// avro is the parsed schema, references included; nil for other types (and for an Avro schema
	// from an older journal that no longer parses, which then fails the compatibility checks).
	avro avro.Schema
	// usages are the subject versions (live or soft deleted) holding this id, in registration
	// order; the id is forgotten when the last one is hard deleted.
	usages []usage
}

type usage struct {
	subject string
	version int
}

type subjectVersion struct {
	version int
	id      int
	deleted bool // soft deleted
}

type subjectState struct {
	versions []subjectVersion // ascending
	// level and normalize are the subject-level config; "" and nil when it has none.
	level     string
	normalize *bool
}

// live returns the versions not soft deleted.
func (s *subjectState) live() []subjectVersion {
	out := make([]subjectVersion, 0, len(s.versions))
	for _, v := range s.versions {
		if !v.deleted {
			out = append(out, v)
		}
	}
	return out
}

// find returns the index of version v, or -1.
func (s *subjectState) find(v int) int {
	i := sort.Search(len(s.versions), func(i int) bool { return s.versions[i].version >= v })
	if i < len(s.versions) && s.versions[i].version == v {
		return i
	}
	return -1
}

// state is everything the registry serves; Registry.mu guards it. Registration touches only the
// maps' entries for its key and subject, so its cost does not grow with the number of schemas.
type state struct {
	globalLevel     string
	globalNormalize *bool
	ids             map[int]*stored
	byKey           map[string]*stored
	subjects        map[string]*subjectState
	nextID          int
}

func newState(level sr.CompatibilityLevel) *state {
	return &state{
		globalLevel: level.String(),
		ids:         map[int]*stored{},
		byKey:       map[string]*stored{},
		subjects:    map[string]*subjectState{},
		nextID:      1,
	}
}

func (st *state) subject(name string) *subjectState {
	s := st.subjects[name]
	if s == nil {
		s = &subjectState{}
		st.subjects[name] = s
	}
	return s
}

// hasVersions reports whether subject has a version, live or (with deleted) soft deleted.
func (st *state) hasVersions(subject string, deleted bool) bool {
	s := st.subjects[subject]
	if s == nil {
		return false
	}
	for _, v := range s.versions {
		if deleted || !v.deleted {
			return true
		}
	}
	return false
}

// add records schema rec (a new id, or one already stored) as the next version of subject, or
// as version when it is positive (a journal replay), and returns the version.
func (st *state) add(subject string, rec *stored, version int) int {
	s := st.subject(subject)
	if version <= 0 {
		version = 1
		if n := len(s.versions); n > 0 {
			version = s.versions[n-1].version + 1
		}
	}
	if st.ids[rec.id] == nil {
		st.ids[rec.id] = rec
		if st.byKey[rec.key] == nil {
			// An older journal may hold two ids for schemas this version deems equal: the first keeps
			// answering lookups.
			st.byKey[rec.key] = rec
		}
	}
	st.nextID = max(st.nextID, rec.id+1)
	s.versions = append(s.versions, subjectVersion{version: version, id: rec.id})
	rec.usages = append(rec.usages, usage{subject, version})
	return version
}

// hardDelete removes version index i of subject, and the id when nothing else uses it.
func (st *state) hardDelete(subject string, i int) {
	s := st.subjects[subject]
	v := s.versions[i]
	s.versions = slices.Delete(s.versions, i, i+1)
	rec := st.ids[v.id]
	rec.usages = slices.DeleteFunc(rec.usages, func(u usage) bool { return u.subject == subject && u.version == v.version })
	if len(rec.usages) == 0 {
		delete(st.ids, rec.id)
		if st.byKey[rec.key] == rec {
			delete(st.byKey, rec.key)
		}
	}
	if len(s.versions) == 0 && s.level == "" && s.normalize == nil {
		delete(st.subjects, subject)
	}
}

// referencedBy returns the ids of the schemas whose references name subject version v.
func (st *state) referencedBy(subject string, v int) []int {
	var out []int
	for id, rec := range st.ids {
		for _, ref := range rec.refs {
			if ref.Subject == subject && ref.Version == v {
				out = append(out, id)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// level returns subject's compatibility level, the global one when it has none.
func (st *state) level(subject string) string {
	if s := st.subjects[subject]; s != nil && s.level != "" {
		return s.level
	}
	return st.globalLevel
}

// sortedSubjects returns the names of the subjects, sorted.
func (st *state) sortedSubjects() []string {
	out := make([]string, 0, len(st.subjects))
	for name := range st.subjects {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// schemaJSON is a schema as Confluent answers it (GET /subjects/{s}/versions/{v}, /schemas, lookups).
type schemaJSON struct {
	Subject    string               `json:"subject,omitempty"`
	Version    int                  `json:"version,omitempty"`
	ID         int                  `json:"id,omitempty"`
	SchemaType string               `json:"schemaType"`
	References []sr.SchemaReference `json:"references,omitempty"`
	Schema     string               `json:"schema"`
	Deleted    bool                 `json:"deleted,omitempty"`
	MaxID      *int                 `json:"maxId,omitempty"`
}

func (rec *stored) json(subject string, v subjectVersion) schemaJSON {
	return schemaJSON{Subject: subject, Version: v.version, ID: rec.id, SchemaType: rec.typ, References: rec.refs,
		Schema: rec.text, Deleted: v.deleted}
}

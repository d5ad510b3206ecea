package privacy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/hamba/avro/v2"
	"go.yaml.in/yaml/v3"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/internal/avrobin"
	"github.com/hotelbus/hotelbus/topics"
)

// SubjectGrammar is the grammar of a tenantId or subject that names a key: ASCII, no slash,
// space or control byte, at most 128 bytes. validName checks it by hand (it runs for every sealed
// or opened event).
const SubjectGrammar = `^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$`

func validName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("_.:@+-", rune(c))) {
			return false
		}
	}
	return true
}

var fieldPathRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// Subjects is topics/privacy.yaml validated against the catalog and the schemas: the subject fields
// of each event type and, per schema version, what to seal. Safe for concurrent use.
type Subjects struct {
	fields map[string][][]string // event type -> subject field paths, split at dots
	plans  sync.Map              // *schemas.Version -> *plan
}

type privacyFile struct {
	Subjects map[string][]string `yaml:"subjects"`
}

// LoadSubjects reads topics.PrivacyFile from fsys (topics.Embedded() in the binary) and checks it:
// every event type it names is in cat, every path is a string (or optional string) field of every
// version of the type in set, and every type whose data has pii fields has an entry.
func LoadSubjects(fsys fs.FS, cat *topics.Catalog, set *schemas.Set) (*Subjects, error) {
	b, err := fs.ReadFile(fsys, topics.PrivacyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var f privacyFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalid, topics.PrivacyFile, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	s := &Subjects{fields: map[string][][]string{}}
	for _, et := range slices.Sorted(func(yield func(string) bool) {
		for k := range f.Subjects {
			if !yield(k) {
				return
			}
		}
	}) {
		key := topics.PrivacyFile + ": subjects." + et
		if _, ok := cat.Owner(et); !ok {
			return nil, fmt.Errorf("%w: %s: %q is not an event type of the catalog", ErrInvalid, key, et)
		}
		if len(f.Subjects[et]) == 0 {
			return nil, fmt.Errorf("%w: %s: at least one subject field", ErrInvalid, key)
		}
		for i, p := range f.Subjects[et] {
			if !fieldPathRe.MatchString(p) {
				return nil, fmt.Errorf("%w: %s[%d]: %q is not a dotted field path", ErrInvalid, key, i, p)
			}
			path := strings.Split(p, ".")
			for _, v := range versionsOf(set, et) {
				if !isStringPath(v.Data, path) {
					return nil, fmt.Errorf("%w: %s[%d]: %q is not a string field of %s %s", ErrInvalid, key, i, p, et, v)
				}
			}
			s.fields[et] = append(s.fields[et], path)
		}
	}
	for _, et := range set.EventTypes() {
		if _, ok := s.fields[et]; ok {
			continue
		}
		for _, v := range versionsOf(set, et) {
			if s.plan(v).seal != nil || len(s.plan(v).residual) > 0 {
				return nil, fmt.Errorf("%w: %s: subjects: %s %s has pii fields but no subject", ErrInvalid, topics.PrivacyFile, et, v)
			}
		}
	}
	return s, nil
}

func versionsOf(set *schemas.Set, eventType string) []*schemas.Version {
	var out []*schemas.Version
	for _, sub := range set.Subjects {
		if sub.EventType == eventType {
			out = append(out, sub.Versions...)
		}
	}
	return out
}

// isStringPath reports whether path names a string or optional string field of rec.
func isStringPath(rec *avro.RecordSchema, path []string) bool {
	sh := streams.ShapeOf(rec)
	for _, name := range path {
		i := slices.IndexFunc(sh.Fields, func(f streams.ShapeField) bool { return f.Name == name })
		if i < 0 {
			return false
		}
		sh = sh.Fields[i].Shape
	}
	return sh.Schema.Type() == avro.String
}

// plan is what to seal in the data of one schema version.
type plan struct {
	subject  [][]string
	paths    []string // the subject fields, dotted
	subjects *node    // the subject fields, as a tree
	seal     *node    // nil: nothing to seal
	residual []string // pii values that cannot be sealed: "path (type)", "path (type, published as null)"
}

// node is a sealable part of a data value: a string, or a record, array or map that holds some;
// or an optional value that cannot hold a ciphertext, which sealing writes as null.
type node struct {
	field  string  // the record field this node is (children of a record)
	str    bool    // a string to seal
	null   bool    // an optional pii value of another type: null once sealed
	fields []*node // record
	items  *node   // array
	values *node   // map
}

// plan returns the plan of v, building it once.
func (s *Subjects) plan(v *schemas.Version) *plan {
	if p, ok := s.plans.Load(v); ok {
		return p.(*plan)
	}
	p := &plan{subject: s.fields[v.EventType]}
	skip := map[string]bool{}
	for _, sf := range p.subject {
		p.paths = append(p.paths, strings.Join(sf, "."))
		p.subjects = p.subjects.with(sf)
		skip[p.paths[len(p.paths)-1]] = true
	}
	p.seal = build(streams.ShapeOf(v.Data), false, "", skip, &p.residual, 0)
	got, _ := s.plans.LoadOrStore(v, p)
	return got.(*plan)
}

// Seals reports whether the events of v have values a Protector seals.
func (s *Subjects) Seals(v *schemas.Version) bool { return s.plan(v).seal != nil }

// Residual returns, for each event type and version of set, the pii values whose schema type
// cannot hold a ciphertext: those that stay clear ("customer.created 1.0 title (enum)"), and those
// a Protector publishes as null because their field is optional ("customer.created 1.0 birthDate
// (int, published as null)").
func (s *Subjects) Residual(set *schemas.Set) []string {
	var out []string
	for _, sub := range set.Subjects {
		for _, v := range sub.Versions {
			for _, r := range s.plan(v).residual {
				out = append(out, fmt.Sprintf("%s %s %s", v.EventType, v, r))
			}
		}
	}
	return out
}

// maxDepth bounds build on recursive schemas (no event schema nests this deep).
const maxDepth = 32

// build returns the node of the sealable strings in a value of sh (nil when none), at path; inPII
// says an enclosing field is pii. Paths in skip (subject fields) are never sealed.
func build(sh *streams.Shape, inPII bool, path string, skip map[string]bool, residual *[]string, depth int) *node {
	if depth > maxDepth {
		return nil
	}
	switch s := sh.Schema.(type) {
	case *avro.RecordSchema:
		n := &node{}
		for _, f := range sh.Fields {
			p := f.Name
			if path != "" {
				p = path + "." + f.Name
			}
			if skip[p] {
				continue
			}
			before := len(*residual)
			c := build(f.Shape, inPII || f.PII, p, skip, residual, depth+1)
			if c == nil && len(*residual) > before && f.Shape.Optional {
				// Nothing in the field's value can hold a ciphertext, and null is a value of it.
				*residual = append((*residual)[:before], fmt.Sprintf("%s (%s, published as null)", p, f.Shape.Schema.Type()))
				c = &node{null: true}
			}
			if c != nil {
				c.field = f.Name
				n.fields = append(n.fields, c)
			}
		}
		if n.fields == nil {
			return nil
		}
		return n
	case *avro.ArraySchema:
		if c := build(sh.Elem, inPII, path+"[]", skip, residual, depth+1); c != nil {
			return &node{items: c}
		}
	case *avro.MapSchema:
		if c := build(sh.Elem, inPII, path+"{}", skip, residual, depth+1); c != nil {
			return &node{values: c}
		}
	case *avro.PrimitiveSchema:
		if inPII && s.Type() == avro.String {
			return &node{str: true}
		}
		if inPII {
			*residual = append(*residual, fmt.Sprintf("%s (%s)", path, s.Type()))
		}
	default:
		if inPII && s.Type() != avro.Null {
			*residual = append(*residual, fmt.Sprintf("%s (%s)", path, s.Type()))
		}
	}
	return nil
}

// with returns n (a new node when nil) with the string at path (record fields) added.
func (n *node) with(path []string) *node {
	if n == nil {
		n = &node{}
	}
	if len(path) == 0 {
		n.str = true
		return n
	}
	for i, c := range n.fields {
		if c.field == path[0] {
			n.fields[i] = c.with(path[1:])
			return n
		}
	}
	c := (*node)(nil).with(path[1:])
	c.field = path[0]
	n.fields = append(n.fields, c)
	return n
}

// subjectIn returns the first set subject field of the data of body, an event's body written with
// v's envelope schema ("" when none).
func (p *plan) subjectIn(v *schemas.Version, body []byte) (string, error) {
	found := make([]string, len(p.subject))
	w := binWalker{Reader: avrobin.Reader{Src: body}, fn: func(path, s []byte) ([]byte, error) {
		for i, sp := range p.paths {
			if found[i] == "" && string(path) == sp {
				found[i] = string(s)
			}
		}
		return nil, nil
	}}
	if err := w.envelope(v.Envelope, p.subjects); err != nil {
		return "", err
	}
	for _, s := range found {
		if s != "" {
			return s, nil
		}
	}
	return "", nil
}

// subjectOf returns the first set subject field of data ("" when none).
func (p *plan) subjectOf(data map[string]any) string {
	for _, path := range p.subject {
		var v any = data
		for _, name := range path {
			m, _ := v.(map[string]any)
			v = m[name]
		}
		if s, _ := v.(string); s != "" {
			return s
		}
	}
	return ""
}

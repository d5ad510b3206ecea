package contract

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/topics"
)

//go:embed site
var site embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"join":     strings.Join,
	"typeName": TypeName,
	"retention": func(t topics.Topic) string {
		if t.Retention < 0 {
			return "infinite"
		}
		if d := t.Retention.Hours() / 24; d == float64(int(d)) && d >= 1 {
			return fmt.Sprintf("%dd", int(d))
		}
		return t.Retention.String()
	},
}).ParseFS(site, "site/*.html"))

// WriteHTML writes the catalog site into dir (created when missing): index.html (systems, flows
// between them, topics, event types), events/<type>.html per event type (its versions and their
// compatibility history, a field table per major version with docs, types, pii marks and the
// golden example's values, the example itself) and style.css. The pages load nothing from
// elsewhere: no script, no font, no CDN.
func (k *Contract) WriteHTML(dir string) error {
	files, err := k.HTML()
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// HTML returns the files of the catalog site by slash-separated path (see WriteHTML).
func (k *Contract) HTML() (map[string][]byte, error) {
	css, err := fs.ReadFile(site, "site/style.css")
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{"style.css": css}
	index, err := render("index.html", k.indexPage())
	if err != nil {
		return nil, err
	}
	files["index.html"] = index
	for _, et := range k.EventTypes {
		p, err := k.eventPage(et)
		if err != nil {
			return nil, err
		}
		b, err := render("event.html", p)
		if err != nil {
			return nil, err
		}
		files["events/"+et.Name+".html"] = b
	}
	return files, nil
}

func render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("contract: rendering %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// flow is the event types one system publishes and another subscribes to.
type flow struct {
	From, To string
	Types    []string
}

type indexPage struct {
	Env string
	// Envelope are the rows of the envelope's fields but data, the same for every event type,
	// with the example values of EnvelopeOf's example.
	Envelope   []fieldRow
	EnvelopeOf string
	Systems    []topics.System
	Flows      []flow
	Topics     []topics.Topic
	EventTypes []EventType
}

func (k *Contract) indexPage() indexPage {
	p := indexPage{Env: k.Catalog.Env, Systems: k.Catalog.Systems, EventTypes: k.EventTypes}
	if len(k.Schemas.Subjects) > 0 {
		v := k.Schemas.Subjects[0].Latest()
		p.EnvelopeOf = v.EventType
		var ex map[string]any
		_ = json.Unmarshal(v.Example, &ex)
		var rows []fieldRow
		fieldRows(&rows, v.Envelope, "", 0, ex)
		for _, r := range rows {
			if r.Path != "data" && !strings.HasPrefix(r.Path, "data.") {
				p.Envelope = append(p.Envelope, r)
			}
		}
	}
	for _, t := range k.Catalog.Topics {
		if t.Kind == topics.KindEvents {
			p.Topics = append(p.Topics, t)
		}
	}
	for _, from := range k.Catalog.Systems {
		for _, to := range k.Catalog.Systems {
			f := flow{From: from.Name, To: to.Name}
			for _, et := range from.Publishes {
				if slices.Contains(to.Subscribes, et) {
					f.Types = append(f.Types, et)
				}
			}
			if len(f.Types) > 0 {
				p.Flows = append(p.Flows, f)
			}
		}
	}
	return p
}

type eventPage struct {
	EventType
	KeyField string
	Majors   []majorView
}

type majorView struct {
	TypeName string
	Major    int
	Subject  string
	History  []versionView
	Fields   []fieldRow
	Example  string
}

type versionView struct {
	Version, File string
	// Changes describe the fields added and removed since the previous minor.
	Changes []string
	// Compat is the verdict against every earlier minor at schemas.DefaultLevel.
	Compat   string
	Problems []string
}

type fieldRow struct {
	Path, Type, Presence, Doc, Example string
	Depth                              int
	PII                                bool
}

func (k *Contract) eventPage(et EventType) (eventPage, error) {
	p := eventPage{EventType: et, KeyField: et.keyField()}
	for _, sub := range et.Subjects {
		v := sub.Latest()
		m := majorView{TypeName: TypeName(sub.EventType, sub.Major), Major: sub.Major, Subject: v.Subject(et.Topic.Name)}
		var history []avro.Schema
		for i, mv := range sub.Versions {
			vv := versionView{Version: mv.String(), File: mv.File, Changes: []string{"first version"}, Compat: "first version of the major"}
			if i > 0 {
				vv.Changes = fieldChanges(sub.Versions[i-1].Data, mv.Data)
				r := schemas.CheckCompatibility(schemas.DefaultLevel, mv.Envelope, history)
				vv.Compat = fmt.Sprintf("compatible with %s (%s)", versionList(sub.Versions[:i]), schemas.DefaultLevel)
				if !r.Compatible() {
					vv.Compat = fmt.Sprintf("INCOMPATIBLE at %s", schemas.DefaultLevel)
				}
				name := func(j int) string { return "version " + sub.Versions[j].String() }
				for _, f := range append(r.Errors, r.Warnings...) {
					vv.Problems = append(vv.Problems, f.Describe(name))
				}
			}
			history = append(history, mv.Envelope)
			m.History = append(m.History, vv)
		}
		var ex map[string]any
		if err := json.Unmarshal(v.Example, &ex); err != nil {
			return p, fmt.Errorf("%w: %s v%d: example.json: %v", ErrInconsistent, sub.EventType, sub.Major, err)
		}
		data, _ := ex["data"].(map[string]any)
		fieldRows(&m.Fields, v.Data, "", 0, data)
		pretty, _ := json.MarshalIndent(json.RawMessage(v.Example), "", "  ")
		m.Example = string(pretty)
		p.Majors = append(p.Majors, m)
	}
	return p, nil
}

func versionList(vs []*schemas.Version) string {
	var out []string
	for _, v := range vs {
		out = append(out, v.String())
	}
	return strings.Join(out, ", ")
}

// fieldChanges lists the top-level fields added to and removed from prev in next.
func fieldChanges(prev, next *avro.RecordSchema) []string {
	var out []string
	has := func(r *avro.RecordSchema, name string) bool {
		return slices.ContainsFunc(r.Fields(), func(f *avro.Field) bool { return f.Name() == name })
	}
	for _, f := range next.Fields() {
		if !has(prev, f.Name()) {
			out = append(out, "added "+f.Name())
		}
	}
	for _, f := range prev.Fields() {
		if !has(next, f.Name()) {
			out = append(out, "removed "+f.Name())
		}
	}
	if len(out) == 0 {
		out = append(out, "no field added or removed")
	}
	return out
}

// fieldRows appends a row per field of r, then rows for the fields of a record it holds (directly,
// in an array, a map or a union with null), with the example's value at each path.
func fieldRows(rows *[]fieldRow, r *avro.RecordSchema, prefix string, depth int, ex map[string]any) {
	for _, f := range r.Fields() {
		path := prefix + f.Name()
		row := fieldRow{Path: path, Type: typeLabel(f.Type()), Depth: depth, Doc: f.Doc(), PII: schemas.IsPII(f), Presence: "required"}
		switch {
		case f.Type().Type() == avro.Union:
			row.Presence = "optional (null)"
		case f.HasDefault():
			d, _ := json.Marshal(f.Default())
			row.Presence = "default " + string(d)
		}
		v, present := ex[f.Name()]
		if present {
			b, _ := json.Marshal(v)
			row.Example = string(b)
		}
		*rows = append(*rows, row)
		at := len(*rows) - 1
		inner, suffix := f.Type(), ""
		for {
			if ref, ok := inner.(*avro.RefSchema); ok {
				inner = ref.Schema()
			}
			switch s := inner.(type) {
			case *avro.UnionSchema:
				inner, _ = nonNull(s, "")
				continue
			case *avro.ArraySchema:
				inner, suffix = s.Items(), suffix+"[]"
				if a, ok := v.([]any); ok && len(a) > 0 {
					v = a[0]
				} else {
					v = nil
				}
				continue
			case *avro.MapSchema:
				inner, suffix = s.Values(), suffix+"{}"
				m, _ := v.(map[string]any)
				v = nil
				if keys := slices.Sorted(maps.Keys(m)); len(keys) > 0 {
					v = m[keys[0]]
				}
				continue
			}
			break
		}
		if rec, ok := inner.(*avro.RecordSchema); ok {
			(*rows)[at].Example = "" // the rows of its fields show the values
			sub, _ := v.(map[string]any)
			fieldRows(rows, rec, path+suffix+".", depth+1, sub)
		}
	}
}

// typeLabel names an Avro type as the field table shows it.
func typeLabel(s avro.Schema) string {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		return "record " + s.Name()
	case *avro.EnumSchema:
		return "enum " + s.Name() + " (" + strings.Join(s.Symbols(), " | ") + ")"
	case *avro.UnionSchema:
		var parts []string
		for _, t := range s.Types() {
			parts = append(parts, typeLabel(t))
		}
		return strings.Join(parts, " | ")
	case *avro.ArraySchema:
		return "array<" + typeLabel(s.Items()) + ">"
	case *avro.MapSchema:
		return "map<" + typeLabel(s.Values()) + ">"
	case *avro.PrimitiveSchema:
		if l := s.Logical(); l != nil {
			if d, ok := l.(*avro.DecimalLogicalSchema); ok {
				return fmt.Sprintf("decimal(%d,%d) as string", d.Precision(), d.Scale())
			}
			switch l.Type() {
			case avro.Date:
				return "date (YYYY-MM-DD)"
			case avro.TimestampMillis:
				return "timestamp-millis (RFC 3339)"
			}
			return string(s.Type()) + " (" + string(l.Type()) + ")"
		}
	}
	return string(s.Type())
}

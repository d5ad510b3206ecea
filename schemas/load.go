// Package schemas loads the hotelbus Avro schemas (the files in this directory, embedded in the
// binary), composes each event type's data record with the envelope, checks conventions and
// compatibility, and registers them with a Confluent-compatible schema registry.
//
// Layout, one file per published version, never deleted:
//
//	envelope.avsc                                   the envelope every event is wrapped in
//	events/<eventType>/v<major>/<major>.<minor>.avsc the data record of one version
//	events/<eventType>/v<major>/example.json         a golden JSON envelope of the newest minor
//	pii-marks.txt                                   personal-data marks added after publication
//
// A major version is its own subject (an incompatible change is a new major, never a new version of
// a subject); minors are the subject's versions, oldest first.
package schemas

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

//go:embed envelope.avsc events pii-marks.txt
var embedded embed.FS

// Embedded returns the schema tree compiled into the binary.
func Embedded() fs.FS { return embedded }

// EnvelopeFile is the envelope template at the root of a schema tree.
const EnvelopeFile = "envelope.avsc"

// ErrInvalid is wrapped by every error Load returns for a malformed schema tree; the message names
// the file.
var ErrInvalid = errors.New("schemas: invalid schema tree")

// Set is every version of every event type in a schema tree.
type Set struct {
	// Subjects holds one entry per event type and major version, sorted by type then major.
	Subjects []*Subject
}

// Subject is one event type at one major version: the unit of compatibility.
type Subject struct {
	EventType string
	Major     int
	// Versions are the minors, oldest first.
	Versions []*Version
}

// Latest returns the newest minor version.
func (s *Subject) Latest() *Version { return s.Versions[len(s.Versions)-1] }

// Version is one published schema version.
type Version struct {
	EventType    string
	Major, Minor int
	// File is the data record's path within the schema tree.
	File string
	// Data is the event's data record; Envelope is the composed record that is registered. Both
	// carry the "pii" marks of PIIMarksFile besides those of their files; Text does not.
	Data     *avro.RecordSchema
	Envelope *avro.RecordSchema
	// Text is the composed envelope schema as registered (docs and custom attributes kept).
	Text string
	// Example is the golden JSON envelope beside the file, when this is the newest minor.
	Example []byte

	name, canonical string
}

// String returns "major.minor", the envelope's version field.
func (v *Version) String() string { return v.name }

// DataCanonical returns the data record's Parsing Canonical Form (hamba/avro's Schema.String),
// computed once at load: hamba builds the string anew on every call, and typed publishing
// compares it per event.
func (v *Version) DataCanonical() string { return v.canonical }

// FullName returns the envelope record's full name, the record part of the subject.
func (v *Version) FullName() string { return v.Envelope.FullName() }

// Subject returns the registry subject for the version on a topic (TopicRecordNameStrategy).
func (v *Version) Subject(topic string) string { return SubjectName(topic, v.FullName()) }

// SubjectName applies the TopicRecordNameStrategy: "<topic>-<record full name>".
func SubjectName(topic, recordFullName string) string { return topic + "-" + recordFullName }

var (
	majorDirRe = regexp.MustCompile(`^v([1-9][0-9]*)$`)
	fileRe     = regexp.MustCompile(`^([1-9][0-9]*)\.(0|[1-9][0-9]*)\.avsc$`)
)

// Load reads a schema tree. Every data file must parse on its own and compose with the envelope.
func Load(fsys fs.FS) (*Set, error) {
	envText, err := fs.ReadFile(fsys, EnvelopeFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var envelope, marked map[string]any
	if err := json.Unmarshal(envText, &envelope); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, EnvelopeFile, err)
	}
	marks, err := loadPIIMarks(fsys)
	if err != nil {
		return nil, err
	}
	_ = json.Unmarshal(envText, &marked)
	for _, m := range marks[EnvelopeFile] {
		if strings.HasPrefix(m.path, "data.") {
			return nil, m.errorf("a data field is marked in its event type's file, not in %s", EnvelopeFile)
		}
	}
	if err := applyPIIMarks(marked, marks[EnvelopeFile]); err != nil {
		return nil, err
	}
	envs := envelopes{published: envelope, marked: marked}
	types, err := fs.ReadDir(fsys, "events")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	set := &Set{}
	for _, t := range types {
		if !t.IsDir() {
			continue
		}
		majors, err := fs.ReadDir(fsys, path.Join("events", t.Name()))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		for _, m := range majors {
			dir := path.Join("events", t.Name(), m.Name())
			mm := majorDirRe.FindStringSubmatch(m.Name())
			if !m.IsDir() || mm == nil {
				return nil, fmt.Errorf("%w: %s: expected a directory named v<major>", ErrInvalid, dir)
			}
			major, _ := strconv.Atoi(mm[1])
			sub, err := loadSubject(fsys, envs, marks, dir, t.Name(), major)
			if err != nil {
				return nil, err
			}
			set.Subjects = append(set.Subjects, sub)
		}
	}
	if err := unusedPIIMark(marks); err != nil {
		return nil, err
	}
	slices.SortFunc(set.Subjects, func(a, b *Subject) int {
		if c := strings.Compare(a.EventType, b.EventType); c != 0 {
			return c
		}
		return a.Major - b.Major
	})
	return set, nil
}

// envelopes are the envelope template as published and with the pii marks of PIIMarksFile.
type envelopes struct{ published, marked map[string]any }

func loadSubject(fsys fs.FS, envs envelopes, marks map[string][]*piiMark, dir, eventType string, major int) (*Subject, error) {
	files, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	sub := &Subject{EventType: eventType, Major: major}
	for _, f := range files {
		name := path.Join(dir, f.Name())
		if f.Name() == "example.json" {
			continue
		}
		fm := fileRe.FindStringSubmatch(f.Name())
		if fm == nil {
			return nil, fmt.Errorf("%w: %s: expected <major>.<minor>.avsc or example.json", ErrInvalid, name)
		}
		if fm[1] != strconv.Itoa(major) {
			return nil, fmt.Errorf("%w: %s: major version %s in a v%d directory", ErrInvalid, name, fm[1], major)
		}
		minor, _ := strconv.Atoi(fm[2])
		v, err := loadVersion(fsys, envs, marks[name], name, eventType, major, minor)
		if err != nil {
			return nil, err
		}
		sub.Versions = append(sub.Versions, v)
	}
	if len(sub.Versions) == 0 {
		return nil, fmt.Errorf("%w: %s: no schema versions", ErrInvalid, dir)
	}
	slices.SortFunc(sub.Versions, func(a, b *Version) int { return a.Minor - b.Minor })
	for i, v := range sub.Versions {
		if v.Minor != i {
			return nil, fmt.Errorf("%w: %s: minor versions must run 0, 1, 2... without gaps (kept forever)", ErrInvalid, v.File)
		}
	}
	ex, err := fs.ReadFile(fsys, path.Join(dir, "example.json"))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: every major version needs a golden example.json: %v", ErrInvalid, dir, err)
	}
	sub.Latest().Example = ex
	return sub, nil
}

func loadVersion(fsys fs.FS, envs envelopes, marks []*piiMark, file, eventType string, major, minor int) (*Version, error) {
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var dataJSON, marked map[string]any
	if err := json.Unmarshal(b, &dataJSON); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, file, err)
	}
	_ = json.Unmarshal(b, &marked)
	if err := applyPIIMarks(marked, marks); err != nil {
		return nil, err
	}
	if len(marks) > 0 {
		b, _ = json.Marshal(marked)
	}
	data, err := parseRecord(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, file, err)
	}
	text, err := Compose(envs.published, dataJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, file, err)
	}
	published, err := parseRecord([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: composed envelope: %v", ErrInvalid, file, err)
	}
	markedText, _ := Compose(envs.marked, marked)
	env, err := parseRecord([]byte(markedText))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: composed envelope with the marks of %s: %v", ErrInvalid, file, PIIMarksFile, err)
	}
	if env.Fingerprint() != published.Fingerprint() {
		return nil, fmt.Errorf("%w: %s: the marks of %s change the schema", ErrInvalid, file, PIIMarksFile)
	}
	return &Version{EventType: eventType, Major: major, Minor: minor, File: file, Data: data, Envelope: env, Text: text,
		name: strconv.Itoa(major) + "." + strconv.Itoa(minor), canonical: data.String()}, nil
}

// Compose returns the registered schema text for a data record: the envelope renamed to
// <DataName>Event in the data record's namespace, with its data field typed by the record.
func Compose(envelope, data map[string]any) (string, error) {
	name, _ := data["name"].(string)
	ns, _ := data["namespace"].(string)
	if name == "" || ns == "" || strings.Contains(name, ".") {
		return "", errors.New("the data record needs a simple name and a namespace")
	}
	out := make(map[string]any, len(envelope))
	for k, v := range envelope {
		out[k] = v
	}
	out["name"], out["namespace"] = name+"Event", ns
	fields, _ := envelope["fields"].([]any)
	composed := make([]any, len(fields))
	found := false
	for i, f := range fields {
		fm, _ := f.(map[string]any)
		if fm["name"] != "data" {
			composed[i] = f
			continue
		}
		df := make(map[string]any, len(fm))
		for k, v := range fm {
			df[k] = v
		}
		df["type"] = data
		composed[i], found = df, true
	}
	if !found {
		return "", errors.New("the envelope has no data field")
	}
	out["fields"] = composed
	b, err := json.Marshal(out)
	return string(b), err
}

// parseRecord parses a standalone record schema in a fresh name cache, so that files cannot see each
// other's named types.
func parseRecord(b []byte) (*avro.RecordSchema, error) {
	s, err := avro.ParseBytesWithCache(b, "", &avro.SchemaCache{})
	if err != nil {
		return nil, err
	}
	rec, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil, fmt.Errorf("top-level schema is %s, want record", s.Type())
	}
	return rec, nil
}

// Lookup returns the subject of an event type at a major version.
func (s *Set) Lookup(eventType string, major int) (*Subject, bool) {
	for _, sub := range s.Subjects {
		if sub.EventType == eventType && sub.Major == major {
			return sub, true
		}
	}
	return nil, false
}

// Version returns one version by event type and "major.minor".
func (s *Set) Version(eventType, version string) (*Version, bool) {
	maj, min, ok := strings.Cut(version, ".")
	major, err1 := strconv.Atoi(maj)
	minor, err2 := strconv.Atoi(min)
	if !ok || err1 != nil || err2 != nil {
		return nil, false
	}
	sub, ok := s.Lookup(eventType, major)
	if !ok || minor < 0 || minor >= len(sub.Versions) {
		return nil, false
	}
	return sub.Versions[minor], true
}

// Latest returns the newest version of the newest major of an event type.
func (s *Set) Latest(eventType string) (*Version, bool) {
	var best *Subject
	for _, sub := range s.Subjects {
		if sub.EventType == eventType && (best == nil || sub.Major > best.Major) {
			best = sub
		}
	}
	if best == nil {
		return nil, false
	}
	return best.Latest(), true
}

// EventTypes returns the event types that have schemas, sorted.
func (s *Set) EventTypes() []string {
	var out []string
	for _, sub := range s.Subjects {
		if !slices.Contains(out, sub.EventType) {
			out = append(out, sub.EventType)
		}
	}
	return out
}

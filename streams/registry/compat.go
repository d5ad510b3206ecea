package registry

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"
)

// answerCompat answers POST /compatibility/subjects/{subject}/versions[/{version}]:
// {"is_compatible": bool}, with "messages" when ?verbose=true, as Confluent does. With a version,
// the candidate is compared with that version alone ("latest": the newest, compatible when there is
// none); without, with the versions the subject's level compares a registration with.
func (r *Registry) answerCompat(st *state, q *request, subject, version string) (result, error) {
	verbose := q.flag("verbose")
	var msgs []string
	cand, _, err := r.candidate(st, q.body)
	if err == nil && cand.typ == typeAvro {
		var level string
		level, msgs, err = r.evaluate(st, subject, cand, version)
		if err == nil && len(msgs) > 0 {
			msgs = append(msgs, fmt.Sprintf("{compatibility: '%s'}", level))
		}
	}
	var ae *apiError
	if errors.As(err, &ae) && ae.code == codeInvalidSchema && verbose {
		msgs, err = []string{ae.msg}, nil
	}
	if err != nil {
		return result{}, err
	}
	resp := struct {
		Is       bool     `json:"is_compatible"`
		Messages []string `json:"messages,omitempty"`
	}{Is: len(msgs) == 0}
	if verbose {
		resp.Messages = msgs
	}
	return result{value: resp}, nil
}

// evaluate compares candidate with subject's live versions (see answerCompat for version) at the
// subject's level and returns that level and one message per incompatibility; none means
// compatible. The verdicts are schemas.CheckCompatibility's, which agree with Apache Avro Java's.
func (r *Registry) evaluate(st *state, subject string, candidate *stored, version string) (string, []string, error) {
	level := st.level(subject)
	var lvl sr.CompatibilityLevel
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return "", nil, fmt.Errorf("registry: compatibility level of %q: %w", subject, err)
	}
	earlier, err := earlier(st, subject, lvl, version)
	if err != nil {
		return "", nil, err
	}
	history := make([]avro.Schema, len(earlier))
	for i, v := range earlier {
		rec := st.ids[v.id]
		if rec.typ != typeAvro {
			return level, []string{fmt.Sprintf("{oldSchemaVersion: %d, description:'Incompatible because of different schema type'}", v.version)}, nil
		}
		if rec.avro == nil {
			return "", nil, fmt.Errorf("registry: subject %q version %d (id %d) does not parse", subject, v.version, v.id)
		}
		history[i] = rec.avro
	}
	var msgs []string
	for _, f := range schemas.CheckCompatibility(lvl, candidate.avro, history).Errors {
		msgs = append(msgs, fmt.Sprintf("{direction:'%s', oldSchemaVersion: %d, description:'%s'}", f.Direction, earlier[f.Against].version, f.Message))
	}
	return level, msgs, nil
}

// earlier returns the versions a candidate is compared with, oldest first: for version "" those the
// level checks (none for NONE, the newest, or all live ones for transitive levels), else the one
// named ("latest": the newest live one, none when there is none).
func earlier(st *state, subject string, level sr.CompatibilityLevel, version string) ([]subjectVersion, error) {
	var live []subjectVersion
	if s := st.subjects[subject]; s != nil {
		live = s.live()
	}
	if version == "" {
		switch {
		case len(live) == 0, transitive(level):
			return live, nil
		case level == sr.CompatNone:
			return nil, nil
		}
		return live[len(live)-1:], nil
	}
	v, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	if v == 0 {
		if len(live) == 0 {
			return nil, nil
		}
		return live[len(live)-1:], nil
	}
	if !st.hasVersions(subject, false) {
		return nil, notFound(codeSubjectNotFound, subjectNotFoundMessageFmt, subject)
	}
	for _, sv := range live {
		if sv.version == v {
			return []subjectVersion{sv}, nil
		}
	}
	return nil, notFound(codeVersionNotFound, versionNotFoundMessageFmt, v)
}

func transitive(level sr.CompatibilityLevel) bool {
	return level == sr.CompatBackwardTransitive || level == sr.CompatForwardTransitive || level == sr.CompatFullTransitive
}

// referenced returns the schema a reference names: a version of a subject, live or soft deleted
// (Confluent resolves references to soft-deleted versions too).
func referenced(st *state, ref sr.SchemaReference) (*stored, subjectVersion, error) {
	if s := st.subjects[ref.Subject]; s != nil {
		if i := s.find(ref.Version); i >= 0 {
			v := s.versions[i]
			return st.ids[v.id], v, nil
		}
	}
	return nil, subjectVersion{}, fmt.Errorf("reference %q: subject %q version %d not found", ref.Name, ref.Subject, ref.Version)
}

// loadReferences returns a function giving a fresh cache holding the named types of refs, parsed
// depth first, so that no name leaks between schemas. It fails on a missing reference, a cycle, or
// a referenced schema that is not Avro.
func loadReferences(st *state, refs []sr.SchemaReference) (func() *avro.SchemaCache, error) {
	var texts []string
	if err := collectReferences(st, refs, map[string]bool{}, &texts); err != nil {
		return nil, err
	}
	fill := func() (*avro.SchemaCache, error) {
		cache := &avro.SchemaCache{}
		for _, t := range texts {
			if _, err := avro.ParseWithCache(t, "", cache); err != nil {
				return nil, err
			}
		}
		return cache, nil
	}
	if _, err := fill(); err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	return func() *avro.SchemaCache { c, _ := fill(); return c }, nil
}

func collectReferences(st *state, refs []sr.SchemaReference, loading map[string]bool, texts *[]string) error {
	for _, ref := range refs {
		key := ref.Subject + "\x00" + strconv.Itoa(ref.Version)
		if loading[key] {
			return fmt.Errorf("reference cycle through %q version %d", ref.Subject, ref.Version)
		}
		rec, _, err := referenced(st, ref)
		if err != nil {
			return err
		}
		if rec.typ != typeAvro {
			return fmt.Errorf("reference %q: subject %q version %d is %s, not AVRO", ref.Name, ref.Subject, ref.Version, rec.typ)
		}
		loading[key] = true
		if err := collectReferences(st, rec.refs, loading, texts); err != nil {
			return err
		}
		delete(loading, key)
		*texts = append(*texts, rec.text)
	}
	return nil
}

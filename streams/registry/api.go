package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/twmb/franz-go/pkg/sr"
)

// The REST API, answered as Confluent Schema Registry 7.x/8.x answers it for Avro: paths, query
// parameters, status codes, error codes and messages follow Confluent's (io.confluent.kafka.
// schemaregistry.rest.exceptions.Errors). The deliberate differences are listed in README.md,
// "The embedded schema registry".

// contentType is what Confluent answers with.
const contentType = "application/vnd.schemaregistry.v1+json"

// maxBody bounds request bodies.
const maxBody = 1 << 20

// maxSubject bounds subject names (Confluent has no bound; hotelbus refuses longer names, which
// no topic and record name reach).
const maxSubject = 1024

// Confluent error codes (io.confluent.kafka.schemaregistry.rest.exceptions.Errors).
const (
	codeSubjectNotFound         = 40401
	codeVersionNotFound         = 40402
	codeSchemaNotFound          = 40403
	codeSubjectSoftDeleted      = 40404
	codeSubjectNotSoftDeleted   = 40405
	codeVersionSoftDeleted      = 40406
	codeVersionNotSoftDeleted   = 40407
	codeSubjectLevelNoConfig    = 40408
	codeSubjectLevelNoMode      = 40409
	codeIncompatible            = 409
	codeInvalidSchema           = 42201
	codeInvalidVersion          = 42202
	codeInvalidLevel            = 42203
	codeInvalidMode             = 42204
	codeOperationNotPermitted   = 42205
	codeReferenceExists         = 42206
	codeInvalidSubject          = 42208
	codeSchemaTooLarge          = 42209
	codeStoreError              = 50001
	invalidLevelMessage         = "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive"
	invalidModeMessage          = "Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT."
	modeReadWrite               = "READWRITE"
	schemaNotFoundMessage       = "Schema not found"
	versionNotFoundMessageFmt   = "Version %d not found."
	subjectNotFoundMessageFmt   = "Subject '%s' not found."
	schemaIDNotFoundMessageFmt  = "Schema %d not found"
	referenceExistsMessageFmt   = "One or more references exist to the schema {magic=1,keytype=SCHEMA,subject=%s,version=%d}."
	notImportModeMessageFmt     = "Subject %s is not in import mode"
	invalidVersionMessageFmt    = "The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
	subjectSoftDeletedMsgFmt    = "Subject '%s' was soft deleted.Set permanent=true to delete permanently"
	subjectNotSoftDeletedMsgFmt = "Subject '%s' was not deleted first before being permanently deleted"
	versionSoftDeletedMsgFmt    = "Subject '%s' Version %d was soft deleted.Set permanent=true to delete permanently"
	versionNotSoftDeletedMsgFmt = "Subject '%s' Version %d was not deleted first before being permanently deleted"
)

// apiError is an error answered with a Confluent error body.
type apiError struct {
	status, code int
	msg          string
}

func (e *apiError) Error() string { return "registry: " + e.msg }

func errorf(status, code int, format string, args ...any) *apiError {
	return &apiError{status, code, fmt.Sprintf(format, args...)}
}

func notFound(code int, format string, args ...any) *apiError {
	return errorf(http.StatusNotFound, code, format, args...)
}

func unprocessable(code int, format string, args ...any) *apiError {
	return errorf(http.StatusUnprocessableEntity, code, format, args...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	// A failed write means the client went away; there is no one left to tell.
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{http.StatusInternalServerError, codeStoreError, err.Error()}
	}
	writeJSON(w, ae.status, map[string]any{"error_code": ae.code, "message": ae.msg})
}

// request is one API call, parsed.
type request struct {
	method string
	segs   []string // unescaped path segments, without a /contexts/{context} prefix
	query  url.Values
	body   []byte
	target string // escaped path and query, as journaled
}

// parseRequest splits the path: subjects are unescaped per segment, so an escaped "/" stays inside
// its subject. A /contexts/{context} prefix is dropped: the registry has the default context only.
func parseRequest(req *http.Request, body []byte) (*request, error) {
	path := strings.Trim(req.URL.EscapedPath(), "/")
	var segs []string
	if path != "" {
		segs = strings.Split(path, "/")
	}
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, errorf(http.StatusNotFound, http.StatusNotFound, "HTTP 404 Not Found")
		}
		segs[i] = u
	}
	if len(segs) > 2 && segs[0] == "contexts" {
		segs = segs[2:]
	}
	return &request{method: req.Method, segs: segs, query: req.URL.Query(), body: body, target: req.URL.RequestURI()}, nil
}

func (q *request) flag(name string) bool { return strings.EqualFold(q.query.Get(name), "true") }

// isChange reports whether the request may change the state (and is journaled when it does).
func (q *request) isChange() bool {
	return q.method == http.MethodPut || q.method == http.MethodDelete ||
		q.method == http.MethodPost && len(q.segs) == 3 && q.segs[0] == "subjects" && q.segs[2] == "versions"
}

// result is a successful answer: a JSON value, or raw text (the /schema endpoints).
type result struct {
	value any
	raw   string
	// reg is set by a registration that created a version, for the journal.
	reg *entry
}

// route answers q from st. Changes are applied to st; the caller journals them.
func (r *Registry) route(st *state, q *request) (result, error) {
	s := q.segs
	n := len(s)
	at := func(i int, want string) bool { return n > i && s[i] == want }
	method := func(allowed ...string) error {
		if slices.Contains(allowed, q.method) {
			return nil
		}
		return errorf(http.StatusMethodNotAllowed, http.StatusMethodNotAllowed, "HTTP 405 Method Not Allowed")
	}
	switch {
	case n == 0:
		if err := method(http.MethodGet); err != nil {
			return result{}, err
		}
		return result{value: map[string]any{}}, nil
	case at(0, "schemas"):
		if err := method(http.MethodGet); err != nil {
			return result{}, err
		}
		switch {
		case n == 1:
			return r.listSchemas(st, q)
		case n == 2 && s[1] == "types":
			return result{value: schemaTypes}, nil
		case n >= 3 && n <= 4 && s[1] == "ids":
			return r.schemaByID(st, q, s[2], s[3:])
		}
	case at(0, "subjects"):
		if n == 1 {
			if err := method(http.MethodGet); err != nil {
				return result{}, err
			}
			return listSubjects(st, q)
		}
		if err := checkSubject(s[1]); err != nil {
			return result{}, err
		}
		switch {
		case n == 2:
			if err := method(http.MethodPost, http.MethodDelete); err != nil {
				return result{}, err
			}
			if q.method == http.MethodPost {
				return r.lookup(st, q, s[1])
			}
			return deleteSubject(st, q, s[1])
		case n == 3 && s[2] == "versions":
			if err := method(http.MethodGet, http.MethodPost); err != nil {
				return result{}, err
			}
			if q.method == http.MethodPost {
				return r.register(st, q, s[1])
			}
			return listVersions(st, q, s[1])
		case n >= 4 && n <= 5 && s[2] == "versions":
			if n == 5 && s[4] != "schema" && s[4] != "referencedby" {
				break
			}
			allowed := []string{http.MethodGet}
			if n == 4 {
				allowed = append(allowed, http.MethodDelete)
			}
			if err := method(allowed...); err != nil {
				return result{}, err
			}
			if q.method == http.MethodDelete {
				return deleteVersion(st, q, s[1], s[3])
			}
			return getVersion(st, q, s[1], s[3], s[4:])
		}
	case at(0, "config") && n <= 2:
		if err := method(http.MethodGet, http.MethodPut, http.MethodDelete); err != nil {
			return result{}, err
		}
		return r.config(st, q, s[1:])
	case at(0, "mode") && n <= 2:
		if err := method(http.MethodGet, http.MethodPut, http.MethodDelete); err != nil {
			return result{}, err
		}
		return mode(st, q, s[1:])
	case at(0, "compatibility") && at(1, "subjects") && at(3, "versions") && n <= 5:
		if err := method(http.MethodPost); err != nil {
			return result{}, err
		}
		if err := checkSubject(s[2]); err != nil {
			return result{}, err
		}
		version := ""
		if n == 5 {
			version = s[4]
		}
		return r.answerCompat(st, q, s[2], version)
	case at(0, "contexts") && n == 1:
		if err := method(http.MethodGet); err != nil {
			return result{}, err
		}
		return result{value: []string{"."}}, nil
	case at(0, "v1") && at(1, "metadata") && n == 3:
		if err := method(http.MethodGet); err != nil {
			return result{}, err
		}
		switch s[2] {
		case "id":
			return result{value: map[string]any{"scope": map[string]any{"path": []string{},
				"clusters": map[string]string{"kafka-cluster": "hotelbus", "schema-registry-cluster": "schema-registry"}}}}, nil
		case "version":
			return result{value: map[string]string{"version": apiVersion, "commitId": "hotelbus"}}, nil
		}
	}
	return result{}, errorf(http.StatusNotFound, http.StatusNotFound, "HTTP 404 Not Found")
}

// apiVersion is what GET /v1/metadata/version reports: the Confluent release whose API this one
// follows (schemaType always present, as 8.x answers).
const apiVersion = "8.0.0"

// checkSubject applies Confluent's subject rule (no control characters) and hotelbus's length bound.
func checkSubject(subject string) error {
	if subject == "" || len(subject) > maxSubject || strings.IndexFunc(subject, unicode.IsControl) >= 0 {
		return unprocessable(codeInvalidSubject, "Invalid subject %s", strconv.Quote(subject))
	}
	return nil
}

// paginate applies Confluent's offset and limit (limit -1 or absent: all).
func paginate[T any](q *request, items []T) ([]T, error) {
	offset, limit := 0, -1
	for name, p := range map[string]*int{"offset": &offset, "limit": &limit} {
		if v := q.query.Get(name); v != "" {
			i, err := strconv.Atoi(v)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, http.StatusBadRequest, "query param %s must be an integer, got %q", name, v)
			}
			*p = i
		}
	}
	if offset < 0 {
		offset = 0
	}
	if offset > len(items) {
		offset = len(items)
	}
	items = items[offset:]
	if limit >= 0 && limit < len(items) {
		items = items[:limit]
	}
	return items, nil
}

// version parses a {version} path segment: "latest" and -1 are the latest (0 returned).
func parseVersion(v string) (int, error) {
	if v == "latest" {
		return 0, nil
	}
	i, err := strconv.Atoi(v)
	if err == nil && i == -1 {
		return 0, nil
	}
	if err != nil || i < 1 || i > math.MaxInt32 {
		return 0, unprocessable(codeInvalidVersion, invalidVersionMessageFmt, v)
	}
	return i, nil
}

func listSubjects(st *state, q *request) (result, error) {
	prefix := q.query.Get("subjectPrefix")
	deleted, deletedOnly := q.flag("deleted"), q.flag("deletedOnly")
	out := []string{}
	for _, name := range st.sortedSubjects() {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		live, soft := false, false
		for _, v := range st.subjects[name].versions {
			live = live || !v.deleted
			soft = soft || v.deleted
		}
		if deletedOnly && soft && !live || !deletedOnly && (live || deleted && soft) {
			out = append(out, name)
		}
	}
	page, err := paginate(q, out)
	return result{value: page}, err
}

func (r *Registry) listSchemas(st *state, q *request) (result, error) {
	prefix := q.query.Get("subjectPrefix")
	deleted, latestOnly := q.flag("deleted"), q.flag("latestOnly")
	out := []schemaJSON{}
	for _, name := range st.sortedSubjects() {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		var vs []subjectVersion
		for _, v := range st.subjects[name].versions {
			if deleted || !v.deleted {
				vs = append(vs, v)
			}
		}
		if latestOnly && len(vs) > 0 {
			vs = vs[len(vs)-1:]
		}
		for _, v := range vs {
			out = append(out, st.ids[v.id].json(name, v))
		}
	}
	page, err := paginate(q, out)
	return result{value: page}, err
}

func (r *Registry) schemaByID(st *state, q *request, idText string, rest []string) (result, error) {
	id, err := strconv.Atoi(idText)
	rec := st.ids[id]
	if err != nil || rec == nil {
		return result{}, notFound(codeSchemaNotFound, "Schema %s not found", idText)
	}
	// ?subject= only picks a context in Confluent; with the default context alone it changes nothing.
	deleted := q.flag("deleted")
	if len(rest) == 0 {
		out := schemaJSON{SchemaType: rec.typ, References: rec.refs, Schema: rec.text}
		if q.flag("fetchMaxId") {
			maxID := st.nextID - 1
			out.MaxID = &maxID
		}
		return result{value: out}, nil
	}
	switch rest[0] {
	case "schema":
		return result{raw: rec.text}, nil
	case "subjects", "versions":
		subjects := []string{}
		versions := []map[string]any{}
		for _, u := range rec.usages {
			s := st.subjects[u.subject]
			if v := s.versions[s.find(u.version)]; v.deleted && !deleted {
				continue
			}
			if !slices.Contains(subjects, u.subject) {
				subjects = append(subjects, u.subject)
			}
			versions = append(versions, map[string]any{"subject": u.subject, "version": u.version})
		}
		if rest[0] == "subjects" {
			slices.Sort(subjects)
			return result{value: subjects}, nil
		}
		return result{value: versions}, nil
	}
	return result{}, errorf(http.StatusNotFound, http.StatusNotFound, "HTTP 404 Not Found")
}

func listVersions(st *state, q *request, subject string) (result, error) {
	deleted, deletedOnly := q.flag("deleted"), q.flag("deletedOnly")
	out := []int{}
	if s := st.subjects[subject]; s != nil {
		for _, v := range s.versions {
			if deletedOnly && v.deleted || !deletedOnly && (deleted || !v.deleted) {
				out = append(out, v.version)
			}
		}
	}
	if !st.hasVersions(subject, deleted || deletedOnly) {
		return result{}, notFound(codeSubjectNotFound, subjectNotFoundMessageFmt, subject)
	}
	page, err := paginate(q, out)
	return result{value: page}, err
}

// resolveVersion finds version text of subject: the latest live one for "latest"/-1 (the latest
// of all with deleted), else that version, which must be live unless deleted.
func resolveVersion(st *state, subject, text string, deleted bool) (int, error) {
	v, err := parseVersion(text)
	if err != nil {
		return 0, err
	}
	s := st.subjects[subject]
	if !st.hasVersions(subject, deleted) {
		return 0, notFound(codeSubjectNotFound, subjectNotFoundMessageFmt, subject)
	}
	if v == 0 {
		for i := len(s.versions) - 1; i >= 0; i-- {
			if deleted || !s.versions[i].deleted {
				return i, nil
			}
		}
	}
	i := s.find(v)
	if i < 0 || s.versions[i].deleted && !deleted {
		return 0, notFound(codeVersionNotFound, versionNotFoundMessageFmt, v)
	}
	return i, nil
}

func getVersion(st *state, q *request, subject, text string, rest []string) (result, error) {
	i, err := resolveVersion(st, subject, text, q.flag("deleted"))
	if err != nil {
		return result{}, err
	}
	v := st.subjects[subject].versions[i]
	rec := st.ids[v.id]
	switch {
	case len(rest) == 0:
		return result{value: rec.json(subject, v)}, nil
	case rest[0] == "schema":
		return result{raw: rec.text}, nil
	default: // referencedby
		ids := st.referencedBy(subject, v.version)
		if ids == nil {
			ids = []int{}
		}
		return result{value: ids}, nil
	}
}

// registration is the body of POST /subjects/{s}/versions, of a lookup and of a compatibility check.
type registration struct {
	Schema     string               `json:"schema"`
	SchemaType string               `json:"schemaType"`
	References []sr.SchemaReference `json:"references"`
	ID         int                  `json:"id"`
	Version    int                  `json:"version"`
}

// candidate decodes a registration body and parses its schema (references resolved against st).
// The result has no id yet.
func (r *Registry) candidate(st *state, body []byte) (*stored, registration, error) {
	var reg registration
	if err := json.Unmarshal(body, &reg); err != nil {
		return nil, reg, errorf(http.StatusBadRequest, http.StatusBadRequest, "Unrecognized request body: %v", err)
	}
	if reg.SchemaType == "" {
		reg.SchemaType = typeAvro
	}
	if !slices.Contains(schemaTypes, reg.SchemaType) {
		return nil, reg, unprocessable(codeInvalidSchema, "Invalid schema type %s", reg.SchemaType)
	}
	if strings.TrimSpace(reg.Schema) == "" {
		return nil, reg, unprocessable(codeInvalidSchema, "Empty schema")
	}
	rec, err := r.build(st, reg.SchemaType, reg.Schema, reg.References)
	if err != nil {
		return nil, reg, unprocessable(codeInvalidSchema, "Invalid schema: %v", err)
	}
	return rec, reg, nil
}

// build parses a schema of type typ with its references. Reference versions -1 are resolved to the
// subject's latest.
func (r *Registry) build(st *state, typ, text string, refs []sr.SchemaReference) (*stored, error) {
	refs = slices.Clone(refs)
	refKey := ""
	for i, ref := range refs {
		if ref.Version == -1 {
			if s := st.subjects[ref.Subject]; s != nil {
				if live := s.live(); len(live) > 0 {
					refs[i].Version = live[len(live)-1].version
				}
			}
		}
		if _, _, err := referenced(st, refs[i]); err != nil {
			return nil, err
		}
		refKey += "\x00" + ref.Name + "\x00" + ref.Subject + "\x00" + strconv.Itoa(refs[i].Version)
	}
	rec := &stored{typ: typ, text: text, refs: refs}
	if typ != typeAvro {
		rec.key = typ + "\x00" + text + refKey
		return rec, nil
	}
	cache, err := loadReferences(st, refs)
	if err != nil {
		return nil, err
	}
	p, err := parseAvro(text, cache)
	if err != nil {
		return nil, err
	}
	rec.avro, rec.key = p.schema, typeAvro+"\x00"+p.key+refKey
	return rec, nil
}

func (r *Registry) register(st *state, q *request, subject string) (result, error) {
	cand, reg, err := r.candidate(st, q.body)
	if err != nil {
		return result{}, err
	}
	s := st.subjects[subject]
	if s != nil {
		for _, v := range s.versions {
			if !v.deleted && st.ids[v.id].key == cand.key {
				return result{value: map[string]int{"id": v.id}}, nil
			}
		}
	}
	if reg.ID > 0 || reg.Version > 0 {
		return result{}, unprocessable(codeOperationNotPermitted, notImportModeMessageFmt, subject)
	}
	if cand.typ == typeAvro {
		level, msgs, err := r.evaluate(st, subject, cand, "")
		if err != nil {
			return result{}, err
		}
		if len(msgs) > 0 {
			return result{}, errorf(http.StatusConflict, codeIncompatible,
				"Schema being registered is incompatible with an earlier schema for subject %q, details: [%s, {compatibility: '%s'}]",
				subject, strings.Join(msgs, ", "), level)
		}
	}
	rec := st.byKey[cand.key]
	if rec == nil {
		rec = cand
		rec.id = st.nextID
	}
	version := st.add(subject, rec, 0)
	e := &entry{Op: opRegister, Subject: subject, Version: version, ID: rec.id,
		Schema: &sr.Schema{Schema: rec.text, Type: schemaTypeOf(rec.typ), References: rec.refs}}
	return result{value: map[string]int{"id": rec.id}, reg: e}, nil
}

func schemaTypeOf(typ string) sr.SchemaType {
	var t sr.SchemaType
	_ = t.UnmarshalText([]byte(typ)) // typ is one of schemaTypes
	return t
}

func typeString(t sr.SchemaType) string {
	if b, err := t.MarshalText(); err == nil {
		return string(b)
	}
	return typeAvro
}

func (r *Registry) lookup(st *state, q *request, subject string) (result, error) {
	deleted := q.flag("deleted")
	if !st.hasVersions(subject, deleted) {
		return result{}, notFound(codeSubjectNotFound, subjectNotFoundMessageFmt, subject)
	}
	cand, _, err := r.candidate(st, q.body)
	if err != nil {
		return result{}, err
	}
	for _, v := range st.subjects[subject].versions {
		if rec := st.ids[v.id]; (deleted || !v.deleted) && rec.key == cand.key {
			return result{value: rec.json(subject, v)}, nil
		}
	}
	return result{}, notFound(codeSchemaNotFound, schemaNotFoundMessage)
}

func deleteSubject(st *state, q *request, subject string) (result, error) {
	s := st.subjects[subject]
	if !st.hasVersions(subject, true) {
		return result{}, notFound(codeSubjectNotFound, subjectNotFoundMessageFmt, subject)
	}
	permanent := q.flag("permanent")
	var deleted []int
	for _, v := range s.versions {
		if !permanent && v.deleted {
			continue
		}
		if permanent && !v.deleted {
			return result{}, notFound(codeSubjectNotSoftDeleted, subjectNotSoftDeletedMsgFmt, subject)
		}
		if ids := st.referencedBy(subject, v.version); len(ids) > 0 {
			return result{}, unprocessable(codeReferenceExists, referenceExistsMessageFmt, subject, v.version)
		}
		deleted = append(deleted, v.version)
	}
	if len(deleted) == 0 {
		return result{}, notFound(codeSubjectSoftDeleted, subjectSoftDeletedMsgFmt, subject)
	}
	if permanent {
		s.level, s.normalize = "", nil
		for len(s.versions) > 0 {
			st.hardDelete(subject, 0)
		}
	} else {
		for i := range s.versions {
			s.versions[i].deleted = true
		}
	}
	return result{value: deleted}, nil
}

func deleteVersion(st *state, q *request, subject, text string) (result, error) {
	permanent := q.flag("permanent")
	v, err := parseVersion(text)
	if err != nil {
		return result{}, err
	}
	if !st.hasVersions(subject, true) {
		return result{}, notFound(codeSubjectNotFound, subjectNotFoundMessageFmt, subject)
	}
	// "latest" is the latest live version, or with permanent=true the latest of all; a numbered
	// version is found deleted or not, and answered below.
	i, err := resolveVersion(st, subject, text, permanent || v != 0)
	if err != nil {
		return result{}, err
	}
	s := st.subjects[subject]
	sv := s.versions[i]
	switch {
	case permanent && !sv.deleted:
		return result{}, notFound(codeVersionNotSoftDeleted, versionNotSoftDeletedMsgFmt, subject, sv.version)
	case !permanent && sv.deleted:
		return result{}, notFound(codeVersionSoftDeleted, versionSoftDeletedMsgFmt, subject, sv.version)
	}
	if ids := st.referencedBy(subject, sv.version); len(ids) > 0 {
		return result{}, unprocessable(codeReferenceExists, referenceExistsMessageFmt, subject, sv.version)
	}
	if permanent {
		st.hardDelete(subject, i)
	} else {
		s.versions[i].deleted = true
	}
	return result{value: sv.version}, nil
}

// levels are the compatibility levels Confluent accepts (case-insensitively).
var levels = []string{"NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"}

// configBody is PUT /config's body and GET /config's answer.
type configBody struct {
	Compatibility      string `json:"compatibility,omitempty"`
	CompatibilityLevel string `json:"compatibilityLevel,omitempty"`
	Normalize          *bool  `json:"normalize,omitempty"`
}

func (r *Registry) config(st *state, q *request, rest []string) (result, error) {
	subject := ""
	if len(rest) == 1 {
		subject = rest[0]
		if err := checkSubject(subject); err != nil {
			return result{}, err
		}
	}
	level, normalize := &st.globalLevel, &st.globalNormalize
	if subject != "" {
		s := st.subjects[subject]
		if s == nil {
			s = &subjectState{}
		}
		level, normalize = &s.level, &s.normalize
		if q.method == http.MethodPut {
			s = st.subject(subject)
			level, normalize = &s.level, &s.normalize
		}
	}
	answer := func() configBody { return configBody{CompatibilityLevel: *level, Normalize: *normalize} }
	switch q.method {
	case http.MethodGet:
		if *level == "" {
			if !q.flag("defaultToGlobal") {
				return result{}, notFound(codeSubjectLevelNoConfig,
					"Subject '%s' does not have subject-level compatibility configured", subject)
			}
			return result{value: configBody{CompatibilityLevel: st.globalLevel, Normalize: st.globalNormalize}}, nil
		}
		return result{value: answer()}, nil
	case http.MethodPut:
		var body configBody
		if err := json.Unmarshal(q.body, &body); err != nil {
			return result{}, errorf(http.StatusBadRequest, http.StatusBadRequest, "Unrecognized request body: %v", err)
		}
		if body.Compatibility != "" {
			up := strings.ToUpper(body.Compatibility)
			if !slices.Contains(levels, up) {
				return result{}, unprocessable(codeInvalidLevel, invalidLevelMessage)
			}
			*level, body.Compatibility = up, up
		}
		if body.Normalize != nil {
			*normalize = body.Normalize
		}
		return result{value: configBody{Compatibility: body.Compatibility, Normalize: body.Normalize}}, nil
	default: // DELETE
		if subject == "" {
			prev := answer()
			*level, *normalize = r.defaultLevel.String(), nil
			return result{value: prev}, nil
		}
		if !st.hasVersions(subject, true) && *level == "" {
			return result{}, notFound(codeSubjectNotFound, subjectNotFoundMessageFmt, subject)
		}
		prev := answer()
		*level, *normalize = "", nil
		if s := st.subjects[subject]; s != nil && len(s.versions) == 0 {
			delete(st.subjects, subject)
		}
		return result{value: prev}, nil
	}
}

// mode answers the mode endpoints. The registry is always READWRITE: reading the mode works as in
// Confluent, setting READWRITE is accepted, other modes are refused.
func mode(st *state, q *request, rest []string) (result, error) {
	subject := ""
	if len(rest) == 1 {
		subject = rest[0]
		if err := checkSubject(subject); err != nil {
			return result{}, err
		}
	}
	switch q.method {
	case http.MethodGet:
		if subject != "" && !q.flag("defaultToGlobal") {
			return result{}, notFound(codeSubjectLevelNoMode, "Subject '%s' does not have subject-level mode configured", subject)
		}
		return result{value: map[string]string{"mode": modeReadWrite}}, nil
	case http.MethodPut:
		var body struct {
			Mode string `json:"mode"`
		}
		if err := json.Unmarshal(q.body, &body); err != nil {
			return result{}, errorf(http.StatusBadRequest, http.StatusBadRequest, "Unrecognized request body: %v", err)
		}
		switch strings.ToUpper(body.Mode) {
		case modeReadWrite:
			return result{value: map[string]string{"mode": modeReadWrite}}, nil
		case "READONLY", "READONLY_OVERRIDE", "IMPORT":
			return result{}, unprocessable(codeOperationNotPermitted, "The embedded registry is always in READWRITE mode")
		}
		return result{}, unprocessable(codeInvalidMode, invalidModeMessage)
	default: // DELETE
		if subject != "" && !st.hasVersions(subject, true) {
			return result{}, notFound(codeSubjectNotFound, subjectNotFoundMessageFmt, subject)
		}
		return result{value: map[string]string{"mode": modeReadWrite}}, nil
	}
}

// readBody reads a request body of at most maxBody bytes.
func readBody(w http.ResponseWriter, req *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, unprocessable(codeSchemaTooLarge, "Request body larger than %d bytes", maxBody)
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, http.StatusBadRequest, "reading the request body: %v", err)
	}
	return body, nil
}

package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"
)

type routeKind int

const (
	routeOther    routeKind = iota // reads and lookups, served by srfake as they are
	routeRegister                  // POST /subjects/{subject}/versions
	routeCompat                    // POST /compatibility/subjects/{subject}/versions[/{version}]
	routeChange                    // PUT and DELETE: served by srfake, journaled when they succeed
)

type route struct {
	kind    routeKind
	subject string
	// version is the compatibility endpoint's {version}; "" for the form without one.
	version string
}

// parseRoute classifies req. Subjects and versions are unescaped from the escaped path (sr clients
// escape them, "/" included). A /contexts/{name} prefix is dropped: srfake serves those paths like the
// unprefixed ones.
func parseRoute(req *http.Request) route {
	if req.Method == http.MethodPut || req.Method == http.MethodDelete {
		return route{kind: routeChange}
	}
	if req.Method != http.MethodPost {
		return route{}
	}
	segs := strings.Split(strings.TrimPrefix(req.URL.EscapedPath(), "/"), "/")
	if len(segs) > 2 && segs[0] == "contexts" {
		segs = segs[2:]
	}
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil {
			return route{}
		}
		segs[i] = u
	}
	switch {
	case len(segs) == 3 && segs[0] == "subjects" && segs[2] == "versions":
		return route{kind: routeRegister, subject: segs[1]}
	case len(segs) >= 4 && len(segs) <= 5 && segs[0] == "compatibility" && segs[1] == "subjects" && segs[3] == "versions":
		rt := route{kind: routeCompat, subject: segs[2]}
		if len(segs) == 5 {
			rt.version = segs[4]
		}
		return rt
	}
	return route{}
}

// apiError is an error answered with a Confluent error body.
type apiError struct {
	status, code int
	msg          string
}

func (e *apiError) Error() string { return "registry: " + e.msg }

func writeAPIError(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, ae.status, ae.code, ae.msg)
		return
	}
	writeError(w, http.StatusInternalServerError, sr.ErrStoreError.Code, err.Error())
}

// intercept is srfake's interceptor: it refuses incompatible Avro registrations and answers the
// compatibility endpoints, which srfake stubs with "compatible". Everything else, and non-Avro
// schemas, go on to srfake.
func (r *Registry) intercept(w http.ResponseWriter, req *http.Request) bool {
	rt := parseRoute(req)
	if rt.kind != routeRegister && rt.kind != routeCompat {
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	req.Body = io.NopCloser(bytes.NewReader(body))
	var sch sr.Schema
	if err != nil || json.Unmarshal(body, &sch) != nil || sch.Type != sr.TypeAvro {
		return false // srfake answers malformed bodies and stores other schema types unchecked
	}
	if rt.kind == routeCompat {
		r.answerCompat(w, req, rt, sch)
		return true
	}
	if _, found, err := r.lookup(req.Context(), rt.subject, body); err != nil || found {
		return false // an already registered schema is not checked again; srfake returns its id
	}
	level, msgs, err := r.evaluate(req.Context(), rt.subject, sch, "")
	if err != nil {
		writeAPIError(w, err)
		return true
	}
	if len(msgs) > 0 {
		writeError(w, http.StatusConflict, sr.ErrIncompatibleSchema.Code, fmt.Sprintf(
			"Schema being registered is incompatible with an earlier schema for subject %q, details: [%s, {compatibility: '%s'}]",
			rt.subject, strings.Join(msgs, ", "), level))
		return true
	}
	return false
}

// answerCompat answers POST /compatibility/...: {"is_compatible": bool}, with "messages" when
// ?verbose=true, as Confluent does. With a version, the candidate is compared with that version alone
// ("latest": the newest, compatible when there is none); without, with the versions the subject's
// level compares a registration with.
func (r *Registry) answerCompat(w http.ResponseWriter, req *http.Request, rt route, sch sr.Schema) {
	verbose := req.URL.Query().Get("verbose") == "true"
	level, msgs, err := r.evaluate(req.Context(), rt.subject, sch, rt.version)
	if err == nil && len(msgs) > 0 {
		msgs = append(msgs, fmt.Sprintf("{compatibility: '%s'}", level))
	}
	var ae *apiError
	if errors.As(err, &ae) && ae.code == sr.ErrInvalidSchema.Code && verbose {
		msgs, err = []string{ae.msg}, nil
	}
	if err != nil {
		writeAPIError(w, err)
		return
	}
	resp := struct {
		Is       bool     `json:"is_compatible"`
		Messages []string `json:"messages,omitempty"`
	}{Is: len(msgs) == 0}
	if verbose {
		resp.Messages = msgs
	}
	writeJSON(w, http.StatusOK, resp)
}

// evaluate compares candidate with subject's versions (see answerCompat for version) at the subject's
// level and returns that level and one message per incompatibility; none means compatible.
func (r *Registry) evaluate(ctx context.Context, subject string, candidate sr.Schema, version string) (sr.CompatibilityLevel, []string, error) {
	cand, err := r.parseAvro(candidate)
	if err != nil {
		return 0, nil, &apiError{http.StatusUnprocessableEntity, sr.ErrInvalidSchema.Code, "Invalid schema: " + err.Error()}
	}
	level, err := r.level(ctx, subject)
	if err != nil {
		return 0, nil, err
	}
	earlier, err := r.earlier(ctx, subject, level, version)
	if err != nil {
		return 0, nil, err
	}
	history := make([]avro.Schema, len(earlier))
	for i, ss := range earlier {
		if ss.Type != sr.TypeAvro {
			return level, []string{fmt.Sprintf("{oldSchemaVersion: %d, description:'Incompatible because of different schema type'}", ss.Version)}, nil
		}
		if history[i], err = r.parseAvro(ss.Schema); err != nil {
			return 0, nil, fmt.Errorf("registry: subject %q version %d: %w", subject, ss.Version, err)
		}
	}
	var msgs []string
	for _, f := range schemas.CheckCompatibility(level, cand, history).Errors {
		msgs = append(msgs, fmt.Sprintf("{direction:'%s', oldSchemaVersion: %d, description:'%s'}", f.Direction, earlier[f.Against].Version, f.Message))
	}
	return level, msgs, nil
}

// earlier returns the versions a candidate is compared with, oldest first: for version "" those the
// level checks (none for NONE, the newest, or all for transitive levels), else the one named.
func (r *Registry) earlier(ctx context.Context, subject string, level sr.CompatibilityLevel, version string) ([]sr.SubjectSchema, error) {
	var versions []int
	if version == "" || version == "latest" {
		status, body, err := r.inproc(ctx, http.MethodGet, "/subjects/"+url.PathEscape(subject)+"/versions", nil)
		if err != nil {
			return nil, err
		}
		if status == http.StatusOK {
			if err := json.Unmarshal(body, &versions); err != nil {
				return nil, fmt.Errorf("registry: versions of %q: %w", subject, err)
			}
		}
		switch {
		case len(versions) == 0:
		case version == "latest", level != sr.CompatNone && !transitive(level):
			versions = versions[len(versions)-1:]
		case level == sr.CompatNone:
			versions = nil
		}
	} else {
		v, err := strconv.Atoi(version)
		if err != nil || v <= 0 {
			return nil, &apiError{http.StatusUnprocessableEntity, sr.ErrInvalidVersion.Code,
				fmt.Sprintf("The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", version)}
		}
		versions = []int{v}
	}
	out := make([]sr.SubjectSchema, 0, len(versions))
	for _, v := range versions {
		ss, ok := r.fake.GetSchema(subject, v)
		if !ok {
			return nil, &apiError{http.StatusNotFound, sr.ErrVersionNotFound.Code, fmt.Sprintf("Version %d not found.", v)}
		}
		out = append(out, ss)
	}
	return out, nil
}

func transitive(level sr.CompatibilityLevel) bool {
	return level == sr.CompatBackwardTransitive || level == sr.CompatForwardTransitive || level == sr.CompatFullTransitive
}

// level returns subject's compatibility level, the global one if it has none.
func (r *Registry) level(ctx context.Context, subject string) (sr.CompatibilityLevel, error) {
	status, body, err := r.inproc(ctx, http.MethodGet, "/config/"+url.PathEscape(subject), nil)
	if err != nil {
		return 0, err
	}
	var cfg struct {
		Level sr.CompatibilityLevel `json:"compatibilityLevel"`
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("registry: compatibility level of %q: HTTP %d: %s", subject, status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &cfg); err != nil {
		return 0, fmt.Errorf("registry: compatibility level of %q: %w", subject, err)
	}
	return cfg.Level, nil
}

// lookup finds the live version of subject holding the schema in body (a registration body), with
// srfake's notion of equal schemas.
func (r *Registry) lookup(ctx context.Context, subject string, body []byte) (sr.SubjectSchema, bool, error) {
	status, resp, err := r.inproc(ctx, http.MethodPost, "/subjects/"+url.PathEscape(subject), body)
	if err != nil || status != http.StatusOK {
		return sr.SubjectSchema{}, false, err
	}
	var ss sr.SubjectSchema
	if err := json.Unmarshal(resp, &ss); err != nil {
		return sr.SubjectSchema{}, false, fmt.Errorf("registry: looking up a schema in %q: %w", subject, err)
	}
	return ss, true, nil
}

// parseAvro parses s with its references, each in a cache of its own so that no name leaks between
// schemas.
func (r *Registry) parseAvro(s sr.Schema) (avro.Schema, error) {
	cache := &avro.SchemaCache{}
	if err := r.loadReferences(s.References, cache, map[string]bool{}); err != nil {
		return nil, err
	}
	return avro.ParseWithCache(s.Schema, "", cache)
}

// loadReferences parses the referenced schemas, depth first, into cache; loading guards against
// reference cycles.
func (r *Registry) loadReferences(refs []sr.SchemaReference, cache *avro.SchemaCache, loading map[string]bool) error {
	for _, ref := range refs {
		key := ref.Subject + "\x00" + strconv.Itoa(ref.Version)
		if loading[key] {
			return fmt.Errorf("reference cycle through %q version %d", ref.Subject, ref.Version)
		}
		ss, ok := r.fake.GetSchema(ref.Subject, ref.Version)
		if !ok {
			return fmt.Errorf("reference %q: subject %q version %d not found", ref.Name, ref.Subject, ref.Version)
		}
		loading[key] = true
		if err := r.loadReferences(ss.References, cache, loading); err != nil {
			return err
		}
		delete(loading, key)
		if _, err := avro.ParseWithCache(ss.Schema.Schema, "", cache); err != nil {
			return fmt.Errorf("reference %q: %w", ref.Name, err)
		}
	}
	return nil
}

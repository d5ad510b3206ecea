package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/streams/registry"
)

const subject = "hotel.reservation-hotelbus.reservation.v1.ReservationCreatedEvent"

const idField = `{"name":"reservationId","type":"string"}`

func record(fields ...string) sr.Schema {
	return sr.Schema{Schema: fmt.Sprintf(`{"type":"record","name":"ReservationCreated","namespace":"hotelbus.reservation.v1","fields":[%s]}`,
		strings.Join(fields, ","))}
}

var (
	v1 = record(idField)
	// v2 adds an optional field: compatible at every level.
	v2 = record(idField, `{"name":"note","type":["null","string"],"default":null}`)
	// required adds a field without default: the new schema cannot read v1/v2 data.
	required = record(idField, `{"name":"loyaltyTier","type":"string"}`)
)

func start(t *testing.T, opts ...registry.Option) (*registry.Registry, *sr.Client) {
	t.Helper()
	r, err := registry.New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	cl, err := sr.NewClient(sr.URLs(r.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return r, cl
}

func create(t *testing.T, cl *sr.Client, subj string, s sr.Schema) sr.SubjectSchema {
	t.Helper()
	ss, err := cl.CreateSchema(context.Background(), subj, s)
	if err != nil {
		t.Fatalf("CreateSchema %q: %v", subj, err)
	}
	return ss
}

func responseError(t *testing.T, err error, status int) *sr.ResponseError {
	t.Helper()
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != status {
		t.Fatalf("error %v, want an HTTP %d response error", err, status)
	}
	return re
}

func setLevel(t *testing.T, cl *sr.Client, level sr.CompatibilityLevel, subjects ...string) {
	t.Helper()
	for _, res := range cl.SetCompatibility(context.Background(), sr.SetCompatibility{Level: level}, subjects...) {
		if res.Err != nil {
			t.Fatalf("SetCompatibility %v %q: %v", level, res.Subject, res.Err)
		}
	}
}

func levelOf(t *testing.T, cl *sr.Client, subj string) sr.CompatibilityLevel {
	t.Helper()
	res := cl.Compatibility(sr.WithParams(context.Background(), sr.DefaultToGlobal), subj)
	if res[0].Err != nil {
		t.Fatalf("Compatibility %q: %v", subj, res[0].Err)
	}
	return res[0].Level
}

func TestRegisterEnforcesCompatibility(t *testing.T) {
	ctx := context.Background()
	_, cl := start(t)
	if got := levelOf(t, cl, sr.GlobalSubject); got != sr.CompatFullTransitive {
		t.Fatalf("default global level %v, want FULL_TRANSITIVE", got)
	}
	first := create(t, cl, subject, v1)
	second := create(t, cl, subject, v2)
	if first.Version != 1 || second.Version != 2 || second.ID == first.ID {
		t.Fatalf("v1 %+v, v2 %+v: want versions 1 and 2 with distinct ids", first, second)
	}

	_, err := cl.CreateSchema(ctx, subject, required)
	re := responseError(t, err, http.StatusConflict)
	if re.ErrorCode != 409 || !strings.Contains(re.Message, `incompatible with an earlier schema for subject "`+subject+`"`) ||
		!strings.Contains(re.Message, "loyaltyTier") {
		t.Errorf("409 body: code %d message %q, want code 409 naming the subject and field loyaltyTier", re.ErrorCode, re.Message)
	}
	if vs, err := cl.SubjectVersions(ctx, subject); err != nil || !slices.Equal(vs, []int{1, 2}) {
		t.Errorf("versions after the refusal: %v, %v; want [1 2]", vs, err)
	}

	_, err = cl.CreateSchema(ctx, subject, sr.Schema{Schema: `{"type":"record","name":"Broken","fields":[{"name":"x","type":"nope"}]}`})
	if re := responseError(t, err, http.StatusUnprocessableEntity); re.ErrorCode != sr.ErrInvalidSchema.Code {
		t.Errorf("invalid Avro: error code %d, want %d", re.ErrorCode, sr.ErrInvalidSchema.Code)
	}
}

func TestAlreadyRegisteredSchemaIsNotRechecked(t *testing.T) {
	_, cl := start(t)
	create(t, cl, subject, v1)
	setLevel(t, cl, sr.CompatNone, subject)
	accepted := create(t, cl, subject, required)
	setLevel(t, cl, sr.CompatFullTransitive, subject)
	again := create(t, cl, subject, required)
	if again.ID != accepted.ID || again.Version != accepted.Version {
		t.Errorf("re-registering: %+v, want the existing %+v", again, accepted)
	}
}

func TestLevels(t *testing.T) {
	ctx := context.Background()
	_, cl := start(t, registry.DefaultLevel(sr.CompatBackward))
	other := "other-value"
	create(t, cl, subject, v1)
	create(t, cl, other, v1)

	setLevel(t, cl, sr.CompatForward, subject)
	if got := levelOf(t, cl, subject); got != sr.CompatForward {
		t.Fatalf("subject level %v, want FORWARD", got)
	}
	// FORWARD: v1 reads data of a schema that adds a field, with or without default.
	if ss := create(t, cl, subject, required); ss.Version != 2 {
		t.Errorf("FORWARD subject: %+v, want version 2", ss)
	}
	// The other subject keeps the global BACKWARD.
	_, err := cl.CreateSchema(ctx, other, required)
	responseError(t, err, http.StatusConflict)

	setLevel(t, cl, sr.CompatNone)
	if ss := create(t, cl, other, required); ss.Version != 2 {
		t.Errorf("global NONE: %+v, want version 2", ss)
	}
}

func TestCompatibilityEndpoint(t *testing.T) {
	ctx := context.Background()
	verbose := sr.WithParams(ctx, sr.Verbose)
	_, cl := start(t)
	setLevel(t, cl, sr.CompatBackwardTransitive, subject)
	create(t, cl, subject, record(idField, `{"name":"x","type":"string"}`))
	create(t, cl, subject, record(idField))
	// v3 reads v2 (no x: default) but not v1 (x is a string).
	v3 := record(idField, `{"name":"x","type":"int","default":0}`)

	for _, tc := range []struct {
		name    string
		version int
		schema  sr.Schema
		want    bool
	}{
		{"latest", -1, v3, true},
		{"version 2", 2, v3, true},
		{"version 1", 1, v3, false},
		{"all versions, transitive", -2, v3, false},
		{"latest, missing default", -1, record(idField, `{"name":"loyaltyTier","type":"string"}`), false},
	} {
		res, err := cl.CheckCompatibility(ctx, subject, tc.version, tc.schema)
		if err != nil || res.Is != tc.want || res.Messages != nil {
			t.Errorf("%s: %+v, %v; want is_compatible %v without messages", tc.name, res, err, tc.want)
		}
		res, err = cl.CheckCompatibility(verbose, subject, tc.version, tc.schema)
		if err != nil || res.Is != tc.want || (len(res.Messages) > 0) == tc.want {
			t.Errorf("%s verbose: %+v, %v; want is_compatible %v with messages when incompatible", tc.name, res, err, tc.want)
		}
	}

	res, err := cl.CheckCompatibility(verbose, subject, -1, record(idField, `{"name":"loyaltyTier","type":"string"}`))
	if err != nil || !strings.Contains(strings.Join(res.Messages, " "), "loyaltyTier") ||
		!strings.Contains(strings.Join(res.Messages, " "), "BACKWARD_TRANSITIVE") {
		t.Errorf("verbose messages %q, %v: want the field and the level", res.Messages, err)
	}

	broken := sr.Schema{Schema: `{"type":"record","name":"Broken","fields":[{"name":"x","type":"nope"}]}`}
	_, err = cl.CheckCompatibility(ctx, subject, -1, broken)
	responseError(t, err, http.StatusUnprocessableEntity)
	if res, err := cl.CheckCompatibility(verbose, subject, -1, broken); err != nil || res.Is || len(res.Messages) != 1 ||
		!strings.Contains(res.Messages[0], "Invalid schema") {
		t.Errorf("invalid schema, verbose: %+v, %v; want incompatible with the parse error", res, err)
	}

	_, err = cl.CheckCompatibility(ctx, subject, 99, v3)
	if re := responseError(t, err, http.StatusNotFound); re.ErrorCode != sr.ErrVersionNotFound.Code {
		t.Errorf("unknown version: code %d, want %d", re.ErrorCode, sr.ErrVersionNotFound.Code)
	}
	if res, err := cl.CheckCompatibility(ctx, "no-such-subject", -1, v3); err != nil || !res.Is {
		t.Errorf("latest of an empty subject: %+v, %v; want compatible", res, err)
	}

	// Only the latest version counts once the level is not transitive.
	setLevel(t, cl, sr.CompatBackward, subject)
	if res, err := cl.CheckCompatibility(ctx, subject, -2, v3); err != nil || !res.Is {
		t.Errorf("all versions at BACKWARD: %+v, %v; want compatible", res, err)
	}
}

func TestEscapedSubject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, cl := start(t, registry.DataDir(dir))
	subj := "team/a b-value"
	first := create(t, cl, subj, v1)
	_, err := cl.CreateSchema(ctx, subj, required)
	if re := responseError(t, err, http.StatusConflict); !strings.Contains(re.Message, `"team/a b-value"`) {
		t.Errorf("409 message %q does not name the subject", re.Message)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, cl = start(t, registry.DataDir(dir))
	if got, err := cl.SchemaByVersion(ctx, subj, 1); err != nil || got.ID != first.ID {
		t.Errorf("after restart: %+v, %v; want id %d", got, err, first.ID)
	}
}

func TestNonAvroIsNotChecked(t *testing.T) {
	_, cl := start(t)
	js := func(s string) sr.Schema { return sr.Schema{Type: sr.TypeJSON, Schema: s} }
	create(t, cl, "json-value", js(`{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}`))
	if ss := create(t, cl, "json-value", js(`{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}`)); ss.Version != 2 {
		t.Errorf("second JSON schema: %+v, want version 2", ss)
	}
}

// snapshot is the registry state a restart must keep.
type snapshot struct {
	schemas map[string][]sr.SubjectSchema
	levels  map[string]sr.CompatibilityLevel
	maxID   int
}

func snap(t *testing.T, cl *sr.Client, subjects ...string) snapshot {
	t.Helper()
	s := snapshot{schemas: map[string][]sr.SubjectSchema{}, levels: map[string]sr.CompatibilityLevel{}}
	for _, subj := range append(subjects, sr.GlobalSubject) {
		s.levels[subj] = levelOf(t, cl, subj)
		if subj == sr.GlobalSubject {
			continue
		}
		ss, err := cl.Schemas(sr.WithParams(context.Background(), sr.ShowDeleted), subj)
		if err != nil {
			t.Fatalf("Schemas %q: %v", subj, err)
		}
		s.schemas[subj] = ss
		for _, x := range ss {
			s.maxID = max(s.maxID, x.ID)
		}
	}
	return s
}

func (s snapshot) equal(o snapshot) bool {
	if s.maxID != o.maxID || len(s.schemas) != len(o.schemas) {
		return false
	}
	for subj, ss := range s.schemas {
		if !slices.EqualFunc(ss, o.schemas[subj], func(a, b sr.SubjectSchema) bool {
			return a.Subject == b.Subject && a.Version == b.Version && a.ID == b.ID && a.Schema.Schema == b.Schema.Schema
		}) {
			return false
		}
	}
	for subj, l := range s.levels {
		if o.levels[subj] != l {
			return false
		}
	}
	return true
}

func TestRestartKeepsIDsVersionsAndLevels(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, cl := start(t, registry.DataDir(dir))
	a, b := "a-value", "b-value"
	create(t, cl, a, v1)
	create(t, cl, a, v2)
	if shared := create(t, cl, b, v1); shared.ID != 1 {
		t.Fatalf("v1 under a second subject: id %d, want the reused id 1", shared.ID)
	}
	if err := cl.DeleteSchema(ctx, b, 1, sr.SoftDelete); err != nil {
		t.Fatal(err)
	}
	// v1 again after its soft delete: a new version of b with the old id.
	if again := create(t, cl, b, v1); again.Version != 2 || again.ID != 1 {
		t.Fatalf("v1 re-registered under b: %+v, want version 2 id 1", again)
	}
	create(t, cl, b, record(idField, `{"name":"nights","type":"int","default":1}`))
	setLevel(t, cl, sr.CompatBackward, a)
	setLevel(t, cl, sr.CompatForwardTransitive)
	before := snap(t, cl, a, b)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r, cl = start(t, registry.DataDir(dir))
	if after := snap(t, cl, a, b); !after.equal(before) {
		t.Fatalf("after restart:\n%+v\nbefore:\n%+v", after, before)
	}
	next := create(t, cl, a, record(idField, `{"name":"nights","type":"long","default":1}`))
	if next.ID != before.maxID+1 || next.Version != 3 {
		t.Errorf("first registration after restart: %+v, want id %d version 3", next, before.maxID+1)
	}
	// a is still BACKWARD after the restart.
	_, err := cl.CreateSchema(ctx, a, record(idField, `{"name":"nights","type":"int","default":1}`))
	responseError(t, err, http.StatusConflict)
	before = snap(t, cl, a, b)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// A second restart replays what was appended after the first.
	_, cl = start(t, registry.DataDir(dir))
	if after := snap(t, cl, a, b); !after.equal(before) {
		t.Fatalf("after second restart:\n%+v\nbefore:\n%+v", after, before)
	}
}

func TestTornLastLineIsDropped(t *testing.T) {
	dir := t.TempDir()
	r, cl := start(t, registry.DataDir(dir))
	create(t, cl, subject, v1)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "registry.jsonl")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"op":"register","subj`); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	r, cl = start(t, registry.DataDir(dir))
	if ss := create(t, cl, subject, v2); ss.Version != 2 || ss.ID != 2 {
		t.Fatalf("after a torn line: %+v, want version 2 id 2", ss)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), `"subj`+"\n") || strings.Count(string(data), "\n") != 2 {
		t.Errorf("journal after the torn line was cut and one entry appended:\n%s", data)
	}
	_, cl = start(t, registry.DataDir(dir))
	if vs, err := cl.SubjectVersions(context.Background(), subject); err != nil || !slices.Equal(vs, []int{1, 2}) {
		t.Errorf("versions: %v, %v; want [1 2]", vs, err)
	}
}

func TestCorruptJournal(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "registry.jsonl"), []byte("not json\n{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.New(registry.DataDir(dir)); !errors.Is(err, registry.ErrJournal) {
		t.Fatalf("New on a corrupt journal: %v, want ErrJournal", err)
	}
}

func TestMemoryOnly(t *testing.T) {
	ctx := context.Background()
	r, cl := start(t)
	if !strings.HasPrefix(r.URL(), "http://127.0.0.1:") {
		t.Errorf("URL %q, want a loopback address", r.URL())
	}
	create(t, cl, subject, v1)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, cl = start(t)
	if subs, err := cl.Subjects(ctx); err != nil || len(subs) != 0 {
		t.Errorf("fresh memory-only registry: subjects %v, %v; want none", subs, err)
	}
}

func TestConcurrentRegistrations(t *testing.T) {
	dir := t.TempDir()
	r, cl := start(t, registry.DataDir(dir))
	const writers, each = 6, 4
	subjects := make([]string, writers)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		subjects[w] = fmt.Sprintf("s%d-value", w)
		wg.Go(func() {
			fields := []string{idField}
			for i := range each {
				fields = append(fields, fmt.Sprintf(`{"name":"f%d_%d","type":["null","string"],"default":null}`, w, i))
				if _, err := cl.CreateSchema(context.Background(), subjects[w], record(fields...)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	before := snap(t, cl, subjects...)
	if before.maxID != writers*each {
		t.Fatalf("max id %d, want %d", before.maxID, writers*each)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, cl = start(t, registry.DataDir(dir))
	if after := snap(t, cl, subjects...); !after.equal(before) {
		t.Fatalf("after restart:\n%+v\nbefore:\n%+v", after, before)
	}
}

func TestChangesAfterCloseAreRefused(t *testing.T) {
	r, err := registry.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	w := httptest.NewRecorder()
	r.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/config", strings.NewReader(`{"compatibility":"NONE"}`)))
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("PUT /config after Close: %d %s, want 503", w.Code, w.Body)
	}
}

func TestInvalidOptions(t *testing.T) {
	for name, opt := range map[string]registry.Option{
		"empty listen":  registry.Listen(""),
		"unknown level": registry.DefaultLevel(sr.CompatibilityLevel(42)),
	} {
		if _, err := registry.New(opt); !errors.Is(err, registry.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

// TestRestartAfterHardDeletes: hard deletes, a re-registration after them (a new id, version 1
// again) and a config delete replay to the same state.
func TestRestartAfterHardDeletes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r, cl := start(t, registry.DataDir(dir))
	a := "a-value"
	create(t, cl, a, v1)
	create(t, cl, a, v2)
	for _, how := range []sr.DeleteHow{sr.SoftDelete, sr.HardDelete} {
		if _, err := cl.DeleteSubject(ctx, a, how); err != nil {
			t.Fatal(err)
		}
	}
	again := create(t, cl, a, v1)
	if again.Version != 1 || again.ID != 3 {
		t.Fatalf("v1 after the hard delete: %+v, want version 1 id 3", again)
	}
	setLevel(t, cl, sr.CompatNone, a)
	if res := cl.ResetCompatibility(ctx, a); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	before := snap(t, cl, a)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, cl = start(t, registry.DataDir(dir))
	if after := snap(t, cl, a); !after.equal(before) {
		t.Fatalf("after restart:\n%+v\nbefore:\n%+v", after, before)
	}
	if next := create(t, cl, a, v2); next.ID != 4 {
		t.Errorf("next registration: %+v, want id 4 (ids are never reused)", next)
	}
}

// TestReplaysSrfakeEraJournal: a journal written while the registry wrapped srfake, which accepted
// a hard delete without a soft delete first and a second soft delete, still replays.
func TestReplaysSrfakeEraJournal(t *testing.T) {
	dir := t.TempDir()
	schema := func(s sr.Schema) string { b, _ := json.Marshal(s); return string(b) }
	lines := []string{
		`{"op":"register","subject":"a","version":1,"id":1,"schema":` + schema(v1) + `}`,
		`{"op":"register","subject":"b","version":1,"id":2,"schema":` + schema(v2) + `}`,
		`{"op":"http","method":"DELETE","target":"/subjects/a/versions/1?permanent=true"}`,
		`{"op":"http","method":"DELETE","target":"/subjects/b"}`,
		`{"op":"http","method":"DELETE","target":"/subjects/b"}`,
	}
	if err := os.WriteFile(filepath.Join(dir, "registry.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, cl := start(t, registry.DataDir(dir))
	ctx := context.Background()
	if subs, err := cl.Subjects(sr.WithParams(ctx, sr.ShowDeleted)); err != nil || !slices.Equal(subs, []string{"b"}) {
		t.Errorf("subjects with deleted: %v, %v; want [b]", subs, err)
	}
	if ss := create(t, cl, "c", record(idField, `{"name":"x","type":"int","default":0}`)); ss.ID != 3 {
		t.Errorf("next id %d, want 3", ss.ID)
	}
}

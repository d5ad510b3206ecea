package registry_test

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/streams/registry"
)

// call is one request of a TestConfluentBehaviour row and what Confluent Schema Registry 7.x/8.x
// answers to it (io.confluent.kafka.schemaregistry.rest: Errors, the resources and their tests).
type call struct {
	method, path, body string
	status             int
	code               int    // error_code; 0: no error body expected
	has                string // a substring of the answer ("" : not checked)
	not                string // must not be in the answer
}

func get(path string, status int, has string) call { return call{"GET", path, "", status, 0, has, ""} }

func fail(method, path, body string, status, code int) call {
	return call{method, path, body, status, code, "", ""}
}

func post(path, body, has string) call { return call{"POST", path, body, 200, 0, has, ""} }

func put(path, body, has string) call { return call{"PUT", path, body, 200, 0, has, ""} }

func del(path, has string) call { return call{"DELETE", path, "", 200, 0, has, ""} }

// reg is a registration body for an Avro schema.
func reg(schema string) string {
	b, _ := json.Marshal(map[string]string{"schema": schema})
	return string(b)
}

func regRefs(schema, refs string) string {
	b, _ := json.Marshal(map[string]any{"schema": schema, "references": json.RawMessage(refs)})
	return string(b)
}

func avroRecord(name string, fields ...string) string {
	return `{"type":"record","name":"` + name + `","namespace":"hotel.v1","fields":[` + strings.Join(fields, ",") + `]}`
}

func withDefault(typ, def string) string {
	return avroRecord("D", `{"name":"f","type":`+typ+`,"default":`+def+`}`)
}

var (
	sa = avroRecord("A", `{"name":"id","type":"string"}`)
	// sb adds an optional field to sa: compatible at every level.
	sb = avroRecord("A", `{"name":"id","type":"string"}`, `{"name":"n","type":["null","int"],"default":null}`)
	// sc adds a required field: incompatible with sa under FULL_TRANSITIVE.
	sc = avroRecord("A", `{"name":"id","type":"string"}`, `{"name":"tier","type":"string"}`)
	// explicitNS and inheritedNS are one schema: the nested record's namespace written out, or inherited.
	explicitNS  = `{"type":"record","name":"Outer","namespace":"hotel.v1","fields":[{"name":"in","type":{"type":"record","name":"Inner","namespace":"hotel.v1","fields":[{"name":"x","type":"int"}]}}]}`
	inheritedNS = `{"fields":[{"type":{"fields":[{"type":"int","name":"x"}],"type":"record","name":"Inner"},"name":"in"}], "type":"record","name":"Outer","namespace":"hotel.v1"}`
	// ref is a type other schemas reference by name.
	refType  = `{"type":"enum","name":"Tier","namespace":"hotel.v1","symbols":["GOLD","SILVER"]}`
	usesRef  = avroRecord("Member", `{"name":"tier","type":"hotel.v1.Tier"}`)
	tierRefs = `[{"name":"hotel.v1.Tier","subject":"tier","version":1}]`
)

// TestConfluentBehaviour checks one Confluent behaviour per row, on a fresh registry each: the
// status, the error_code, the content type, and the part of the answer that matters.
func TestConfluentBehaviour(t *testing.T) {
	rows := []struct {
		name  string
		calls []call
	}{
		// ids
		{"ids ?subject= only picks a context (confluent-kafka deserializers send it)", []call{
			post("/subjects/s-value/versions", reg(sa), `{"id":1}`),
			get("/schemas/ids/1?subject=other-value", 200, `"schemaType":"AVRO"`),
		}},
		{"unknown id", []call{fail("GET", "/schemas/ids/7", "", 404, 40403)}},
		{"fetchMaxId", []call{
			post("/subjects/a/versions", reg(sa), ""), post("/subjects/b/versions", reg(withDefault(`"int"`, "1")), `{"id":2}`),
			get("/schemas/ids/1?fetchMaxId=true", 200, `"maxId":2`),
		}},
		{"raw schema by id", []call{post("/subjects/a/versions", reg(sa), ""), get("/schemas/ids/1/schema", 200, `"name":"A"`)}},
		{"versions by id", []call{
			post("/subjects/a/versions", reg(sa), ""), post("/subjects/b/versions", reg(sa), `{"id":1}`),
			get("/schemas/ids/1/versions", 200, `[{"subject":"a","version":1},{"subject":"b","version":1}]`),
		}},
		// soft and hard deletes
		{"re-registering under a soft-deleted subject continues its versions", []call{
			post("/subjects/s/versions", reg(sa), ""), del("/subjects/s", "[1]"),
			fail("GET", "/subjects/s/versions", "", 404, 40401),
			post("/subjects/s/versions", reg(sa), `{"id":1}`),
			get("/subjects/s/versions", 200, "[2]"),
		}},
		{"DELETE versions/latest", []call{
			post("/subjects/s/versions", reg(sa), ""), post("/subjects/s/versions", reg(sb), ""),
			del("/subjects/s/versions/latest", "2"), get("/subjects/s/versions", 200, "[1]"),
		}},
		{"DELETE versions/-1 is latest", []call{
			post("/subjects/s/versions", reg(sa), ""), post("/subjects/s/versions", reg(sb), ""),
			del("/subjects/s/versions/-1", "2"),
		}},
		{"DELETE versions/0", []call{post("/subjects/s/versions", reg(sa), ""), fail("DELETE", "/subjects/s/versions/0", "", 422, 42202)}},
		{"second soft delete of a subject", []call{
			post("/subjects/s/versions", reg(sa), ""), del("/subjects/s", "[1]"), fail("DELETE", "/subjects/s", "", 404, 40404),
		}},
		{"second soft delete of a version", []call{
			post("/subjects/s/versions", reg(sa), ""), post("/subjects/s/versions", reg(sb), ""),
			del("/subjects/s/versions/1", "1"), fail("DELETE", "/subjects/s/versions/1", "", 404, 40406),
		}},
		{"permanent subject delete without a soft delete first", []call{
			post("/subjects/s/versions", reg(sa), ""), fail("DELETE", "/subjects/s?permanent=true", "", 404, 40405),
		}},
		{"permanent version delete without a soft delete first", []call{
			post("/subjects/s/versions", reg(sa), ""), fail("DELETE", "/subjects/s/versions/1?permanent=true", "", 404, 40407),
		}},
		{"after a hard delete the id is gone", []call{
			post("/subjects/s/versions", reg(sa), ""), del("/subjects/s", "[1]"), del("/subjects/s?permanent=true", "[1]"),
			fail("GET", "/schemas/ids/1/subjects", "", 404, 40403), fail("GET", "/schemas/ids/1", "", 404, 40403),
			fail("GET", "/subjects/s/versions?deleted=true", "", 404, 40401),
			post("/subjects/s/versions", reg(sa), ""), get("/subjects/s/versions", 200, "[1]"),
		}},
		{"soft-deleted versions are listed with deleted=true", []call{
			post("/subjects/s/versions", reg(sa), ""), post("/subjects/s/versions", reg(sb), ""), del("/subjects/s/versions/1", "1"),
			get("/subjects/s/versions?deleted=true", 200, "[1,2]"), get("/subjects/s/versions?deletedOnly=true", 200, "[1]"),
			fail("GET", "/subjects/s/versions/1", "", 404, 40402), get("/subjects/s/versions/1?deleted=true", 200, `"deleted":true`),
			get("/schemas/ids/1/subjects", 200, "[]"), get("/schemas/ids/1/subjects?deleted=true", 200, `["s"]`),
		}},
		{"lookup with deleted=true finds soft-deleted versions", []call{
			post("/subjects/s/versions", reg(sa), ""), post("/subjects/s/versions", reg(sb), ""), del("/subjects/s/versions/1", "1"),
			fail("POST", "/subjects/s", reg(sa), 404, 40403), post("/subjects/s?deleted=true", reg(sa), `"version":1`),
		}},
		{"soft-deleted versions leave the compatibility checks", []call{
			post("/subjects/s/versions", reg(sa), ""), del("/subjects/s/versions/1", "1"),
			post("/subjects/s/versions", reg(sc), `{"id":2}`), get("/subjects/s/versions", 200, "[2]"),
		}},
		{"latest of a soft-deleted subject", []call{
			post("/subjects/s/versions", reg(sa), ""), del("/subjects/s", ""),
			fail("GET", "/subjects/s/versions/latest", "", 404, 40401), get("/subjects/s/versions/latest?deleted=true", 200, `"version":1`),
			get("/subjects", 200, "[]"), get("/subjects?deleted=true", 200, `["s"]`), get("/subjects?deletedOnly=true", 200, `["s"]`),
		}},
		// references
		{"deleting a referenced subject or version", []call{
			post("/subjects/tier/versions", reg(refType), ""), post("/subjects/member/versions", regRefs(usesRef, tierRefs), `{"id":2}`),
			fail("DELETE", "/subjects/tier", "", 422, 42206), fail("DELETE", "/subjects/tier/versions/1", "", 422, 42206),
			get("/subjects/tier/versions/1/referencedby", 200, "[2]"),
			get("/subjects/member/versions/1", 200, `"references":[{"name":"hotel.v1.Tier","subject":"tier","version":1}]`),
		}},
		{"a missing reference", []call{fail("POST", "/subjects/member/versions", regRefs(usesRef, tierRefs), 422, 42201)}},
		{"an unknown named type without its reference", []call{fail("POST", "/subjects/member/versions", reg(usesRef), 422, 42201)}},
		// subjects and versions
		{"unknown subject, version 1", []call{fail("GET", "/subjects/nope/versions/1", "", 404, 40401)}},
		{"unknown version", []call{post("/subjects/s/versions", reg(sa), ""), fail("GET", "/subjects/s/versions/9", "", 404, 40402)}},
		{"invalid version", []call{
			post("/subjects/s/versions", reg(sa), ""), fail("GET", "/subjects/s/versions/abc", "", 422, 42202),
			fail("GET", "/subjects/s/versions/-2", "", 422, 42202),
		}},
		{"versions/-1 reads the latest", []call{post("/subjects/s/versions", reg(sa), ""), get("/subjects/s/versions/-1", 200, `"version":1`)}},
		{"raw schema by version", []call{post("/subjects/s/versions", reg(sa), ""), get("/subjects/s/versions/latest/schema", 200, `"name":"A"`)}},
		{"a registered schema again: same id, no new version", []call{
			post("/subjects/s/versions", reg(sa), `{"id":1}`), post("/subjects/s/versions", reg(sa), `{"id":1}`),
			get("/subjects/s/versions", 200, "[1]"),
		}},
		{"an incompatible schema: 409 naming the level", []call{
			post("/subjects/s/versions", reg(sa), ""),
			{"POST", "/subjects/s/versions", reg(sc), 409, 409, "FULL_TRANSITIVE", ""},
		}},
		{"an id or version in the body outside import mode", []call{
			fail("POST", "/subjects/s/versions", `{"schema":"\"string\"","id":5}`, 422, 42205),
		}},
		{"lookup", []call{
			post("/subjects/s/versions", reg(sa), ""),
			post("/subjects/s", reg(sa), `"version":1`), fail("POST", "/subjects/s", reg(sb), 404, 40403),
			fail("POST", "/subjects/nope", reg(sa), 404, 40401),
		}},
		// canonical form
		{"lookup and registration by canonical form", []call{
			post("/subjects/s/versions", reg(explicitNS), `{"id":1}`),
			post("/subjects/s", reg(inheritedNS), `"id":1`),
			post("/subjects/s/versions", reg(inheritedNS), `{"id":1}`), get("/subjects/s/versions", 200, "[1]"),
			post("/subjects/t/versions", reg(inheritedNS), `{"id":1}`),
		}},
		{"a different default is a different schema", []call{
			post("/subjects/s/versions", reg(withDefault(`"int"`, "1")), `{"id":1}`),
			{"POST", "/subjects/s", reg(withDefault(`"int"`, "2")), 404, 40403, "", ""},
		}},
		// schema types and validity
		{"schemaType AVRO in answers", []call{
			post("/subjects/s/versions", reg(sa), ""),
			get("/subjects/s/versions/1", 200, `"schemaType":"AVRO"`), get("/schemas/ids/1", 200, `"schemaType":"AVRO"`),
			get("/schemas", 200, `"schemaType":"AVRO"`),
		}},
		{"schemaType is case-sensitive", []call{fail("POST", "/subjects/s/versions", `{"schema":"\"string\"","schemaType":"avro"}`, 422, 42201)}},
		{"invalid Avro", []call{fail("POST", "/subjects/s/versions", reg(`{"type":"record","name":"B","fields":[{"name":"x","type":"nope"}]}`), 422, 42201)}},
		{"empty schema", []call{fail("POST", "/subjects/s/versions", `{"schema":""}`, 422, 42201)}},
		{"a union default may match any branch (AVRO-3649)", []call{
			post("/subjects/s/versions", reg(withDefault(`["null","string"]`, `"x"`)), `{"id":1}`),
			post("/subjects/t/versions", reg(withDefault(`["string","null"]`, `null`)), `{"id":2}`),
			post("/subjects/u/versions", reg(withDefault(`["int","string"]`, `"x"`)), `{"id":3}`),
		}},
		{"a union default matching no branch", []call{
			{"POST", "/subjects/s/versions", reg(withDefault(`["null","string"]`, `1`)), 422, 42201, "field f", "<nil>"},
		}},
		{"an int default out of range", []call{
			{"POST", "/subjects/s/versions", reg(withDefault(`"int"`, `2147483648`)), 422, 42201, "out of range", "<nil>"},
			post("/subjects/s/versions", reg(withDefault(`"int"`, `2147483647`)), `{"id":1}`),
			post("/subjects/t/versions", reg(withDefault(`"long"`, `2147483648`)), `{"id":2}`),
		}},
		{"a long default that is not integral", []call{
			{"POST", "/subjects/s/versions", reg(withDefault(`"long"`, `1.5`)), 422, 42201, "integral", "<nil>"},
			{"POST", "/subjects/s/versions", reg(withDefault(`"int"`, `1.0`)), 422, 42201, "integral", "<nil>"},
		}},
		{"a default of the wrong type names the field, not <nil>", []call{
			{"POST", "/subjects/s/versions", reg(withDefault(`"string"`, `null`)), 422, 42201, "field f", "<nil>"},
			{"POST", "/subjects/s/versions", reg(withDefault(`"int"`, `"x"`)), 422, 42201, "field f", "<nil>"},
			{"POST", "/subjects/s/versions", reg(withDefault(`{"type":"enum","name":"E","symbols":["A"]}`, `"B"`)), 422, 42201, "field f", "<nil>"},
		}},
		{"a record default must give fields without defaults", []call{
			{"POST", "/subjects/s/versions", reg(withDefault(`{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`, `{}`)), 422, 42201, "field f", "<nil>"},
			post("/subjects/s/versions", reg(withDefault(`{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":1}]}`, `{}`)), `{"id":1}`),
		}},
		{"an invalid subject", []call{fail("POST", "/subjects/a%01b/versions", reg(sa), 422, 42208)}},
		// pagination
		{"subjects: subjectPrefix, offset, limit", []call{
			post("/subjects/a1/versions", reg(sa), ""), post("/subjects/a2/versions", reg(sa), ""),
			post("/subjects/a3/versions", reg(sa), ""), post("/subjects/b1/versions", reg(sa), ""),
			get("/subjects?subjectPrefix=a", 200, `["a1","a2","a3"]`), get("/subjects?subjectPrefix=a&offset=1&limit=1", 200, `["a2"]`),
			get("/subjects?offset=3", 200, `["b1"]`), get("/subjects?limit=0", 200, `[]`),
		}},
		{"schemas: subjectPrefix, offset, limit, latestOnly", []call{
			post("/subjects/a1/versions", reg(sa), ""), post("/subjects/a1/versions", reg(sb), ""), post("/subjects/b1/versions", reg(sa), ""),
			{"GET", "/schemas?subjectPrefix=a", "", 200, 0, `"version":2`, `"b1"`},
			{"GET", "/schemas?subjectPrefix=a&latestOnly=true", "", 200, 0, `"version":2`, `"version":1`},
			{"GET", "/schemas?offset=2&limit=1", "", 200, 0, `"subject":"b1"`, `"a1"`},
		}},
		{"versions: offset, limit", []call{
			post("/subjects/s/versions", reg(sa), ""), post("/subjects/s/versions", reg(sb), ""),
			get("/subjects/s/versions?offset=1&limit=1", 200, "[2]"),
		}},
		// config and mode
		{"config of a subject without its own level", []call{
			post("/subjects/s/versions", reg(sa), ""), fail("GET", "/config/s", "", 404, 40408),
			get("/config/s?defaultToGlobal=true", 200, `"compatibilityLevel":"FULL_TRANSITIVE"`),
		}},
		{"config: set, read, delete a subject level", []call{
			put("/config/s", `{"compatibility":"backward"}`, `{"compatibility":"BACKWARD"}`),
			get("/config/s", 200, `"compatibilityLevel":"BACKWARD"`),
			del("/config/s", `"compatibilityLevel":"BACKWARD"`), fail("GET", "/config/s", "", 404, 40408),
			fail("DELETE", "/config/s", "", 404, 40401),
		}},
		{"DELETE /config resets the global level", []call{
			put("/config", `{"compatibility":"NONE"}`, ""), del("/config", `"compatibilityLevel":"NONE"`),
			get("/config", 200, `"compatibilityLevel":"FULL_TRANSITIVE"`),
		}},
		{"normalize in config", []call{
			put("/config", `{"normalize":true}`, `{"normalize":true}`), get("/config", 200, `"normalize":true`),
		}},
		{"PUT /config {} answers JSON", []call{put("/config", `{}`, `{}`)}},
		{"an invalid level", []call{{"PUT", "/config", `{"compatibility":"SIDEWAYS"}`, 422, 42203, "Invalid compatibility level", ""}}},
		{"mode", []call{
			get("/mode", 200, `{"mode":"READWRITE"}`), fail("GET", "/mode/s", "", 404, 40409),
			get("/mode/s?defaultToGlobal=true", 200, `READWRITE`), put("/mode", `{"mode":"READWRITE"}`, `READWRITE`),
			fail("PUT", "/mode", `{"mode":"READONLY"}`, 422, 42205), fail("PUT", "/mode", `{"mode":"SOMETIMES"}`, 422, 42204),
		}},
		// compatibility endpoint
		{"compatibility with verbose", []call{
			post("/subjects/s/versions", reg(sa), ""),
			post("/compatibility/subjects/s/versions/latest", reg(sb), `{"is_compatible":true}`),
			{"POST", "/compatibility/subjects/s/versions/latest?verbose=true", reg(sc), 200, 0, `"messages":[`, ""},
			{"POST", "/compatibility/subjects/s/versions?verbose=true", reg(sc), 200, 0, `"is_compatible":false`, ""},
			fail("POST", "/compatibility/subjects/s/versions/7", reg(sb), 404, 40402),
			fail("POST", "/compatibility/subjects/nope/versions/1", reg(sb), 404, 40401),
			post("/compatibility/subjects/nope/versions/latest", reg(sb), `{"is_compatible":true}`),
		}},
		// the rest of the API
		{"schema types", []call{get("/schemas/types", 200, `["JSON","PROTOBUF","AVRO"]`)}},
		{"metadata id", []call{get("/v1/metadata/id", 200, `"schema-registry-cluster":"schema-registry"`)}},
		{"metadata version", []call{get("/v1/metadata/version", 200, `"version":"`)}},
		{"root", []call{get("/", 200, `{}`)}},
		{"contexts", []call{get("/contexts", 200, `["."]`)}},
		{"the default context prefix", []call{post("/contexts/./subjects/s/versions", reg(sa), `{"id":1}`), get("/subjects/s/versions", 200, "[1]")}},
		{"unknown path: JSON 404", []call{fail("GET", "/nope", "", 404, 404), fail("GET", "/subjects/s/versions/1/nope", "", 404, 404)}},
		{"wrong method: JSON 405", []call{fail("PATCH", "/subjects", "", 405, 405)}},
		{"malformed body", []call{fail("POST", "/subjects/s/versions", `{`, 400, 400)}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			r, err := registry.New()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for i, c := range row.calls {
				w := httptest.NewRecorder()
				r.Handler().ServeHTTP(w, httptest.NewRequest(c.method, c.path, strings.NewReader(c.body)))
				got := strings.TrimSpace(w.Body.String())
				where := "call " + strconv.Itoa(i+1) + ": " + c.method + " " + c.path
				if w.Code != c.status {
					t.Fatalf("%s: status %d, want %d: %s", where, w.Code, c.status, got)
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/vnd.schemaregistry.v1+json" {
					t.Errorf("%s: Content-Type %q", where, ct)
				}
				if c.code != 0 {
					var e struct {
						Code    int    `json:"error_code"`
						Message string `json:"message"`
					}
					if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code != c.code || e.Message == "" {
						t.Errorf("%s: error body %s, want error_code %d and a message", where, got, c.code)
					}
				} else if !json.Valid(w.Body.Bytes()) {
					t.Errorf("%s: answer is not JSON: %s", where, got)
				}
				if c.has != "" && !strings.Contains(got, c.has) {
					t.Errorf("%s: answer %s lacks %s", where, got, c.has)
				}
				if c.not != "" && strings.Contains(got, c.not) {
					t.Errorf("%s: answer %s contains %s", where, got, c.not)
				}
			}
		})
	}
}

// TestConfluentMessages pins the messages of the errors clients show to people, as Confluent words them.
func TestConfluentMessages(t *testing.T) {
	r, err := registry.New()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	do := func(method, path, body string) string {
		w := httptest.NewRecorder()
		r.Handler().ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(w.Body.Bytes(), &e)
		return e.Message
	}
	do("POST", "/subjects/s/versions", reg(sa))
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/subjects/nope/versions", "Subject 'nope' not found."},
		{"GET", "/subjects/s/versions/9", "Version 9 not found."},
		{"GET", "/schemas/ids/9", "Schema 9 not found"},
		{"GET", "/subjects/s/versions/0", `The specified version '0' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`},
		{"GET", "/config/s", "Subject 's' does not have subject-level compatibility configured"},
		{"DELETE", "/subjects/s?permanent=true", "Subject 's' was not deleted first before being permanently deleted"},
	} {
		if got := do(tc.method, tc.path, ""); got != tc.want {
			t.Errorf("%s %s: message %q, want %q", tc.method, tc.path, got, tc.want)
		}
	}
}

package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"

	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// apiDoc is the part of the OpenAPI document the conformance checks read.
type apiDoc struct {
	Paths      map[string]map[string]apiOp `json:"paths"`
	Components struct {
		Schemas map[string]any `json:"schemas"`
	} `json:"components"`
}

type apiOp struct {
	Responses map[string]struct {
		Headers map[string]any `json:"headers"`
		Content map[string]struct {
			Schema map[string]any `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

func loadDoc() apiDoc {
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		panic(err)
	}
	var d apiDoc
	if err := json.Unmarshal(b, &d); err != nil {
		panic(err)
	}
	return d
}

func (d apiDoc) operation(method, path string) (apiOp, bool) {
	op, ok := d.Paths[path][strings.ToLower(method)]
	return op, ok
}

// documented returns every "METHOD path status" the document lists.
func (d apiDoc) documented() []string {
	var out []string
	for path, ops := range d.Paths {
		for method, op := range ops {
			for status := range op.Responses {
				out = append(out, strings.ToUpper(method)+" "+path+" "+status)
			}
		}
	}
	sort.Strings(out)
	return out
}

// validate checks v against the subset of JSON Schema the document uses ($ref, type, required,
// properties, items, enum, nullable, additionalProperties false).
func (d apiDoc) validate(schema map[string]any, v any, path string) []string {
	if ref, ok := schema["$ref"].(string); ok {
		return d.validate(d.Components.Schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any), v, path)
	}
	if v == nil {
		if schema["nullable"] == true {
			return nil
		}
		return []string{path + ": null"}
	}
	var errs []string
	switch schema["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return []string{path + ": not an object"}
		}
		for _, r := range asSlice(schema["required"]) {
			if _, ok := m[r.(string)]; !ok {
				errs = append(errs, path+"."+r.(string)+": missing")
			}
		}
		props, _ := schema["properties"].(map[string]any)
		for k, val := range m {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, d.validate(ps, val, path+"."+k)...)
			} else if schema["additionalProperties"] == false {
				errs = append(errs, path+"."+k+": not documented")
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return []string{path + ": not an array"}
		}
		for i, it := range a {
			errs = append(errs, d.validate(schema["items"].(map[string]any), it, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case "string":
		if _, ok := v.(string); !ok {
			errs = append(errs, path+": not a string")
		}
	case "integer":
		if n, ok := v.(float64); !ok || n != float64(int64(n)) {
			errs = append(errs, path+": not an integer")
		}
	}
	if enum := asSlice(schema["enum"]); enum != nil {
		found := false
		for _, e := range enum {
			found = found || e == v
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: %v not in %v", path, v, enum))
		}
	}
	return errs
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// contractCase provokes one documented answer.
type contractCase struct {
	name, method, route string
	status              int
	fx                  string // the fixture it needs: "" (normal), "spoolfull", "unregistered", "redisdown", "scoped", "ratelimited"
	published           int64  // records it adds to the topics (checked on the normal fixture)
	do                  func(t *testing.T, f *fixture) resp
	check               func(t *testing.T, r resp)
}

const (
	evs   = gateway.RouteEvents
	batch = gateway.RouteBatch
)

func postEnv(system string, env func(t *testing.T) map[string]any, hdr ...string) func(*testing.T, *fixture) resp {
	return func(t *testing.T, f *fixture) resp { return f.post(t, evs, system, mustJSON(t, env(t)), hdr...) }
}

func raw(route, system, body string, hdr ...string) func(*testing.T, *fixture) resp {
	return func(t *testing.T, f *fixture) resp { return f.post(t, route, system, []byte(body), hdr...) }
}

func pmsEvent(t *testing.T) map[string]any { return envelope(t, "reservation.created", "tenant-a") }

func wantPaths(paths ...string) func(*testing.T, resp) {
	return func(t *testing.T, r resp) {
		t.Helper()
		p := r.problem(t)
		got := map[string]bool{}
		for _, e := range p.Errors {
			got[e.Path] = true
		}
		for _, want := range paths {
			if !got[want] {
				t.Errorf("problem lacks path %q: %s", want, r.body)
			}
		}
	}
}

func wantType(slug string) func(*testing.T, resp) {
	return func(t *testing.T, r resp) {
		t.Helper()
		if p := r.problem(t); p.Type != "urn:hotelbus:problem:"+slug {
			t.Errorf("type %q, want %s", p.Type, slug)
		}
	}
}

func batchOf(t *testing.T, envs ...any) []byte { return mustJSON(t, map[string]any{"events": envs}) }

var contractCases = []contractCase{
	{name: "published", method: "POST", route: evs, status: 202, published: 1, do: postEnv("hotel-pms", pmsEvent),
		check: func(t *testing.T, r resp) {
			if a := r.accepted(t); a.Status != "published" || a.Partition == nil || a.Offset == nil || a.EventID == "" {
				t.Errorf("accepted = %s", r.body)
			}
		}},
	{name: "malformed JSON", method: "POST", route: evs, status: 400, do: raw(evs, "hotel-pms", `{"eventType": "reservation.created",`), check: wantPaths("$")},
	{name: "missing envelope fields", method: "POST", route: evs, status: 400, do: raw(evs, "hotel-pms", `{"eventType":"reservation.created"}`),
		check: wantPaths("data", "metadata")},
	{name: "nested too deep", method: "POST", route: evs, status: 400,
		do: raw(evs, "hotel-pms", `{"eventType":"reservation.created","data":`+strings.Repeat(`{"a":`, 40)+"1"+strings.Repeat("}", 40)+`}`), check: wantPaths("$")},
	{name: "invalid Idempotency-Key", method: "POST", route: evs, status: 400, do: postEnv("hotel-pms", pmsEvent, "Idempotency-Key", strings.Repeat("k", 256)),
		check: wantPaths("header:Idempotency-Key")},
	{name: "no credential", method: "POST", route: evs, status: 401, do: func(t *testing.T, f *fixture) resp {
		return f.do(t, "POST", evs, "", mustJSON(t, pmsEvent(t)))
	}, check: func(t *testing.T, r resp) {
		if r.hdr.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
	}},
	{name: "unknown token", method: "POST", route: evs, status: 401, do: func(t *testing.T, f *fixture) resp {
		return f.do(t, "POST", evs, "not-a-token-of-anyone-at-all", mustJSON(t, pmsEvent(t)))
	}},
	{name: "pms publishing service.ordered", method: "POST", route: evs, status: 403,
		do: postEnv("hotel-pms", func(t *testing.T) map[string]any { return envelope(t, "service.ordered", "tenant-a") }), check: wantType("not-owner")},
	{name: "pms spoofing source hotel-saas", method: "POST", route: evs, status: 403,
		do: postEnv("hotel-pms", func(t *testing.T) map[string]any {
			m := pmsEvent(t)
			m["metadata"].(map[string]any)["source"] = "hotel-saas"
			return m
		}), check: wantType("not-owner")},
	{name: "tenant outside the credential's scope", method: "POST", route: evs, status: 403, fx: "scoped",
		do:    postEnv("hotel-pms", func(t *testing.T) map[string]any { return envelope(t, "reservation.created", "kyoto-grand-annex") }),
		check: func(t *testing.T, r resp) { wantType("tenant-not-allowed")(t, r); wantPaths("metadata.tenantId")(t, r) }},
	{name: "event too large", method: "POST", route: evs, status: 413, do: postEnv("hotel-pms", func(t *testing.T) map[string]any {
		m := pmsEvent(t)
		m["metadata"].(map[string]any)["correlationId"] = strings.Repeat("x", 20<<10)
		return m
	})},
	{name: "not JSON", method: "POST", route: evs, status: 415, do: func(t *testing.T, f *fixture) resp {
		return f.post(t, evs, "hotel-pms", mustJSON(t, pmsEvent(t)), "Content-Type", "text/plain")
	}},
	{name: "schema violation", method: "POST", route: evs, status: 422, do: postEnv("hotel-pms", func(t *testing.T) map[string]any {
		m := pmsEvent(t)
		d := m["data"].(map[string]any)
		d["reservationId"] = 42
		d["noSuchField"] = true
		return m
	}), check: wantPaths("data.reservationId", "data.noSuchField")},
	{name: "date string not YYYY-MM-DD", method: "POST", route: evs, status: 422, do: postEnv("hotel-member", func(t *testing.T) map[string]any {
		m := envelope(t, "customer.created", "tenant-a")
		m["version"] = "2.0"
		m["data"].(map[string]any)["birthDate"] = "12/04/1991"
		return m
	}), check: wantPaths("data.birthDate")},
	{name: "unknown event type", method: "POST", route: evs, status: 422, do: postEnv("hotel-pms", func(t *testing.T) map[string]any {
		m := pmsEvent(t)
		m["eventType"] = "reservation.teleported"
		return m
	}), check: wantPaths("eventType")},
	{name: "Idempotency-Key reused for another body", method: "POST", route: evs, status: 422, published: 1,
		do: func(t *testing.T, f *fixture) resp {
			key := uuid.NewString()
			f.post(t, evs, "hotel-pms", mustJSON(t, pmsEvent(t)), "Idempotency-Key", key).accepted(t)
			return f.post(t, evs, "hotel-pms", mustJSON(t, envelope(t, "reservation.created", "tenant-b")), "Idempotency-Key", key)
		}, check: wantType("idempotency-key-reused")},
	{name: "header fields too large", method: "POST", route: evs, status: 431, do: postEnv("hotel-pms", pmsEvent, "X-Padding", strings.Repeat("p", 70<<10)),
		check: wantType("headers-too-large")},
	{name: "spool full", method: "POST", route: evs, status: 429, fx: "spoolfull", do: postEnv("hotel-pms", pmsEvent), check: wantType("spool-full")},
	{name: "system rate limit", method: "POST", route: evs, status: 429, fx: "ratelimited", do: func(t *testing.T, f *fixture) resp {
		f.post(t, evs, "hotel-pms", mustJSON(t, pmsEvent(t))).accepted(t)
		return f.post(t, evs, "hotel-pms", mustJSON(t, pmsEvent(t)))
	}, check: wantType("rate-limited")},
	{name: "schema not registered", method: "POST", route: evs, status: 500, fx: "unregistered", do: postEnv("hotel-pms", pmsEvent)},
	{name: "Redis down with Idempotency-Key", method: "POST", route: evs, status: 503, fx: "redisdown",
		do: postEnv("hotel-pms", pmsEvent, "Idempotency-Key", "k-1")},

	{name: "batch accepted", method: "POST", route: batch, status: 202, published: 3, do: func(t *testing.T, f *fixture) resp {
		return f.post(t, batch, "hotel-member", batchOf(t, envelope(t, "points.added", "t1"), envelope(t, "points.used", "t2"), envelope(t, "points.added", "t1")))
	}, check: func(t *testing.T, r resp) {
		var br gateway.BatchResult
		if err := json.Unmarshal(r.body, &br); err != nil || len(br.Results) != 3 {
			t.Fatalf("%s", r)
		}
		for i, it := range br.Results {
			if it.Index != i || it.Code != 202 || it.Accepted == nil || it.Status != "published" || it.Offset == nil {
				t.Errorf("item %d: %+v", i, it)
			}
		}
	}},
	{name: "batch mixed", method: "POST", route: batch, status: 207, published: 2, do: func(t *testing.T, f *fixture) resp {
		bad := envelope(t, "points.added", "t1")
		bad["data"].(map[string]any)["points"] = "many"
		spoof := envelope(t, "points.used", "t1")
		spoof["metadata"].(map[string]any)["source"] = "hotel-pms"
		big := envelope(t, "points.added", "t1")
		big["metadata"].(map[string]any)["correlationId"] = strings.Repeat("x", 20<<10)
		return f.post(t, batch, "hotel-member", batchOf(t, envelope(t, "points.added", "t1"), envelope(t, "service.ordered", "t1"),
			bad, spoof, big, map[string]any{"eventType": "points.added"}, envelope(t, "points.used", "t1")))
	}, check: func(t *testing.T, r resp) {
		var br gateway.BatchResult
		if err := json.Unmarshal(r.body, &br); err != nil {
			t.Fatal(err)
		}
		want := []int{202, 403, 422, 403, 413, 400, 202}
		for i, it := range br.Results {
			if i >= len(want) || it.Code != want[i] || (it.Code == 202) != (it.Accepted != nil) || (it.Code != 202) != (it.Problem != nil) {
				t.Errorf("item %d: %+v, want code %v", i, it, want)
			}
		}
		if len(br.Results) != len(want) {
			t.Errorf("%d results, want %d", len(br.Results), len(want))
		}
		if br.Results[2].Problem != nil && (len(br.Results[2].Problem.Errors) == 0 || br.Results[2].Problem.Errors[0].Path != "data.points") {
			t.Errorf("item 2 problem: %+v", br.Results[2].Problem)
		}
	}},
	{name: "batch malformed", method: "POST", route: batch, status: 400, do: raw(batch, "hotel-member", `[{"eventType":"points.added"}]`), check: wantPaths("$")},
	{name: "batch empty", method: "POST", route: batch, status: 400, do: raw(batch, "hotel-member", `{"events":[]}`), check: wantPaths("events")},
	{name: "batch no credential", method: "POST", route: batch, status: 401, do: func(t *testing.T, f *fixture) resp {
		return f.do(t, "POST", batch, "", batchOf(t, envelope(t, "points.added", "t1")))
	}},
	{name: "batch too many events", method: "POST", route: batch, status: 413, do: func(t *testing.T, f *fixture) resp {
		envs := make([]any, 9)
		for i := range envs {
			envs[i] = envelope(t, "points.added", "t1")
		}
		return f.post(t, batch, "hotel-member", batchOf(t, envs...))
	}},
	{name: "batch body too large", method: "POST", route: batch, status: 413, do: raw(batch, "hotel-member", `{"events":["`+strings.Repeat("x", 70<<10)+`"]}`)},
	{name: "batch not JSON", method: "POST", route: batch, status: 415, do: func(t *testing.T, f *fixture) resp {
		return f.post(t, batch, "hotel-member", batchOf(t, envelope(t, "points.added", "t1")), "Content-Type", "application/xml")
	}},
	{name: "batch Idempotency-Key reused", method: "POST", route: batch, status: 422, published: 1, do: func(t *testing.T, f *fixture) resp {
		key := uuid.NewString()
		if r := f.post(t, batch, "hotel-member", batchOf(t, envelope(t, "points.added", "t1")), "Idempotency-Key", key); r.code != 202 {
			t.Fatalf("first: %s", r)
		}
		return f.post(t, batch, "hotel-member", batchOf(t, envelope(t, "points.added", "t2")), "Idempotency-Key", key)
	}, check: wantType("idempotency-key-reused")},
	{name: "batch header fields too large", method: "POST", route: batch, status: 431, do: func(t *testing.T, f *fixture) resp {
		return f.post(t, batch, "hotel-member", batchOf(t, envelope(t, "points.added", "t1")), "X-Padding", strings.Repeat("p", 70<<10))
	}, check: wantType("headers-too-large")},
	{name: "batch system rate limit", method: "POST", route: batch, status: 429, fx: "ratelimited", do: func(t *testing.T, f *fixture) resp {
		if r := f.post(t, batch, "hotel-member", batchOf(t, envelope(t, "points.added", "t1"))); r.code != 202 {
			t.Fatalf("first: %s", r)
		}
		return f.post(t, batch, "hotel-member", batchOf(t, envelope(t, "points.added", "t1")))
	}, check: wantType("rate-limited")},
	{name: "batch Redis down", method: "POST", route: batch, status: 503, fx: "redisdown", do: func(t *testing.T, f *fixture) resp {
		return f.post(t, batch, "hotel-member", batchOf(t, envelope(t, "points.added", "t1")), "Idempotency-Key", "k-2")
	}},

	{name: "healthz", method: "GET", route: gateway.RouteHealth, status: 200, do: get(gateway.RouteHealth)},
	{name: "ready", method: "GET", route: gateway.RouteReady, status: 200, do: get(gateway.RouteReady)},
	{name: "not ready", method: "GET", route: gateway.RouteReady, status: 503, fx: "spoolfull", do: get(gateway.RouteReady),
		check: func(t *testing.T, r resp) {
			var rd gateway.Readiness
			_ = json.Unmarshal(r.body, &rd)
			if rd.Checks["kafka"] == "ok" || rd.Checks["spool:hotel-pms"] != "spool full" || rd.Checks["registry"] != "ok" {
				t.Errorf("checks: %s", r.body)
			}
		}},
	{name: "metrics", method: "GET", route: gateway.RouteMetrics, status: 200, do: get(gateway.RouteMetrics), check: func(t *testing.T, r resp) {
		for _, want := range []string{`hotelbus_gateway_requests_total{code="202",route="/v1/events"}`, "hotelbus_gateway_events_total{",
			`hotelbus_gateway_spool_depth{system="hotel-pms"}`, "hotelbus_gateway_credential_reloads_total 1"} {
			if !bytes.Contains(r.body, []byte(want)) {
				t.Errorf("metrics lack %s", want)
			}
		}
		for _, bad := range []string{"tenant", "eventId", "event_id"} {
			if bytes.Contains(r.body, []byte(bad)) {
				t.Errorf("metrics mention %s", bad)
			}
		}
	}},
	{name: "openapi", method: "GET", route: gateway.RouteOpenAPI, status: 200, do: get(gateway.RouteOpenAPI), check: func(t *testing.T, r resp) {
		file, _ := os.ReadFile("openapi.json")
		if !bytes.Equal(r.body, file) {
			t.Error("served document differs from openapi.json")
		}
	}},
}

func get(route string) func(*testing.T, *fixture) resp {
	return func(t *testing.T, f *fixture) resp { return f.do(t, "GET", route, "", nil) }
}

// TestContract provokes every answer the OpenAPI document lists and checks the server gives it,
// with the documented content type, headers and body schema; refused requests leave the topics
// unchanged. The cases must cover exactly the documented answers (TestMain checks, the other way,
// that no test saw an undocumented one).
func TestContract(t *testing.T) {
	doc := loadDoc()
	var covered []string
	seen := map[string]bool{}
	for _, c := range contractCases {
		k := c.method + " " + c.route + " " + strconv.Itoa(c.status)
		if !seen[k] {
			seen[k] = true
			covered = append(covered, k)
		}
	}
	sort.Strings(covered)
	if got, want := strings.Join(covered, "\n"), strings.Join(doc.documented(), "\n"); got != want {
		t.Fatalf("contract cases cover:\n%s\n\nthe document lists:\n%s", got, want)
	}
	for _, p := range pairs(t) {
		t.Run(p.name, func(t *testing.T) {
			limits := func(c *gateway.Config) { c.MaxEventBytes, c.MaxBodyBytes, c.MaxBatchEvents = 16<<10, 64<<10, 8 }
			fxs := map[string]*fixture{"": newFixture(t, p.kafka, p.redisURL, fxOpts{config: limits})}
			fixtureFor := func(kind string) *fixture {
				if f, ok := fxs[kind]; ok {
					return f
				}
				var f *fixture
				switch kind {
				case "spoolfull":
					f = newFixture(t, p.kafka, p.redisURL, fxOpts{brokers: unreachable(t), spoolAfter: 1100 * time.Millisecond, spoolMax: 1, config: limits})
				case "unregistered":
					f = newFixture(t, p.kafka, p.redisURL, fxOpts{unregistered: true})
				case "scoped":
					f = newFixture(t, p.kafka, p.redisURL, fxOpts{scope: map[string]string{"hotel-pms": "sakura-*,kyoto-grand"}})
				case "ratelimited":
					f = newFixture(t, p.kafka, p.redisURL, fxOpts{config: func(c *gateway.Config) {
						c.Limits = gateway.Limits{SystemRate: 0.001, SystemBurst: 1}
					}})
				case "redisdown":
					mr := miniredis.RunT(t)
					f = newFixture(t, p.kafka, "redis://"+mr.Addr(), fxOpts{})
					mr.Close()
				}
				fxs[kind] = f
				return f
			}
			for _, c := range contractCases {
				t.Run(fmt.Sprintf("%d %s", c.status, c.name), func(t *testing.T) {
					f := fixtureFor(c.fx)
					var before int64
					if c.fx == "" {
						before = f.records(t)
					}
					r := c.do(t, f)
					if r.code != c.status {
						t.Fatalf("got %s, want %d", r, c.status)
					}
					conforms(t, doc, c.method, c.route, r)
					if c.check != nil {
						c.check(t, r)
					}
					if c.fx == "" && c.route != gateway.RouteMetrics {
						if got := f.records(t) - before; got != c.published {
							t.Errorf("%d records reached Kafka, want %d", got, c.published)
						}
					}
				})
			}
		})
	}
}

// conforms checks r against the documented response: content type, required headers, body schema.
func conforms(t *testing.T, doc apiDoc, method, route string, r resp) {
	t.Helper()
	op, _ := doc.operation(method, route)
	dr := op.Responses[strconv.Itoa(r.code)]
	for h, spec := range dr.Headers {
		if spec.(map[string]any)["required"] == true && r.hdr.Get(h) == "" {
			t.Errorf("documented header %s missing", h)
		}
	}
	mt := mediaType(r.hdr.Get("Content-Type"))
	content, ok := dr.Content[mt]
	if !ok {
		t.Fatalf("content type %q not documented for %s %s %d", mt, method, route, r.code)
	}
	if !strings.HasSuffix(mt, "json") {
		return
	}
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if errs := doc.validate(content.Schema, v, "$"); len(errs) > 0 {
		t.Errorf("body does not match the documented schema: %s\n%s", strings.Join(errs, "; "), r.body)
	}
}

func TestUnroutedRequests(t *testing.T) {
	f := newFixture(t, streamstest.Kfake(t), "redis://"+miniredis.RunT(t).Addr(), fxOpts{})
	if r := f.do(t, "GET", evs, f.tokens["hotel-pms"], nil); r.code != 405 || r.hdr.Get("Allow") != "POST" {
		t.Errorf("GET %s: %s Allow=%q", evs, r, r.hdr.Get("Allow"))
	} else {
		r.problem(t)
	}
	if r := f.do(t, "GET", "/v2/nothing", "", nil); r.code != 404 {
		t.Errorf("unknown path: %s", r)
	} else {
		r.problem(t)
	}
}

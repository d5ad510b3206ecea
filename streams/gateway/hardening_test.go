package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// A credential scoped to tenants publishes for them only; the refusal names the field and quotes
// no more than a bounded excerpt of the tenant.
func TestTenantScope(t *testing.T) {
	f := newFixture(t, streamstest.Kfake(t), "redis://"+miniredis.RunT(t).Addr(), fxOpts{scope: map[string]string{"hotel-pms": "sakura-*,kyoto-grand"}})
	for _, tenant := range []string{"sakura-1", "sakura-", "kyoto-grand"} {
		f.post(t, evs, "hotel-pms", mustJSON(t, envelope(t, "reservation.created", tenant))).accepted(t)
	}
	before := f.records(t)
	for _, tenant := range []string{"kyoto-grand-2", "kyoto-gran", "sakura", "SAKURA-1", "x\r\nsakura-1", strings.Repeat("z", 10<<10)} {
		r := f.post(t, evs, "hotel-pms", mustJSON(t, envelope(t, "reservation.created", tenant)))
		if r.code != 403 {
			t.Errorf("tenant %.40q: %s", tenant, r)
			continue
		}
		wantType("tenant-not-allowed")(t, r)
		wantPaths("metadata.tenantId")(t, r)
		if len(r.body) > 1024 {
			t.Errorf("tenant of %d bytes: a %d-byte answer", len(tenant), len(r.body))
		}
	}
	// a batch: the item outside the scope is refused, the others published
	r := f.post(t, batch, "hotel-pms", batchOf(t, envelope(t, "reservation.created", "sakura-2"), envelope(t, "reservation.created", "osaka-1")))
	var br gateway.BatchResult
	if err := json.Unmarshal(r.body, &br); err != nil || r.code != 207 || br.Results[0].Code != 202 || br.Results[1].Code != 403 {
		t.Fatalf("batch: %s", r)
	}
	if got := f.records(t) - before; got != 1 {
		t.Errorf("%d records after the refusals and the batch, want 1", got)
	}
	// another system's unscoped credential is unaffected
	f.post(t, evs, "hotel-member", mustJSON(t, envelope(t, "member.registered", "osaka-1"))).accepted(t)
}

// Rate limits: 429 with Retry-After and problem+json, per system and per (system, tenant),
// counted without a tenant label; nothing refused reaches Kafka.
func TestRateLimits(t *testing.T) {
	f := newFixture(t, streamstest.Kfake(t), "redis://"+miniredis.RunT(t).Addr(), fxOpts{config: func(c *gateway.Config) {
		c.Limits = gateway.Limits{SystemRate: 0.01, SystemBurst: 6, TenantRate: 0.01, TenantBurst: 2}
	}})
	ev := func(tenant string) []byte { return mustJSON(t, envelope(t, "reservation.created", tenant)) }
	f.post(t, evs, "hotel-pms", ev("tenant-a")).accepted(t)
	f.post(t, evs, "hotel-pms", ev("tenant-a")).accepted(t)
	r := f.post(t, evs, "hotel-pms", ev("tenant-a"))
	if r.code != 429 {
		t.Fatalf("third event of tenant-a: %s", r)
	}
	wantType("rate-limited")(t, r)
	wantPaths("metadata.tenantId")(t, r)
	if s, err := strconv.Atoi(r.hdr.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", r.hdr.Get("Retry-After"))
	}
	// another tenant has its own bucket; the refused event took no token of the system's
	f.post(t, evs, "hotel-pms", ev("tenant-b")).accepted(t)
	// a batch: items past the system's bucket are 429 items
	r = f.post(t, batch, "hotel-pms", batchOf(t, envelope(t, "reservation.created", "tenant-c"), envelope(t, "reservation.created", "tenant-c"),
		envelope(t, "reservation.created", "tenant-d"), envelope(t, "reservation.created", "tenant-d")))
	var br gateway.BatchResult
	if err := json.Unmarshal(r.body, &br); err != nil || r.code != 207 {
		t.Fatalf("batch: %s", r)
	}
	codes := []int{}
	for _, it := range br.Results {
		codes = append(codes, it.Code)
	}
	if want := []int{202, 202, 202, 429}; !equalInts(codes, want) || r.hdr.Get("Retry-After") == "" {
		t.Errorf("batch item codes %v, want %v (Retry-After %q)", codes, want, r.hdr.Get("Retry-After"))
	}
	// the system's bucket is empty: refused before the body is read
	r = f.post(t, evs, "hotel-pms", ev("tenant-e"))
	if r.code != 429 {
		t.Fatalf("after the system's burst: %s", r)
	}
	wantType("rate-limited")(t, r)
	if n := f.records(t); n != 6 {
		t.Errorf("%d records, want the 6 accepted", n)
	}
	// other systems have their own buckets
	f.post(t, evs, "hotel-member", mustJSON(t, envelope(t, "member.registered", "tenant-a"))).accepted(t)
	m := f.do(t, "GET", gateway.RouteMetrics, "", nil)
	for _, want := range []string{`hotelbus_gateway_rate_limited_total{bucket="system",system="hotel-pms"} 2`,
		`hotelbus_gateway_rate_limited_total{bucket="tenant",system="hotel-pms"} 1`} {
		if !bytes.Contains(m.body, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if bytes.Contains(m.body, []byte("tenant-a")) {
		t.Error("metrics name a tenant")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Refusals quote a few hundred bytes of the input at most, and list a bounded number of fields.
func TestProblemsAreBounded(t *testing.T) {
	f := newFixture(t, streamstest.Kfake(t), "redis://"+miniredis.RunT(t).Addr(), fxOpts{})
	huge := strings.Repeat("9", 100<<10)
	cases := map[string]string{}
	// a 100 KB number where a decimal string belongs, a 100 KB enum symbol, a 100 KB unknown field
	// name, and a long array of bad items
	for name, mod := range map[string]func(m map[string]any){
		"number":       func(m map[string]any) { m["data"].(map[string]any)["adults"] = json.Number(huge) },
		"enum symbol":  func(m map[string]any) { m["data"].(map[string]any)["status"] = huge },
		"unknown name": func(m map[string]any) { m["data"].(map[string]any)[huge] = 1 },
		"long array": func(m map[string]any) {
			a := make([]any, 5000)
			for i := range a {
				a[i] = "x"
			}
			m["data"].(map[string]any)["childrenAges"] = a
		},
	} {
		m := envelope(t, "reservation.updated", "tenant-a")
		mod(m)
		cases[name] = string(mustJSON(t, m))
	}
	cases["event type"] = `{"eventType":"` + strings.Repeat("e", 100<<10) + `","data":{},"metadata":{"tenantId":"t"}}`
	cases["batch field"] = `{"` + strings.Repeat("k", 100<<10) + `":[]}`
	for name, body := range cases {
		route := evs
		if name == "batch field" {
			route = batch
		}
		r := f.post(t, route, "hotel-pms", []byte(body))
		if r.code < 400 || r.code > 499 {
			t.Errorf("%s: %s", name, r)
			continue
		}
		p := r.problem(t)
		if len(r.body) > 4096 || len(p.Errors) > 11 {
			t.Errorf("%s: %d-byte answer with %d errors: %.300s", name, len(r.body), len(p.Errors), r.body)
		}
	}
	// unrouted: the path is not echoed whole
	r := f.do(t, "GET", "/"+strings.Repeat("p", 30<<10), "", nil)
	if r.problem(t); len(r.body) > 1024 {
		t.Errorf("404 of a 30 KB path: %d bytes", len(r.body))
	}
}

// Every answer net/http gives before a handler runs is problem+json too: 431 (fresh connection,
// where net/http itself refuses), 400 for a malformed request, 501 for an unknown coding.
func TestServerErrorsAreProblems(t *testing.T) {
	f := newFixture(t, streamstest.Kfake(t), "redis://"+miniredis.RunT(t).Addr(), fxOpts{})
	addr := strings.TrimPrefix(f.url, "http://")
	for name, c := range map[string]struct {
		req  string
		code int
	}{
		"headers too large": {"POST /v1/events HTTP/1.1\r\nHost: a\r\nX-Padding: " + strings.Repeat("p", 100<<10) + "\r\n\r\n", 431},
		"malformed header":  {"POST /v1/events HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", 400},
		"unknown coding":    {"POST /v1/events HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		go func() { _, _ = io.WriteString(conn, c.req) }()
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(res.Body)
		conn.Close()
		var p gateway.Problem
		if res.StatusCode != c.code || res.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(b, &p) != nil || p.Status != c.code {
			t.Errorf("%s: %d %s %s", name, res.StatusCode, res.Header.Get("Content-Type"), b)
		}
	}
}

// A malformed credentials line is reported by file and line, never by content; an empty file
// revokes every credential; a failed reload keeps the previous ones and is counted, shown and
// logged once.
func TestCredentialsFile(t *testing.T) {
	const secret = "SECRET-TOKEN-0123456789abcdef"
	systems := []string{"hotel-pms", "hotel-saas"}
	path := filepath.Join(t.TempDir(), "credentials")
	for name, content := range map[string]string{
		"one field":       secret,
		"swapped fields":  secret + " hotel-pms",
		"unknown system":  "hotel-spa " + secret,
		"short token":     "hotel-pms SECRET-short",
		"bad digest":      "hotel-pms sha256:SECRET",
		"extra field":     "hotel-pms " + secret + " " + secret,
		"bad scope":       "hotel-pms " + secret + " tenants=SECRET pattern",
		"scope char":      "hotel-pms " + secret + " tenants=sakura-*,SECRET/x",
		"scope star":      "hotel-pms " + secret + " tenants=SECRET*x",
		"scope empty":     "hotel-pms " + secret + " tenants=",
		"token twice":     "hotel-pms " + secret + "\nhotel-saas " + secret,
		"line too long":   "hotel-pms " + secret + strings.Repeat("SECRET", 20<<10),
		"later bad line":  "# comment\n\nhotel-pms some-valid-token-00000\nhotel-pms " + secret + " x",
		"scope not field": "hotel-pms " + secret + " SECRET=sakura-*",
	} {
		if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := gateway.NewCredentials(systems, gateway.CredentialSource{Path: path})
		switch {
		case err == nil:
			t.Errorf("%s: loaded", name)
		case strings.Contains(err.Error(), "SECRET"):
			t.Errorf("%s: the error echoes the line: %v", name, err)
		case !strings.Contains(err.Error(), path+":"):
			t.Errorf("%s: the error does not name the file and line: %v", name, err)
		}
	}

	writeCreds(t, path, "hotel-pms "+secret+"\n")
	creds, err := gateway.NewCredentials(systems, gateway.CredentialSource{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	var logs streamstest.LogBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go creds.Watch(ctx, 10*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	f := newFixture(t, streamstest.Kfake(t), "redis://"+miniredis.RunT(t).Addr(), fxOpts{config: func(c *gateway.Config) { c.Credentials = creds }})
	metric := func(name string) string {
		for line := range strings.Lines(string(f.do(t, "GET", gateway.RouteMetrics, "", nil).body)) {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	body := mustJSON(t, envelope(t, "reservation.created", "tenant-a"))
	f.do(t, "POST", evs, secret, body).accepted(t)
	// a broken file: the token stays valid, the failure is visible
	writeCreds(t, path, "hotel-pms "+secret+" SECRET-garbage\n")
	waitFor(t, "the stale gauge", func() bool { return metric("hotelbus_gateway_credentials_stale") == "1" })
	f.do(t, "POST", evs, secret, body).accepted(t)
	time.Sleep(100 * time.Millisecond) // several more checks of the same broken file
	if n, _ := strconv.Atoi(metric("hotelbus_gateway_credential_reload_failures_total")); n < 1 {
		t.Errorf("reload failures %d", n)
	}
	if got := strings.Count(logs.String(), "reloading credentials failed"); got != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", got, logs.String())
	}
	if strings.Contains(logs.String(), "SECRET") {
		t.Errorf("the log echoes the file:\n%s", logs.String())
	}
	// an empty file: every credential of the file revoked, a valid load
	writeCreds(t, path, "# nobody\n")
	waitStatus(t, f, secret, body, 401)
	if metric("hotelbus_gateway_credentials_stale") != "0" || metric("hotelbus_gateway_credentials") != "0" {
		t.Errorf("after an empty file: stale %s, credentials %s", metric("hotelbus_gateway_credentials_stale"), metric("hotelbus_gateway_credentials"))
	}
	// a missing file is a failure: nothing is revoked by it
	writeCreds(t, path, "hotel-pms "+secret+"\n")
	waitStatus(t, f, secret, body, 202)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stale gauge", func() bool { return metric("hotelbus_gateway_credentials_stale") == "1" })
	f.do(t, "POST", evs, secret, body).accepted(t)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never came", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// observed records every (method path status) any test of this package got from a gateway, so
// TestMain can check that each one on a documented operation is documented.
var observed = struct {
	sync.Mutex
	m map[string]string // "POST /v1/events 202" -> content type
}{m: map[string]string{}}

type recorder struct{ next http.RoundTripper }

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		observed.Lock()
		observed.m[fmt.Sprintf("%s %s %d", req.Method, req.URL.Path, resp.StatusCode)] = resp.Header.Get("Content-Type")
		observed.Unlock()
	}
	return resp, err
}

var client = &http.Client{Transport: recorder{next: http.DefaultTransport}, Timeout: 60 * time.Second}

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := checkObserved(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL: answers not in the OpenAPI document:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// checkObserved fails when a test saw a status (or content type) on a documented operation that
// the document does not list.
func checkObserved() error {
	doc := loadDoc()
	observed.Lock()
	defer observed.Unlock()
	var bad []string
	for k, ct := range observed.m {
		f := strings.Fields(k)
		op, ok := doc.operation(f[0], f[1])
		if !ok {
			continue // outside the documented operations: 404 and 405
		}
		resp, ok := op.Responses[f[2]]
		if !ok {
			bad = append(bad, k)
			continue
		}
		if _, ok := resp.Content[mediaType(ct)]; !ok && len(resp.Content) > 0 {
			bad = append(bad, k+" as "+ct)
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, ", "))
	}
	return nil
}

func mediaType(ct string) string { mt, _, _ := strings.Cut(ct, ";"); return strings.TrimSpace(mt) }

// pair is one Kafka and one Redis to run a test against.
type pair struct {
	name     string
	kafka    streamstest.Backend
	redisURL string
}

// pairs returns kfake with miniredis, and the rig's Kafka with its Redis when they are set.
func pairs(t *testing.T) []pair {
	t.Helper()
	rs := streamstest.RedisBackends(t)
	var out []pair
	for _, b := range streamstest.Backends(t) {
		p := pair{name: b.Name + "+miniredis", kafka: b, redisURL: rs["miniredis"]}
		if u, ok := rs["redis"]; ok && b.Real {
			p.name, p.redisURL = b.Name+"+redis", u
		}
		out = append(out, p)
	}
	return out
}

// idempotencyPairs is pairs plus, under `make test`, the rig's Kafka with its Redis Cluster: the
// Idempotency-Key records are one-key operations, valid in any slot.
func idempotencyPairs(t *testing.T) []pair {
	t.Helper()
	out := pairs(t)
	if u := streamstest.RedisCluster(t); u != "" {
		for _, b := range streamstest.Backends(t) {
			if b.Real {
				out = append(out, pair{name: b.Name + "+redis-cluster", kafka: b, redisURL: u})
			}
		}
	}
	return out
}

var schemaSet = sync.OnceValues(func() (*schemas.Set, error) { return schemas.Load(schemas.Embedded()) })

func mustSchemas(t testing.TB) *schemas.Set {
	t.Helper()
	s, err := schemaSet()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// envelope returns eventType's golden example for tenant as a map, without the fields the gateway
// fills in.
func envelope(t testing.TB, eventType, tenant string) map[string]any {
	t.Helper()
	v, ok := mustSchemas(t).Latest(eventType)
	if !ok {
		t.Fatalf("no schema for %s", eventType)
	}
	var m map[string]any
	if err := json.Unmarshal(v.Example, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "eventId")
	delete(m, "timestamp")
	md := m["metadata"].(map[string]any)
	delete(md, "source")
	delete(md, "traceId")
	md["tenantId"] = tenant
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fxOpts struct {
	brokers      []string // instead of the backend's (an unreachable address)
	spoolAfter   time.Duration
	spoolMax     int64
	unregistered bool              // leave the registry empty: publishing fails with ErrNotRegistered
	scope        map[string]string // system -> tenants= patterns of its credential
	config       func(*gateway.Config)
}

// fixture is a gateway on httptest over one backend, with prefixed topics, registered schemas, a
// producer with a spool per system and one token per system in a credentials file.
type fixture struct {
	cat       *topics.Catalog
	url       string
	brokers   []string
	kafka     *kgo.Client
	tokens    map[string]string
	credPath  string
	creds     *gateway.Credentials
	redis     redis.UniversalClient
	gw        *gateway.Server
	producers map[string]*streams.Producer
}

func newFixture(t testing.TB, b streamstest.Backend, redisURL string, o fxOpts) *fixture {
	t.Helper()
	ctx := context.Background()
	cat, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		t.Fatal(err)
	}
	cat = cat.WithPrefix(streamstest.Name(t, "gw") + ".")
	f := &fixture{cat: cat, tokens: map[string]string{}, producers: map[string]*streams.Producer{}}
	brokers := b.Brokers
	f.brokers = brokers
	if o.brokers != nil {
		brokers = o.brokers
	} else {
		f.kafka = b.Client(t)
		if _, err := topics.Ensure(ctx, kadm.NewClient(f.kafka), cat); err != nil {
			t.Fatal(err)
		}
	}
	reg, _ := streamstest.Registry(t)
	set := mustSchemas(t)
	if !o.unregistered {
		streamstest.RegisterSchemas(t, reg, cat)
	}
	serde, err := streams.NewSerde(reg, set, cat)
	if err != nil {
		t.Fatal(err)
	}
	spoolDir := t.TempDir()
	var systems []string
	var lines []string
	for _, sys := range cat.Systems {
		popts := []streams.ProducerOption{streams.Brokers(brokers...), streams.SpoolDir(spoolDir)}
		if o.spoolAfter > 0 {
			popts = append(popts, streams.SpoolAfter(o.spoolAfter), streams.DrainBackoff(200*time.Millisecond))
		}
		if o.spoolMax > 0 {
			popts = append(popts, streams.SpoolMaxBytes(o.spoolMax))
		}
		p, err := streams.NewProducer(sys.Name, serde, popts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = p.Close(cctx)
		})
		f.producers[sys.Name] = p
		systems = append(systems, sys.Name)
		f.tokens[sys.Name] = rand.Text()
		line := sys.Name + " " + gateway.HashToken(f.tokens[sys.Name])
		if sc, ok := o.scope[sys.Name]; ok {
			line += " tenants=" + sc
		}
		lines = append(lines, line)
	}
	f.credPath = filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(f.credPath, []byte("# test credentials\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f.creds, err = gateway.NewCredentials(systems, gateway.CredentialSource{Path: f.credPath}); err != nil {
		t.Fatal(err)
	}
	if f.redis, err = streams.NewRedisClient(redisURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.redis.Close() })
	readyKafka := f.kafka
	if readyKafka == nil {
		readyKafka = streamstest.Backend{Brokers: brokers}.Client(t)
	}
	cfg := gateway.Config{Producers: f.producers, Credentials: f.creds, Redis: f.redis, Kafka: readyKafka, Registry: reg,
		PublishTimeout: 20 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	if o.config != nil {
		o.config(&cfg)
	}
	if f.gw, err = gateway.New(cfg); err != nil {
		t.Fatal(err)
	}
	// Served as in production (Serve: its http.Server limits and problem+json for net/http's own
	// answers), not through httptest's server.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.gw.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = f.gw.Shutdown(ctx)
	})
	f.url = "http://" + ln.Addr().String()
	return f
}

// unreachable returns an address nothing listens on.
func unreachable(t testing.TB) []string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return []string{addr}
}

type resp struct {
	code int
	hdr  http.Header
	body []byte
}

func (r resp) String() string { return fmt.Sprintf("%d %s", r.code, r.body) }

// problem decodes a problem+json body.
func (r resp) problem(t testing.TB) gateway.Problem {
	t.Helper()
	var p gateway.Problem
	if ct := r.hdr.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json: %s", ct, r)
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != r.code || p.Type == "" || p.Title == "" {
		t.Fatalf("not a problem for %d: %s (%v)", r.code, r.body, err)
	}
	return p
}

func (r resp) accepted(t testing.TB) gateway.Accepted {
	t.Helper()
	var a gateway.Accepted
	if r.code != http.StatusAccepted {
		t.Fatalf("want 202, got %s", r)
	}
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// do sends a request to the fixture's gateway; hdr are header name/value pairs. Content-Type is
// application/json unless hdr sets it; a token "" sends no Authorization.
func (f *fixture) do(t testing.TB, method, route, token string, body []byte, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, f.url+route, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{code: res.StatusCode, hdr: res.Header, body: b}
}

func (f *fixture) post(t testing.TB, route, system string, body []byte, hdr ...string) resp {
	t.Helper()
	return f.do(t, http.MethodPost, route, f.tokens[system], body, hdr...)
}

// records returns the number of records in every topic of the fixture's catalog but the audit log.
func (f *fixture) records(t testing.TB) int64 {
	t.Helper()
	var names []string
	for _, tp := range f.cat.Topics {
		if tp.Kind == topics.KindAudit {
			continue // the producer's publish audit records are not events
		}
		names = append(names, tp.Name)
	}
	ends, err := kadm.NewClient(f.kafka).ListEndOffsets(context.Background(), names...)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// recordAt reads the record at topic/partition/offset.
func (f *fixture) recordAt(t testing.TB, topic string, partition int32, offset int64) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record at %s/%d@%d: %v", topic, partition, offset, err)
		}
		var rec *kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			if rec == nil && r.Offset == offset {
				rec = r
			}
		})
		if rec != nil {
			return rec
		}
	}
}

package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// checkRecord reads the record an answer names and checks it is the event: its eventId, source and
// tenant key.
func checkRecord(t *testing.T, f *fixture, a gateway.Accepted, system, tenant string) {
	t.Helper()
	if a.Status != "published" || a.Partition == nil || a.Offset == nil {
		t.Fatalf("not published: %+v", a)
	}
	rec := f.recordAt(t, a.Topic, *a.Partition, *a.Offset)
	if got := streams.Header(rec, streams.HeaderEventID); got != a.EventID {
		t.Errorf("record at %s/%d@%d has eventId %s, answer says %s", a.Topic, *a.Partition, *a.Offset, got, a.EventID)
	}
	if got := streams.Header(rec, streams.HeaderSource); got != system {
		t.Errorf("source header %q, want %s", got, system)
	}
	if string(rec.Key) != tenant {
		t.Errorf("key %q, want %s", rec.Key, tenant)
	}
}

func TestPublishedEventIsInKafkaWhereTheAnswerSays(t *testing.T) {
	for _, p := range pairs(t) {
		t.Run(p.name, func(t *testing.T) {
			f := newFixture(t, p.kafka, p.redisURL, fxOpts{})
			// eventId absent: generated (a UUID); the trace id comes from traceparent
			const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
			a := f.post(t, evs, "hotel-pms", mustJSON(t, envelope(t, "reservation.created", "tenant-a")),
				"traceparent", "00-"+trace+"-00f067aa0ba902b7-01", gateway.HeaderCorrelationID, "flow-9").accepted(t)
			if _, err := uuid.Parse(a.EventID); err != nil {
				t.Errorf("generated eventId %q: %v", a.EventID, err)
			}
			checkRecord(t, f, a, "hotel-pms", "tenant-a")
			rec := f.recordAt(t, a.Topic, *a.Partition, *a.Offset)
			if tp := streams.Header(rec, "traceparent"); !strings.Contains(tp, trace) {
				t.Errorf("traceparent %q does not carry %s", tp, trace)
			}
			// eventId given: kept
			env := envelope(t, "checkin_checkout.checked_in", "tenant-b")
			env["eventId"] = uuid.NewString()
			a = f.post(t, evs, "hotel-pms", mustJSON(t, env)).accepted(t)
			if a.EventID != env["eventId"] {
				t.Errorf("eventId %s, want the given %s", a.EventID, env["eventId"])
			}
			checkRecord(t, f, a, "hotel-pms", "tenant-b")
			// a batch: every item where its result says, in order per tenant
			r := f.post(t, batch, "hotel-saas", batchOf(t, envelope(t, "service.ordered", "t1"), envelope(t, "service.canceled", "t1"),
				envelope(t, "feedback.submitted", "t2"), envelope(t, "service.ordered", "t1")))
			var br gateway.BatchResult
			if err := json.Unmarshal(r.body, &br); err != nil || r.code != 202 {
				t.Fatalf("batch: %s", r)
			}
			tenants := []string{"t1", "t1", "t2", "t1"}
			for i, it := range br.Results {
				checkRecord(t, f, *it.Accepted, "hotel-saas", tenants[i])
			}
			if a, b := br.Results[0], br.Results[3]; a.Topic == b.Topic && *a.Partition == *b.Partition && *a.Offset >= *b.Offset {
				t.Errorf("batch order lost: item 0 at %d, item 3 at %d", *a.Offset, *b.Offset)
			}
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	for _, p := range idempotencyPairs(t) {
		t.Run(p.name, func(t *testing.T) {
			f := newFixture(t, p.kafka, p.redisURL, fxOpts{})
			body := mustJSON(t, envelope(t, "member.registered", "tenant-a"))
			key := uuid.NewString()
			first := f.post(t, evs, "hotel-member", body, "Idempotency-Key", key)
			first.accepted(t)
			second := f.post(t, evs, "hotel-member", body, "Idempotency-Key", key)
			if second.code != first.code || string(second.body) != string(first.body) || second.hdr.Get(gateway.HeaderReplayed) != "true" {
				t.Errorf("second answer %s (replayed=%q), want the first %s", second, second.hdr.Get(gateway.HeaderReplayed), first)
			}
			if n := f.records(t); n != 1 {
				t.Errorf("%d records after the same key twice, want 1", n)
			}
			// the same key from another system is another key
			other := f.post(t, evs, "hotel-saas", mustJSON(t, envelope(t, "feedback.submitted", "tenant-a")), "Idempotency-Key", key)
			if other.accepted(t).EventID == first.accepted(t).EventID || other.hdr.Get(gateway.HeaderReplayed) != "" {
				t.Errorf("another system's key replayed: %s", other)
			}
			// a refusal is final too: replayed, nothing published
			bad := mustJSON(t, envelope(t, "service.ordered", "tenant-a"))
			k2 := uuid.NewString()
			if r1, r2 := f.post(t, evs, "hotel-member", bad, "Idempotency-Key", k2), f.post(t, evs, "hotel-member", bad, "Idempotency-Key", k2); r1.code != 403 || r2.code != 403 || r2.hdr.Get(gateway.HeaderReplayed) != "true" {
				t.Errorf("refusal replay: %s then %s", r1, r2)
			}
			// concurrent requests with one key: one record, one answer
			before := f.records(t)
			key = uuid.NewString()
			body = mustJSON(t, envelope(t, "points.added", "tenant-c"))
			const n = 12
			answers := make([]resp, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					answers[i] = f.post(t, batch, "hotel-member", batchOf(t, json.RawMessage(body)), "Idempotency-Key", key)
				})
			}
			wg.Wait()
			replayed := 0
			for _, a := range answers {
				if a.code != 202 || string(a.body) != string(answers[0].body) {
					t.Errorf("concurrent answers differ: %s vs %s", a, answers[0])
				}
				if a.hdr.Get(gateway.HeaderReplayed) == "true" {
					replayed++
				}
			}
			if replayed != n-1 {
				t.Errorf("%d of %d concurrent answers replayed, want %d", replayed, n, n-1)
			}
			if got := f.records(t) - before; got != 1 {
				t.Errorf("%d records from %d concurrent requests with one key, want 1", got, n)
			}
		})
	}
}

func TestIdempotencyKeyExpires(t *testing.T) {
	mr := miniredis.RunT(t)
	f := newFixture(t, streamstest.Kfake(t), "redis://"+mr.Addr(), fxOpts{config: func(c *gateway.Config) {
		c.IdempotencyTTL = time.Hour
	}})
	body := mustJSON(t, envelope(t, "points.used", "tenant-a"))
	first := f.post(t, evs, "hotel-member", body, "Idempotency-Key", "k").accepted(t)
	mr.FastForward(time.Hour + time.Second)
	again := f.post(t, evs, "hotel-member", body, "Idempotency-Key", "k").accepted(t)
	if again.EventID == first.EventID || f.records(t) != 2 {
		t.Errorf("after the TTL the key still replays: %s then %s", first.EventID, again.EventID)
	}
}

func TestCredentialRotation(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		f := newFixture(t, streamstest.Kfake(t), "redis://"+miniredis.RunT(t).Addr(), fxOpts{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		creds := f.creds
		go creds.Watch(ctx, 20*time.Millisecond, slogDiscard)
		old := f.tokens["hotel-pms"]
		fresh := "rotated-token-" + uuid.NewString()
		body := mustJSON(t, envelope(t, "billing.paid", "tenant-a"))
		// overlap: both tokens valid
		writeCreds(t, f.credPath, "hotel-pms "+gateway.HashToken(old)+"\nhotel-pms "+gateway.HashToken(fresh)+"\n")
		waitStatus(t, f, fresh, body, 202)
		f.do(t, "POST", evs, old, body).accepted(t)
		// the old one removed
		writeCreds(t, f.credPath, "hotel-pms "+gateway.HashToken(fresh)+"\n")
		waitStatus(t, f, old, body, 401)
		f.do(t, "POST", evs, fresh, body).accepted(t)
		// a broken file keeps the credentials in force
		writeCreds(t, f.credPath, "hotel-pms\n")
		if err := creds.Reload(); err == nil {
			t.Error("a malformed credentials file loaded")
		}
		f.do(t, "POST", evs, fresh, body).accepted(t)
	})
	t.Run("kubernetes secret directory", func(t *testing.T) {
		dir := t.TempDir()
		// the kubelet's layout: <key> -> ..data/<key>, ..data -> ..<timestamp>, swapped atomically
		mount := func(gen, token string) {
			g := filepath.Join(dir, "..gen"+gen)
			if err := os.Mkdir(g, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(g, "hotel-saas"), []byte(token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tmp := filepath.Join(dir, "..data_tmp")
			if err := os.Symlink("..gen"+gen, tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
		}
		mount("1", "first-secret-token-0001")
		if err := os.Symlink("..data/hotel-saas", filepath.Join(dir, "hotel-saas")); err != nil {
			t.Fatal(err)
		}
		creds, err := gateway.NewCredentials([]string{"hotel-saas", "hotel-pms"}, gateway.CredentialSource{Path: dir})
		if err != nil {
			t.Fatal(err)
		}
		if sys, ok := creds.Authenticate("Bearer first-secret-token-0001"); !ok || sys != "hotel-saas" {
			t.Fatalf("first token: %q %v", sys, ok)
		}
		mount("2", "second-secret-token-0002")
		if err := creds.Reload(); err != nil {
			t.Fatal(err)
		}
		if _, ok := creds.Authenticate("Bearer first-secret-token-0001"); ok {
			t.Error("the rotated-out token still authenticates")
		}
		if sys, ok := creds.Authenticate("bearer second-secret-token-0002"); !ok || sys != "hotel-saas" {
			t.Errorf("second token: %q %v", sys, ok)
		}
	})
	t.Run("environment and refusals", func(t *testing.T) {
		env := map[string]string{gateway.EnvName("hotel-pms"): "env-token-aaaaaaaaaaaa, " + gateway.HashToken("env-token-bbbbbbbbbbbb")}
		creds, err := gateway.NewCredentials([]string{"hotel-pms"}, gateway.CredentialSource{Getenv: func(k string) string { return env[k] }})
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{"env-token-aaaaaaaaaaaa", "env-token-bbbbbbbbbbbb"} {
			if sys, ok := creds.Authenticate("Bearer " + tok); !ok || sys != "hotel-pms" {
				t.Errorf("%s: %q %v", tok, sys, ok)
			}
		}
		for _, h := range []string{"", "Bearer", "Bearer ", "Basic env-token-aaaaaaaaaaaa", "Bearer " + gateway.HashToken("env-token-bbbbbbbbbbbb")} {
			if _, ok := creds.Authenticate(h); ok {
				t.Errorf("%q authenticates", h)
			}
		}
		for name, src := range map[string]gateway.CredentialSource{
			"none":           {},
			"unknown system": {Tokens: map[string][]string{"hotel-spa": {"a-long-enough-token"}}},
			"short token":    {Tokens: map[string][]string{"hotel-pms": {"short"}}},
			"bad digest":     {Tokens: map[string][]string{"hotel-pms": {"sha256:abc"}}},
		} {
			if _, err := gateway.NewCredentials([]string{"hotel-pms"}, src); err == nil {
				t.Errorf("%s: loaded", name)
			}
		}
	})
}

var slogDiscard = slog.New(slog.DiscardHandler)

func writeCreds(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitStatus posts until the answer has the wanted status (the watcher picked the change up), or
// fails after 10s.
func waitStatus(t *testing.T, f *fixture, token string, body []byte, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := f.do(t, "POST", evs, token, body)
		if r.code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %s, want %d", r, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBrokerStoppedRequestsAreSpooledThenDelivered(t *testing.T) {
	for _, rb := range streamstest.RestartableBackends(t) {
		t.Run(rb.Name, func(t *testing.T) {
			f := newFixture(t, rb.Backend, "redis://"+miniredis.RunT(t).Addr(), fxOpts{spoolAfter: 1500 * time.Millisecond})
			send := func(i int) resp {
				env := envelope(t, "reservation.updated", fmt.Sprintf("tenant-%d", i%3))
				env["metadata"].(map[string]any)["correlationId"] = fmt.Sprint(i)
				return f.post(t, evs, "hotel-pms", mustJSON(t, env))
			}
			const before, during = 5, 30
			for i := range before {
				send(i).accepted(t)
			}
			rb.Stop(t)
			spooled := 0
			for i := before; i < before+during; i++ {
				a := send(i).accepted(t)
				if a.Status == "spooled" {
					spooled++
					if a.Seq == nil || a.Partition != nil {
						t.Errorf("spooled answer %+v", a)
					}
				}
			}
			if spooled < during-1 { // one in flight when the broker stopped may have been written
				t.Errorf("%d of %d answers spooled while the broker was down", spooled, during)
			}
			r := f.do(t, "GET", gateway.RouteReady, "", nil)
			if r.code != 503 {
				t.Errorf("readyz with the broker down: %s", r)
			}
			rb.Start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := f.producers["hotel-pms"].Drained(ctx); err != nil {
				t.Fatal(err)
			}
			// every event is there, each tenant's in order (duplicates of the one in flight allowed)
			tp, _ := f.cat.TopicFor("reservation.updated")
			seqs := readCorrelations(t, f, tp.Name)
			seen := map[string]bool{}
			last := map[string]int{}
			for _, s := range seqs {
				if seen[s[1]] {
					continue // the copy of an event in flight when the broker stopped
				}
				seen[s[1]] = true
				i, _ := strconv.Atoi(s[1])
				if s[0] != fmt.Sprintf("tenant-%d", i%3) {
					t.Fatalf("event %d under key %s", i, s[0])
				}
				if prev, ok := last[s[0]]; ok && i < prev {
					t.Errorf("tenant %s: event %d after %d", s[0], i, prev)
				}
				last[s[0]] = i
			}
			if len(seen) != before+during {
				t.Errorf("%d distinct events in Kafka, want %d", len(seen), before+during)
			}
		})
	}
}

// readCorrelations returns (key, correlation id header) of every record of topic, in partition
// order.
func readCorrelations(t *testing.T, f *fixture, topic string) [][2]string {
	t.Helper()
	cl := streamstest.Backend{Brokers: f.brokers}.Client(t)
	total := f.records(t)
	var out [][2]string
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl.AddConsumeTopics(topic)
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(out), total)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, [2]string{string(r.Key), streams.Header(r, streams.HeaderCorrelationID)})
		})
	}
	return out
}

func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	f := newFixture(t, streamstest.Kfake(t), "redis://"+miniredis.RunT(t).Addr(), fxOpts{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.gw.Serve(ln) }()
	base := "http://" + ln.Addr().String()

	body := mustJSON(t, envelope(t, "reservation.canceled", "tenant-a"))
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+evs, pr)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.tokens["hotel-pms"])
	answered := make(chan resp, 1)
	go func() {
		res, err := client.Do(req)
		if err != nil {
			t.Error(err)
			answered <- resp{}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		answered <- resp{code: res.StatusCode, hdr: res.Header, body: b}
	}()
	if _, err := pw.Write(body[:10]); err != nil { // the request is now being read by its handler
		t.Fatal(err)
	}
	waitMetric(t, base, "hotelbus_gateway_requests_in_flight 1")

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shut <- f.gw.Shutdown(ctx)
	}()
	// new connections are refused once Shutdown closed the listener
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener is still open after Shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	default:
	}
	if _, err := pw.Write(body[10:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-answered
	a := r.accepted(t)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	checkRecord(t, f, a, "hotel-pms", "tenant-a")
}

func waitMetric(t *testing.T, base, line string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := client.Get(base + gateway.RouteMetrics)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if strings.Contains(string(b), "\n"+line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %q", line)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConfigValidation(t *testing.T) {
	f := newFixture(t, streamstest.Kfake(t), "redis://"+miniredis.RunT(t).Addr(), fxOpts{})
	base := func() gateway.Config {
		return gateway.Config{Producers: f.producers, Credentials: f.creds, Redis: f.redis}
	}
	if _, err := gateway.New(base()); err != nil {
		t.Fatalf("defaults refused: %v", err)
	}
	for name, mod := range map[string]func(*gateway.Config){
		"no producers":          func(c *gateway.Config) { c.Producers = nil },
		"no credentials":        func(c *gateway.Config) { c.Credentials = nil },
		"no redis":              func(c *gateway.Config) { c.Redis = nil },
		"event above body":      func(c *gateway.Config) { c.MaxBodyBytes, c.MaxEventBytes = 4096, 8192 },
		"publish above write":   func(c *gateway.Config) { c.PublishTimeout, c.WriteTimeout = time.Minute, 30*time.Second },
		"ttl below lease":       func(c *gateway.Config) { c.IdempotencyTTL = time.Second },
		"retry-after below 1s":  func(c *gateway.Config) { c.RetryAfter = time.Millisecond },
		"negative batch events": func(c *gateway.Config) { c.MaxBatchEvents = -1 },
	} {
		c := base()
		mod(&c)
		if _, err := gateway.New(c); err == nil || !strings.HasPrefix(err.Error(), "gateway: ") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

package streams_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// badTenants are the tenantIds of issue 14 that were accepted as record keys.
var badTenants = map[string]string{
	"path traversal":  "../../etc/passwd",
	"redis hash tag":  "{hotelbus}:x*",
	"CR LF":           "sakura\r\nX-Injected: 1",
	"NUL":             "sakura\x00hotels",
	"bidi override":   "sakura\u202eslatoh",
	"10 KB":           strings.Repeat("a", 10<<10),
	"space":           " ",
	"invalid UTF-8":   "sakura\xff\xfe",
	"leading dash":    "-sakura",
	"129 bytes":       strings.Repeat("a", 129),
	"non-ASCII alnum": "さくら",
}

// TestProducerRefusesBadIdentifiers: the producer (the path of the gateway, `hotelbus produce` and
// every Go publisher) refuses each identifier that breaks the grammar with ErrInvalidEvent naming
// the field, quoting at most a few dozen bytes of it, and sends nothing; the grammar's edge cases
// are accepted, and a given UUID is lowercased.
func TestProducerRefusesBadIdentifiers(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, cat := isolated(t, b)
	p := newProducer(t, "hotel-pms", b, serde)
	ctx := context.Background()

	type tc struct {
		name, path string
		set        func(*streams.Envelope)
	}
	var cases []tc
	for name, v := range badTenants {
		cases = append(cases, tc{"tenantId " + name, "metadata.tenantId", func(e *streams.Envelope) { e.Metadata.TenantID = v }})
	}
	for name, v := range map[string]string{"not a UUID": "evt-1", "UUID without dashes": "0193a5f27c417d3e9b1a4c2f8e6d5a10",
		"braced UUID": "{0193a5f2-7c41-7d3e-9b1a-4c2f8e6d5a10}", "CR LF": "0193a5f2-7c41-7d3e-9b1a-4c2f8e6d5a1\n", "10 KB": strings.Repeat("0", 10<<10)} {
		cases = append(cases, tc{"eventId " + name, "eventId", func(e *streams.Envelope) { e.EventID = v }})
	}
	for name, v := range map[string]string{"uppercase": strings.Repeat("AB", 16), "all zeros": strings.Repeat("0", 32),
		"short": "abc", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		cases = append(cases, tc{"traceId " + name, "metadata.traceId", func(e *streams.Envelope) { e.Metadata.TraceID = v }})
	}
	for name, v := range map[string]string{"CR LF": "corr\r\nX: 1", "NUL": "a\x00", "space": "a b", "non-ASCII": "相関",
		"bidi override": "a\u202eb", "129 bytes": strings.Repeat("c", 129)} {
		cases = append(cases, tc{"correlationId " + name, "metadata.correlationId", func(e *streams.Envelope) { e.Metadata.CorrelationID = v }},
			tc{"userId " + name, "metadata.userId", func(e *streams.Envelope) { e.Metadata.UserID = v }})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := example(t, serde, "reservation.created")
			c.set(env)
			_, err := p.Publish(ctx, env)
			var inv *streams.InvalidEventError
			if !errors.As(err, &inv) || !errors.Is(err, streams.ErrInvalidEvent) || streams.IsRetryable(err) {
				t.Fatalf("err = %v, want a non-retryable *InvalidEventError", err)
			}
			if inv.Fields[0].Path != c.path { // a bad eventId is also the default correlationId
				t.Errorf("fields %v, want the first for %s", inv.Fields, c.path)
			}
			if msg := err.Error(); len(msg) > 300 || strings.ContainsAny(msg, "\r\n\x00\u202e") {
				t.Errorf("message of %d bytes echoes the input: %q", len(msg), msg[:min(len(msg), 400)])
			}
		})
	}
	adm := kadm.NewClient(b.Client(t))
	var names []string
	for _, tp := range cat.Topics {
		names = append(names, tp.Name)
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 {
			t.Errorf("%s/%d has %d records after refusals", o.Topic, o.Partition, o.Offset)
		}
	})

	for _, ok := range []struct{ tenant, eventID, correlation, user string }{
		{"a", "0193A5F2-7C41-7D3E-9B1A-4C2F8E6D5A10", strings.Repeat("c", 128), "usr_frontdesk_0142"},
		{strings.Repeat("t", 128), "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a@b.example"},
		{"sakura-hotels.kyoto_01:main", uuid.NewString(), `!"#$%&'()*+,-./:;<=>?@[\]^_{|}~`, ""},
	} {
		env := example(t, serde, "reservation.created")
		env.Metadata.TenantID, env.EventID, env.Metadata.CorrelationID, env.Metadata.UserID = ok.tenant, ok.eventID, ok.correlation, ok.user
		res, err := p.Publish(ctx, env)
		if err != nil {
			t.Errorf("tenant %q eventId %q correlationId %q userId %q refused: %v", ok.tenant, ok.eventID, ok.correlation, ok.user, err)
			continue
		}
		if ok.eventID != "" && res.EventID != strings.ToLower(ok.eventID) {
			t.Errorf("eventId %q published as %q, want it lowercased", ok.eventID, res.EventID)
		}
	}
}

// TestParseJSONStrict: JSON that encoding/json would repair (invalid UTF-8 and escaped lone
// surrogates replaced by U+FFFD, of two equal keys the last kept) is refused as malformed at "$",
// naming where, at any depth, with a bounded message.
func TestParseJSONStrict(t *testing.T) {
	set, cat := loadAll(t)
	serde, _ := newSerde(t, set, cat)
	golden := string(latest(t, set, "reservation.created").Example)
	if _, err := serde.ParseJSON([]byte(golden)); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("k", 10<<10)
	for name, in := range map[string]string{
		"invalid UTF-8 in tenantId":  strings.Replace(golden, `"sakura-hotels"`, "\"sakura\xff\"", 1),
		"lone surrogate in tenantId": strings.Replace(golden, `"sakura-hotels"`, `"sakura\udc00"`, 1),
		"duplicate tenantId":         strings.Replace(golden, `"tenantId": "sakura-hotels",`, `"tenantId": "sakura-hotels", "tenantId": "kyoto-grand",`, 1),
		"duplicate top-level key":    strings.Replace(golden, `"eventType":`, `"eventType": "reservation.created", "eventType":`, 1),
		"duplicate key in data":      strings.Replace(golden, `"data": {`, `"data": {"x": 1, "x": 2, `, 1),
		"duplicate 10 KB key":        strings.Replace(golden, `"data": {`, `"data": {"`+long+`": 1, "`+long+`": 2, `, 1),
	} {
		t.Run(name, func(t *testing.T) {
			env, err := serde.ParseJSON([]byte(in))
			var inv *streams.InvalidEventError
			if !errors.As(err, &inv) {
				t.Fatalf("accepted (tenantId %q), want an *InvalidEventError", env.Metadata.TenantID)
			}
			if len(inv.Fields) != 1 || inv.Fields[0].Path != "$" || !strings.HasPrefix(inv.Fields[0].Message, "malformed JSON") {
				t.Errorf("fields %v, want one malformed JSON at $", inv.Fields)
			}
			if len(err.Error()) > 300 {
				t.Errorf("message of %d bytes", len(err.Error()))
			}
			if strings.Contains(name, "duplicate") && !strings.Contains(err.Error(), "duplicate key at ") {
				t.Errorf("%v does not say which key is duplicated", err)
			}
		})
	}
	// the producer reads the text before the owner: of two eventType keys, neither is believed
	b := streamstest.Kfake(t)
	pserde, _ := isolated(t, b)
	twoTypes := strings.Replace(golden, `"eventType": "reservation.created",`, `"eventType": "reservation.created", "eventType": "service.ordered",`, 1)
	if _, err := newProducer(t, "hotel-pms", b, pserde).ParseJSON([]byte(twoTypes)); !errors.Is(err, streams.ErrInvalidEvent) || errors.Is(err, streams.ErrNotOwner) {
		t.Errorf("two eventType keys: %v, want ErrInvalidEvent (malformed JSON)", err)
	}
	// long client values are quoted in part only, wherever they are refused
	for name, in := range map[string]string{
		"unknown 10 KB key":     strings.Replace(golden, `"data": {`, `"data": {"`+long+`\r\n": 1, `, 1),
		"10 KB enum symbol":     regexp.MustCompile(`"status": "[A-Z_]+"`).ReplaceAllString(golden, `"status": "`+long+`"`),
		"10 KB number for int":  regexp.MustCompile(`"adults": \d+`).ReplaceAllString(golden, `"adults": 1`+strings.Repeat("0", 10<<10)),
		"10 KB date":            regexp.MustCompile(`"arrivalDate": "[0-9-]+"`).ReplaceAllString(golden, `"arrivalDate": "`+long+`"`),
		"10 KB timestamp":       strings.Replace(golden, `"timestamp": "`, `"timestamp": "`+long, 1),
		"10 KB decimal amount":  regexp.MustCompile(`"amount": "[0-9.]+"`).ReplaceAllString(golden, `"amount": "`+long+`"`),
		"CR LF in an enum name": regexp.MustCompile(`"status": "[A-Z_]+"`).ReplaceAllString(golden, `"status": "X\r\nY"`),
	} {
		t.Run(name, func(t *testing.T) {
			if in == golden {
				t.Fatalf("the golden example has no field to spoil")
			}
			_, err := serde.ParseJSON([]byte(in))
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error(); len(msg) > 300 || strings.ContainsAny(msg, "\r\n") {
				t.Errorf("message of %d bytes echoes the input: %q", len(msg), msg[:min(len(msg), 400)])
			}
		})
	}
}

// avroString is s as Avro writes a string: its zigzag length, then its bytes.
func avroString(s string) []byte {
	return append(binary.AppendVarint(nil, int64(len(s))), s...)
}

// spoil returns rec with the Avro string old in its value replaced by bad (a record another client
// could write: the value still decodes) and every header holding old (or a traceparent holding
// it) rewritten the same way.
func spoil(t *testing.T, rec *kgo.Record, old, bad string) *kgo.Record {
	t.Helper()
	body := rec.Value[5:]
	if bytes.Count(body, avroString(old)) != 1 {
		t.Fatalf("%q is not exactly once in the value", old)
	}
	out := &kgo.Record{Topic: rec.Topic, Key: rec.Key,
		Value: append(append([]byte(nil), rec.Value[:5]...), bytes.Replace(body, avroString(old), avroString(bad), 1)...)}
	for _, h := range rec.Headers {
		out.Headers = append(out.Headers, kgo.RecordHeader{Key: h.Key, Value: bytes.ReplaceAll(h.Value, []byte(old), []byte(bad))})
	}
	return out
}

// TestConsumerDeadLettersInvalidIdentifiers: records written by a raw Kafka client around the
// producer, whose key, envelope or headers break the identifier grammar, are mixed into valid
// events of the same tenants. Every valid event is handled once and in order; every poisoned
// record is dead-lettered with class invalid-identifier (a bounded message naming the field)
// without reaching the handler; no Redis key is made from a poisoned identifier; offsets reach
// the end.
func TestConsumerDeadLettersInvalidIdentifiers(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			serde, cat := isolated(t, b)
			chk := streamstest.NewChecker()
			const tenants, per = 20, 50
			recs := buildEvents(t, serde, chk, []eventSpec{byTenant("service.ordered")}, tenants, per)

			ctx := context.Background()
			var poison []*kgo.Record
			add := func(i int, field, bad string) {
				env := example(t, serde, "service.ordered")
				env.EventID, env.Timestamp, env.Version = uuid.NewString(), time.Now(), "1.0"
				env.Metadata = streams.Metadata{TenantID: fmt.Sprintf("tenant-%03d", i%tenants), Source: "hotel-saas",
					CorrelationID: fmt.Sprintf("poison-corr-%03d", i), UserID: fmt.Sprintf("poison-user-%03d", i), TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}
				rec, err := serde.Record(ctx, env)
				if err != nil {
					t.Fatal(err)
				}
				switch field {
				case "tenantId":
					rec = spoil(t, rec, env.Metadata.TenantID, bad)
					rec.Key = []byte(bad) // as a client keying by its tenantId would
				case "eventId":
					rec = spoil(t, rec, env.EventID, bad)
				case "correlationId":
					rec = spoil(t, rec, env.Metadata.CorrelationID, bad)
				case "userId":
					rec = spoil(t, rec, env.Metadata.UserID, bad)
				case "source":
					rec = spoil(t, rec, env.Metadata.Source, bad)
				case "traceparent header":
					for i, h := range rec.Headers {
						if h.Key == streams.HeaderTraceparent {
							rec.Headers[i].Value = []byte(bad)
						}
					}
				case "eventId header":
					for i, h := range rec.Headers {
						if h.Key == streams.HeaderEventID {
							rec.Headers[i].Value = []byte(bad)
						}
					}
				}
				poison = append(poison, rec)
			}
			i := 0
			for _, bad := range badTenants {
				add(i, "tenantId", bad)
				i++
			}
			for _, c := range []struct{ field, bad string }{
				{"eventId", "not-a-uuid"}, {"eventId", "0193a5f2-7c41-7d3e-9b1a-4c2f8e6d5a1\n"}, {"eventId", strings.Repeat("e", 10<<10)},
				{"correlationId", "poison\r\nX-Injected: 1"}, {"correlationId", "poison\x00"}, {"userId", "user\u202eevil"},
				{"source", "hotel-evil"},
				{"traceparent header", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nX: 1"},
				{"eventId header", "{hotelbus}:*"},
				// Well-formed, but another event's id (an early one and a late one): the
				// consumer deduplicates by headers before decoding, and must neither skip the
				// record as that event's duplicate nor let it take that event's lease.
				{"eventId header", streams.Header(recs[0], streams.HeaderEventID)},
				{"eventId header", streams.Header(recs[len(recs)-1], streams.HeaderEventID)},
			} {
				add(i, c.field, c.bad)
				i++
			}
			produceRecords(t, b, recs[:len(recs)/3])
			produceRecords(t, b, poison[:len(poison)/2])
			produceRecords(t, b, recs[len(recs)/3:2*len(recs)/3])
			produceRecords(t, b, poison[len(poison)/2:])
			produceRecords(t, b, recs[2*len(recs)/3:])

			rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(streamstest.RedisBackends(t)["miniredis"], "redis://")})
			t.Cleanup(func() { rdb.Close() })
			group := streamstest.Name(t, "group")
			dlqTopic, chain := dedupDeadLetterChain(t, b, cat, rdb, group)
			var mu sync.Mutex
			var sawPoison []string
			var handled atomic.Int64
			r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
				c.HandleType("service.ordered", func(_ context.Context, m *streams.Message) error {
					if strings.HasPrefix(m.Envelope.Metadata.CorrelationID, "poison") {
						mu.Lock()
						sawPoison = append(sawPoison, m.Envelope.Metadata.CorrelationID)
						mu.Unlock()
						return nil
					}
					chk.Handled(m.Record.Topic+"/"+m.Envelope.Metadata.TenantID, m.Envelope.EventID, seqOf(m))
					handled.Add(1)
					return nil
				})
			}, chain...)
			eventually(t, 2*time.Minute, "every valid event handled", func() bool { return handled.Load() >= int64(len(recs)) })
			dlq := consume(t, b, len(poison), dlqTopic)
			r.stop(t)

			checkNoAnomalies(t, chk.Report())
			mu.Lock()
			if len(sawPoison) != 0 {
				t.Errorf("the handler saw the poisoned events %v", sawPoison)
			}
			mu.Unlock()
			for _, d := range dlq {
				class, msg := streams.Header(d, streams.HeaderDLQErrorClass), streams.Header(d, streams.HeaderDLQErrorMessage)
				if class != streams.ClassInvalidIdentifier || streams.Header(d, streams.HeaderDLQAttempts) != "0" {
					t.Errorf("dead letter of class %q after %s attempts (%s), want %s after 0", class, streams.Header(d, streams.HeaderDLQAttempts), msg, streams.ClassInvalidIdentifier)
				}
				if len(msg) > 600 || strings.ContainsAny(msg, "\r\n\x00\u202e") || !strings.Contains(msg, "invalid identifier") {
					t.Errorf("dead-letter message of %d bytes: %q", len(msg), msg[:min(len(msg), 700)])
				}
			}
			if len(dlq) != len(poison) {
				t.Errorf("%d dead letters, want %d", len(dlq), len(poison))
			}
			keyRE := regexp.MustCompile(`^hotelbus:dedup:\{` + regexp.QuoteMeta(group) + `\}:hotel-(saas|pms):[0-9a-f-]{36}$|^hotelbus:dedup-done:\{` + regexp.QuoteMeta(group) + `\}:[0-9a-f]{24}:[0-9a-z]+$`)
			keys, err := rdb.Keys(ctx, "*").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if !keyRE.MatchString(k) {
					t.Errorf("Redis key %q made from a record", k[:min(len(k), 200)])
				}
			}
			checkCommittedAtEnd(t, b, r.c.Group(), recs[0].Topic)
		})
	}
}

// TestDedupNamespacedBySource: two systems publish events with the same client-chosen eventId;
// a group subscribing to both, with dedup, handles both (on each Redis the tests have). Copies
// of one event (same source and eventId) are still handled once.
func TestDedupNamespacedBySource(t *testing.T) {
	for name, url := range streamstest.RedisBackends(t) {
		t.Run(name, func(t *testing.T) {
			b := streamstest.Kfake(t)
			serde, _ := isolated(t, b)
			ctx := context.Background()
			shared := uuid.NewString()
			pms, saas := newProducer(t, "hotel-pms", b, serde), newProducer(t, "hotel-saas", b, serde)
			reservation, feedback := example(t, serde, "reservation.created"), example(t, serde, "feedback.submitted")
			reservation.EventID, feedback.EventID = shared, shared
			if _, err := saas.Publish(ctx, feedback); err != nil {
				t.Fatal(err)
			}
			if _, err := pms.Publish(ctx, reservation); err != nil {
				t.Fatal(err)
			}
			again := *reservation // a redelivery of the pms event: a duplicate
			if _, err := pms.Publish(ctx, &again); err != nil {
				t.Fatal(err)
			}
			opts, err := redis.ParseURL(url)
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(opts)
			t.Cleanup(func() { rdb.Close() })
			dedup, err := streams.NewDedup(rdb, streamstest.Name(t, "group"))
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var calls atomic.Int64
			got := map[string]int{}
			handler := func(_ context.Context, m *streams.Message) error {
				mu.Lock()
				defer mu.Unlock()
				got[m.Envelope.Metadata.Source+" "+m.Envelope.EventType+" "+m.Envelope.EventID]++
				calls.Add(1)
				return nil
			}
			r := startConsumer(t, "hotel-member", b, serde, func(c *streams.Consumer) {
				c.HandleType("reservation.created", handler)
				c.HandleType("feedback.submitted", handler)
			}, streams.Use(dedup.Middleware()), streams.UsePreparer(dedup))
			eventually(t, time.Minute, "three records past the chain", func() bool { return dedup.Hits()+calls.Load() >= 3 })
			r.stop(t)
			want := map[string]int{"hotel-pms reservation.created " + shared: 1, "hotel-saas feedback.submitted " + shared: 1}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(want) || dedup.Hits() != 1 {
				t.Errorf("handled %v with %d dedup hits, want %v and 1 (the pms redelivery)", got, dedup.Hits(), want)
			}
		})
	}
}

// dedupDeadLetterChain returns hotel-pms's dead-letter topic and the consumer options of the chain
// the poisoned-record tests use: dedup on rdb for group (also the batch preparer), dead letters,
// and fast retries.
func dedupDeadLetterChain(t *testing.T, b streamstest.Backend, cat *topics.Catalog, rdb redis.UniversalClient, group string) (string, []streams.ConsumerOption) {
	t.Helper()
	dedup, err := streams.NewDedup(rdb, group)
	if err != nil {
		t.Fatal(err)
	}
	sys, _ := cat.System("hotel-pms")
	dl, err := streams.NewDeadLetters(streamstest.Writer(t, b, cat, "hotel-pms"), sys.DeadLetterTopic, quietDLQ)
	if err != nil {
		t.Fatal(err)
	}
	return sys.DeadLetterTopic, []streams.ConsumerOption{
		streams.Use(dedup.Middleware(), dl.Middleware(), streams.Retry(streams.RetryBackoff(time.Millisecond, 10*time.Millisecond))),
		streams.UsePreparer(dedup)}
}

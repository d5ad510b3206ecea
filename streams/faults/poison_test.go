package faults_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/faults"
	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// poison is one hostile event of TestPoisonedEvents.
type poison struct {
	name string
	// kafka: written by a raw Kafka client around the gateway (else posted to the gateway).
	kafka bool
	// edit sets the poisoned identifier in the seed JSON envelope (gateway) or the envelope
	// (kafka); raw edits the gateway's request body after it was rendered.
	edit func(env map[string]any, meta map[string]any)
	raw  func(body []byte) []byte
	// collide: the event reuses the eventId of another system's acknowledged event (allowed: it is
	// a valid event of its own system, and must not make the other one a duplicate).
	collide bool
}

func setMeta(key string, v any) func(env, meta map[string]any) {
	return func(_, meta map[string]any) { meta[key] = v }
}

func setEnv(key string, v any) func(env, meta map[string]any) {
	return func(env, _ map[string]any) { env[key] = v }
}

// poisons returns the 50 hostile events: every identifier of the envelope broken in the ways the
// hardening issue found (path and Redis-pattern characters, CR/LF, NUL, bidi override, 10 KB, a
// blank, invalid UTF-8, a duplicate key), through the gateway and around it, and colliding
// client eventIds.
func poisons() []poison {
	long := strings.Repeat("a", 10<<10)
	ids := []struct {
		name string
		edit func(env, meta map[string]any)
	}{
		{"tenantId path", setMeta("tenantId", "../../etc/passwd")},
		{"tenantId redis pattern", setMeta("tenantId", "{hotelbus}:x*")},
		{"tenantId CR/LF", setMeta("tenantId", "tenant-1\r\nX-Injected: 1")},
		{"tenantId NUL", setMeta("tenantId", "tenant\x00one")},
		{"tenantId bidi", setMeta("tenantId", "tenant\u202e1")},
		{"tenantId 10 KB", setMeta("tenantId", long)},
		{"tenantId blank", setMeta("tenantId", " ")},
		{"eventId not a UUID", setEnv("eventId", "not-a-uuid")},
		{"eventId CR/LF", setEnv("eventId", "0192a7f0-0000-7000-8000-00000000000\r\n")},
		{"eventId 10 KB", setEnv("eventId", long)},
		{"traceId not hex", setMeta("traceId", "zz")},
		{"traceId CR/LF", setMeta("traceId", "4bf92f3577b34da6a3ce929d0e0e4736\r\nX: 1")},
		{"correlationId CR/LF", setMeta("correlationId", "corr\r\nX-Injected: 1")},
		{"correlationId NUL", setMeta("correlationId", "corr\x00")},
		{"correlationId 10 KB", setMeta("correlationId", long)},
		{"userId CR/LF", setMeta("userId", "user\r\n")},
	}
	var out []poison
	for _, kafka := range []bool{false, true} {
		for _, id := range ids {
			out = append(out, poison{name: id.name, kafka: kafka, edit: id.edit})
		}
	}
	// Only JSON carries these two: invalid UTF-8 and a duplicate key, at the gateway.
	badUTF8 := func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"tenantId":"`), []byte("\"tenantId\":\"\xff\xfe"), 1)
	}
	dupKey := func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"tenantId":"`), []byte(`"tenantId":"tenant-002","tenantId":"`), 1)
	}
	for len(out) < 46 {
		out = append(out, poison{name: "tenantId invalid UTF-8", raw: badUTF8}, poison{name: "tenantId duplicate key", raw: dupKey})
	}
	for len(out) < 50 {
		out = append(out, poison{name: "colliding eventId", collide: true})
	}
	return out
}

// TestPoisonedEvents: 50 poisoned events are mixed into 50,000 valid ones, half through the gateway
// and half written by a raw Kafka client around it. The gateway refuses every poisoned one it gets
// (4xx, never a 5xx); the dispatcher dead-letters every poisoned record with its class, without
// delivering it; every valid event is delivered once and in order, none later than 10 s after
// the gateway accepted it, and no poison opens the dispatcher's circuit. Colliding client
// eventIds from another system are delivered as that system's events, and the event whose
// eventId they reuse is still delivered (dedup is per publishing system).
func TestPoisonedEvents(t *testing.T) {
	faults.Require(t)
	s := newStack(t, config{scenario: "7 poisoned events", title: "50 poisoned events among 50,000, through the gateway and around it",
		seed: 7, brokers: rig(t)})
	s.target.CheckSource(func(topic string) string {
		tp, _ := s.cat.Topic(topic)
		return tp.Owner
	})
	r := s.startDispatcher()
	serde, err := streams.NewSerde(s.reg, s.set, s.cat)
	if err != nil {
		t.Fatal(err)
	}
	raw := streamstest.Backend{Brokers: s.cfg.brokers}.Client(t)
	in := s.ingest(events, rate)

	type sent struct {
		p      poison
		at     time.Time
		status int    // gateway: the answer's status
		where  string // kafka: "<topic>/<partition>@<offset>"
		id     string
	}
	var out []sent
	ps := poisons()
	for i, p := range ps {
		s.waitAcked(in, (i+1)*events/(len(ps)+10))
		// The seed JSON of a hotel-saas event (hotel-common subscribes to it) with a fresh eventId.
		env := s.seedEvent(t, "service.ordered")
		meta := env["metadata"].(map[string]any)
		sn := sent{p: p, at: time.Now(), id: env["eventId"].(string)}
		if p.collide {
			// The most recent acknowledged event of another system than hotel-saas.
			s.mu.Lock()
			for j := len(s.acked) - 1; j >= 0; j-- {
				if id := s.acked[j]; s.system[id] != "hotel-saas" {
					env["eventId"], sn.id = id, id
					break
				}
			}
			s.mu.Unlock()
		}
		if p.edit != nil {
			p.edit(env, meta)
		}
		body, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if p.raw != nil {
			body = p.raw(body)
		}
		if !p.kafka {
			sn.status = s.postRaw(t, "hotel-saas", body)
		} else {
			sn.where = produceAround(t, raw, serde, env)
		}
		out = append(out, sn)
	}
	around := 0
	for _, p := range ps {
		if p.kafka {
			around++
		}
	}
	s.note("poisoned events sent: %d through the gateway, %d around it", len(ps)-around, around)

	rep := s.finish(in, drain)
	s.expectClean(rep)
	if r.proc.Exited() && !strings.Contains(r.proc.Log(), "dispatch stopped") {
		t.Errorf("the dispatcher died:\n%s", r.proc.Tail(20))
	}
	if strings.Contains(r.proc.Log(), "target down; circuit open") {
		t.Errorf("a poisoned event opened the dispatcher's circuit:\n%s", r.proc.Tail(20))
	}

	// The dead letters of the receiver, by origin.
	dead := s.deadLetters(t)
	collided := s.target.Collisions()
	byClass := map[string]int{}
	for _, sn := range out {
		switch {
		case sn.p.collide:
			if sn.status != http.StatusAccepted {
				t.Errorf("colliding eventId %s: gateway answered %d, want 202 (a valid event of hotel-saas)", sn.id, sn.status)
			}
			if !slices.Contains(collided, sn.id) {
				t.Errorf("colliding eventId %s: hotel-saas's event was not delivered", sn.id)
			}
			byClass["collision delivered"]++
		case !sn.p.kafka:
			if sn.status < 400 || sn.status >= 500 {
				t.Errorf("%s through the gateway: answered %d, want a 4xx refusal", sn.p.name, sn.status)
			}
			byClass["gateway "+strconv.Itoa(sn.status)]++
		default:
			class, ok := dead[sn.where]
			if !ok {
				t.Errorf("%s written at %s: not dead-lettered", sn.p.name, sn.where)
				continue
			}
			if class != streams.ClassInvalidIdentifier {
				t.Errorf("%s written at %s: dead-lettered as %q, want %q", sn.p.name, sn.where, class, streams.ClassInvalidIdentifier)
			}
			byClass["dead-lettered "+class]++
		}
	}
	s.note("poisoned events: %s", formatCounts(byClass))

	// No valid event waited more than 10 s for its delivery once poisons were flowing.
	first := out[0].at
	var worst time.Duration
	var worstID string
	s.mu.Lock()
	acked := slices.Clone(s.acked)
	s.mu.Unlock()
	for _, id := range acked {
		s.mu.Lock()
		at := s.ackedAt[id]
		s.mu.Unlock()
		ds := s.target.Deliveries(id)
		if at.Before(first) || len(ds) == 0 {
			continue
		}
		if d := ds[0].At.Sub(at); d > worst {
			worst, worstID = d, id
		}
	}
	s.note("slowest delivery of a valid event after the first poison: %s (%s)", worst.Round(time.Millisecond), worstID)
	if worst > 10*time.Second {
		t.Errorf("valid event %s was delivered %s after the gateway accepted it: a poison stalled delivery", worstID, worst)
	}
}

// seedEvent returns the seed JSON envelope of eventType's golden example, for a generated tenant,
// with a fresh eventId.
func (s *stack) seedEvent(t *testing.T, eventType string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(streamstest.ModuleRoot(t), "schemas", "events", eventType, "v1", "example.json"))
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	env["eventId"] = uuid.NewString()
	meta := env["metadata"].(map[string]any)
	meta["tenantId"] = s.gen.Tenants()[0]
	meta["source"] = "hotel-saas"
	return env
}

// postRaw posts one JSON envelope to the gateway as system and returns the answer's status.
func (s *stack) postRaw(t *testing.T, system string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.gwURL+gateway.RouteEvents, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.tokens[system])
	res, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Errorf("posting a poisoned event: %v", err)
		return 0
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// produceAround writes the event of envJSON, with its poisoned identifier, as a hotel-saas record
// the way a client other than hotelbus could: the SDK builds a valid record with marker values,
// then the marker of every poisoned identifier is replaced in the Avro value (a string is its
// zigzag length and its bytes), the key and the headers. It returns where the record landed.
func produceAround(t *testing.T, cl *kgo.Client, serde *streams.Serde, envJSON map[string]any) string {
	t.Helper()
	meta := envJSON["metadata"].(map[string]any)
	marker := strings.ReplaceAll(uuid.NewString(), "-", "")
	clean := maps.Clone(envJSON)
	cleanMeta := maps.Clone(meta)
	cleanMeta["tenantId"], cleanMeta["correlationId"], cleanMeta["userId"] = "t"+marker[:12], "c"+marker[:12], "u"+marker[:12]
	cleanMeta["traceId"] = marker
	clean["metadata"], clean["eventId"] = cleanMeta, uuid.NewString()
	b, _ := json.Marshal(clean)
	env, err := serde.ParseJSON(b)
	if err != nil {
		t.Fatalf("parsing the clean copy: %v", err)
	}
	env.Metadata.Source, env.Metadata.TraceID = "hotel-saas", marker
	rec, err := serde.Record(context.Background(), env)
	if err != nil {
		t.Fatalf("encoding the clean copy: %v", err)
	}
	str := func(v any) string { s, _ := v.(string); return s }
	swap := func(clean, poisoned string, headers ...string) {
		if poisoned == "" || clean == poisoned {
			return // not poisoned: the marker stays
		}
		rec.Value = bytes.Replace(rec.Value, avroString(clean), avroString(poisoned), 1)
		for _, h := range headers {
			for i := range rec.Headers {
				if rec.Headers[i].Key == h {
					rec.Headers[i].Value = bytes.ReplaceAll(rec.Headers[i].Value, []byte(clean), []byte(poisoned))
				}
			}
		}
	}
	swap(env.EventID, str(envJSON["eventId"]), streams.HeaderEventID)
	swap(env.Metadata.CorrelationID, str(meta["correlationId"]), streams.HeaderCorrelationID)
	swap(env.Metadata.UserID, str(meta["userId"]))
	swap(env.Metadata.TraceID, str(meta["traceId"]), streams.HeaderTraceparent)
	if v := str(meta["tenantId"]); v != env.Metadata.TenantID {
		rec.Value = bytes.Replace(rec.Value, avroString(env.Metadata.TenantID), avroString(v), 1)
		rec.Key = []byte(v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := cl.ProduceSync(ctx, rec)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("producing a poisoned record: %v", err)
	}
	r := res[0].Record
	return fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset)
}

// avroString is the Avro binary encoding of s: its length as a zigzag varint, then its bytes.
func avroString(s string) []byte {
	return append(binary.AppendVarint(nil, int64(len(s))), s...)
}

// deadLetters reads the receiver's dead-letter topic: origin ("<topic>/<partition>@<offset>") ->
// error class.
func (s *stack) deadLetters(t *testing.T) map[string]string {
	t.Helper()
	sys, _ := s.cat.System(receiver)
	out := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(streamstest.Backend{Brokers: s.cfg.brokers}.Client(t)).ListEndOffsets(ctx, sys.DeadLetterTopic)
	if err != nil {
		t.Fatalf("dead-letter end offsets: %v", err)
	}
	ranges := map[int32]streams.OffsetRange{}
	ends.Each(func(o kadm.ListedOffset) { ranges[o.Partition] = streams.OffsetRange{End: o.Offset} })
	err = streams.ReadRanges(ctx, []kgo.Opt{kgo.SeedBrokers(s.cfg.brokers...)}, sys.DeadLetterTopic, ranges, func(r *kgo.Record) error {
		origin := fmt.Sprintf("%s/%s@%s", streams.Header(r, streams.HeaderDLQTopic), streams.Header(r, streams.HeaderDLQPartition),
			streams.Header(r, streams.HeaderDLQOffset))
		out[origin] = streams.Header(r, streams.HeaderDLQErrorClass)
		return nil
	})
	if err != nil {
		t.Fatalf("reading the dead letters: %v", err)
	}
	return out
}

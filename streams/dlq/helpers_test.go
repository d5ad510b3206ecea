package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/dlq"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

const system = "hotel-member"

// spec is one dead letter a fixture writes: an event of eventType for tenant that failed with
// class, dead-lettered at the given time.
type spec struct {
	eventType, tenant, class string
	at                       time.Time
	// staleRedrive adds hotelbus.redrive.* headers of an earlier redrive to the dead letter.
	staleRedrive bool
}

// letter is a dead letter the fixture wrote.
type letter struct {
	spec
	eventID string
	ref     dlq.Ref
	rec     *kgo.Record // as written to the dead-letter topic
}

type fixture struct {
	b      streamstest.Backend
	cat    *topics.Catalog
	sys    topics.System
	serde  *streams.Serde
	cl     *kgo.Client
	t0     time.Time
	dead   []letter
	dlqCfg dlq.Config
}

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newFixture creates the system's dead-letter and redrive topics, unique to the test, on b.
func newFixture(t testing.TB, b streamstest.Backend) *fixture {
	t.Helper()
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	cat := streamstest.Catalog(t, b)
	sys, _ := cat.System(system)
	src, _ := streamstest.Registry(t)
	serde, err := streams.NewSerde(src, set, cat, streams.AutoRegister(true))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{b: b, cat: cat, sys: sys, serde: serde, cl: b.Client(t),
		t0:     time.Now().UTC().Truncate(time.Hour).Add(-6 * time.Hour),
		dlqCfg: dlq.Config{Brokers: b.Brokers, Serde: serde}}
	return f
}

// open returns a DLQ over the fixture's system, closed when the test ends.
func (f *fixture) open(t testing.TB, cfg dlq.Config) *dlq.DLQ {
	t.Helper()
	q, err := dlq.New(f.cat, system, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q
}

// event returns the golden example of eventType with a new eventId, for tenant.
func (f *fixture) event(t testing.TB, eventType, tenant string) *streams.Envelope {
	t.Helper()
	v, ok := f.serde.Schemas().Latest(eventType)
	if !ok {
		t.Fatalf("no schema for %s", eventType)
	}
	env, err := f.serde.ParseJSON(v.Example)
	if err != nil {
		t.Fatal(err)
	}
	env.EventID = uuid.NewString()
	env.Metadata.TenantID = tenant
	return env
}

// deadLetter writes the specs' dead letters: each event is failed through the streams dead-letter
// middleware (with the retry middleware for retries-exhausted; undecodable bytes for decode) into
// a staging topic, then copied to the system's dead-letter topic with the spec's timestamp, in
// spec order.
func (f *fixture) deadLetter(t testing.TB, specs ...spec) {
	t.Helper()
	ctx := testCtx(t)
	staging := streamstest.Name(t, "staging")
	adm := kadm.NewClient(f.cl)
	if resp, err := adm.CreateTopic(ctx, 1, -1, nil, staging); err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", staging, err, resp.Err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), staging) })
	dl, err := streams.NewDeadLetters(streamstest.Writer(t, f.b, f.cat, f.sys.Name), staging, streams.DeadLetterLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	retry := streams.Retry(streams.RetryMaxAttempts(2), streams.RetryBackoff(time.Millisecond, time.Millisecond))
	ids := make([]string, len(specs))
	for i, s := range specs {
		env := f.event(t, s.eventType, s.tenant)
		rec, err := f.serde.Record(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		rec.Partition, rec.Offset, rec.Timestamp = int32(i%3), int64(100+i), s.at.Add(-time.Minute)
		m := &streams.Message{Envelope: env, Record: rec, Group: f.sys.Group}
		var h streams.Handler
		switch s.class {
		case streams.ClassPermanent:
			h = func(context.Context, *streams.Message) error {
				return streams.Permanent(errors.New("member not found"))
			}
		case streams.ClassInvalidEvent:
			h = func(context.Context, *streams.Message) error {
				return &streams.InvalidEventError{Fields: []streams.FieldError{{Path: "data.guest", Message: "missing"}}}
			}
		case streams.ClassRetriesExhausted:
			h = retry(func(context.Context, *streams.Message) error { return errors.New("crm timeout") })
		case streams.ClassDecode:
			m.Envelope, m.DecodeErr = nil, fmt.Errorf("%w: unknown schema id 999", streams.ErrMalformedRecord)
			rec.Value = []byte{0, 0, 0, 3, 231, 0xde, 0xad}
			h = func(context.Context, *streams.Message) error {
				t.Error("handler called for an undecodable record")
				return nil
			}
		default:
			t.Fatalf("no handler for class %s", s.class)
		}
		if s.staleRedrive {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: streams.HeaderRedriveID, Value: []byte("stale-id")},
				kgo.RecordHeader{Key: streams.HeaderRedriveSource, Value: []byte("elsewhere/0@0")})
		}
		if err := dl.Middleware()(h)(ctx, m); err != nil {
			t.Fatal(err)
		}
		ids[i] = env.EventID
	}
	staged := consumeAll(t, f.b.Brokers, staging, len(specs))
	for i, s := range specs {
		r := staged[i]
		out := &kgo.Record{Topic: f.sys.DeadLetterTopic, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: s.at}
		if err := f.cl.ProduceSync(ctx, out).FirstErr(); err != nil {
			t.Fatal(err)
		}
		f.dead = append(f.dead, letter{spec: s, eventID: ids[i], ref: dlq.Ref{Topic: out.Topic, Partition: out.Partition, Offset: out.Offset}, rec: out})
	}
}

// consumeAll reads topic from the start until its high-water marks and checks that it holds n
// records.
func consumeAll(t testing.TB, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t)
	adm := kadm.NewClient(streamstest.Backend{Brokers: brokers}.Client(t))
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	ends.Each(func(o kadm.ListedOffset) { total += int(o.Offset) })
	if total != n {
		t.Fatalf("%s holds %d records, want %d", topic, total, n)
	}
	if n == 0 {
		return nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []*kgo.Record
	for len(out) < n {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(out), n, topic)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

package streams_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// dlqTopic creates a one-partition dead-letter topic unique to the test on b.
func dlqTopic(t *testing.T, b streamstest.Backend) string {
	t.Helper()
	adm := kadm.NewClient(b.Client(t))
	name := streamstest.Name(t, "dlq")
	ctx := testCtx(t)
	resp, err := adm.CreateTopic(ctx, 1, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, name)
	})
	return name
}

// dlqFixture builds consumed messages from golden events encoded as hotelbus writes them.
type dlqFixture struct {
	t      *testing.T
	serde  *streams.Serde
	cat    *topics.Catalog
	offset int64
}

func newDLQFixture(t *testing.T) *dlqFixture {
	t.Helper()
	set, cat := loadAll(t)
	serde, _ := newSerde(t, set, cat)
	return &dlqFixture{t: t, serde: serde, cat: cat, offset: 1000}
}

// message returns the golden eventType encoded as a record of partition 2 at the next offset,
// with tenantId (the key) set to tenant.
func (f *dlqFixture) message(eventType, tenant string) *streams.Message {
	f.t.Helper()
	v, _ := f.serde.Schemas().Latest(eventType)
	env, err := f.serde.ParseJSON(v.Example)
	if err != nil {
		f.t.Fatal(err)
	}
	env.Metadata.TenantID = tenant
	rec, err := f.serde.Record(context.Background(), env)
	if err != nil {
		f.t.Fatal(err)
	}
	f.offset++
	rec.Partition, rec.Offset = 2, f.offset
	rec.Timestamp = time.Date(2026, 11, 27, 9, 15, 0, 123_456_789, time.FixedZone("JST", 9*3600))
	return &streams.Message{Envelope: env, Record: rec, Group: "hotelbus.test.hotel-member"}
}

// quietDLQ keeps the dead-letter warnings out of the test output.
var quietDLQ = streams.DeadLetterLogger(slog.New(slog.DiscardHandler))

var millisRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// checkDeadLetter checks that out is orig's record dead-lettered: key, value and original headers
// unchanged, every hotelbus.dlq header present once with the expected values.
func checkDeadLetter(t *testing.T, out *kgo.Record, orig *streams.Message, class, msgPart string, attempts int, since time.Time) {
	t.Helper()
	in := orig.Record
	if !bytes.Equal(out.Key, in.Key) || !bytes.Equal(out.Value, in.Value) {
		t.Errorf("offset %d: key/value changed: %q/%x, want %q/%x", in.Offset, out.Key, out.Value, in.Key, in.Value)
	}
	var kept []kgo.RecordHeader
	for _, h := range in.Headers {
		if !strings.HasPrefix(h.Key, "hotelbus.dlq.") {
			kept = append(kept, h)
		}
	}
	if len(out.Headers) != len(kept)+10 {
		t.Fatalf("offset %d: %d headers, want the %d original ones + 10", in.Offset, len(out.Headers), len(kept))
	}
	for i, h := range kept {
		if out.Headers[i].Key != h.Key || !bytes.Equal(out.Headers[i].Value, h.Value) {
			t.Errorf("offset %d: header %d = %s=%q, want the original %s=%q", in.Offset, i, out.Headers[i].Key, out.Headers[i].Value, h.Key, h.Value)
		}
	}
	got := map[string]string{}
	for _, h := range out.Headers[len(kept):] {
		if _, dup := got[h.Key]; dup {
			t.Errorf("offset %d: header %s twice", in.Offset, h.Key)
		}
		got[h.Key] = string(h.Value)
	}
	want := map[string]string{
		streams.HeaderDLQTopic:      in.Topic,
		streams.HeaderDLQPartition:  "2",
		streams.HeaderDLQOffset:     strconv.FormatInt(in.Offset, 10),
		streams.HeaderDLQTimestamp:  "2026-11-27T00:15:00.123Z",
		streams.HeaderDLQGroup:      orig.Group,
		streams.HeaderDLQErrorClass: class,
		streams.HeaderDLQAttempts:   strconv.Itoa(attempts),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("offset %d: %s = %q, want %q", in.Offset, k, got[k], v)
		}
	}
	if m := got[streams.HeaderDLQErrorMessage]; !strings.Contains(m, msgPart) {
		t.Errorf("offset %d: error message %q does not contain %q", in.Offset, m, msgPart)
	}
	var first, last time.Time
	for k, p := range map[string]*time.Time{streams.HeaderDLQFirstFailure: &first, streams.HeaderDLQLastFailure: &last} {
		v := got[k]
		ts, err := time.Parse(time.RFC3339Nano, v)
		if !millisRE.MatchString(v) || err != nil {
			t.Errorf("offset %d: %s = %q, want RFC 3339 UTC millis", in.Offset, k, v)
		}
		*p = ts
	}
	if first.Before(since.Truncate(time.Millisecond)) || last.Before(first) || last.After(time.Now()) {
		t.Errorf("offset %d: failures %v .. %v, want within the test run from %v", in.Offset, first, last, since)
	}
}

// TestDeadLetter: failed and undecodable messages are written to the dead-letter topic with their
// key, value and headers unchanged plus every hotelbus.dlq header, and then reported handled (nil);
// successes, shutdowns and a failing dead-letter write are not.
func TestDeadLetter(t *testing.T) {
	f := newDLQFixture(t)
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := testCtx(t)
			dlq := dlqTopic(t, b)
			dl, err := streams.NewDeadLetters(streamstest.Writer(t, b, f.cat, "hotel-member"), dlq, quietDLQ)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			chain := func(h streams.Handler) streams.Handler {
				return dl.Middleware()(streams.Retry(streams.RetryMaxAttempts(3), streams.RetryBackoff(time.Millisecond, 2*time.Millisecond))(h))
			}
			type scenario struct {
				m        *streams.Message
				handler  func() error
				class    string
				msgPart  string
				attempts int
			}
			decodeErr := fmt.Errorf("%w: unknown schema id 999", streams.ErrMalformedRecord)
			poison := f.message("customer.created", "tenant-poison")
			poison.Envelope, poison.DecodeErr = nil, decodeErr
			poison.Record.Value = []byte{0, 0, 0, 3, 231, 0xde, 0xad}
			// A record dead-lettered before and redriven: its old dlq headers are replaced.
			poison.Record.Headers = append(poison.Record.Headers, kgo.RecordHeader{Key: streams.HeaderDLQErrorClass, Value: []byte("stale")})
			// Decoding failed transiently (registry unreachable): the inner chain decodes again and
			// keeps failing; the record ends as a decode dead letter after the retries.
			undecoded := f.message("points.added", "tenant-f")
			undecoded.Envelope, undecoded.DecodeErr = nil, fmt.Errorf("%w: connection refused", streams.ErrRegistry)
			redecodes := 0
			scenarios := []scenario{
				{m: f.message("points.used", "tenant-a"), handler: func() error { return errors.New("pms timeout") },
					class: streams.ClassRetriesExhausted, msgPart: "pms timeout", attempts: 3},
				{m: f.message("member.registered", "tenant-b"), handler: func() error { return streams.Permanent(errors.New("member already merged")) },
					class: streams.ClassPermanent, msgPart: "member already merged", attempts: 1},
				{m: f.message("customer.updated", "tenant-c"), handler: func() error {
					return &streams.InvalidEventError{Fields: []streams.FieldError{{Path: "data.email", Message: "not an e-mail"}}}
				}, class: streams.ClassInvalidEvent, msgPart: "data.email: not an e-mail", attempts: 1},
				{m: poison, handler: func() error { t.Error("handler called for an undecodable record"); return nil },
					class: streams.ClassDecode, msgPart: "unknown schema id 999", attempts: 0},
				{m: undecoded, handler: func() error { redecodes++; return undecoded.DecodeErr },
					class: streams.ClassDecode, msgPart: "connection refused", attempts: 3},
			}
			for _, s := range scenarios {
				if err := chain(func(context.Context, *streams.Message) error { return s.handler() })(ctx, s.m); err != nil {
					t.Fatalf("offset %d: %v, want nil (dead-lettered)", s.m.Record.Offset, err)
				}
			}

			if redecodes != 3 {
				t.Fatalf("a transiently undecodable record reached the inner chain %d times, want 3", redecodes)
			}
			// A success is not dead-lettered.
			calls := 0
			if err := chain(func(context.Context, *streams.Message) error { calls++; return nil })(ctx, f.message("points.added", "tenant-d")); err != nil || calls != 1 {
				t.Fatalf("success: %v, %d calls", err, calls)
			}
			// Shutdown: the handler's context ends; the error is returned, nothing dead-lettered.
			cctx, cancel := context.WithCancel(ctx)
			err = chain(func(ctx context.Context, _ *streams.Message) error { cancel(); return ctx.Err() })(cctx, f.message("points.added", "tenant-e"))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("canceled handler: %v, want context.Canceled", err)
			}

			out := consume(t, b, len(scenarios), dlq)
			for i, s := range scenarios {
				checkDeadLetter(t, out[i], s.m, s.class, s.msgPart, s.attempts, start)
			}
			want := fmt.Sprint(map[string]int64{streams.ClassRetriesExhausted: 1, streams.ClassPermanent: 1, streams.ClassInvalidEvent: 1, streams.ClassDecode: 2})
			if got := fmt.Sprint(dl.DeadLettered()); got != want {
				t.Fatalf("DeadLettered() = %s, want %s", got, want)
			}
		})
	}
}

// TestDeadLetterWriteFails: when the dead-letter topic cannot be written, the middleware returns
// the error so that the record is not committed.
func TestDeadLetterWriteFails(t *testing.T) {
	f := newDLQFixture(t)
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			w := streamstest.Writer(t, b, f.cat, "hotel-member", streams.KafkaOptions(kgo.UnknownTopicRetries(1)))
			dl, err := streams.NewDeadLetters(w, streamstest.Name(t, "missing-dlq"), quietDLQ)
			if err != nil {
				t.Fatal(err)
			}
			m := f.message("billing.created", "tenant-a")
			m.Envelope, m.DecodeErr = nil, fmt.Errorf("%w: bad magic byte", streams.ErrMalformedRecord)
			err = dl.Middleware()(func(context.Context, *streams.Message) error { return nil })(testCtx(t), m)
			if err == nil || !strings.HasPrefix(err.Error(), "streams: dead letter") {
				t.Fatalf("write to a missing topic: %v, want a streams: dead letter error", err)
			}
			if len(dl.DeadLettered()) != 0 {
				t.Fatalf("DeadLettered() = %v after a failed write", dl.DeadLettered())
			}
		})
	}
}

// TestDeadLetterParkKey: by default the records after a dead-lettered one with the same key are
// handled; with ParkKey they are dead-lettered as "parked" without calling the handler, in that
// partition only, until Unpark.
func TestDeadLetterParkKey(t *testing.T) {
	f := newDLQFixture(t)
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := testCtx(t)
			fail := errors.New("reservation unknown")
			var handled []int64
			handler := func(_ context.Context, m *streams.Message) error {
				if string(m.Record.Key) == "tenant-a" && len(handled) == 0 {
					handled = append(handled, -m.Record.Offset)
					return streams.Permanent(fail)
				}
				handled = append(handled, m.Record.Offset)
				return nil
			}

			// Default: continue.
			dlq := dlqTopic(t, b)
			dl, err := streams.NewDeadLetters(streamstest.Writer(t, b, f.cat, "hotel-member"), dlq, quietDLQ)
			if err != nil {
				t.Fatal(err)
			}
			h := dl.Middleware()(handler)
			first, second := f.message("reservation.created", "tenant-a"), f.message("reservation.updated", "tenant-a")
			for _, m := range []*streams.Message{first, second} {
				if err := h(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if fmt.Sprint(handled) != fmt.Sprint([]int64{-first.Record.Offset, second.Record.Offset}) {
				t.Fatalf("default policy handled %v, want the record after the dead-lettered one handled", handled)
			}

			// ParkKey.
			handled = nil
			dlq = dlqTopic(t, b)
			dl, err = streams.NewDeadLetters(streamstest.Writer(t, b, f.cat, "hotel-member"), dlq, quietDLQ, streams.ParkKey(true))
			if err != nil {
				t.Fatal(err)
			}
			h = dl.Middleware()(handler)
			a1, a2, bKey, a3 := f.message("reservation.created", "tenant-a"), f.message("reservation.updated", "tenant-a"),
				f.message("reservation.created", "tenant-b"), f.message("reservation.canceled", "tenant-a")
			otherPartition := f.message("reservation.updated", "tenant-a")
			otherPartition.Record.Partition = 5
			for _, m := range []*streams.Message{a1, a2, bKey, otherPartition, a3} {
				if err := h(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if !dl.Unpark("tenant-a") || dl.Unpark("tenant-a") {
				t.Fatal("Unpark: want true for the parked key, then false")
			}
			a4 := f.message("reservation.updated", "tenant-a")
			if err := h(ctx, a4); err != nil {
				t.Fatal(err)
			}
			want := []int64{-a1.Record.Offset, bKey.Record.Offset, otherPartition.Record.Offset, a4.Record.Offset}
			if fmt.Sprint(handled) != fmt.Sprint(want) {
				t.Fatalf("handled %v, want %v (a2 and a3 parked)", handled, want)
			}
			out := consume(t, b, 3, dlq)
			checkDeadLetter(t, out[0], a1, streams.ClassPermanent, "reservation unknown", 1, time.Time{})
			checkDeadLetter(t, out[1], a2, streams.ClassParked, fmt.Sprintf("@%d (permanent)", a1.Record.Offset), 0, time.Time{})
			checkDeadLetter(t, out[2], a3, streams.ClassParked, fmt.Sprintf("@%d (permanent)", a1.Record.Offset), 0, time.Time{})
			if got := fmt.Sprint(dl.DeadLettered()); got != fmt.Sprint(map[string]int64{streams.ClassPermanent: 1, streams.ClassParked: 2}) {
				t.Fatalf("DeadLettered() = %s", got)
			}
		})
	}
}

// TestDeadLetterConfig: a missing writer or topic, or a nil logger, is refused with ErrConfig.
func TestDeadLetterConfig(t *testing.T) {
	_, cat := loadAll(t)
	w := streamstest.Writer(t, streamstest.Kfake(t), cat, "hotel-member")
	for name, err := range map[string]error{
		"no writer": func() error { _, err := streams.NewDeadLetters(nil, "dlq"); return err }(),
		"no topic":  func() error { _, err := streams.NewDeadLetters(w, ""); return err }(),
		"nil log":   func() error { _, err := streams.NewDeadLetters(w, "dlq", streams.DeadLetterLogger(nil)); return err }(),
	} {
		if !errors.Is(err, streams.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

// TestDeadLetterChain: the documented chain Dedup, DeadLetter, Retry: a dead-lettered event is
// done (its redelivery is skipped, not dead-lettered twice), and an event whose dead-letter write
// fails keeps neither lease nor done mark, so that it is handled again.
func TestDeadLetterChain(t *testing.T) {
	f := newDLQFixture(t)
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := testCtx(t)
			rdb, _ := countedRedis(t, "redis://"+miniredis.RunT(t).Addr())
			group := streamstest.Name(t, "g")
			d := newDedup(t, rdb, group)
			dlq := dlqTopic(t, b)
			dl, err := streams.NewDeadLetters(streamstest.Writer(t, b, f.cat, "hotel-member"), dlq, quietDLQ)
			if err != nil {
				t.Fatal(err)
			}
			missing, err := streams.NewDeadLetters(streamstest.Writer(t, b, f.cat, "hotel-member", streams.KafkaOptions(kgo.UnknownTopicRetries(1))), streamstest.Name(t, "missing"), quietDLQ)
			if err != nil {
				t.Fatal(err)
			}
			calls := 0
			handler := func(context.Context, *streams.Message) error { calls++; return errors.New("always failing") }
			retry := streams.Retry(streams.RetryMaxAttempts(2), streams.RetryBackoff(time.Millisecond, time.Millisecond))
			chain := d.Middleware()(dl.Middleware()(retry(handler)))
			broken := d.Middleware()(missing.Middleware()(retry(handler)))

			m := f.message("points.used", "tenant-a")
			copyOf := func(m *streams.Message) *streams.Message {
				c := *m.Record
				return &streams.Message{Envelope: m.Envelope, Record: &c, Group: m.Group}
			}
			// The dead-letter write fails: the error comes back and the event is free again.
			m1 := copyOf(m)
			if err := d.Prepare(ctx, []*streams.Message{m1}); err != nil {
				t.Fatal(err)
			}
			if err := broken(ctx, m1); err == nil {
				t.Fatal("a failed dead-letter write was reported as handled")
			}
			if rdb.Exists(ctx, d.Key(m.Envelope.Metadata.Source, m.Envelope.EventID)).Val() != 0 {
				t.Fatal("the event kept its dedup key after a failed dead-letter write")
			}
			// Delivered again: handled (2 attempts), dead-lettered, done.
			m2 := copyOf(m)
			if err := d.Prepare(ctx, []*streams.Message{m2}); err != nil {
				t.Fatal(err)
			}
			if err := chain(ctx, m2); err != nil {
				t.Fatal(err)
			}
			if calls != 4 || !isDone(t, d, m.Envelope.Metadata.Source, m.Envelope.EventID) {
				t.Fatalf("%d handler calls, key %q; want 4 and done", calls, rdb.Get(ctx, d.Key(m.Envelope.Metadata.Source, m.Envelope.EventID)).Val())
			}
			// Delivered once more: skipped.
			m3 := copyOf(m)
			if err := d.Prepare(ctx, []*streams.Message{m3}); err != nil {
				t.Fatal(err)
			}
			if err := chain(ctx, m3); err != nil || calls != 4 || d.Hits() != 1 {
				t.Fatalf("redelivery of a dead-lettered event: err=%v calls=%d hits=%d", err, calls, d.Hits())
			}
			out := consume(t, b, 1, dlq)
			checkDeadLetter(t, out[0], m2, streams.ClassRetriesExhausted, "always failing", 2, time.Time{})
		})
	}
}

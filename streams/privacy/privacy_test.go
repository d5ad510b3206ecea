package privacy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/events"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// rig is one test's stack: a catalog on a broker, a registry, a key file, the Keys, a protected
// Serde and a plain one (what a reader without keys, or a standard Avro reader, sees).
type rig struct {
	b       streamstest.Backend
	cat     *topics.Catalog
	set     *schemas.Set
	keyFile string
	keys    *privacy.Keys
	prot    *privacy.Protector
	serde   *streams.Serde
	plain   *streams.Serde
	subj    *privacy.Subjects
	reg     func(...streams.SerdeOption) *streams.Serde
}

func newRig(t testing.TB, b streamstest.Backend) *rig {
	t.Helper()
	cat := streamstest.Catalog(t, b)
	reg, _ := streamstest.Registry(t)
	set := streamstest.RegisterSchemas(t, reg, cat)
	subj, err := privacy.LoadSubjects(topics.Embedded(), cat, set)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{b: b, cat: cat, set: set, subj: subj, keyFile: filepath.Join(t.TempDir(), privacy.KeyFileName)}
	if _, err := privacy.GenerateKeyFile(r.keyFile); err != nil {
		t.Fatal(err)
	}
	r.reg = func(opts ...streams.SerdeOption) *streams.Serde {
		s, err := streams.NewSerde(reg, set, cat, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	r.keys = r.newKeys(t, nil)
	r.prot = privacy.NewProtector(subj, r.keys)
	r.serde = r.reg(streams.WithFieldProtector(r.prot))
	r.plain = r.reg()
	return r
}

// newKeys opens the key file (kms wraps it when not nil) and starts a Keys, as a new process would.
func (r *rig) newKeys(t testing.TB, kms func(privacy.KMS) privacy.KMS, opts ...privacy.KeysOption) *privacy.Keys {
	t.Helper()
	kf, err := privacy.OpenKeyFile(r.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var k privacy.KMS = kf
	if kms != nil {
		k = kms(kf)
	}
	w, err := streams.NewWriter("hotel-common", r.cat, streams.Brokers(r.b.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	keys, err := privacy.NewKeys(w, k, r.cat.KeyTopic, []kgo.Opt{kgo.SeedBrokers(r.b.Brokers...)}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	return keys
}

// protected returns a Serde opening with a fresh Keys (a restarted reader).
func (r *rig) protected(t testing.TB, kms func(privacy.KMS) privacy.KMS) *streams.Serde {
	return r.reg(streams.WithFieldProtector(privacy.NewProtector(r.subj, r.newKeys(t, kms))))
}

func (r *rig) producer(t testing.TB, system string, serde *streams.Serde) *streams.Producer {
	t.Helper()
	p, err := streams.NewProducer(system, serde, streams.Brokers(r.b.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// example returns a fresh envelope of eventType from its newest version's golden example.
func (r *rig) example(t testing.TB, eventType string) *streams.Envelope {
	t.Helper()
	v, _ := r.set.Latest(eventType)
	return r.exampleOf(t, v)
}

// exampleOf returns a fresh envelope from v's golden example.
func (r *rig) exampleOf(t testing.TB, v *schemas.Version) *streams.Envelope {
	t.Helper()
	env, err := r.plain.ParseJSON(v.Example)
	if err != nil {
		t.Fatal(err)
	}
	env.EventID, env.Timestamp = "", time.Time{}
	env.Metadata.Source, env.Metadata.CorrelationID, env.Metadata.TraceID = "", "", ""
	return env
}

// raw reads n records of the topics from their beginning.
func (r *rig) raw(t testing.TB, n int, topicNames ...string) []*kgo.Record {
	t.Helper()
	cl := r.b.Client(t, kgo.ConsumeTopics(topicNames...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func (r *rig) topic(eventType string) string { tp, _ := r.cat.TopicFor(eventType); return tp.Name }

// clearValues of the golden reservation.created and customer.created: none may be on Kafka.
var clearValues = []string{"kenta.sato@example.co.jp", "佐藤", "健太", "+819012345678", "渋谷区神宮前3-14-7", "150-0001",
	"禁煙室、高層階を希望します。到着は21時頃の予定です。"}

// TestSealedOnKafkaClearThroughTheSerde: a reservation published through a protected Serde has no
// clear pii value in its record's bytes; a plain Serde (a standard Avro reader) still parses it,
// with its pii strings sealed and its other fields clear; the protected Serde reads the original
// data back, and so does a restarted reader.
func TestSealedOnKafkaClearThroughTheSerde(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	ctx := context.Background()
	env := r.example(t, "reservation.created")
	want := r.example(t, "reservation.created").Data
	if _, err := r.producer(t, "hotel-pms", r.serde).Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(env.Data, want) {
		t.Fatal("Publish changed the caller's data")
	}
	rec := r.raw(t, 1, r.topic("reservation.created"))[0]
	for _, v := range clearValues {
		if bytes.Contains(rec.Value, []byte(v)) {
			t.Errorf("clear pii value %q in the record on Kafka", v)
		}
	}
	sealed, err := r.plain.Decode(ctx, rec.Value)
	if err != nil {
		t.Fatalf("a reader without keys cannot parse the record: %v", err)
	}
	g := sealed.Data["primaryGuest"].(map[string]any)
	if s, _ := g["email"].(string); !strings.HasPrefix(s, privacy.Prefix) {
		t.Errorf("email on Kafka %q, want sealed", s)
	}
	if g["customerId"] != "cus_01J9V3H6T2R8M4K7N5Q1W0XZ3A" || sealed.Data["reservationId"] != want["reservationId"] {
		t.Errorf("subject or non-pii field sealed: %v %v", g["customerId"], sealed.Data["reservationId"])
	}
	for _, s := range []*streams.Serde{r.serde, r.protected(t, nil)} {
		got, err := s.Decode(ctx, rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Data, want) {
			t.Errorf("opened data\n got %v\nwant %v", got.Data, want)
		}
	}
}

// TestBirthDateNullInV1SealedInV2: a customer.created dual-published in 1.0 (birth date an Avro
// date, which cannot hold a ciphertext) and 2.0 (a string) carries the birth date sealed in 2.0 and
// as null in 1.0, so no copy on Kafka holds it clear; the 1.0 title (an enum) stays clear, as the
// package doc decides; a protected reader reads the date back from 2.0.
func TestBirthDateNullInV1SealedInV2(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	ctx := context.Background()
	v1, _ := r.set.Version("customer.created", "1.0")
	v2, _ := r.set.Version("customer.created", "2.0")
	e1, e2 := r.exampleOf(t, v1), r.exampleOf(t, v2)
	if e1.Data["birthDate"] == nil || e2.Data["birthDate"] != "1991-04-12" {
		t.Fatalf("examples without a birth date: %v %v", e1.Data["birthDate"], e2.Data["birthDate"])
	}
	if _, err := r.producer(t, "hotel-member", r.serde).PublishDual(ctx, e1, e2); err != nil {
		t.Fatal(err)
	}
	for _, rec := range r.raw(t, 2, r.topic("customer.created")) {
		if bytes.Contains(rec.Value, []byte("1991-04-12")) {
			t.Error("clear birth date on Kafka")
		}
		plain, err := r.plain.Decode(ctx, rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		opened, err := r.protected(t, nil).Decode(ctx, rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		switch plain.Version {
		case "1.0":
			if plain.Data["birthDate"] != nil || opened.Data["birthDate"] != nil {
				t.Errorf("1.0 birth date on Kafka %v, opened %v; want null", plain.Data["birthDate"], opened.Data["birthDate"])
			}
			if plain.Data["title"] != "MS" || opened.Data["firstName"] != "美咲" {
				t.Errorf("1.0 title %v (want clear MS), firstName opened %v", plain.Data["title"], opened.Data["firstName"])
			}
		case "2.0":
			if s, _ := plain.Data["birthDate"].(string); !strings.HasPrefix(s, privacy.Prefix) {
				t.Errorf("2.0 birth date on Kafka %q, want sealed", s)
			}
			if opened.Data["birthDate"] != "1991-04-12" {
				t.Errorf("2.0 birth date opened %v", opened.Data["birthDate"])
			}
		default:
			t.Errorf("version %s", plain.Version)
		}
	}
}

// twoGuests publishes, sealed, a customer.created of the example's guest and one of another guest
// (cus_other), in that order, and returns them.
func (r *rig) twoGuests(t *testing.T, ctx context.Context) (a, other *streams.Envelope) {
	t.Helper()
	p := r.producer(t, "hotel-member", r.serde)
	a, other = r.example(t, "customer.created"), r.example(t, "customer.created")
	other.Data["customerId"] = "cus_other"
	for _, e := range []*streams.Envelope{a, other} {
		if _, err := p.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	return a, other
}

// TestForgetErasesEverywhere: after Forget, every reader (the one that forgot, one that was
// running, a restarted one) reads the subject's pii strings as Erased and its other fields clear,
// another subject stays intact, and Status shows the erasure without keys.
func TestForgetErasesEverywhere(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	ctx := context.Background()
	running := r.protected(t, nil)
	a, _ := r.twoGuests(t, ctx)
	recs := r.raw(t, 2, r.topic("customer.created"))
	subject, lastName := a.Data["customerId"].(string), a.Data["lastName"].(string)
	if got, err := running.Decode(ctx, recs[0].Value); err != nil || got.Data["lastName"] != lastName {
		t.Fatalf("before forget: %v %v", got, err)
	}
	n, err := r.keys.Forget(ctx, "sakura-hotels", subject, "test")
	if err != nil || n != 1 {
		t.Fatalf("forget: %d keys, %v", n, err)
	}
	readers := map[string]*streams.Serde{"forgetter": r.serde, "running": running, "restarted": r.protected(t, nil)}
	for name, s := range readers {
		streamstest.Eventually(t, 10*time.Second, name+" sees the erasure", func() bool {
			got, err := s.Decode(ctx, recs[0].Value)
			return err == nil && got.Data["lastName"] == privacy.Erased
		})
		got, _ := s.Decode(ctx, recs[0].Value)
		addr := got.Data["address"].(map[string]any)
		if got.Data["email"] != privacy.Erased || addr["lines"].([]any)[0] != privacy.Erased || got.Data["customerId"] != subject {
			t.Errorf("%s: erased customer %v", name, got.Data)
		}
		other, err := s.Decode(ctx, recs[1].Value)
		if err != nil || other.Data["lastName"] != lastName {
			t.Errorf("%s: the other subject: %v %v", name, other, err)
		}
	}
	m := metrics(t, r.prot)
	if m["hotelbus_privacy_erasures_total"] != 1 || m["hotelbus_privacy_keys_created_total"] != 2 || m["hotelbus_privacy_keys"] != 1 ||
		m["hotelbus_privacy_values_total{op=erased}"] == 0 || m["hotelbus_privacy_values_total{op=sealed}"] == 0 {
		t.Errorf("metrics after forget: %v", m)
	}
	st, err := r.keys.Status(ctx, "sakura-hotels", subject)
	if err != nil || len(st.Keys) != 0 || len(st.Erasures) != 1 || st.Erasures[0].By != "test" || st.Erasures[0].Keys != 1 {
		t.Errorf("status after forget: %+v %v", st, err)
	}
}

// TestTypedHandlerOpensTheEncoding: a typed handler (Handle) gets its event opened from the
// record's encoding: a forgotten guest's personal data reads Erased and another's clear, and a
// record whose sealed value was moved to another field is not handled (a malformed record).
func TestTypedHandlerOpensTheEncoding(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	ctx := context.Background()
	a, bb := r.twoGuests(t, ctx)
	sealed, err := r.plain.Decode(ctx, r.raw(t, 2, r.topic("customer.created"))[1].Value)
	if err != nil {
		t.Fatal(err)
	}
	sealed.EventID = uuid.NewString()
	sealed.Data["customerId"], sealed.Data["firstName"] = "cus_moved", sealed.Data["lastName"]
	moved, err := r.plain.Record(ctx, sealed) // written around the Producer, which refuses a sealed birth date
	if err != nil {
		t.Fatal(err)
	}
	if err := r.b.Client(t).ProduceSync(ctx, moved).FirstErr(); err != nil {
		t.Fatal(err)
	}
	subject, lastName := a.Data["customerId"].(string), a.Data["lastName"].(string)
	if _, err := r.keys.Forget(ctx, "sakura-hotels", subject, "test"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]string{}
	c, err := streams.NewConsumer("hotel-common", r.protected(t, nil), streams.Brokers(r.b.Brokers...),
		streams.Group(streamstest.Name(t, "g")), streams.CommitInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	streams.Handle(c, func(_ context.Context, _ *streams.Message, e *events.CustomerCreatedV2) error {
		mu.Lock()
		defer mu.Unlock()
		got[e.CustomerID] = e.LastName + "|" + e.FirstName + "|" + *e.BirthDate
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	streamstest.Eventually(t, time.Minute, "both guests handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	})
	time.Sleep(500 * time.Millisecond) // the moved value's record comes after them
	_ = c.Close(ctx)
	<-done
	mu.Lock()
	defer mu.Unlock()
	want := map[string]string{subject: privacy.Erased + "|" + privacy.Erased + "|" + privacy.Erased,
		"cus_other": lastName + "|" + bb.Data["firstName"].(string) + "|1991-04-12"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("typed handler saw %q, want %q", got, want)
	}
}

// TestTamperedValueIsMalformed: a sealed value moved to another field does not open, and the error
// is a malformed record (dead-lettered), never Erased and never retried.
func TestTamperedValueIsMalformed(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	ctx := context.Background()
	if _, err := r.producer(t, "hotel-member", r.serde).Publish(ctx, r.example(t, "customer.created")); err != nil {
		t.Fatal(err)
	}
	rec := r.raw(t, 1, r.topic("customer.created"))[0]
	sealed, err := r.plain.Decode(ctx, rec.Value)
	if err != nil {
		t.Fatal(err)
	}
	sealed.Data["firstName"] = sealed.Data["lastName"]
	moved, err := r.plain.Record(ctx, sealed)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.serde.Decode(ctx, moved.Value)
	if !errors.Is(err, privacy.ErrTampered) || !errors.Is(err, streams.ErrMalformedRecord) || streams.IsRetryable(err) {
		t.Fatalf("moved ciphertext: %v", err)
	}
	if strings.Contains(err.Error(), "高橋") {
		t.Errorf("the error quotes a clear value: %v", err)
	}
}

// TestConsumerHandlersSeeClearValues: a consumer on a protected Serde hands clear values to a
// generic handler and to a typed one; the typed value published again (streams.Publish) is sealed
// on Kafka and reads back as the first.
func TestConsumerHandlersSeeClearValues(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	ctx := context.Background()
	env := r.example(t, "reservation.created")
	p := r.producer(t, "hotel-pms", r.serde)
	if _, err := p.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	var typedEvent *events.ReservationCreatedV1
	for _, typed := range []bool{false, true} {
		got := make(chan [2]string, 1)
		c, err := streams.NewConsumer("hotel-member", r.protected(t, nil), streams.Brokers(r.b.Brokers...),
			streams.Group(streamstest.Name(t, "g")), streams.CommitInterval(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if typed {
			streams.Handle(c, func(_ context.Context, _ *streams.Message, e *events.ReservationCreatedV1) error {
				typedEvent = e
				got <- [2]string{e.PrimaryGuest.Surname, *e.PrimaryGuest.Email}
				return nil
			})
		} else {
			c.HandleType("reservation.created", func(_ context.Context, m *streams.Message) error {
				g := m.Envelope.Data["primaryGuest"].(map[string]any)
				got <- [2]string{g["surname"].(string), g["email"].(string)}
				return nil
			})
		}
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		select {
		case g := <-got:
			if g != [2]string{"佐藤", "kenta.sato@example.co.jp"} {
				t.Errorf("typed=%v: handler saw %q", typed, g)
			}
		case <-time.After(time.Minute):
			t.Fatalf("typed=%v: handler not called", typed)
		}
		_ = c.Close(ctx)
		<-done
	}
	// A typed publish seals too.
	if _, err := streams.Publish(ctx, p, "sakura-hotels", typedEvent); err != nil {
		t.Fatal(err)
	}
	recs := r.raw(t, 2, r.topic("reservation.created"))
	for _, rec := range recs {
		for _, v := range clearValues {
			if bytes.Contains(rec.Value, []byte(v)) {
				t.Errorf("clear pii value %q on Kafka", v)
			}
		}
	}
	first, err1 := r.serde.Decode(ctx, recs[0].Value)
	second, err2 := r.serde.Decode(ctx, recs[1].Value)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(first.Data, second.Data) {
		t.Errorf("typed publish reads back differently: %v %v\n%v\n%v", err1, err2, first.Data, second.Data)
	}
}

// refuseKEK is a KMS that no longer holds one KEK (it was retired after a rotation).
type refuseKEK struct {
	privacy.KMS
	retired string
}

func (k refuseKEK) Unwrap(ctx context.Context, kekID string, wrapped, aad []byte) ([]byte, error) {
	if kekID == k.retired {
		return nil, fmt.Errorf("%w: %s retired", privacy.ErrUnknownKEK, kekID)
	}
	return k.KMS.Unwrap(ctx, kekID, wrapped, aad)
}

// TestKEKRotationRewrapsKeys: after a rotation of the key file and Rewrap, every data key is
// wrapped by the new KEK: a reader without the old KEK reads every event clear; events are not
// rewritten. Before Rewrap, that reader cannot (the test would pass vacuously otherwise).
func TestKEKRotationRewrapsKeys(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	ctx := context.Background()
	p := r.producer(t, "hotel-member", r.serde)
	names := map[string]string{}
	for i := range 3 {
		e := r.example(t, "customer.created")
		e.Data["customerId"] = fmt.Sprintf("cus_rot%d", i)
		e.Data["lastName"] = fmt.Sprintf("Name%d", i)
		names[e.Data["customerId"].(string)] = e.Data["lastName"].(string)
		if _, err := p.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	recs := r.raw(t, 3, r.topic("customer.created"))
	old, _ := privacy.OpenKeyFile(r.keyFile)
	if _, err := privacy.RotateKeyFile(r.keyFile, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	retired := func(k privacy.KMS) privacy.KMS { return refuseKEK{k, old.CurrentKEK()} }
	if _, err := r.protected(t, retired).Decode(ctx, recs[0].Value); !errors.Is(err, privacy.ErrUnknownKEK) {
		t.Fatalf("before Rewrap, a reader without the old KEK: %v, want ErrUnknownKEK", err)
	}
	n, err := r.newKeys(t, nil).Rewrap(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Rewrap: %d, %v; want 3", n, err)
	}
	reader := r.protected(t, retired)
	for _, rec := range recs {
		got, err := reader.Decode(ctx, rec.Value)
		if err != nil || got.Data["lastName"] != names[got.Data["customerId"].(string)] {
			t.Errorf("after Rewrap: %v %v", got, err)
		}
	}
	if n, err := r.newKeys(t, nil).Rewrap(ctx); err != nil || n != 0 {
		t.Errorf("second Rewrap: %d, %v; want 0", n, err)
	}
}

// TestSealRefusesBadSubject: an event whose subject field is empty or outside the key grammar
// (a slash would forge another key record's name) is refused as invalid before anything is sent,
// not retried; a reservation without a customer id falls back to its reservation id.
func TestSealRefusesBadSubject(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	ctx := context.Background()
	p := r.producer(t, "hotel-member", r.serde)
	for _, id := range []string{"", "cus/evil", strings.Repeat("c", 129)} {
		e := r.example(t, "customer.created")
		e.Data["customerId"] = id
		_, err := p.Publish(ctx, e)
		if !errors.Is(err, privacy.ErrNoSubject) || !errors.Is(err, streams.ErrInvalidEvent) || streams.IsRetryable(err) {
			t.Errorf("customerId %q: %v, want ErrNoSubject", id, err)
		}
	}
	e := r.example(t, "reservation.created")
	e.Data["primaryGuest"].(map[string]any)["customerId"] = nil
	if _, err := r.producer(t, "hotel-pms", r.serde).Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	st, err := r.keys.Status(ctx, "sakura-hotels", e.Data["reservationId"].(string))
	if err != nil || len(st.Keys) != 1 {
		t.Errorf("walk-in reservation: keys of its reservation id %+v %v, want one", st, err)
	}
}

// metrics gathers a Protector's metrics as name{label=value} -> value.
func metrics(t *testing.T, p *privacy.Protector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			out[name] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

// TestKeyCacheBoundAndTTL: with a cache of one key, reading two subjects in turn unwraps every
// time; with room for both, only the first read of each unwraps, until the TTL passes.
func TestKeyCacheBoundAndTTL(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	ctx := context.Background()
	p := r.producer(t, "hotel-member", r.serde)
	for _, id := range []string{"cus_a", "cus_b"} {
		e := r.example(t, "customer.created")
		e.Data["customerId"] = id
		if _, err := p.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	recs := r.raw(t, 2, r.topic("customer.created"))
	unwraps := func(opts ...privacy.KeysOption) int64 {
		keys := r.newKeys(t, nil, opts...)
		s := r.reg(streams.WithFieldProtector(privacy.NewProtector(r.subj, keys)))
		for range 3 {
			for _, rec := range recs {
				if _, err := s.Decode(ctx, rec.Value); err != nil {
					t.Fatal(err)
				}
			}
		}
		return keys.Stats().Unwraps
	}
	if n := unwraps(privacy.KeyCacheSize(1)); n != 6 {
		t.Errorf("cache of 1: %d unwraps, want 6", n)
	}
	if n := unwraps(privacy.KeyCacheSize(2)); n != 2 {
		t.Errorf("cache of 2: %d unwraps, want 2", n)
	}
	keys := r.newKeys(t, nil, privacy.KeyCacheTTL(50*time.Millisecond))
	s := r.reg(streams.WithFieldProtector(privacy.NewProtector(r.subj, keys)))
	for range 2 {
		if _, err := s.Decode(ctx, recs[0].Value); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := keys.Stats().Unwraps; n != 2 {
		t.Errorf("TTL 50ms, two reads 200ms apart: %d unwraps, want 2", n)
	}
}

// TestOpenDataByEvent: OpenData opens top-level fields of a sealed event apart from its envelope
// (as a local view keeps them), with the tenant and the eventId only: the clear values; under
// another eventId the values do not authenticate (ErrTampered, never clear or erased); after
// Forget they read Erased; fields the data lacks are skipped.
func TestOpenDataByEvent(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	ctx := context.Background()
	clear := r.example(t, "customer.created")
	if _, err := r.producer(t, "hotel-member", r.serde).Publish(ctx, clear); err != nil {
		t.Fatal(err)
	}
	value := r.raw(t, 1, r.topic("customer.created"))[0].Value
	decode := func() *streams.Envelope {
		env, err := r.plain.Decode(ctx, value)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	sealed := decode()
	v, _ := r.set.Version("customer.created", sealed.Version)
	part := func() map[string]any { // two fields, as a merged item holds them (OpenData opens in place)
		d := decode().Data
		return map[string]any{"email": d["email"], "address": d["address"]}
	}
	tenant := sealed.Metadata.TenantID
	data := part()
	if err := r.prot.OpenData(ctx, tenant, sealed.EventID, v, data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(data["email"], clear.Data["email"]) || !reflect.DeepEqual(data["address"], clear.Data["address"]) || len(data) != 2 {
		t.Fatalf("opened %v, want the clear email %v and address %v", data, clear.Data["email"], clear.Data["address"])
	}
	if err := r.prot.OpenData(ctx, tenant, "0193a0b2-0000-7000-8000-000000000000", v, part()); !errors.Is(err, privacy.ErrTampered) {
		t.Fatalf("under another eventId: %v, want ErrTampered", err)
	}
	if _, err := r.keys.Forget(ctx, tenant, clear.Data["customerId"].(string), "test"); err != nil {
		t.Fatal(err)
	}
	data = part()
	if err := r.prot.OpenData(ctx, tenant, sealed.EventID, v, data); err != nil || data["email"] != privacy.Erased ||
		data["address"].(map[string]any)["city"] != privacy.Erased {
		t.Fatalf("after forget: %v %v", data, err)
	}
}

// TestSealingKeyFollowsTheKeyTopic: a publisher keeps the key it seals a guest's values with (see
// Keys), and the key topic has the last word: after Forget the guest's next event is sealed with
// a new key and reads back clear while the earlier ones read Erased, and a kept key expires with
// KeyCacheTTL (the next event unwraps it again).
func TestSealingKeyFollowsTheKeyTopic(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	ctx := context.Background()
	keys := r.newKeys(t, nil, privacy.KeyCacheTTL(100*time.Millisecond))
	serde := r.reg(streams.WithFieldProtector(privacy.NewProtector(r.subj, keys)))
	p := r.producer(t, "hotel-member", serde)
	publish := func() {
		t.Helper()
		e := r.example(t, "customer.created")
		e.Data["customerId"] = "cus_kept"
		if _, err := p.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// keyID returns the id of the key the record's e-mail address was sealed with.
	keyID := func(rec *kgo.Record) string {
		t.Helper()
		env, err := r.plain.Decode(ctx, rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		sealed, _ := env.Data["email"].(string)
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, privacy.Prefix))
		if err != nil || len(raw) < 8 {
			t.Fatalf("email %q is not sealed: %v", sealed, err)
		}
		return fmt.Sprintf("%x", raw[:8])
	}

	publish() // creates the guest's key
	publish()
	publish()
	if _, err := keys.Forget(ctx, "sakura-hotels", "cus_kept", "test"); err != nil {
		t.Fatal(err)
	}
	publish()
	recs := r.raw(t, 4, r.topic("customer.created"))
	ids := []string{keyID(recs[0]), keyID(recs[1]), keyID(recs[2]), keyID(recs[3])}
	if ids[1] != ids[0] || ids[2] != ids[0] || ids[3] == ids[0] {
		t.Errorf("keys of the four events: %v; want the first three alike and the one after Forget new", ids)
	}
	for i, want := range []any{privacy.Erased, nil} {
		got, err := serde.Decode(ctx, recs[3*i].Value)
		if err != nil || (want != nil && got.Data["email"] != want) || (want == nil && strings.HasPrefix(got.Data["email"].(string), privacy.Prefix)) {
			t.Errorf("event %d read back: %v, %v", 3*i, got.Data["email"], err)
		}
	}

	publish() // finds the new key and keeps it
	before := keys.Stats().Unwraps
	time.Sleep(300 * time.Millisecond)
	publish()
	if after := keys.Stats().Unwraps; after != before+1 {
		t.Errorf("a publish after KeyCacheTTL unwrapped %d keys, want 1", after-before)
	}
}

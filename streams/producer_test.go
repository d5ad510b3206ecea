package streams_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

func newProducer(t *testing.T, system string, b streamstest.Backend, serde *streams.Serde, opts ...streams.ProducerOption) *streams.Producer {
	t.Helper()
	p, err := streams.NewProducer(system, serde, append([]streams.ProducerOption{streams.Brokers(b.Brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// example returns a fresh envelope of eventType parsed from its golden example, with the fields a
// producer fills in cleared.
func example(t testing.TB, serde *streams.Serde, eventType string) *streams.Envelope {
	t.Helper()
	v, ok := serde.Schemas().Latest(eventType)
	if !ok {
		t.Fatalf("no schema for %s", eventType)
	}
	env, err := serde.ParseJSON(v.Example)
	if err != nil {
		t.Fatal(err)
	}
	env.EventID, env.Timestamp, env.Version = "", time.Time{}, ""
	env.Metadata.Source, env.Metadata.CorrelationID, env.Metadata.TraceID = "", "", ""
	return env
}

func TestProducerRefusesBeforeSending(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, cat := isolated(t, b)
	p := newProducer(t, "hotel-pms", b, serde)
	ctx := context.Background()

	notOwned := example(t, serde, "service.ordered")
	spoofed := example(t, serde, "reservation.created")
	spoofed.Metadata.Source = "hotel-saas"
	noTenant := example(t, serde, "billing.paid")
	noTenant.Metadata.TenantID = ""
	badData := example(t, serde, "billing.created")
	badData.Data["billNumber"] = 42
	cases := []struct {
		name string
		env  *streams.Envelope
		want error
		text string
	}{
		{"event type owned by another system", notOwned, streams.ErrNotOwner, "hotel-saas publishes service.ordered"},
		{"source naming another system", spoofed, streams.ErrNotOwner, `metadata.source is "hotel-saas"`},
		{"missing tenant", noTenant, streams.ErrMissingTenant, "tenantId"},
		{"data not matching the schema", badData, streams.ErrInvalidEvent, "data.billNumber: expected string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Publish(ctx, tc.env)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
			if streams.IsRetryable(err) {
				t.Errorf("refusal %v is retryable", err)
			}
		})
	}
	// a batch with one bad event sends nothing
	good := example(t, serde, "reservation.created")
	if _, err := p.PublishBatch(ctx, []*streams.Envelope{good, noTenant}); !errors.Is(err, streams.ErrMissingTenant) || !strings.Contains(err.Error(), "event 1") {
		t.Errorf("batch: %v", err)
	}
	// nothing reached any topic
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
}

func TestProducerFillsEnvelope(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, cat := isolated(t, b)
	p := newProducer(t, "hotel-pms", b, serde)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := streams.ContextWithTraceparent(context.Background(), "00-"+traceID+"-00f067aa0ba902b7-01")
	ctx = streams.ContextWithCorrelationID(ctx, "booking-flow-77")
	before := time.Now().Add(-time.Millisecond)
	env := example(t, serde, "reservation.created")
	res, err := p.Publish(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	id, err := uuid.Parse(res.EventID)
	if err != nil || id.Version() != 7 {
		t.Errorf("eventId %q is not a UUIDv7", res.EventID)
	}
	tp, _ := cat.TopicFor("reservation.created")
	if res.Topic != tp.Name || res.Spooled {
		t.Errorf("result %+v", res)
	}
	recs := consume(t, b, 1, tp.Name)
	got, err := serde.Decode(ctx, recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if got.EventID != res.EventID || got.Metadata.Source != "hotel-pms" || got.Version != "1.0" ||
		got.Metadata.CorrelationID != "booking-flow-77" || got.Metadata.TraceID != traceID || got.Timestamp.Before(before.Truncate(time.Millisecond)) {
		t.Errorf("filled envelope = %+v", got)
	}
	if string(recs[0].Key) != got.Metadata.TenantID || recs[0].Partition != res.Partition || recs[0].Offset != res.Offset {
		t.Errorf("record key %q partition %d offset %d, result %+v", recs[0].Key, recs[0].Partition, recs[0].Offset, res)
	}
	if tpHeader := streams.Header(recs[0], streams.HeaderTraceparent); !regexp.MustCompile(`^00-` + traceID + `-[0-9a-f]{16}-01$`).MatchString(tpHeader) {
		t.Errorf("traceparent header %q", tpHeader)
	}
	// without context values: correlationId defaults to the eventId, a new trace id is made
	res2, err := p.Publish(context.Background(), example(t, serde, "reservation.created"))
	if err != nil {
		t.Fatal(err)
	}
	got2, _ := serde.Decode(ctx, consume(t, b, 2, tp.Name)[1].Value)
	if got2.Metadata.CorrelationID != res2.EventID || len(got2.Metadata.TraceID) != 32 || got2.Metadata.TraceID == traceID {
		t.Errorf("defaults: %+v", got2.Metadata)
	}
}

// TestProducerDualPublish: one call publishes v1 and v2 of an event with the same eventId; v2 is an
// incompatible new major version, registered as its own subject. v2 is written first though v1
// is listed first, and the Results keep the order of the call.
func TestProducerDualPublish(t *testing.T) {
	b := streamstest.Kfake(t)
	_, p, parse := dualFixture(t, b)
	a, b2 := parse(), parse()
	b2.Version = "2.0"
	b2.Data["refundPolicy"] = "FULL_REFUND"
	res, err := p.PublishDual(context.Background(), a, b2)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].EventID != res[1].EventID || res[0].Topic != res[1].Topic {
		t.Fatalf("dual results %+v", res)
	}
	recs := consume(t, b, 2, res[0].Topic)
	if v := streams.Header(recs[0], streams.HeaderVersion); v != "2.0" || res[1].Offset != recs[0].Offset || res[0].Offset != recs[1].Offset {
		t.Errorf("first copy written: %s at offset %d; results: v1 at %d, v2 at %d", v, recs[0].Offset, res[0].Offset, res[1].Offset)
	}
	ids := map[string]bool{}
	versions := map[string]bool{}
	schemaIDs := map[uint32]bool{}
	for _, r := range recs {
		ids[streams.Header(r, streams.HeaderEventID)] = true
		versions[streams.Header(r, streams.HeaderVersion)] = true
		schemaIDs[uint32(r.Value[1])<<24|uint32(r.Value[2])<<16|uint32(r.Value[3])<<8|uint32(r.Value[4])] = true
		if recs[0].Partition != r.Partition {
			t.Error("copies on different partitions")
		}
	}
	if len(ids) != 1 || !versions["1.0"] || !versions["2.0"] || len(schemaIDs) != 2 {
		t.Errorf("ids %v versions %v schema ids %v", ids, versions, schemaIDs)
	}
	if _, err := p.PublishDual(context.Background(), parse()); err == nil {
		t.Error("PublishDual with one version accepted")
	}
}

// TestProducerSpoolsWhileBrokerDown: with the broker stopped, events are spooled (fsync'd) and
// Publish says so; once the broker is back they are delivered in per-tenant order, none lost.
func TestProducerSpoolsWhileBrokerDown(t *testing.T) {
	for _, b := range streamstest.RestartableBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			serde, cat := isolated(t, b.Backend)
			p := newProducer(t, "hotel-member", b.Backend, serde, streams.SpoolDir(t.TempDir()), streams.SpoolAfter(2*time.Second),
				streams.DrainBackoff(200*time.Millisecond))
			ctx := context.Background()
			const tenants, perTenant = 20, 30
			publish := func(round int) (acked, spooled int) {
				for i := range perTenant {
					for tn := range tenants {
						env := example(t, serde, "points.added")
						env.Metadata.TenantID = fmt.Sprintf("tenant-%02d", tn)
						env.Metadata.CorrelationID = fmt.Sprintf("%d", round*perTenant+i)
						res, err := p.Publish(ctx, env)
						if err != nil {
							t.Fatalf("round %d: %v", round, err)
						}
						if res.Spooled {
							spooled++
						} else {
							acked++
						}
					}
				}
				return acked, spooled
			}
			if acked, spooled := publish(0); acked != tenants*perTenant || spooled != 0 {
				t.Fatalf("broker up: %d acked, %d spooled", acked, spooled)
			}
			b.Stop(t)
			acked, spooled := publish(1)
			if spooled == 0 || p.SpoolDepth() == 0 {
				t.Fatalf("broker down: %d acked, %d spooled, depth %d", acked, spooled, p.SpoolDepth())
			}
			t.Logf("broker down: %d acknowledged before the outage was noticed, %d spooled", acked, spooled)
			b.Start(t)
			dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			if err := p.Drained(dctx); err != nil {
				t.Fatal(err)
			}
			if acked, spooled := publish(2); spooled != 0 {
				t.Errorf("after the drain: %d acked, %d spooled", acked, spooled)
			}
			tp, _ := cat.TopicFor("points.added")
			checkPerTenantOrder(t, b.Backend, tp.Name, tenants, 3*perTenant)
		})
	}
}

// checkPerTenantOrder reads the topic and checks that each tenant's correlationId sequence is
// 0..n-1 in order; a repeat of the previous number (a duplicate delivery of an event that was in
// flight during the outage) is counted and tolerated, nothing else is.
func checkPerTenantOrder(t *testing.T, b streamstest.Backend, topic string, tenants, n int) (dups int) {
	t.Helper()
	cl := b.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	next := map[string]int{}
	seen := map[string]map[string]bool{}
	total := 0
	for total < tenants*n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d distinct events of %d", total, tenants*n)
		}
		for _, r := range fs.Records() {
			k := string(r.Key)
			var seq int
			fmt.Sscanf(streams.Header(r, streams.HeaderCorrelationID), "%d", &seq)
			id := streams.Header(r, streams.HeaderEventID)
			if seen[k] == nil {
				seen[k] = map[string]bool{}
			}
			switch {
			case seen[k][id]:
				dups++
			case seq != next[k]:
				t.Fatalf("tenant %s: got %d, want %d (lost or reordered)", k, seq, next[k])
			default:
				seen[k][id] = true
				next[k]++
				total++
			}
		}
	}
	for k, v := range next {
		if v != n {
			t.Errorf("tenant %s: %d events, want %d", k, v, n)
		}
	}
	if len(next) != tenants {
		t.Errorf("%d tenants, want %d", len(next), tenants)
	}
	return dups
}

// dualFixture sets up a migration of service.canceled: v1 as published and a v2 (new major, a
// required field added) on isolated topics, a hotel-saas producer, and parse, which returns a
// fresh v1 envelope with eventId and source left to the producer.
func dualFixture(t *testing.T, b streamstest.Backend) (*streams.Serde, *streams.Producer, func() *streams.Envelope) {
	t.Helper()
	set, _ := loadAll(t)
	v1 := latest(t, set, "service.canceled")
	set2 := withMajor(t, v1, `{"name":"refundPolicy","type":"string","doc":"Refund policy applied, now required."}`)
	cat := testCatalog(t)
	ensure(t, b, cat)
	serde, _ := newSerde(t, set2, cat)
	p := newProducer(t, "hotel-saas", b, serde)
	parse := func() *streams.Envelope {
		env, err := serde.ParseJSON(v1.Example)
		if err != nil {
			t.Fatal(err)
		}
		env.EventID, env.Metadata.Source = "", ""
		return env
	}
	return serde, p, parse
}

// TestProducerDeliveryTimeout: without a spool, Publish to an unreachable broker fails with
// ErrDeliveryTimeout (retryable) once DeliveryTimeout has passed, instead of waiting forever,
// whatever context the caller gives (background, one carrying values, a cancellable one); and a
// caller's context that ends first ends the wait with its own error.
func TestProducerDeliveryTimeout(t *testing.T) {
	set, cat := loadAll(t)
	serde, _ := newSerde(t, set, cat)
	const timeout = 2 * time.Second
	p, err := streams.NewProducer("hotel-pms", serde, streams.Brokers("127.0.0.1:1"), streams.DeliveryTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for name, ctx := range map[string]context.Context{
		"background":  context.Background(),
		"values":      streams.ContextWithCorrelationID(context.Background(), "flow-1"),
		"cancellable": cancellable,
	} {
		start := time.Now()
		_, err = p.Publish(ctx, example(t, serde, "reservation.created"))
		took := time.Since(start)
		if !errors.Is(err, streams.ErrDeliveryTimeout) || !streams.IsRetryable(err) {
			t.Errorf("%s: Publish = %v, want ErrDeliveryTimeout (retryable)", name, err)
		}
		if took < timeout || took > timeout+3*time.Second {
			t.Errorf("%s: Publish returned after %s, want about %s", name, took, timeout)
		}
	}
	short, cancelShort := context.WithTimeout(context.Background(), time.Second)
	defer cancelShort()
	start := time.Now()
	_, err = p.Publish(short, example(t, serde, "reservation.created"))
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, streams.ErrDeliveryTimeout) || took > timeout {
		t.Errorf("Publish with a 1s context = %v after %s, want the context's error before DeliveryTimeout", err, took)
	}
	if _, err := streams.NewProducer("hotel-pms", serde, streams.Brokers("127.0.0.1:1"), streams.DeliveryTimeout(time.Millisecond)); !errors.Is(err, streams.ErrConfig) {
		t.Errorf("DeliveryTimeout(1ms) = %v, want ErrConfig", err)
	}
}

// TestProducerWritesPublishAudit: every producer writes a publish audit record per event (what
// `hotelbus trace` reads), typed or generic; PublishAudit(false) turns it off.
func TestProducerWritesPublishAudit(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, cat := isolated(t, b)
	ctx := context.Background()
	quiet := newProducer(t, "hotel-pms", b, serde, streams.PublishAudit(false))
	if _, err := quiet.Publish(ctx, example(t, serde, "reservation.created")); err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, "hotel-pms", b, serde)
	res, err := p.Publish(streams.ContextWithCorrelationID(ctx, "flow-42"), example(t, serde, "reservation.created"))
	if err != nil {
		t.Fatal(err)
	}
	recs := consume(t, b, 1, cat.AuditTopic)
	ar, err := streams.ParseAuditRecord(recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if ar.Kind != streams.AuditPublished || ar.System != "hotel-pms" || ar.EventID != res.EventID || ar.Outcome != streams.OutcomePublished ||
		ar.CorrelationID != "flow-42" || string(recs[0].Key) != "flow-42" || ar.Offset != res.Offset || ar.Topic != res.Topic {
		t.Errorf("audit record %+v under key %q, result %+v", ar, recs[0].Key, res)
	}
}

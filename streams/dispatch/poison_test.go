package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/dispatch"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// setHeader replaces the value of a record header.
func setHeader(rec *kgo.Record, key, value string) {
	for i := range rec.Headers {
		if rec.Headers[i].Key == key {
			rec.Headers[i].Value = []byte(value)
		}
	}
}

// poisons are record keys and headers Go's HTTP client refuses as header values, applied to a
// valid record after the SDK built it (other clients than the SDK can write them; the SDK's writer
// refuses them).
var poisons = []struct {
	name  string
	apply func(rec *kgo.Record)
}{
	{"tenantId CR/LF", func(rec *kgo.Record) { rec.Key = []byte("sakura\r\nX-Injected: 1") }},
	{"tenantId NUL", func(rec *kgo.Record) { rec.Key = []byte("kyoto\x00grand") }},
	{"correlationId LF", func(rec *kgo.Record) { setHeader(rec, streams.HeaderCorrelationID, "c\nd") }},
	{"source CR", func(rec *kgo.Record) { setHeader(rec, streams.HeaderSource, "hotel-saas\r") }},
	{"traceparent NUL", func(rec *kgo.Record) { setHeader(rec, streams.HeaderTraceparent, "00-\x00") }},
}

// TestDispatchPoisonedHeadersArePermanent: 40 events whose identifiers Go's HTTP client refuses
// as header values, written by a raw client among 400 valid events of 40 tenants. The breaker
// never opens, every valid event is delivered once and in order, and exactly the poisoned ones
// are dead-lettered, never retried: the consumer refuses them by the identifier grammar before
// the dispatcher builds a request (TestDispatchInvalidHeaderIsPermanent covers the dispatcher's
// own check behind it).
func TestDispatchPoisonedHeadersArePermanent(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b)
			v, _ := f.serde.Schemas().Latest("service.ordered")
			base, err := f.serde.ParseJSON(v.Example)
			if err != nil {
				t.Fatal(err)
			}
			const tenants, per, poisoned = 40, 10, 40
			var recs []*kgo.Record
			poison := map[string]bool{}
			for i := range per {
				for tn := range tenants {
					env := *base
					env.EventID = uuid.NewString()
					env.Metadata.TenantID = fmt.Sprintf("tenant-%03d", tn)
					env.Metadata.Source = "hotel-saas"
					env.Metadata.CorrelationID = strconv.Itoa(i)
					rec, err := f.serde.Record(context.Background(), &env)
					if err != nil {
						t.Fatal(err)
					}
					f.chk.Published(env.Metadata.TenantID, env.EventID, i)
					recs = append(recs, rec)
				}
				// One poisoned event per tenant group of ten, mixed between the valid ones.
				for k := range poisoned / per {
					env := *base
					env.EventID = uuid.NewString()
					env.Metadata.TenantID = fmt.Sprintf("tenant-%03d", (k*7+i)%tenants)
					env.Metadata.Source = "hotel-saas"
					env.Metadata.CorrelationID = "poison"
					rec, err := f.serde.Record(context.Background(), &env)
					if err != nil {
						t.Fatal(err)
					}
					poisons[(i*per+k)%len(poisons)].apply(rec)
					poison[env.EventID] = true
					recs = append(recs, rec)
				}
			}
			if err := f.b.Client(t).ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			tg := newTarget(t, f.chk)
			d, _ := f.dispatcher(t, tg.srv.URL, dispatch.Breaker(5, 200*time.Millisecond, time.Second))
			var opened atomic.Bool
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
						if d.State() != dispatch.Closed {
							opened.Store(true)
						}
					}
				}
			}()
			eventually(t, time.Minute, "every event delivered or refused", func() bool {
				st := d.Stats()
				return st.Delivered >= tenants*per && len(f.deadLetters(t)) >= poisoned
			})
			noAnomalies(t, f.chk.Report(), nil)
			if st := d.Stats(); opened.Load() || st.Opened != 0 || st.Transient != 0 || st.Delivered != tenants*per || st.Invalid != 0 {
				t.Fatalf("stats %+v, breaker seen open %v; want %d delivered, none invalid at the dispatcher, no transient failure, never open", st, opened.Load(), tenants*per)
			}
			if n := tg.requests.Load(); n != tenants*per {
				t.Fatalf("the target saw %d requests, want the %d valid events only", n, tenants*per)
			}
			dls := f.deadLetters(t)
			if len(dls) != poisoned {
				t.Fatalf("%d dead letters, want the %d poisoned events", len(dls), poisoned)
			}
			for _, r := range dls {
				id := streams.Header(r, streams.HeaderEventID)
				if !poison[id] || streams.Header(r, streams.HeaderDLQErrorClass) != streams.ClassInvalidIdentifier ||
					streams.Header(r, streams.HeaderDLQAttempts) != "0" {
					t.Fatalf("dead letter %s: headers %v", id, r.Headers)
				}
			}
		})
	}
}

// TestDispatchInvalidHeaderIsPermanent: the handler refuses an event with a header value the HTTP
// client would refuse, without a request, with a permanent error naming the header (not its
// value), and the breaker does not count it.
func TestDispatchInvalidHeaderIsPermanent(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	serde, m := message(t)
	d, err := dispatch.New(srv.URL, serde, dispatch.Secret(secret), dispatch.Breaker(1, time.Hour, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Envelopes written by other clients than the SDK, as the dispatcher would see them if the
	// consumer's identifier check let them through.
	for _, p := range []struct {
		name  string
		apply func(env *streams.Envelope, rec *kgo.Record)
	}{
		{"tenantId CR/LF", func(env *streams.Envelope, rec *kgo.Record) {
			env.Metadata.TenantID = "sakura\r\nX-Injected: 1"
			rec.Key = []byte(env.Metadata.TenantID)
		}},
		{"tenantId NUL", func(env *streams.Envelope, _ *kgo.Record) { env.Metadata.TenantID = "kyoto\x00grand" }},
		{"correlationId LF", func(env *streams.Envelope, _ *kgo.Record) { env.Metadata.CorrelationID = "c\nd" }},
		{"source CR", func(env *streams.Envelope, _ *kgo.Record) { env.Metadata.Source = "hotel-saas\r" }},
		{"traceparent NUL", func(_ *streams.Envelope, rec *kgo.Record) { setHeader(rec, streams.HeaderTraceparent, "00-\x00") }},
	} {
		pm := *m
		env := *m.Envelope
		rec := *m.Record
		rec.Headers = append([]kgo.RecordHeader(nil), m.Record.Headers...)
		p.apply(&env, &rec)
		pm.Envelope, pm.Record = &env, &rec
		// Bounded: a regression opens the breaker, and the handler then waits for the hour-long probe.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := d.Handler()(ctx, &pm)
		cancel()
		var ie *dispatch.InvalidHeaderError
		if !errors.As(err, &ie) || streams.IsRetryable(err) || !errors.Is(err, streams.ErrInvalidEvent) || strings.ContainsAny(err.Error(), "\r\n\x00") {
			t.Errorf("%s: %v; want a permanent InvalidHeaderError, without the raw value", p.name, err)
		}
		if d.State() != dispatch.Closed {
			t.Fatalf("%s: the breaker counted it", p.name)
		}
	}
	if err := d.Handler()(context.Background(), m); err != nil || requests.Load() != 1 {
		t.Fatalf("a valid event after the poisoned ones: %v, %d requests; want delivered, the only request", err, requests.Load())
	}
}

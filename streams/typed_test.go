package streams_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/events"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestTypedRoundTrip: the golden reservation.created, published generically, reaches a typed
// handler with every field; published again as that typed value, it decodes generically to the
// same data, key and headers as the generic publish.
func TestTypedRoundTrip(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, cat := isolated(t, b)
	p := newProducer(t, "hotel-pms", b, serde)
	ctx := context.Background()
	generic := example(t, serde, "reservation.created")
	res, err := p.Publish(ctx, generic)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *events.ReservationCreatedV1, 1)
	var env *streams.Envelope
	r := startConsumer(t, "hotel-member", b, serde, func(c *streams.Consumer) {
		streams.Handle(c, func(_ context.Context, m *streams.Message, e *events.ReservationCreatedV1) error {
			env = m.Envelope
			got <- e
			return nil
		})
	})
	var e *events.ReservationCreatedV1
	select {
	case e = <-got:
	case <-time.After(time.Minute):
		t.Fatal("typed handler not called")
	}
	r.stop(t)
	if env.EventID != res.EventID || env.Metadata.TenantID != "sakura-hotels" || env.Metadata.Source != "hotel-pms" || env.Data != nil {
		t.Errorf("typed envelope %+v", env)
	}
	if e.ReservationID != generic.Data["reservationId"] || e.AmountAfterTax.Amount.FloatString(2) != "40000.00" ||
		!e.ArrivalDate.Equal(time.Date(2026, 12, 18, 0, 0, 0, 0, time.UTC)) || e.GuaranteeCard == nil || e.GuaranteeCard.Brand != events.ReservationCardBrandV1Jcb ||
		e.PrimaryGuest.Address == nil || len(e.PrimaryGuest.Address.Lines) != 2 || e.RoomID != nil {
		t.Errorf("typed value %+v", e)
	}

	res2, err := streams.Publish(ctx, p, "sakura-hotels", e)
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := cat.TopicFor("reservation.created")
	recs := consume(t, b, 2, tp.Name)
	first, err := serde.Decode(ctx, recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	second, err := serde.Decode(ctx, recs[1].Value)
	if err != nil {
		t.Fatal(err)
	}
	if second.EventID != res2.EventID || second.EventID == first.EventID || second.Metadata.Source != "hotel-pms" || second.Version != "1.0" {
		t.Errorf("typed publish envelope %+v", second)
	}
	if !reflect.DeepEqual(first.Data, second.Data) {
		t.Errorf("typed publish data differs:\n got %v\nwant %v", second.Data, first.Data)
	}
	if string(recs[1].Key) != "sakura-hotels" || len(recs[1].Headers) != len(recs[0].Headers) {
		t.Errorf("typed record key %q headers %v, generic %v", recs[1].Key, recs[1].Headers, recs[0].Headers)
	}
	for i, h := range recs[0].Headers {
		if recs[1].Headers[i].Key != h.Key {
			t.Errorf("header %d: %s, generic %s", i, recs[1].Headers[i].Key, h.Key)
		}
	}
}

// TestTypedPublishRefusals: what the schema or the catalog refuses is refused before sending,
// with the generic path's sentinels; decimals hamba/avro would round or panic on are named.
func TestTypedPublishRefusals(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, _ := isolated(t, b)
	p := newProducer(t, "hotel-pms", b, serde)
	ctx := context.Background()
	valid := canceledEvent
	if _, err := streams.Publish(ctx, p, "sakura-hotels", valid()); err != nil {
		t.Fatalf("valid event refused: %v", err)
	}
	third := valid()
	third.RefundAmount = &events.Money{Amount: big.NewRat(1, 3), Currency: "JPY"}
	nilAmount := valid()
	nilAmount.CancellationFee = &events.Money{Currency: "JPY"}
	badSymbol := valid()
	badSymbol.Reason = "BORED"
	for name, c := range map[string]struct {
		tenant string
		e      streams.Event
		want   error
		field  string
	}{
		"rounded decimal": {"sakura-hotels", third, streams.ErrInvalidEvent, "data.refundAmount.amount"},
		"nil decimal":     {"sakura-hotels", nilAmount, streams.ErrInvalidEvent, "data.cancellationFee.amount"},
		"unknown symbol":  {"sakura-hotels", badSymbol, streams.ErrInvalidEvent, "BORED"},
		"nil event":       {"sakura-hotels", (*events.ReservationCanceledV1)(nil), streams.ErrInvalidEvent, "data"},
		"no tenant":       {"", valid(), streams.ErrMissingTenant, "tenantId"},
		"bad tenant":      {"sakura/hotels", valid(), streams.ErrInvalidEvent, "metadata.tenantId"},
		"not owner":       {"sakura-hotels", &events.PointsAddedV1{}, streams.ErrNotOwner, "hotel-member"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := streams.Publish(ctx, p, c.tenant, c.e)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.field) {
				t.Errorf("err = %v, want %v naming %s", err, c.want, c.field)
			}
		})
	}
	// a refusal by the encoder leaves nothing behind for the next event
	for range 3 {
		if _, err := streams.Publish(ctx, p, "sakura-hotels", badSymbol); !errors.Is(err, streams.ErrInvalidEvent) {
			t.Fatalf("unknown symbol: %v", err)
		}
		if _, err := streams.Publish(ctx, p, "sakura-hotels", valid()); err != nil {
			t.Fatalf("a valid event after a refused one: %v", err)
		}
	}
}

// serviceCanceledV2 stands for a generated type of a second major version of service.canceled
// (dualFixture's schema set adds a required refundPolicy field).
type serviceCanceledV2 struct {
	events.ServiceCanceledV1
	RefundPolicy string `avro:"refundPolicy"`
}

var serviceCanceledV2Schema string

func (*serviceCanceledV2) EventVersion() string { return "2.0" }
func (*serviceCanceledV2) Schema() string       { return serviceCanceledV2Schema }

// TestTypedDual: a typed dual publish reaches typed handlers of both majors (dual subscription),
// once each, with one eventId.
func TestTypedDual(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, p, parse := dualFixture(t, b)
	v2, _ := serde.Schemas().Version("service.canceled", "2.0")
	serviceCanceledV2Schema = v2.Data.String()
	ctx := context.Background()
	// a typed v1 value, from the golden example through a generic publish and a typed handler
	if _, err := p.Publish(ctx, parse()); err != nil {
		t.Fatal(err)
	}
	seed := make(chan *events.ServiceCanceledV1, 1)
	r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
		streams.Handle(c, func(_ context.Context, _ *streams.Message, e *events.ServiceCanceledV1) error { seed <- e; return nil })
	})
	v1 := <-seed
	r.stop(t)
	res, err := streams.PublishDual(ctx, p, "sakura-hotels", v1, &serviceCanceledV2{ServiceCanceledV1: *v1, RefundPolicy: "FULL_REFUND"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].EventID != res[1].EventID {
		t.Fatalf("results %+v", res)
	}
	got1, got2 := make(chan string, 4), make(chan string, 4)
	r = startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
		streams.Handle(c, func(_ context.Context, m *streams.Message, e *events.ServiceCanceledV1) error {
			if m.Envelope.EventID == res[0].EventID {
				got1 <- m.Envelope.Version
			}
			return nil
		})
		streams.Handle(c, func(_ context.Context, m *streams.Message, e *serviceCanceledV2) error {
			if m.Envelope.EventID == res[0].EventID {
				got2 <- m.Envelope.Version + " " + e.RefundPolicy + " " + string(e.Reason)
			}
			return nil
		})
	})
	for ch, want := range map[chan string]string{got1: "1.0", got2: "2.0 FULL_REFUND " + string(v1.Reason)} {
		select {
		case v := <-ch:
			if v != want {
				t.Errorf("got %q, want %q", v, want)
			}
		case <-time.After(time.Minute):
			t.Fatalf("the handler expecting %q was not called", want)
		}
	}
	r.stop(t)
	if len(got1)+len(got2) != 0 {
		t.Errorf("extra copies: %d, %d", len(got1), len(got2))
	}
}

// TestHandleEvent: a handler registered at run time with events.New gets the golden
// reservation.created decoded into the generated type, as Handle's would.
func TestHandleEvent(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, _ := isolated(t, b)
	p := newProducer(t, "hotel-pms", b, serde)
	generic := example(t, serde, "reservation.created")
	if _, err := p.Publish(context.Background(), generic); err != nil {
		t.Fatal(err)
	}
	got := make(chan streams.Event, 1)
	r := startConsumer(t, "hotel-member", b, serde, func(c *streams.Consumer) {
		streams.HandleEvent(c, func() streams.Event { return events.New("reservation.created", 1).(streams.Event) },
			func(_ context.Context, _ *streams.Message, e streams.Event) error {
				got <- e
				return nil
			})
	})
	defer r.stop(t)
	select {
	case e := <-got:
		if rc, ok := e.(*events.ReservationCreatedV1); !ok || rc.ReservationID != generic.Data["reservationId"] || rc.PrimaryGuest.Address == nil {
			t.Errorf("HandleEvent handler got %#v", e)
		}
	case <-time.After(time.Minute):
		t.Fatal("handler not called")
	}
}

// valueEvent is an Event that is not a pointer to a struct, of a schema the Serde holds.
type valueEvent struct{}

func (valueEvent) EventType() string    { return "reservation.created" }
func (valueEvent) EventVersion() string { return "1.0" }
func (valueEvent) Schema() string       { return (&events.ReservationCreatedV1{}).Schema() }

// TestTypedRegistrationRefused: a typed handler whose type was generated from a schema the Serde
// does not hold, or (HandleEvent) whose values are not pointers to structs, makes Run fail with
// ErrConfig, naming the type, before anything is consumed.
func TestTypedRegistrationRefused(t *testing.T) {
	set, cat := loadAll(t)
	serde, _ := newSerde(t, set, cat)
	for _, tc := range []struct {
		name     string
		register func(*streams.Consumer)
	}{
		{"serviceCanceledV2", func(c *streams.Consumer) {
			streams.Handle(c, func(context.Context, *streams.Message, *serviceCanceledV2) error { return nil })
		}},
		{"valueEvent", func(c *streams.Consumer) {
			streams.HandleEvent(c, func() streams.Event { return valueEvent{} }, func(context.Context, *streams.Message, streams.Event) error { return nil })
		}},
	} {
		c, err := streams.NewConsumer("hotel-member", serde, streams.Brokers("127.0.0.1:1"))
		if err != nil {
			t.Fatal(err)
		}
		tc.register(c)
		err = c.Run(context.Background())
		if !errors.Is(err, streams.ErrConfig) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s: Run = %v, want ErrConfig naming the type", tc.name, err)
		}
	}
}

// TestDateStringsRefused: a date held in a string (customer.created 2.0's birthDate,
// schemas.IsDateString) must be YYYY-MM-DD, a day of the calendar, to be published, in the
// generic, JSON and typed forms alike; the refusal names the field and does not repeat the
// (personal) value. Valid dates, and none, are published. Reading is not refused.
func TestDateStringsRefused(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, _ := isolated(t, b)
	p := newProducer(t, "hotel-member", b, serde)
	ctx := context.Background()
	generic := func(birth any) *streams.Envelope {
		env := example(t, serde, "customer.created")
		if env.Version = "2.0"; birth == nil {
			delete(env.Data, "birthDate")
		} else {
			env.Data["birthDate"] = birth
		}
		return env
	}
	jsonOf := func(birth string) []byte {
		v, _ := serde.Schemas().Version("customer.created", "2.0")
		return bytes.Replace(v.Example, []byte(`"birthDate": "1991-04-12"`), []byte(`"birthDate": "`+birth+`"`), 1)
	}
	for _, bad := range []string{"12/04/1991", "1991-4-12", "1991-02-30", "1991-04-12T00:00:00Z", " 1991-04-12", ""} {
		for form, publish := range map[string]func() error{
			"generic": func() error { _, err := p.Publish(ctx, generic(bad)); return err },
			"json": func() error {
				env, err := p.ParseJSON(jsonOf(bad))
				if err == nil {
					_, err = p.Publish(ctx, env)
				}
				return err
			},
		} {
			err := publish()
			if !errors.Is(err, streams.ErrInvalidEvent) || !strings.Contains(err.Error(), "data.birthDate: must be an ISO 8601 calendar date, YYYY-MM-DD") ||
				bad != "" && strings.Contains(err.Error(), bad) {
				t.Errorf("%s %q: %v, want the field named without its value", form, bad, err)
			}
		}
	}
	for _, good := range []any{"1991-04-12", "2000-02-29", nil} {
		if _, err := p.Publish(ctx, generic(good)); err != nil {
			t.Errorf("generic %v: %v", good, err)
		}
	}
	if env, err := p.ParseJSON(jsonOf("1991-04-12")); err != nil {
		t.Errorf("json: %v", err)
	} else if _, err := p.Publish(ctx, env); err != nil {
		t.Errorf("json: %v", err)
	}

	// typed: from the data's JSON (DecodeData), then published
	data, err := serde.DataJSON(generic("1991-04-12"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := streams.DecodeData[events.CustomerCreatedV2](serde, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := streams.Publish(ctx, p, "sakura-hotels", e); err != nil {
		t.Errorf("typed: %v", err)
	}
	bad := "12/04/1991"
	e.BirthDate = &bad
	_, err = streams.Publish(ctx, p, "sakura-hotels", e)
	if !errors.Is(err, streams.ErrInvalidEvent) || !strings.Contains(err.Error(), "data.birthDate: must be an ISO 8601 calendar date") || strings.Contains(err.Error(), bad) {
		t.Errorf("typed %q: %v, want the field named without its value", bad, err)
	}
	// Read paths take what a read may hold there: an erased value's marker (DecodeData serves views).
	erased := bytes.Replace(data, []byte("1991-04-12"), []byte("[erased]"), 1)
	if e, err := streams.DecodeData[events.CustomerCreatedV2](serde, erased); err != nil || *e.BirthDate != "[erased]" {
		t.Errorf("DecodeData of an erased birth date: %v", err)
	}
}

// TestTypedPublishAsync: streams.PublishAsync calls done once with the broker's answer, and
// reports a refusal through done before it returns.
func TestTypedPublishAsync(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, _ := isolated(t, b)
	p := newProducer(t, "hotel-pms", b, serde)
	ctx := context.Background()
	results := make(chan error, 2)
	streams.PublishAsync(ctx, p, "sakura-hotels", canceledEvent(), func(r streams.Result, err error) {
		if err == nil && (r.Topic == "" || r.Offset < 0) {
			err = fmt.Errorf("result %+v", r)
		}
		results <- err
	})
	if err := <-results; err != nil {
		t.Fatalf("published: %v", err)
	}
	refused := false
	streams.PublishAsync(ctx, p, "sakura-hotels", (*events.ReservationCanceledV1)(nil), func(_ streams.Result, err error) {
		refused = errors.Is(err, streams.ErrInvalidEvent)
		results <- err
	})
	if !refused {
		t.Fatal("a nil event was not refused through done before PublishAsync returned")
	}
	select {
	case err := <-results:
		if !errors.Is(err, streams.ErrInvalidEvent) {
			t.Fatalf("refusal: %v", err)
		}
	default:
		t.Fatal("done not called")
	}
	select {
	case err := <-results:
		t.Fatalf("done called again: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
}

// canceledEvent is a valid typed reservation.canceled.
func canceledEvent() *events.ReservationCanceledV1 {
	return &events.ReservationCanceledV1{ReservationID: "rsv-1", ConfirmationNumber: "C-1", PropertyID: "KYO01",
		Status: events.ReservationStatusV1Canceled, Reason: events.ReservationCancellationReasonV1Other,
		CanceledBy: events.ReservationCancellationPartyV1Hotel, CanceledAt: time.Now()}
}

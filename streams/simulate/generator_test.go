package simulate_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/big"
	"slices"
	"testing"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/simulate"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

func load(t testing.TB) (*topics.Catalog, *schemas.Set) {
	t.Helper()
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	return cat, set
}

func generator(t testing.TB, o simulate.Options) *simulate.Generator {
	t.Helper()
	cat, set := load(t)
	g, err := simulate.New(cat, set, o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// canonical returns the canonical JSON of ev's envelope.
func canonical(t testing.TB, set *schemas.Set, ev *simulate.Event) []byte {
	t.Helper()
	v, ok := set.Version(ev.Envelope.EventType, ev.Envelope.Version)
	if !ok {
		t.Fatalf("%s %s: no schema", ev.Envelope.EventType, ev.Envelope.Version)
	}
	b, err := streams.AppendJSON(nil, ev.Envelope, v.Data)
	if err != nil {
		t.Fatalf("%s: %v", ev.Envelope.EventType, err)
	}
	return b
}

func TestSameSeedSameEvents(t *testing.T) {
	_, set := load(t)
	o := simulate.Options{Seed: 42, Tenants: 7, Skew: 1.1}
	a, b, c := generator(t, o), generator(t, o), generator(t, simulate.Options{Seed: 43, Tenants: 7, Skew: 1.1})
	differ := 0
	for i := range 3000 {
		ea, eb, ec := a.Next(), b.Next(), c.Next()
		ja, jb := canonical(t, set, ea), canonical(t, set, eb)
		if !bytes.Equal(ja, jb) || ea.Position != eb.Position || ea.System != eb.System {
			t.Fatalf("event %d differs with the same seed:\n%s\n%s", i, ja, jb)
		}
		if ea.Envelope.EventID == ec.Envelope.EventID {
			t.Fatalf("event %d: seeds 42 and 43 gave the same eventId %s", i, ea.Envelope.EventID)
		}
		if !bytes.Equal(ja, canonical(t, set, ec)) {
			differ++
		}
	}
	if differ < 2900 {
		t.Fatalf("seeds 42 and 43 gave %d of 3000 different events; want nearly all", differ)
	}
}

// TestEveryEventValid: every generated event passes the producer's checks of its system and
// survives the Avro round trip through the registry unchanged (canonical JSON before and after).
func TestEveryEventValid(t *testing.T) {
	cat, set := load(t)
	cl, _ := streamstest.Registry(t)
	serde, err := streams.NewSerde(cl, set, cat, streams.AutoRegister(true))
	if err != nil {
		t.Fatal(err)
	}
	be := streamstest.Kfake(t)
	producers := map[string]*streams.Producer{}
	for _, s := range cat.Systems {
		if producers[s.Name], err = streams.NewProducer(s.Name, serde, streams.Brokers(be.Brokers...)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = producers[s.Name].Close(context.Background()) })
	}
	g, err := simulate.New(cat, set, simulate.Options{Seed: 7, Tenants: 12, Skew: 0.8})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	types := map[string]int{}
	for range 5000 {
		ev := g.Next()
		before := canonical(t, set, ev)
		if err := producers[ev.System].Prepare(ctx, ev.Envelope); err != nil {
			t.Fatalf("%s of %s refused: %v\n%s", ev.Envelope.EventType, ev.System, err, before)
		}
		if after := canonical(t, set, ev); !bytes.Equal(before, after) {
			t.Fatalf("Prepare changed a complete envelope:\n%s\n%s", before, after)
		}
		rec, err := serde.Record(ctx, ev.Envelope)
		if err != nil {
			t.Fatalf("%s: %v\n%s", ev.Envelope.EventType, err, before)
		}
		if rec.Topic != ev.Topic || string(rec.Key) != ev.Tenant {
			t.Fatalf("%s: record on %s key %s; position says %s %s", ev.Envelope.EventType, rec.Topic, rec.Key, ev.Topic, ev.Tenant)
		}
		back, err := serde.Decode(ctx, rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		if after := canonical(t, set, &simulate.Event{Envelope: back}); !bytes.Equal(before, after) {
			t.Fatalf("Avro round trip changed the event:\n%s\n%s", before, after)
		}
		if _, err := serde.ParseJSON(before); err != nil {
			t.Fatalf("canonical JSON does not parse back: %v\n%s", err, before)
		}
		types[ev.Envelope.EventType]++
	}
	for _, et := range cat.EventTypes() {
		if types[et] == 0 {
			t.Errorf("no %s in 5000 events (counts %v)", et, types)
		}
	}
}

// TestSequences: Seq decodes every eventId to the event's position; sequences are gapless per
// tenant and topic in generation order and increase along every ordering key.
func TestSequences(t *testing.T) {
	o := simulate.Options{Seed: 3, Tenants: 5, Skew: 1}
	g, other := generator(t, o), generator(t, o)
	last := map[[2]string]uint64{}
	lastKey := map[string]uint64{}
	for range 4000 {
		ev := g.Next()
		p, ok := other.Seq(ev.Envelope.EventID)
		if !ok || p != ev.Position {
			t.Fatalf("Seq(%s) = %+v, %v; the event is at %+v", ev.Envelope.EventID, p, ok, ev.Position)
		}
		k := [2]string{ev.Tenant, ev.Topic}
		if ev.Seq != last[k]+1 {
			t.Fatalf("%v: seq %d after %d", k, ev.Seq, last[k])
		}
		last[k] = ev.Seq
		if ev.Seq <= lastKey[ev.Key] {
			t.Fatalf("key %s: seq %d after %d", ev.Key, ev.Seq, lastKey[ev.Key])
		}
		lastKey[ev.Key] = ev.Seq
		if rid, ok := ev.Envelope.Data["reservationId"].(string); ok && ev.Topic == "hotelbus.pms.reservations" {
			if want := ev.Topic + "/" + ev.Tenant + "/" + rid; ev.Key != want {
				t.Fatalf("%s: key %s, want %s", ev.Envelope.EventType, ev.Key, want)
			}
		} else if want := ev.Topic + "/" + ev.Tenant; ev.Key != want {
			t.Fatalf("%s: key %s, want %s", ev.Envelope.EventType, ev.Key, want)
		}
	}
	foreign := generator(t, simulate.Options{Seed: 4, Tenants: 5})
	for _, id := range []string{foreign.Next().Envelope.EventID, "01a21c49-57ec-76f4-aaa2-51547d1209bf", "not-a-uuid", ""} {
		if p, ok := g.Seq(id); ok {
			t.Errorf("Seq(%q) = %+v; want not ok", id, p)
		}
	}
}

// order ranks the lifecycle steps: a reservation's events must come in non-decreasing rank.
var order = map[string]int{
	"reservation.created": 1, "reservation.updated": 2, "reservation.canceled": 3, "checkin_checkout.checked_in": 3,
	"service.ordered": 4, "service.canceled": 4, "billing.created": 5, "billing.paid": 6, "checkin_checkout.checked_out": 7,
	"points.added": 8, "feedback.submitted": 8,
}

// TestLifecycles: per tenant, every reservation's events come in lifecycle order, a canceled
// reservation has no stay, the bill adds up the nights and the services not canceled, the payment
// pays the bill and the points follow it.
func TestLifecycles(t *testing.T) {
	g := generator(t, simulate.Options{Seed: 11, Tenants: 4, Skew: 0.5})
	type life struct {
		types      []string
		nets       *big.Rat
		orders     map[string]*big.Rat
		bill, paid *big.Rat
		canceled   bool
		lastRank   int
	}
	lives := map[string]*life{}
	customers := map[string]bool{} // tenant/customerId created so far
	bills := map[string]string{}   // tenant/billId -> reservationId
	complete := 0
	for range 20000 {
		ev := g.Next()
		d := ev.Envelope.Data
		et := ev.Envelope.EventType
		if et == "customer.created" {
			customers[ev.Tenant+"/"+d["customerId"].(string)] = true
		}
		rank, inLife := order[et]
		if !inLife {
			continue
		}
		rid, _ := d["reservationId"].(string)
		if et == "points.added" {
			rid = bills[ev.Tenant+"/"+d["sourceId"].(string)]
		}
		if rid == "" {
			t.Fatalf("%s: no reservationId: %v", et, d)
		}
		id := ev.Tenant + "/" + rid
		l := lives[id]
		if l == nil {
			if et != "reservation.created" {
				t.Fatalf("%s: %s before reservation.created", id, et)
			}
			l = &life{orders: map[string]*big.Rat{}}
			lives[id] = l
		}
		if rank < l.lastRank || l.canceled || (et == "reservation.created" && len(l.types) > 0) {
			t.Fatalf("%s: %s after %v", id, et, l.types)
		}
		l.lastRank = rank
		l.types = append(l.types, et)
		amount := func(m any) *big.Rat { return m.(map[string]any)["amount"].(*big.Rat) }
		switch et {
		case "reservation.created":
			if g := d["primaryGuest"].(map[string]any)["customerId"].(string); !customers[ev.Tenant+"/"+g] {
				t.Fatalf("%s: guest %s was never created", id, g)
			}
			l.nets = amount(d["amountBeforeTax"])
		case "reservation.updated":
			l.nets = amount(d["amountBeforeTax"])
		case "reservation.canceled":
			l.canceled = true
		case "service.ordered":
			l.orders[d["orderId"].(string)] = amount(d["totalPrice"])
		case "service.canceled":
			if _, ok := l.orders[d["orderId"].(string)]; !ok {
				t.Fatalf("%s: canceled order %s was never ordered", id, d["orderId"])
			}
			delete(l.orders, d["orderId"].(string))
		case "billing.created":
			bills[ev.Tenant+"/"+d["billId"].(string)] = d["reservationId"].(string)
			net := new(big.Rat).Set(l.nets)
			for _, o := range l.orders {
				net.Add(net, o)
			}
			if got := amount(d["netTotal"]); got.Cmp(net) != 0 {
				t.Fatalf("%s: bill net %s, want nights + services %s", id, got.FloatString(2), net.FloatString(2))
			}
			gross := new(big.Rat)
			for _, line := range d["lines"].([]any) {
				gross.Add(gross, amount(line.(map[string]any)["grossAmount"]))
			}
			if l.bill = amount(d["grossTotal"]); l.bill.Cmp(gross) != 0 || l.bill.Cmp(new(big.Rat).Add(net, amount(d["taxTotal"]))) != 0 {
				t.Fatalf("%s: gross %s, lines %s", id, l.bill.FloatString(2), gross.FloatString(2))
			}
		case "billing.paid":
			if l.paid = amount(d["amount"]); l.paid.Cmp(l.bill) != 0 {
				t.Fatalf("%s: paid %s of a %s bill", id, l.paid.FloatString(2), l.bill.FloatString(2))
			}
		case "checkin_checkout.checked_out":
			if l.paid == nil {
				t.Fatalf("%s: checked out unpaid", id)
			}
			complete++
		case "points.added":
			if l.paid == nil || d["points"].(int64) <= 0 {
				t.Fatalf("%s: %v points before or without payment", id, d["points"])
			}
		}
	}
	canceled := 0
	for _, l := range lives {
		if l.canceled {
			canceled++
		}
	}
	if complete < 100 || canceled < 10 {
		t.Fatalf("%d reservations: %d checked out, %d canceled; want both kinds in numbers", len(lives), complete, canceled)
	}
}

// TestSkew: each tenant's share of the events is within 1.5 points (absolute) of its expected
// share, and with skew the three largest groups produce most of the traffic.
func TestSkew(t *testing.T) {
	for _, skew := range []float64{0, 1.2} {
		t.Run(fmt.Sprint(skew), func(t *testing.T) {
			g := generator(t, simulate.Options{Seed: 5, Tenants: 10, Skew: skew})
			const n = 30000
			count := map[string]int{}
			for range n {
				count[g.Next().Tenant]++
			}
			names := g.Tenants()
			top3 := 0.0
			for i, name := range names {
				got := float64(count[name]) / n
				if math.Abs(got-g.Share(i)) > 0.015 {
					t.Errorf("%s: %.3f of the events, want %.3f", name, got, g.Share(i))
				}
				if i < 3 {
					top3 += got
				}
			}
			if skew > 0 && top3 < 0.6 {
				t.Errorf("the three largest groups produced %.2f of the events; want most", top3)
			}
			if skew == 0 && top3 > 0.35 {
				t.Errorf("uniform traffic: the first three produced %.2f", top3)
			}
			if slices.Index(names, "sakura-hotels") != 0 {
				t.Errorf("tenants %v", names)
			}
		})
	}
}

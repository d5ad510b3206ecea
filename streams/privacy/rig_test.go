package privacy_test

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/replay"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// Scale of TestRigGuestsErased: the 10,000 events of 500 guests, 50 of them erased.
const (
	rigGuests    = 500
	rigPerGuest  = 20 // customer.created, then customer.updated, reservation.created, reservation.updated in turn
	rigForgotten = 50
)

// clearPII matches any guest's surname, e-mail or birth date as the test writes them.
var clearPII = regexp.MustCompile(`Surname\d{3}xq|guest\d{3}@rig\.example|19\d\d-07-19`)

// guest returns the clear values of guest i that must never be on Kafka.
func guest(i int) (id, surname, email string) {
	return fmt.Sprintf("cus_rig%03d", i), fmt.Sprintf("Surname%03dxq", i), fmt.Sprintf("guest%03d@rig.example", i)
}

// TestRigGuestsErased, on the rig's Apache Kafka: 10,000 customer and reservation events of 500
// guests, with a KEK rotation half way; no clear value of a guest's name, e-mail or birth date is
// in any record of any topic (event, audit, key, dead-letter, redrive topics; keys, values and
// headers); a consumer reads every event clear; after forgetting 50 guests, a restarted consumer and a replay
// of the whole range, both without the KEK of before the rotation, read their pii as [erased] and
// the other 450 clear.
func TestRigGuestsErased(t *testing.T) {
	r := newRig(t, streamstest.RealKafka(t))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	member, pms := r.producer(t, "hotel-member", r.serde), r.producer(t, "hotel-pms", r.serde)
	types := []string{"customer.updated", "reservation.created", "reservation.updated"}
	want := map[string]int{} // eventId -> guest
	oldKEK := ""
	for round := range rigPerGuest {
		if round == rigPerGuest/2 { // rotation mid-run: the key file gets a new KEK, keys are re-wrapped
			kf, _ := privacy.OpenKeyFile(r.keyFile)
			oldKEK = kf.CurrentKEK()
			if _, err := privacy.RotateKeyFile(r.keyFile, time.Now()); err != nil {
				t.Fatal(err)
			}
			if n, err := r.newKeys(t, nil).Rewrap(ctx); err != nil || n != rigGuests {
				t.Fatalf("mid-run Rewrap: %d, %v; want %d", n, err, rigGuests)
			}
		}
		var byMember, byPMS []*streams.Envelope
		for i := range rigGuests {
			et := "customer.created"
			if round > 0 {
				et = types[(round-1)%len(types)]
			}
			e := r.example(t, et)
			id, surname, email := guest(i)
			if strings.HasPrefix(et, "customer.") {
				e.Data["customerId"], e.Data["lastName"], e.Data["email"] = id, surname, email
				e.Data["birthDate"] = fmt.Sprintf("19%02d-07-19", i%100) // a string since customer.* 2.0
				byMember = append(byMember, e)
			} else {
				g := e.Data["primaryGuest"].(map[string]any)
				g["customerId"], g["surname"], g["email"] = id, surname, email
				e.Data["reservationId"] = fmt.Sprintf("rsv_rig%03d_%02d", i, round)
				byPMS = append(byPMS, e)
			}
		}
		for _, batch := range []struct {
			p    *streams.Producer
			envs []*streams.Envelope
		}{{member, byMember}, {pms, byPMS}} {
			if len(batch.envs) == 0 {
				continue
			}
			res, err := batch.p.PublishBatch(ctx, batch.envs)
			if err != nil {
				t.Fatal(err)
			}
			for k, x := range res {
				id := batch.envs[k].Data["customerId"]
				if id == nil {
					id = batch.envs[k].Data["primaryGuest"].(map[string]any)["customerId"]
				}
				var n int
				fmt.Sscanf(id.(string), "cus_rig%03d", &n)
				want[x.EventID] = n
			}
		}
	}
	total := rigGuests * rigPerGuest
	if len(want) != total {
		t.Fatalf("published %d events, want %d", len(want), total)
	}

	// Every topic's raw bytes: no guest's surname or e-mail.
	scanned := 0
	var names []string
	for _, tp := range r.cat.Topics {
		names = append(names, tp.Name)
	}
	for _, rec := range r.upToEnd(t, ctx, names...) {
		scanned++
		hay := append(append([]byte{}, rec.Key...), rec.Value...)
		for _, h := range rec.Headers {
			hay = append(append(hay, h.Key...), h.Value...)
		}
		if m := clearPII.Find(hay); m != nil {
			t.Errorf("clear pii %q in %s/%d@%d", m, rec.Topic, rec.Partition, rec.Offset)
		}
	}
	t.Logf("scanned %d records of every topic: no clear guest name, e-mail or birth date", scanned)

	check := func(name string, data map[string]string, erased func(int) bool) {
		t.Helper()
		if len(data) != total {
			t.Errorf("%s read %d events, want %d", name, len(data), total)
		}
		bad := 0
		for eid, got := range data {
			i := want[eid]
			_, surname, email := guest(i)
			exp := surname + "|" + email
			if erased(i) {
				exp = privacy.Erased + "|" + privacy.Erased
			}
			if got != exp && bad < 5 {
				bad++
				t.Errorf("%s: event %s of guest %d: %q, want %q", name, eid, i, got, exp)
			}
		}
	}
	none := func(int) bool { return false }
	check("consumer", r.consumeAll(t, ctx, r.serde, total), none)

	for i := range rigForgotten {
		id, _, _ := guest(i)
		if _, err := r.keys.Forget(ctx, "sakura-hotels", id, "rig-test"); err != nil {
			t.Fatal(err)
		}
	}
	forgotten := func(i int) bool { return i < rigForgotten }
	retired := func(k privacy.KMS) privacy.KMS { return refuseKEK{k, oldKEK} }
	if n, err := r.newKeys(t, nil).Rewrap(ctx); err != nil || n != 0 { // every key was re-wrapped mid-run
		t.Fatalf("second Rewrap: %d, %v; want 0", n, err)
	}
	check("restarted consumer", r.consumeAll(t, ctx, r.protected(t, retired), total), forgotten)
	check("replay", r.replayAll(t, ctx, r.protected(t, retired)), forgotten)
}

// upToEnd reads every record of the topics up to their end offsets.
func (r *rig) upToEnd(t testing.TB, ctx context.Context, names ...string) []*kgo.Record {
	t.Helper()
	cl := r.b.Client(t, kgo.ConsumeTopics(names...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, names...)
	if err != nil {
		t.Fatal(err)
	}
	left := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) { left[fmt.Sprint(o.Topic, o.Partition)] = o.Offset })
	var out []*kgo.Record
	for {
		done := true
		for _, end := range left {
			done = done && end <= 0
		}
		if done {
			return out
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading every topic: %v", ctx.Err())
		}
		fs.EachRecord(func(rec *kgo.Record) {
			out = append(out, rec)
			k := fmt.Sprint(rec.Topic, rec.Partition)
			if rec.Offset+1 >= left[k] {
				left[k] = 0
			}
		})
	}
}

// consumeAll runs a consumer group of hotel-common from the start and returns surname|email of
// every event it handled, by eventId.
func (r *rig) consumeAll(t *testing.T, ctx context.Context, serde *streams.Serde, n int) map[string]string {
	t.Helper()
	var mu sync.Mutex
	got := map[string]string{}
	c, err := streams.NewConsumer("hotel-common", serde, streams.Brokers(r.b.Brokers...), streams.Group(streamstest.Name(t, "g")),
		streams.CommitInterval(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for _, et := range []string{"customer.created", "customer.updated", "reservation.created", "reservation.updated"} {
		c.HandleType(et, func(_ context.Context, m *streams.Message) error {
			mu.Lock()
			defer mu.Unlock()
			got[m.Envelope.EventID] = pair(m.Envelope.Data)
			return nil
		})
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	streamstest.Eventually(t, 3*time.Minute, fmt.Sprintf("the consumer handles %d events", n), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= n
	})
	_ = c.Close(ctx)
	stop()
	<-done
	return got
}

// pair returns surname|email of a customer or reservation event's data.
func pair(d map[string]any) string {
	if g, ok := d["primaryGuest"].(map[string]any); ok {
		return fmt.Sprint(g["surname"], "|", g["email"])
	}
	return fmt.Sprint(d["lastName"], "|", d["email"])
}

// replayAll replays the customer and reservation topics' whole range as JSONL and returns
// surname|email by eventId.
func (r *rig) replayAll(t *testing.T, ctx context.Context, serde *streams.Serde) map[string]string {
	t.Helper()
	var out bytes.Buffer
	cfg := replay.DefaultConfig()
	cfg.Brokers, cfg.Stdout, cfg.Out = r.b.Brokers, &out, replay.Stdout
	cfg.EventTypes = []string{"customer.*", "reservation.*"}
	rp, err := replay.New(serde, r.cat, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		env, err := r.plain.ParseJSON(line)
		if err != nil {
			t.Fatalf("replay line: %v", err)
		}
		got[env.EventID] = pair(env.Data)
	}
	return got
}

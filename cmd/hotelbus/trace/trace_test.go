package trace_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/monitor"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// records is a booking's audit trail: hotel-pms publishes reservation.created, hotel-member
// handles it, hotel-common dead-letters it after three attempts (hotel-saas does not subscribe).
// One record of another correlation id is mixed in.
func records(cat *topics.Catalog, t0 time.Time) []streams.AuditRecord {
	topic, _ := cat.TopicFor("reservation.created")
	member, _ := cat.System("hotel-member")
	common, _ := cat.System("hotel-common")
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	ev := func(a streams.AuditRecord) streams.AuditRecord {
		a.EventID, a.EventType, a.TenantID, a.CorrelationID, a.Topic, a.Partition, a.Offset = "e-1", "reservation.created", "hotel-kyoto", "corr-trace", topic.Name, 2, 41
		return a
	}
	return []streams.AuditRecord{
		ev(streams.AuditRecord{Kind: streams.AuditPublished, At: ms(0), System: "hotel-pms", Outcome: streams.OutcomePublished}),
		{Kind: streams.AuditPublished, At: ms(1), System: "hotel-saas", Outcome: streams.OutcomePublished, EventID: "e-x", EventType: "service.ordered",
			TenantID: "hotel-kyoto", CorrelationID: "corr-other"},
		ev(streams.AuditRecord{Kind: streams.AuditHandled, At: ms(15), System: "hotel-member", Group: member.Group, Outcome: streams.OutcomeHandled, Attempt: 1, LatencyMs: 15}),
		ev(streams.AuditRecord{Kind: streams.AuditHandled, At: ms(900), System: "hotel-common", Group: common.Group, Outcome: streams.OutcomeDeadLettered,
			Attempt: 3, LatencyMs: 900, Error: "retries-exhausted"}),
	}
}

func TestTraceCommand(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			prefix := streamstest.Name(t, "trace") + "."
			cat := streamstest.PrefixedCatalog(t, b, prefix)
			cl := b.Client(t)
			t0 := time.Date(2026, 11, 27, 9, 15, 0, 0, time.UTC)
			for _, a := range records(cat, t0) {
				v, err := json.Marshal(a)
				if err != nil {
					t.Fatal(err)
				}
				if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: cat.AuditTopic, Key: []byte(a.CorrelationID), Value: v}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			env := map[string]string{"HOTELBUS_BROKERS": strings.Join(b.Brokers, ",")}
			res := cmdtest.Run(t, env, "", "trace", "--prefix", prefix, "--correlation-id", "corr-trace")
			if res.Code != 0 {
				t.Fatalf("trace: exit %d\n%s", res.Code, res.ErrOut)
			}
			want := []string{
				"correlation id corr-trace: 1 events, 3 records, systems hotel-common, hotel-member, hotel-pms",
				"",
				"reservation.created e-1 (tenant hotel-kyoto)",
				"2026-11-27T09:15:00.000Z hotel-pms published " + prefix + "hotelbus.pms.reservations/2@41",
				"2026-11-27T09:15:00.015Z hotel-member handled attempt 1 15.0 ms",
				"2026-11-27T09:15:00.900Z hotel-common dead-lettered attempt 3 900.0 ms retries-exhausted",
			}
			var got []string
			for _, l := range strings.Split(strings.TrimRight(res.Out, "\n"), "\n") {
				got = append(got, strings.Join(strings.Fields(l), " "))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("trace output:\n%s\nwant (spacing aside):\n%s", res.Out, strings.Join(want, "\n"))
			}

			res = cmdtest.Run(t, env, "", "trace", "--prefix", prefix, "--correlation-id", "corr-trace", "--json")
			var j monitor.Journey
			if err := json.Unmarshal([]byte(res.Out), &j); res.Code != 0 || err != nil {
				t.Fatalf("trace --json: exit %d, %v\n%s%s", res.Code, err, res.Out, res.ErrOut)
			}
			want2 := monitor.BuildJourney(cat, "corr-trace", records(cat, t0))
			if len(j.Events) != 1 || len(j.Records) != 3 || len(j.Events[0].Deliveries) != 2 || j.Events[0].Deliveries[0] != want2.Events[0].Deliveries[0] {
				t.Errorf("trace --json: %+v", j)
			}

			// An event handled with no publish record (published by the SDK, produce or simulate):
			// the journey says why the record is missing.
			topic, _ := cat.TopicFor("points.added")
			handled, _ := json.Marshal(streams.AuditRecord{Kind: streams.AuditHandled, At: t0, System: "hotel-common", Outcome: streams.OutcomeHandled,
				Attempt: 1, EventID: "e-2", EventType: "points.added", TenantID: "hotel-kyoto", CorrelationID: "corr-sdk", Topic: topic.Name})
			if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: cat.AuditTopic, Key: []byte("corr-sdk"), Value: handled}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			res = cmdtest.Run(t, env, "", "trace", "--prefix", prefix, "--correlation-id", "corr-sdk")
			if res.Code != 0 || !strings.Contains(res.Out, "(no publish record: published by the SDK, produce or simulate, which do not write publish audit records yet (the gateway does))") {
				t.Errorf("an event without a publish record: exit %d\n%s%s", res.Code, res.Out, res.ErrOut)
			}

			res = cmdtest.Run(t, env, "", "trace", "--prefix", prefix, "--correlation-id", "corr-nobody")
			if res.Code != 1 || !strings.Contains(res.ErrOut, `no audit records for correlation id "corr-nobody"`) {
				t.Errorf("unknown id: exit %d %s", res.Code, res.ErrOut)
			}
		})
	}
}

func TestTraceCommandUsage(t *testing.T) {
	env := map[string]string{"HOTELBUS_BROKERS": "127.0.0.1:1"}
	if r := cmdtest.Run(t, env, "", "trace"); r.Code != 2 || !strings.Contains(r.ErrOut, "--correlation-id is required") {
		t.Errorf("without an id: %d %s", r.Code, r.ErrOut)
	}
	if r := cmdtest.Run(t, env, "", "trace", "--correlation-id", "x", "--from", "yesterday"); r.Code != 2 || !strings.Contains(r.ErrOut, "--from") {
		t.Errorf("bad --from: %d %s", r.Code, r.ErrOut)
	}
}

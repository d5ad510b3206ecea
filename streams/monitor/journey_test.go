package monitor_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/monitor"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// journeyRecords is one booking's journey as the systems audit it: hotel-pms publishes
// reservation.created; hotel-member handles it at once; hotel-common's chain fails once and handles
// it on the next run (attempt 2); hotel-member then publishes member.status_changed, which hotel-pms
// dead-letters after three attempts and hotel-common has not handled yet. Records of another
// correlation id are mixed in, and the slice is not in time order.
func journeyRecords(cat *topics.Catalog, t0 time.Time) []streams.AuditRecord {
	group := func(s string) string { sys, _ := cat.System(s); return sys.Group }
	resTopic, _ := cat.TopicFor("reservation.created")
	memTopic, _ := cat.TopicFor("member.status_changed")
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	res := func(a streams.AuditRecord) streams.AuditRecord {
		a.EventID, a.EventType, a.TenantID, a.CorrelationID, a.Topic, a.Partition, a.Offset = "e-1", "reservation.created", "hotel-kyoto", "corr-A", resTopic.Name, 1, 7
		return a
	}
	mem := func(a streams.AuditRecord) streams.AuditRecord {
		a.EventID, a.EventType, a.TenantID, a.CorrelationID, a.Topic, a.Partition, a.Offset = "e-2", "member.status_changed", "hotel-kyoto", "corr-A", memTopic.Name, 0, 3
		return a
	}
	return []streams.AuditRecord{
		res(streams.AuditRecord{Kind: streams.AuditHandled, At: at(40), System: "hotel-common", Group: group("hotel-common"), Outcome: streams.OutcomeHandled, Attempt: 2, LatencyMs: 40}),
		res(streams.AuditRecord{Kind: streams.AuditPublished, At: at(0), System: "hotel-pms", Outcome: streams.OutcomePublished}),
		res(streams.AuditRecord{Kind: streams.AuditHandled, At: at(12), System: "hotel-member", Group: group("hotel-member"), Outcome: streams.OutcomeHandled, Attempt: 1, LatencyMs: 12}),
		res(streams.AuditRecord{Kind: streams.AuditHandled, At: at(15), System: "hotel-common", Group: group("hotel-common"), Outcome: streams.OutcomeFailed, Attempt: 1, LatencyMs: 15,
			Error: "redis: connection refused"}),
		{Kind: streams.AuditPublished, At: at(5), System: "hotel-saas", Outcome: streams.OutcomePublished, EventID: "e-other", EventType: "service.ordered",
			TenantID: "hotel-kyoto", CorrelationID: "corr-B"},
		mem(streams.AuditRecord{Kind: streams.AuditPublished, At: at(20), System: "hotel-member", Outcome: streams.OutcomePublished}),
		mem(streams.AuditRecord{Kind: streams.AuditHandled, At: at(90), System: "hotel-pms", Group: group("hotel-pms"), Outcome: streams.OutcomeDeadLettered, Attempt: 3, LatencyMs: 70,
			Error: "retries-exhausted"}),
	}
}

// wantJourney is journeyRecords' corr-A journey, written out by hand.
func wantJourney(cat *topics.Catalog, t0 time.Time) *monitor.Journey {
	recs := journeyRecords(cat, t0)
	group := func(s string) string { sys, _ := cat.System(s); return sys.Group }
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	return &monitor.Journey{
		CorrelationID: "corr-A",
		Systems:       []string{"hotel-common", "hotel-member", "hotel-pms"},
		Records:       []streams.AuditRecord{recs[1], recs[2], recs[3], recs[5], recs[0], recs[6]},
		Events: []monitor.JourneyEvent{
			{EventID: "e-1", EventType: "reservation.created", TenantID: "hotel-kyoto", Published: &recs[1], Deliveries: []monitor.Delivery{
				{System: "hotel-common", Group: group("hotel-common"), Outcome: streams.OutcomeHandled, Attempts: 2, Runs: 2, First: at(15), Last: at(40), LatencyMs: 40},
				{System: "hotel-member", Group: group("hotel-member"), Outcome: streams.OutcomeHandled, Attempts: 1, Runs: 1, First: at(12), Last: at(12), LatencyMs: 12},
			}},
			{EventID: "e-2", EventType: "member.status_changed", TenantID: "hotel-kyoto", Published: &recs[5], Deliveries: []monitor.Delivery{
				{System: "hotel-common", Group: group("hotel-common"), Outcome: monitor.OutcomePending},
				{System: "hotel-pms", Group: group("hotel-pms"), Outcome: streams.OutcomeDeadLettered, Attempts: 3, Runs: 1, First: at(90), Last: at(90), LatencyMs: 70,
					Error: "retries-exhausted"},
			}},
		},
	}
}

func checkJourney(t *testing.T, got, want *monitor.Journey) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("journey:\n got %s\nwant %s", g, w)
	}
}

// TestBuildJourney: published by whom, handled by which groups (the last outcome, the highest
// attempt), and the catalog's subscribers that have no record yet as pending; hotel-saas, which
// subscribes to neither type, does not appear.
func TestBuildJourney(t *testing.T) {
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 9, 15, 0, 0, time.UTC)
	checkJourney(t, monitor.BuildJourney(cat, "corr-A", journeyRecords(cat, t0)), wantJourney(cat, t0))
	if j := monitor.BuildJourney(cat, "corr-none", journeyRecords(cat, t0)); len(j.Events) != 0 || len(j.Records) != 0 {
		t.Errorf("journey of an unknown id: %+v", j)
	}
}

// TestReadJourney writes the audit records to the audit topic (keyed by correlation id, as the
// contract says), reads the journey back directly and through the dashboard's API.
func TestReadJourney(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			r := newRig(t, b)
			t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
			// Written in time order, as writers append them, spread over the partitions.
			recs := journeyRecords(r.cat, t0)
			slices.SortFunc(recs, func(a, b streams.AuditRecord) int { return a.At.Compare(b.At) })
			for i, a := range recs {
				rec := r.auditRecord(t, a)
				rec.Partition = int32(i % 3)
				r.produce(t, rec)
			}
			// A record under the id that is no audit record is counted, not fatal.
			r.produce(t, &kgo.Record{Topic: r.cat.AuditTopic, Partition: 2, Key: []byte("corr-A"), Value: []byte("not json"), Timestamp: t0})
			want := wantJourney(r.cat, t0)
			want.Undecodable = 1
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			j, err := monitor.ReadJourney(ctx, b.Client(t), r.cat, "corr-A", time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			checkJourney(t, j, want)
			// From a time after the first event: only e-2's records remain.
			j, err = monitor.ReadJourney(ctx, b.Client(t), r.cat, "corr-A", t0.Add(20*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if len(j.Records) != 3 || len(j.Events) != 2 || j.Events[0].EventID != "e-2" {
				t.Errorf("journey from +20ms: %d records, events %+v", len(j.Records), j.Events)
			}

			_, srv := r.start(t, monitor.Config{Interval: time.Hour})
			code, body := get(t, srv.URL+"/api/journey?correlationId=corr-A")
			if code != http.StatusOK {
				t.Fatalf("/api/journey: %d %s", code, body)
			}
			var got monitor.Journey
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			checkJourney(t, &got, want)
			if code, _ := get(t, srv.URL+"/api/journey"); code != http.StatusBadRequest {
				t.Errorf("/api/journey without an id: %d", code)
			}
		})
	}
}

package monitor_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/monitor"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestJourneyFromAuditLog reads the journey that the platform's own audit writers leave: a
// hotel-pms producer publishes reservation.created through streams.AuditLog, and hotel-member's
// consumer handles it with the AuditLog middleware. hotel-common, which subscribes to everything,
// runs no consumer: it is pending.
func TestJourneyFromAuditLog(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			r := newRig(t, b)
			reg, _ := streamstest.Registry(t)
			set := streamstest.RegisterSchemas(t, reg, r.cat)
			serde, err := streams.NewSerde(reg, set, r.cat)
			if err != nil {
				t.Fatal(err)
			}
			p, err := streams.NewProducer("hotel-pms", serde, streams.Brokers(b.Brokers...)) // it writes the publish audit records
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			v, _ := set.Latest("reservation.created")
			env, err := serde.ParseJSON(v.Example)
			if err != nil {
				t.Fatal(err)
			}
			env.EventID, env.Metadata.Source, env.Metadata.CorrelationID = "", "", "corr-e2e"
			res, err := p.Publish(context.Background(), env)
			if err != nil {
				t.Fatal(err)
			}

			conAudit, err := streams.NewAuditLog(streamstest.Writer(t, b, r.cat, "hotel-member"), nil)
			if err != nil {
				t.Fatal(err)
			}
			c, err := streams.NewConsumer("hotel-member", serde, streams.Brokers(b.Brokers...), streams.Use(conAudit.Middleware()),
				streams.Logger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			handled := make(chan struct{}, 1)
			c.HandleType("reservation.created", func(context.Context, *streams.Message) error {
				select {
				case handled <- struct{}{}:
				default:
				}
				return nil
			})
			done := make(chan error, 1)
			go func() { done <- c.Run(context.Background()) }()
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				_ = c.Close(ctx)
				<-done
			}()
			select {
			case <-handled:
			case <-time.After(time.Minute):
				t.Fatal("the consumer never handled the event")
			}

			var j *monitor.Journey
			streamstest.Eventually(t, time.Minute, "the handled record in the audit log", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if j, err = monitor.ReadJourney(ctx, b.Client(t), r.cat, "corr-e2e", time.Time{}); err != nil {
					t.Fatal(err)
				}
				return len(j.Records) == 2
			})
			if len(j.Events) != 1 || j.Undecodable != 0 {
				t.Fatalf("journey %+v", j)
			}
			e := j.Events[0]
			if e.EventID != env.EventID || e.EventType != "reservation.created" || e.Published == nil || e.Published.System != "hotel-pms" ||
				e.Published.Offset != res.Offset || e.Published.Partition != res.Partition {
				t.Errorf("event %+v, published %+v; want %s published by hotel-pms at %d@%d", e, e.Published, env.EventID, res.Partition, res.Offset)
			}
			if len(e.Deliveries) != 2 || e.Deliveries[0].System != "hotel-common" || e.Deliveries[0].Outcome != monitor.OutcomePending ||
				e.Deliveries[1].System != "hotel-member" || e.Deliveries[1].Outcome != streams.OutcomeHandled || e.Deliveries[1].Attempts != 1 {
				t.Errorf("deliveries %+v", e.Deliveries)
			}
		})
	}
}

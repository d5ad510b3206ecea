package streams_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// metricValue returns the value of the series name{labels} in reg (a counter's or gauge's value, a
// histogram's sample count), or -1 when there is no such series.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// TestMetricsAndAuditAreExact publishes known traffic (50 events, 5 of them published twice with
// the same eventId) and consumes it with handlers that fail permanently for 3 events and once,
// transiently, for 4 others. Every metric and the audit log count exactly that.
func TestMetricsAndAuditAreExact(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			serde, cat := isolated(t, b)
			reg := prometheus.NewRegistry()
			mt, err := streams.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			// the producer writes the publish audit records itself (PublishAudit's default)
			p, err := streams.NewProducer("hotel-saas", serde, streams.Brokers(b.Brokers...), streams.Observe(mt))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			base := example(t, serde, "service.ordered")
			var ids []string
			var envs []*streams.Envelope
			for i := range 50 {
				env := *base
				env.Data = copyData(base.Data)
				env.EventID, env.Metadata.Source = "", ""
				env.Metadata.TenantID = fmt.Sprintf("tenant-%02d", i%10)
				if _, err := p.Publish(context.Background(), &env); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, env.EventID)
				envs = append(envs, &env)
			}
			for _, env := range envs[10:15] { // the same events again: dedup makes them duplicates
				again := *env
				if _, err := p.Publish(context.Background(), &again); err != nil {
					t.Fatal(err)
				}
			}
			permanent := map[string]bool{ids[20]: true, ids[31]: true, ids[42]: true}
			transient := map[string]bool{ids[1]: true, ids[2]: true, ids[3]: true, ids[4]: true}

			rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
			t.Cleanup(func() { rdb.Close() })
			sys, _ := cat.System("hotel-pms")
			dedup, err := streams.NewDedup(rdb, sys.Group)
			if err != nil {
				t.Fatal(err)
			}
			w := streamstest.Writer(t, b, cat, "hotel-pms")
			dl, err := streams.NewDeadLetters(w, sys.DeadLetterTopic, streams.DeadLetterLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			conAudit, err := streams.NewAuditLog(w, nil)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			failed := map[string]bool{}
			r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
				c.HandleType("service.ordered", func(_ context.Context, m *streams.Message) error {
					mu.Lock()
					defer mu.Unlock()
					switch id := m.Envelope.EventID; {
					case permanent[id]:
						return streams.Permanent(errors.New("unknown room"))
					case transient[id] && !failed[id]:
						failed[id] = true
						return errors.New("PMS busy")
					}
					return nil
				})
			}, streams.Use(mt.Middleware(), conAudit.Middleware(), dedup.Middleware(), dl.Middleware(),
				streams.Retry(streams.RetryBackoff(time.Millisecond, 5*time.Millisecond))), streams.UsePreparer(dedup))
			handled := func(outcome string) float64 {
				return metricValue(t, reg, "hotelbus_events_handled_total", map[string]string{"group": sys.Group, "outcome": outcome})
			}
			eventually(t, time.Minute, "55 records finished", func() bool {
				return handled("handled")+handled("duplicate")+handled("dead-lettered") >= 55
			})
			r.stop(t)

			group := map[string]string{"group": sys.Group, "event_type": "service.ordered"}
			for name, want := range map[string]float64{
				"published":     55,
				"handled":       47,
				"duplicate":     5,
				"dead-lettered": 3,
				"consumed":      55,
				"retries":       4,
				"dlq permanent": 3,
				"dedup hits":    5,
				"latency count": 47,
				"duration":      55,
			} {
				var got float64
				switch name {
				case "published":
					got = metricValue(t, reg, "hotelbus_events_published_total", map[string]string{"system": "hotel-saas", "event_type": "service.ordered", "outcome": "published"})
				case "handled", "duplicate", "dead-lettered":
					got = handled(name)
				case "consumed":
					got = metricValue(t, reg, "hotelbus_events_consumed_total", group)
				case "retries":
					got = metricValue(t, reg, "hotelbus_retries_total", group)
				case "dlq permanent":
					got = metricValue(t, reg, "hotelbus_dead_letters_total", map[string]string{"group": sys.Group, "error_class": streams.ClassPermanent})
				case "dedup hits":
					got = metricValue(t, reg, "hotelbus_dedup_hits_total", map[string]string{"group": sys.Group})
				case "latency count":
					got = metricValue(t, reg, "hotelbus_end_to_end_latency_seconds", group)
				case "duration":
					got = metricValue(t, reg, "hotelbus_handler_duration_seconds", group)
				}
				if got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}

			if err := conAudit.Flush(context.Background()); err != nil || conAudit.Dropped()+conAudit.Failed() != 0 {
				t.Fatalf("audit flush: %v, %d dropped, %d failed", err, conAudit.Dropped(), conAudit.Failed())
			}
			kinds := map[string]int{}
			for _, rec := range consume(t, b, 110, cat.AuditTopic) {
				ar, err := streams.ParseAuditRecord(rec.Value)
				if err != nil {
					t.Fatal(err)
				}
				kinds[ar.Kind+"/"+ar.Outcome]++
				if string(rec.Key) != ar.CorrelationID || ar.EventType != "service.ordered" || ar.TenantID == "" {
					t.Fatalf("audit record %+v under key %q", ar, rec.Key)
				}
			}
			want := map[string]int{"published/published": 55, "handled/handled": 47, "handled/duplicate": 5, "handled/dead-lettered": 3}
			if fmt.Sprint(kinds) != fmt.Sprint(want) {
				t.Errorf("audit records %v, want %v", kinds, want)
			}
		})
	}
}

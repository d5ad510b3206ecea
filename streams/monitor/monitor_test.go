package monitor_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/monitor"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

func series(name string, labels ...string) string {
	var parts []string
	for i := 0; i < len(labels); i += 2 {
		parts = append(parts, fmt.Sprintf("%s=%q", labels[i], labels[i+1]))
	}
	if len(parts) == 0 {
		return name
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// TestMetricsExact produces known traffic, commits known offsets and writes known dead letters
// before the monitor starts (it polls once: the hour-long interval never comes), and checks the
// exported series and the snapshot to the exact value.
func TestMetricsExact(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			r := newRig(t, b)
			topic := r.topicOf(t, "reservation.created")
			member, common, saas := r.system(t, "hotel-member"), r.system(t, "hotel-common"), r.system(t, "hotel-saas")
			base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
			for i := range 6 {
				r.produce(t, r.event(t, "reservation.created", "hotel-kyoto", fmt.Sprintf("corr-%d", i), 0, base.Add(time.Duration(i)*time.Second)))
			}
			for i := range 2 {
				r.produce(t, r.event(t, "reservation.created", "hotel-osaka", fmt.Sprintf("corr-o%d", i), 1, base.Add(time.Duration(i)*time.Second)))
			}
			r.commit(t, member.Group, topic, map[int32]int64{0: 2, 1: 2})
			r.commit(t, common.Group, topic, map[int32]int64{0: 6})
			r.produce(t, r.deadLetter(t, "hotel-member", "permanent"), r.deadLetter(t, "hotel-member", "permanent"),
				r.deadLetter(t, "hotel-member", "decode"), r.deadLetter(t, "hotel-pms", "retries-exhausted"))

			_, srv := r.start(t, monitor.Config{Interval: time.Hour})
			var s monitor.Snapshot
			streamstest.Eventually(t, time.Minute, "the first poll, the dead letters and the tail", func() bool {
				s = snapshot(t, srv.URL, "")
				return !s.At.IsZero() && systemView(s, "hotel-member").DeadLetters == 3 && systemView(s, "hotel-pms").DeadLetters == 1 && len(s.Tail) == 8
			})
			got := metrics(t, srv.URL)
			wantSeconds := float64(s.At.Sub(base.Add(2*time.Second)).Milliseconds()) / 1000
			want := map[string]float64{
				series("hotelbus_consumer_group_lag", "group", member.Group, "partition", "0", "topic", topic):         4,
				series("hotelbus_consumer_group_lag", "group", member.Group, "partition", "1", "topic", topic):         0,
				series("hotelbus_consumer_group_lag", "group", common.Group, "partition", "0", "topic", topic):         0,
				series("hotelbus_consumer_group_lag", "group", common.Group, "partition", "1", "topic", topic):         2,
				series("hotelbus_consumer_group_lag", "group", saas.Group, "partition", "0", "topic", topic):           6,
				series("hotelbus_consumer_group_lag", "group", saas.Group, "partition", "1", "topic", topic):           2,
				series("hotelbus_consumer_group_lag_seconds", "group", member.Group, "partition", "0", "topic", topic): wantSeconds,
				series("hotelbus_consumer_group_lag_seconds", "group", member.Group, "partition", "1", "topic", topic): 0,
				series("hotelbus_consumer_group_lag_seconds", "group", common.Group, "partition", "0", "topic", topic): 0,
				series("hotelbus_consumer_group_members", "group", member.Group):                                       0,
				series("hotelbus_consumer_group_state", "group", member.Group, "state", "Empty"):                       1,
				series("hotelbus_consumer_group_state", "group", member.Group, "state", "Stable"):                      0,
				series("hotelbus_consumer_group_state", "group", saas.Group, "state", "NotStarted"):                    1,
				series("hotelbus_consumer_group_state", "group", saas.Group, "state", "Dead"):                          0,
				series("hotelbus_monitor_dead_letters", "error_class", "permanent", "system", "hotel-member"):          2,
				series("hotelbus_monitor_dead_letters", "error_class", "decode", "system", "hotel-member"):             1,
				series("hotelbus_monitor_dead_letters", "error_class", "retries-exhausted", "system", "hotel-pms"):     1,
				series("hotelbus_monitor_poll_errors_total"):                                                           0,
				series("hotelbus_privacy_key_topic_issues"):                                                            0,
			}
			for k, w := range want {
				v, ok := got[k]
				if !ok {
					t.Errorf("missing series %s", k)
					continue
				}
				if f, err := strconv.ParseFloat(v, 64); err != nil || f != w {
					t.Errorf("%s = %s, want %v", k, v, w)
				}
			}
			// No other lag series: three partitions were committed to; a group that never committed on a
			// partition of a topic it reads (hotel-common's partition 1, every partition of hotel-saas,
			// which never started) has all its records pending; empty partitions add nothing.
			n := 0
			for k := range got {
				if strings.HasPrefix(k, "hotelbus_consumer_group_lag{") {
					n++
				}
			}
			if n != 6 {
				t.Errorf("%d hotelbus_consumer_group_lag series, want 6", n)
			}
			if wantSeconds < 58 {
				t.Errorf("time lag %.3f s, want about 58 s", wantSeconds)
			}

			// The snapshot's numbers come from the same poll.
			pms, mem := systemView(s, "hotel-pms"), systemView(s, "hotel-member")
			if pms.Published != 8 || mem.Consumed != 4 || mem.Lag != 4 || mem.LagSeconds != wantSeconds || mem.GroupState != "Empty" {
				t.Errorf("systems: hotel-pms %+v, hotel-member %+v", pms, mem)
			}
			for _, f := range s.Flows {
				switch {
				case f.From == "hotel-pms" && f.To == "hotel-member":
					if f.Consumed != 4 || f.Lag != 4 || f.LagSeconds != wantSeconds {
						t.Errorf("flow %+v", f)
					}
				case f.From == "hotel-pms" && f.To == "hotel-common":
					if f.Consumed != 6 || f.Lag != 2 {
						t.Errorf("flow %+v", f)
					}
				case f.Consumed != 0:
					t.Errorf("flow %s -> %s consumed %d, want 0", f.From, f.To, f.Consumed)
				}
			}
			if len(s.DeadLetters) != 4 {
				t.Errorf("dead letters of %d systems, want 4", len(s.DeadLetters))
			}
			for _, d := range s.DeadLetters {
				if d.System == "hotel-member" && (d.Total != 3 || len(d.ByClass) != 2 || d.ByClass[0] != (monitor.ClassCount{Class: "permanent", Count: 2})) {
					t.Errorf("hotel-member dead letters %+v", d)
				}
			}
		})
	}
}

// TestTail shows the events from their headers while the audit topic is empty, filters them, and
// switches to the audit records once there are some.
func TestTail(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			r := newRig(t, b)
			base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
			r.produce(t,
				r.event(t, "reservation.created", "hotel-kyoto", "corr-1", 0, base),
				r.event(t, "reservation.canceled", "hotel-kyoto", "corr-2", 0, base.Add(time.Second)),
				r.event(t, "customer.updated", "hotel-osaka", "corr-3", 0, base.Add(2*time.Second)))
			_, srv := r.start(t, monitor.Config{Interval: time.Hour})
			var s monitor.Snapshot
			streamstest.Eventually(t, time.Minute, "three events in the tail", func() bool {
				s = snapshot(t, srv.URL, "")
				return len(s.Tail) == 3
			})
			e := s.Tail[2]
			if s.TailSource != "events" || s.Tail[0].CorrelationID != "corr-3" || e.EventType != "reservation.created" || e.System != "hotel-pms" ||
				e.TenantID != "hotel-kyoto" || e.Kind != streams.AuditPublished || e.Outcome != streams.OutcomePublished || !e.Time.Equal(base) || e.Offset != 0 {
				t.Errorf("tail from %q: %+v", s.TailSource, s.Tail)
			}
			for query, want := range map[string][]string{
				"tenant=hotel-osaka":                 {"corr-3"},
				"type=reservation.*":                 {"corr-2", "corr-1"},
				"type=reservation.created":           {"corr-1"},
				"correlationId=corr-2":               {"corr-2"},
				"tenant=hotel-kyoto&type=customer.*": {},
			} {
				var got []string
				for _, e := range snapshot(t, srv.URL, query).Tail {
					got = append(got, e.CorrelationID)
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("tail ?%s = %v, want %v", query, got, want)
				}
			}

			r.produce(t, r.auditRecord(t, streams.AuditRecord{Kind: streams.AuditHandled, At: base.Add(3 * time.Second), System: "hotel-member",
				Group: r.system(t, "hotel-member").Group, Outcome: streams.OutcomeDeadLettered, EventID: "e-9", EventType: "reservation.created",
				TenantID: "hotel-kyoto", CorrelationID: "corr-9", Attempt: 3, LatencyMs: 1250, Error: "retries-exhausted"}))
			streamstest.Eventually(t, time.Minute, "the tail to show the audit log", func() bool {
				s = snapshot(t, srv.URL, "")
				return s.TailSource == "audit"
			})
			if len(s.Tail) != 1 || s.Tail[0].EventID != "e-9" || s.Tail[0].Kind != streams.AuditHandled || s.Tail[0].Outcome != streams.OutcomeDeadLettered ||
				s.Tail[0].Attempt != 3 || s.Tail[0].Error != "retries-exhausted" || !s.Tail[0].Time.Equal(base.Add(3*time.Second)) {
				t.Errorf("audit tail %+v", s.Tail)
			}
		})
	}
}

// TestEventsStream follows the server-sent snapshots while events are produced and consumed: the
// published count, the lag and the rates move with the traffic, and a filtered stream carries only
// the tail it asked for.
func TestEventsStream(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			r := newRig(t, b)
			topic := r.topicOf(t, "reservation.created")
			member := r.system(t, "hotel-member")
			r.commit(t, member.Group, topic, map[int32]int64{0: 0})
			_, srv := r.start(t, monitor.Config{Interval: 100 * time.Millisecond, RateWindow: 5 * time.Second})
			all := events(t, srv.URL+"/events")
			osaka := events(t, srv.URL+"/events?tenant=hotel-osaka")
			first := next(t, all, time.Minute, "a first snapshot", func(s monitor.Snapshot) bool { return !s.At.IsZero() })
			if p := systemView(first, "hotel-pms").Published; p != 0 {
				t.Fatalf("published before any traffic: %d", p)
			}
			now := time.Now()
			for i := range 5 {
				r.produce(t, r.event(t, "reservation.created", "hotel-kyoto", fmt.Sprintf("k%d", i), 0, now))
			}
			r.produce(t, r.event(t, "reservation.created", "hotel-osaka", "o1", 0, now))
			s := next(t, all, time.Minute, "6 published, lag 6", func(s monitor.Snapshot) bool {
				return systemView(s, "hotel-pms").Published == 6 && systemView(s, "hotel-member").Lag == 6 && len(s.Tail) == 6
			})
			if v := systemView(s, "hotel-pms"); v.PublishRate <= 0 {
				t.Errorf("publish rate %v after 6 events", v.PublishRate)
			}
			if s.Version <= first.Version {
				t.Errorf("version %d after %d", s.Version, first.Version)
			}
			r.commit(t, member.Group, topic, map[int32]int64{0: 6})
			s = next(t, all, time.Minute, "the group caught up", func(s monitor.Snapshot) bool {
				v := systemView(s, "hotel-member")
				return v.Lag == 0 && v.Consumed == 6
			})
			if v := systemView(s, "hotel-member"); v.ConsumeRate <= 0 || v.LagSeconds != 0 {
				t.Errorf("hotel-member after catching up: %+v", v)
			}
			o := next(t, osaka, time.Minute, "the osaka event", func(s monitor.Snapshot) bool { return len(s.Tail) > 0 })
			if len(o.Tail) != 1 || o.Tail[0].TenantID != "hotel-osaka" {
				t.Errorf("filtered stream tail %+v", o.Tail)
			}
		})
	}
}

// TestHealth: /healthz answers at once; /readyz only after a successful poll.
func TestHealth(t *testing.T) {
	b := streamstest.Kfake(t)
	r := newRig(t, b)
	idle, err := monitor.New(monitor.Config{Catalog: r.cat, Client: b.Client(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(idle.Handler())
	defer srv.Close()
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz %d", code)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("readyz before any poll: %d %s", code, body)
	}
	_, running := r.start(t, monitor.Config{Interval: 50 * time.Millisecond})
	streamstest.Eventually(t, time.Minute, "readyz 200", func() bool {
		code, _ := get(t, running.URL+"/readyz")
		return code == http.StatusOK
	})
	code, body := get(t, running.URL+"/")
	if code != http.StatusOK || !strings.Contains(string(body), "<title>hotelbus monitor</title>") {
		t.Errorf("dashboard: %d %.100s", code, body)
	}
	if code, _ := get(t, running.URL+"/app.js"); code != http.StatusOK {
		t.Errorf("app.js: %d", code)
	}
}

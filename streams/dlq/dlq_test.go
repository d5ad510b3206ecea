package dlq_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/dlq"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// specs are the dead letters of the list and redrive tests, over four hours from t0.
func specs(t0 time.Time) []spec {
	m := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	return []spec{
		{eventType: "reservation.created", tenant: "tenant-a", class: streams.ClassPermanent, at: m(5)},
		{eventType: "reservation.created", tenant: "tenant-b", class: streams.ClassPermanent, at: m(10)},
		{eventType: "reservation.canceled", tenant: "tenant-a", class: streams.ClassInvalidEvent, at: m(70), staleRedrive: true},
		{eventType: "billing.paid", tenant: "tenant-c", class: streams.ClassRetriesExhausted, at: m(75)},
		{eventType: "checkin_checkout.checked_in", tenant: "tenant-a", class: streams.ClassPermanent, at: m(130)},
		{eventType: "feedback.submitted", tenant: "tenant-b", class: streams.ClassDecode, at: m(135)},
		{eventType: "reservation.created", tenant: "tenant-c", class: streams.ClassRetriesExhausted, at: m(190)},
	}
}

// countsOf counts keys like Summary does: largest count first, then by key.
func countsOf(keys []string) []dlq.Count {
	m := map[string]int64{}
	for _, k := range keys {
		m[k]++
	}
	var out []dlq.Count
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, dlq.Count{Key: k, Count: m[k]})
	}
	slices.SortStableFunc(out, func(a, b dlq.Count) int { return int(b.Count - a.Count) })
	return out
}

// TestList: List counts exactly the dead letters written, by event type, error class, tenant and
// hour; every filter selects exactly its dead letters.
func TestList(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := testCtx(t)
			f := newFixture(t, b)
			f.deadLetter(t, specs(f.t0)...)
			q := f.open(t, f.dlqCfg)

			got, err := q.List(ctx, dlq.Filter{}, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			var types, classes, tenants []string
			for _, d := range f.dead {
				types, classes, tenants = append(types, d.eventType), append(classes, d.class), append(tenants, d.tenant)
			}
			want := dlq.Summary{Topic: f.sys.DeadLetterTopic, Total: 7, Undecodable: 1, First: f.dead[0].at, Last: f.dead[6].at,
				BucketSize: "1h0m0s", ByEventType: countsOf(types), ByErrorClass: countsOf(classes), ByTenant: countsOf(tenants),
				ByTime: []dlq.Bucket{{Start: f.t0, Count: 2}, {Start: f.t0.Add(time.Hour), Count: 2},
					{Start: f.t0.Add(2 * time.Hour), Count: 2}, {Start: f.t0.Add(3 * time.Hour), Count: 1}}}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
				t.Fatalf("List:\n got %+v\nwant %+v", got, want)
			}
			if got.ByEventType[0] != (dlq.Count{Key: "reservation.created", Count: 3}) {
				t.Fatalf("ByEventType starts with %v, want reservation.created 3", got.ByEventType[0])
			}

			ref := func(i int) dlq.Ref { return f.dead[i].ref }
			short := ref(5)
			short.Topic = ""
			h := func(n int) time.Time { return f.t0.Add(time.Duration(n) * time.Hour) }
			for _, c := range []struct {
				name string
				f    dlq.Filter
				want []int
				read int64
			}{
				{"all", dlq.Filter{}, []int{0, 1, 2, 3, 4, 5, 6}, 7},
				{"type glob", dlq.Filter{EventTypes: []string{"reservation.*"}}, []int{0, 1, 2, 6}, 7},
				{"class", dlq.Filter{ErrorClasses: []string{streams.ClassPermanent}}, []int{0, 1, 4}, 7},
				{"tenant", dlq.Filter{Tenants: []string{"tenant-a"}}, []int{0, 2, 4}, 7},
				{"time range", dlq.Filter{From: h(1), To: h(3)}, []int{2, 3, 4, 5}, -1},
				{"from", dlq.Filter{From: h(2)}, []int{4, 5, 6}, -1},
				{"refs", dlq.Filter{Refs: []dlq.Ref{ref(3), short}}, []int{3, 5}, -1},
				{"event id", dlq.Filter{EventIDs: []string{f.dead[1].eventID}}, []int{1}, 7},
				{"combined", dlq.Filter{EventTypes: []string{"reservation.*", "billing.*"}, Tenants: []string{"tenant-c"}}, []int{3, 6}, 7},
				{"none", dlq.Filter{Tenants: []string{"tenant-z"}}, nil, 7},
			} {
				var sel []int
				st, err := q.Scan(ctx, c.f, func(d *dlq.DeadLetter) error {
					i := slices.IndexFunc(f.dead, func(l letter) bool { return l.ref == d.Ref })
					if i < 0 {
						t.Fatalf("%s: scanned unknown dead letter %s", c.name, d.Ref)
					}
					sel = append(sel, i)
					return nil
				})
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				slices.Sort(sel)
				if !slices.Equal(sel, c.want) || st.Matched != int64(len(c.want)) {
					t.Errorf("%s: selected %v (matched %d), want %v", c.name, sel, st.Matched, c.want)
				}
				if c.read >= 0 && st.Read != c.read {
					t.Errorf("%s: read %d records, want %d", c.name, st.Read, c.read)
				}
				if c.read < 0 && st.Read >= 7 {
					t.Errorf("%s: read %d records: the whole topic for a bounded selection", c.name, st.Read)
				}
			}
			for name, fl := range map[string]dlq.Filter{
				"bad glob":    {EventTypes: []string{"reservation.["}},
				"other topic": {Refs: []dlq.Ref{{Topic: "hotelbus.dlq.other", Partition: 0, Offset: 1}}},
				"empty range": {From: h(2), To: h(1)},
			} {
				if _, err := q.Scan(ctx, fl, func(*dlq.DeadLetter) error { return nil }); !errors.Is(err, dlq.ErrConfig) {
					t.Errorf("%s: %v, want ErrConfig", name, err)
				}
			}
		})
	}
}

// TestGet: Get parses one dead letter's headers and decodes its envelope, reports an undecodable
// value's error, and ErrNotFound for a position without a dead letter.
func TestGet(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := testCtx(t)
			f := newFixture(t, b)
			f.deadLetter(t, specs(f.t0)[2:6]...)
			q := f.open(t, f.dlqCfg)
			topicOf := func(et string) string { tp, _ := f.cat.TopicFor(et); return tp.Name }

			l := f.dead[1] // billing.paid, retries exhausted after 2 attempts
			d, err := q.Get(ctx, l.ref)
			if err != nil {
				t.Fatal(err)
			}
			if d.Ref != l.ref || !d.Time.Equal(l.at) || d.EventID != l.eventID || d.EventType != "billing.paid" || d.Tenant != "tenant-c" ||
				d.ErrorClass != streams.ClassRetriesExhausted || d.Attempts != 2 || !strings.Contains(d.ErrorMessage, "crm timeout") ||
				d.Group != f.sys.Group || d.Origin.Topic != topicOf("billing.paid") || d.Origin.Partition != 1 || d.Origin.Offset != 101 ||
				!d.OriginTime.Equal(l.at.Add(-time.Minute)) || d.FirstFailure.IsZero() || d.LastFailure.Before(d.FirstFailure) {
				t.Fatalf("Get(%s) = %+v", l.ref, d)
			}
			if d.DecodeErr != nil || d.Envelope == nil || d.Envelope.EventID != l.eventID || d.Envelope.Metadata.TenantID != "tenant-c" {
				t.Fatalf("envelope %+v, decode error %v", d.Envelope, d.DecodeErr)
			}
			if !bytes.Equal(d.Value, l.rec.Value) || len(d.Headers) != len(l.rec.Headers) {
				t.Fatalf("value or headers differ from the written dead letter")
			}

			short := f.dead[3].ref
			short.Topic = ""
			poison, err := q.Get(ctx, short)
			if err != nil {
				t.Fatal(err)
			}
			if poison.Envelope != nil || !errors.Is(poison.DecodeErr, streams.ErrMalformedRecord) || poison.ErrorClass != streams.ClassDecode ||
				poison.EventType != "feedback.submitted" || poison.Attempts != 0 {
				t.Fatalf("undecodable dead letter: %+v", poison)
			}

			plain := f.open(t, dlq.Config{Brokers: b.Brokers})
			if d, err := plain.Get(ctx, l.ref); err != nil || d.Envelope != nil || d.DecodeErr != nil || d.EventID != l.eventID {
				t.Fatalf("Get without a Serde: %+v, %v; want the headers parsed and nothing decoded", d, err)
			}
			missing := l.ref
			missing.Offset = 999
			if _, err := q.Get(ctx, missing); !errors.Is(err, dlq.ErrNotFound) {
				t.Fatalf("Get(%s): %v, want ErrNotFound", missing, err)
			}
		})
	}
}

func TestParseRef(t *testing.T) {
	for in, want := range map[string]dlq.Ref{
		"hotelbus.dlq.hotel-pms/2@118": {Topic: "hotelbus.dlq.hotel-pms", Partition: 2, Offset: 118},
		"0@7":                          {Partition: 0, Offset: 7},
	} {
		got, err := dlq.ParseRef(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v and the same string back", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "t/2", "t/x@1", "/1@2", "1@-2", "t/1@2@3"} {
		if _, err := dlq.ParseRef(bad); err == nil {
			t.Errorf("ParseRef(%q) accepted", bad)
		}
	}
}

// redriveRecords reads the redrive topic and returns its records by HeaderRedriveSource.
func redriveRecords(t *testing.T, f *fixture, n int) map[string][]*kgo.Record {
	t.Helper()
	out := map[string][]*kgo.Record{}
	for _, r := range consumeAll(t, f.b.Brokers, f.sys.RedriveTopic, n) {
		src := streams.Header(r, streams.HeaderRedriveSource)
		out[src] = append(out[src], r)
	}
	return out
}

// checkRedriven checks that r redrives l in run runID at time at: key, value and headers of the
// dead letter (earlier redrive headers dropped) plus the four redrive headers.
func checkRedriven(t *testing.T, r *kgo.Record, l letter, runID string, at time.Time) {
	t.Helper()
	if !bytes.Equal(r.Key, l.rec.Key) || !bytes.Equal(r.Value, l.rec.Value) {
		t.Errorf("%s: key or value changed", l.ref)
	}
	var want []kgo.RecordHeader
	for _, h := range l.rec.Headers {
		if !strings.HasPrefix(h.Key, "hotelbus.redrive.") {
			want = append(want, h)
		}
	}
	want = append(want, kgo.RecordHeader{Key: streams.HeaderRedriveID, Value: []byte(dlq.RedriveID(runID, l.ref))},
		kgo.RecordHeader{Key: streams.HeaderRedriveSource, Value: []byte(l.ref.String())},
		kgo.RecordHeader{Key: streams.HeaderRedriveAt, Value: []byte(at.UTC().Format("2006-01-02T15:04:05.000Z"))},
		kgo.RecordHeader{Key: dlq.HeaderRedriveRun, Value: []byte(runID)})
	if fmt.Sprintf("%q", r.Headers) != fmt.Sprintf("%q", want) {
		t.Errorf("%s: headers\n got %q\nwant %q", l.ref, r.Headers, want)
	}
}

// TestRedrive: a dry run writes nothing; a run writes exactly the selected dead letters to the
// redrive topic; a rerun skips them (also forced with the same run id); a forced new run redrives
// again with new ids; the rate bounds the writes.
func TestRedrive(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := testCtx(t)
			f := newFixture(t, b)
			f.deadLetter(t, specs(f.t0)...)
			now := time.Date(2026, 11, 27, 9, 15, 0, 123_000_000, time.UTC)
			q := f.open(t, dlq.Config{Brokers: b.Brokers, Now: func() time.Time { return now }})
			permanent := dlq.Filter{ErrorClasses: []string{streams.ClassPermanent}}
			outcomes := func(rep dlq.Report) string {
				var s []string
				for _, it := range rep.Items {
					s = append(s, fmt.Sprintf("%s:%s", it.Source, it.Outcome))
				}
				slices.Sort(s)
				return strings.Join(s, " ")
			}
			want := func(o dlq.Outcome, idx ...int) string {
				var s []string
				for _, i := range idx {
					s = append(s, fmt.Sprintf("%s:%s", f.dead[i].ref, o))
				}
				slices.Sort(s)
				return strings.Join(s, " ")
			}

			var streamed []dlq.Item
			rep, err := q.Redrive(ctx, dlq.RedriveOptions{Filter: permanent, DryRun: true, RunID: "run-1",
				OnItem: func(it dlq.Item) { streamed = append(streamed, it) }})
			if err != nil {
				t.Fatal(err)
			}
			if outcomes(rep) != want(dlq.WouldRedrive, 0, 1, 4) || rep.WouldRedrive != 3 || rep.Redriven != 0 || rep.Scanned != 7 || rep.Matched != 3 {
				t.Fatalf("dry run: %s %+v", outcomes(rep), rep)
			}
			if fmt.Sprint(streamed) != fmt.Sprint(rep.Items) {
				t.Fatalf("OnItem saw %v, the report holds %v", streamed, rep.Items)
			}
			consumeAll(t, b.Brokers, f.sys.RedriveTopic, 0)

			rep, err = q.Redrive(ctx, dlq.RedriveOptions{Filter: permanent, RunID: "run-1"})
			if err != nil {
				t.Fatal(err)
			}
			if outcomes(rep) != want(dlq.Redriven, 0, 1, 4) || rep.Redriven != 3 || rep.RunID != "run-1" {
				t.Fatalf("redrive: %s %+v", outcomes(rep), rep)
			}
			recs := redriveRecords(t, f, 3)
			for _, i := range []int{0, 1, 4} {
				l := f.dead[i]
				rs := recs[l.ref.String()]
				if len(rs) != 1 {
					t.Fatalf("%s redriven %d times, want once", l.ref, len(rs))
				}
				checkRedriven(t, rs[0], l, "run-1", now)
				it := rep.Items[slices.IndexFunc(rep.Items, func(it dlq.Item) bool { return it.Source == l.ref })]
				if it.Target == nil || it.Target.Partition != rs[0].Partition || it.Target.Offset != rs[0].Offset || it.RedriveID != dlq.RedriveID("run-1", l.ref) ||
					it.EventID != l.eventID || it.Tenant != l.tenant || it.EventType != l.eventType {
					t.Errorf("item %+v does not describe the record written at %d@%d", it, rs[0].Partition, rs[0].Offset)
				}
			}

			// A rerun skips them; so does a forced rerun of the same run (same redrive ids).
			for name, o := range map[string]dlq.RedriveOptions{"new run": {Filter: permanent}, "same run forced": {Filter: permanent, RunID: "run-1", Force: true}} {
				rep, err = q.Redrive(ctx, o)
				if err != nil || outcomes(rep) != want(dlq.Skipped, 0, 1, 4) {
					t.Fatalf("%s: %s, %v; want all skipped", name, outcomes(rep), err)
				}
				for _, it := range rep.Items {
					if !slices.Equal(it.Previous, []string{dlq.RedriveID("run-1", it.Source)}) {
						t.Errorf("%s: %s previous redrives %v", name, it.Source, it.Previous)
					}
				}
			}
			consumeAll(t, b.Brokers, f.sys.RedriveTopic, 3)

			// Forced in a new run: redriven again with a new id. A stale redrive header is replaced.
			rep, err = q.Redrive(ctx, dlq.RedriveOptions{Filter: dlq.Filter{Refs: []dlq.Ref{f.dead[0].ref, f.dead[2].ref}}, RunID: "run-2", Force: true})
			if err != nil || outcomes(rep) != want(dlq.Redriven, 0, 2) {
				t.Fatalf("forced: %s, %v", outcomes(rep), err)
			}
			recs = redriveRecords(t, f, 5)
			if rs := recs[f.dead[0].ref.String()]; len(rs) != 2 {
				t.Fatalf("%s redriven %d times after the forced run, want 2", f.dead[0].ref, len(rs))
			} else {
				checkRedriven(t, rs[1], f.dead[0], "run-2", now)
			}
			checkRedriven(t, recs[f.dead[2].ref.String()][0], f.dead[2], "run-2", now)

			// The rest, at 20 per second.
			start := time.Now()
			rep, err = q.Redrive(ctx, dlq.RedriveOptions{Rate: 20})
			elapsed := time.Since(start)
			if err != nil || rep.Redriven != 3 || rep.Skipped != 4 || outcomes(rep) != strings.Join(slices.Sorted(func(yield func(string) bool) {
				for _, s := range strings.Fields(want(dlq.Redriven, 3, 5, 6) + " " + want(dlq.Skipped, 0, 1, 2, 4)) {
					if !yield(s) {
						return
					}
				}
			}), " ") {
				t.Fatalf("rest: %s %+v, %v", outcomes(rep), rep, err)
			}
			if min := 2 * 50 * time.Millisecond; elapsed < min {
				t.Fatalf("3 redrives at 20/s took %s, want at least %s", elapsed, min)
			}
			consumeAll(t, b.Brokers, f.sys.RedriveTopic, 8)

			if _, err := q.Redrive(ctx, dlq.RedriveOptions{Rate: -1}); !errors.Is(err, dlq.ErrConfig) {
				t.Fatalf("negative rate: %v, want ErrConfig", err)
			}
		})
	}
}

// TestRedriveNoMatch: an eventId or a position that matches no dead letter fails the redrive with
// ErrNoMatch naming it, while the rest of the selection is redriven; a filter that selects nothing
// fails; selecting everything of an empty selection does not.
func TestRedriveNoMatch(t *testing.T) {
	b := streamstest.Kfake(t)
	ctx := testCtx(t)
	f := newFixture(t, b)
	f.deadLetter(t, specs(f.t0)...)
	q := f.open(t, dlq.Config{Brokers: b.Brokers})
	rep, err := q.Redrive(ctx, dlq.RedriveOptions{Filter: dlq.Filter{EventIDs: []string{f.dead[0].eventID, "no-such-event"}}})
	if !errors.Is(err, dlq.ErrNoMatch) || !strings.Contains(err.Error(), "no dead letter has eventId no-such-event") ||
		strings.Contains(err.Error(), f.dead[0].eventID) || rep.Redriven != 1 {
		t.Errorf("one known and one unknown eventId: %+v, %v; want the known one redriven and ErrNoMatch naming the other", rep, err)
	}
	missing := dlq.Ref{Topic: f.sys.DeadLetterTopic, Partition: f.dead[1].ref.Partition, Offset: 1000}
	_, err = q.Redrive(ctx, dlq.RedriveOptions{DryRun: true, Filter: dlq.Filter{Refs: []dlq.Ref{f.dead[1].ref, missing}}})
	if !errors.Is(err, dlq.ErrNoMatch) || !strings.Contains(err.Error(), "no dead letter has position "+missing.String()+" (partition ") {
		t.Errorf("a position past the end: %v", err)
	}
	_, err = q.Redrive(ctx, dlq.RedriveOptions{DryRun: true, Filter: dlq.Filter{Refs: []dlq.Ref{f.dead[1].ref}, Tenants: []string{"tenant-a"}}})
	if !errors.Is(err, dlq.ErrNoMatch) || !strings.Contains(err.Error(), "not selected by the other filters") {
		t.Errorf("a position the tenant filter excludes: %v", err)
	}
	_, err = q.Redrive(ctx, dlq.RedriveOptions{DryRun: true, Filter: dlq.Filter{Tenants: []string{"tenant-z"}}})
	if !errors.Is(err, dlq.ErrNoMatch) || !strings.Contains(err.Error(), "none of the 7 dead letters read matches the filter") {
		t.Errorf("an unknown tenant: %v", err)
	}
	if _, err := q.Redrive(ctx, dlq.RedriveOptions{DryRun: true, Filter: dlq.Filter{ErrorClasses: []string{streams.ClassPermanent}}}); err != nil {
		t.Errorf("a filter that matches: %v", err)
	}
	if _, err := q.Redrive(ctx, dlq.RedriveOptions{DryRun: true}); err != nil {
		t.Errorf("everything: %v", err)
	}
}

// TestRedriveID: the id depends on both the run and the dead letter, and on nothing else.
func TestRedriveID(t *testing.T) {
	a := dlq.Ref{Topic: "hotelbus.dlq.hotel-pms", Partition: 1, Offset: 7}
	b := a
	b.Offset = 8
	first, again := dlq.RedriveID("r", a), dlq.RedriveID("r", a)
	if first != again || first == dlq.RedriveID("r", b) ||
		dlq.RedriveID("r", a) == dlq.RedriveID("s", a) {
		t.Fatal("RedriveID is not a deterministic function of run and dead letter")
	}
}

// BenchmarkScan reads a dead-letter topic of 2000 dead letters, decoding every value or only
// parsing the headers.
func BenchmarkScan(b *testing.B) {
	for _, be := range streamstest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			ctx := testCtx(b)
			f := newFixture(b, be)
			f.deadLetter(b, spec{eventType: "reservation.created", tenant: "tenant-0", class: streams.ClassPermanent, at: f.t0})
			tmpl := f.dead[0].rec
			const n = 2000
			recs := make([]*kgo.Record, n)
			for i := range recs {
				recs[i] = &kgo.Record{Topic: tmpl.Topic, Key: fmt.Appendf(nil, "tenant-%d", i%50), Value: tmpl.Value, Headers: tmpl.Headers}
			}
			if err := f.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			for _, mode := range []struct {
				name string
				cfg  dlq.Config
			}{{"decode", f.dlqCfg}, {"headers", dlq.Config{Brokers: be.Brokers}}} {
				b.Run(mode.name, func(b *testing.B) {
					q := f.open(b, mode.cfg)
					b.ReportAllocs()
					for b.Loop() {
						st, err := q.Scan(ctx, dlq.Filter{}, func(*dlq.DeadLetter) error { return nil })
						if err != nil || st.Read != n+1 {
							b.Fatalf("read %d, %v", st.Read, err)
						}
					}
					b.ReportMetric(float64(n+1)*float64(b.N)/b.Elapsed().Seconds(), "deadletters/s")
				})
			}
		})
	}
}

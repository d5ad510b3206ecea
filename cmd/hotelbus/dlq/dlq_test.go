package dlq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

const system = "hotel-member"

// rig is one system's topics, unique to the test, on a backend, with a registry and the
// environment that points the command at them.
type rig struct {
	b      streamstest.Backend
	prefix string
	cat    *topics.Catalog
	sys    topics.System
	serde  *streams.Serde
	env    map[string]string
	adm    *kadm.Client
}

func newRig(t *testing.T, b streamstest.Backend) *rig {
	t.Helper()
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{b: b, prefix: streamstest.Name(t, "cmd") + "."}
	r.cat = streamstest.PrefixedCatalog(t, b, r.prefix)
	r.sys, _ = r.cat.System(system)
	src, url := streamstest.Registry(t)
	if r.serde, err = streams.NewSerde(src, set, r.cat, streams.AutoRegister(true)); err != nil {
		t.Fatal(err)
	}
	r.env = map[string]string{"HOTELBUS_BROKERS": strings.Join(b.Brokers, ","), "HOTELBUS_REGISTRY": url}
	r.adm = kadm.NewClient(b.Client(t))
	return r
}

// run executes `hotelbus dlq args... --prefix <rig prefix>`.
func (r *rig) run(t *testing.T, args ...string) cmdtest.Result {
	t.Helper()
	return cmdtest.Run(t, r.env, "", append(append([]string{"dlq"}, args...), "--prefix", r.prefix)...)
}

// records returns the number of records in topic.
func (r *rig) records(t *testing.T, topic string) int64 {
	t.Helper()
	ends, err := r.adm.ListEndOffsets(context.Background(), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// waitCommitted waits until group has committed topic up to its end.
func (r *rig) waitCommitted(t *testing.T, group, topic string) {
	t.Helper()
	eventually(t, time.Minute, "the group to commit "+topic+" to its end", func() bool {
		ends, err := r.adm.ListEndOffsets(context.Background(), topic)
		if err != nil {
			return false
		}
		committed, err := r.adm.FetchOffsets(context.Background(), group)
		if err != nil {
			return false
		}
		ok := true
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset == 0 {
				return
			}
			c, found := committed.Lookup(topic, o.Partition)
			ok = ok && found && c.At == o.Offset
		})
		return ok
	})
}

var eventually = streamstest.Eventually

// listJSON is the part of `dlq list --json` the tests read.
type listJSON struct {
	Topic        string `json:"topic"`
	Total        int64  `json:"total"`
	Undecodable  int64  `json:"undecodable"`
	ByEventType  []kv   `json:"byEventType"`
	ByErrorClass []kv   `json:"byErrorClass"`
	ByTenant     []kv   `json:"byTenant"`
	ByTime       []struct {
		Start time.Time `json:"start"`
		Count int64     `json:"count"`
	} `json:"byTime"`
	Records []struct {
		Ref        string `json:"ref"`
		EventID    string `json:"eventId"`
		Tenant     string `json:"tenant"`
		ErrorClass string `json:"errorClass"`
	} `json:"records"`
}

type kv struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// TestEndToEnd: a hotel-member consumer with dedup, dead letters and retries fails permanently for
// chosen events, which `dlq list` counts and `dlq show` prints; after the handler is fixed, `dlq
// redrive` sends exactly those back and the consumer handles each once more. A second redrive
// run and a repeated write of the same redrives handle nothing new.
func TestEndToEnd(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			r := newRig(t, b)
			ctx := context.Background()

			// 12 reservations of 4 tenants; 3 of them fail permanently until the handler is fixed.
			v, _ := r.serde.Schemas().Latest("reservation.created")
			var envs []*streams.Envelope
			var recs []*kgo.Record
			for i := range 12 {
				env, err := r.serde.ParseJSON(v.Example)
				if err != nil {
					t.Fatal(err)
				}
				env.EventID, env.Metadata.TenantID = uuid.NewString(), fmt.Sprintf("tenant-%d", i%4)
				rec, err := r.serde.Record(ctx, env)
				if err != nil {
					t.Fatal(err)
				}
				envs, recs = append(envs, env), append(recs, rec)
			}
			failing := map[string]bool{envs[1].EventID: true, envs[6].EventID: true, envs[11].EventID: true}
			if err := b.Client(t).ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}

			rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
			t.Cleanup(func() { rdb.Close() })
			dedup, err := streams.NewDedup(rdb, r.sys.Group)
			if err != nil {
				t.Fatal(err)
			}
			dl, err := streams.NewDeadLetters(streamstest.Writer(t, b, r.cat, r.sys.Name), r.sys.DeadLetterTopic, streams.DeadLetterLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			var fixed atomic.Bool
			var mu sync.Mutex
			handled := map[string]int{} // successful handler calls per eventId
			var total atomic.Int64
			c, err := streams.NewConsumer(system, r.serde, streams.Brokers(b.Brokers...), streams.CommitInterval(50*time.Millisecond),
				streams.Logger(slog.New(slog.DiscardHandler)), streams.KafkaOptions(kgo.HeartbeatInterval(200*time.Millisecond)),
				streams.Use(dedup.Middleware(), dl.Middleware(), streams.Retry(streams.RetryBackoff(time.Millisecond, 5*time.Millisecond))),
				streams.UsePreparer(dedup))
			if err != nil {
				t.Fatal(err)
			}
			c.HandleType("reservation.created", func(_ context.Context, m *streams.Message) error {
				if failing[m.Envelope.EventID] && !fixed.Load() {
					return streams.Permanent(errors.New("member record locked"))
				}
				mu.Lock()
				handled[m.Envelope.EventID]++
				mu.Unlock()
				total.Add(1)
				return nil
			})
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			t.Cleanup(func() {
				cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := c.Close(cctx); err != nil {
					t.Error(err)
				}
				if err := <-done; err != nil {
					t.Errorf("consumer: %v", err)
				}
			})
			eventually(t, time.Minute, "9 events handled and 3 dead-lettered", func() bool {
				return total.Load() == 9 && dl.DeadLettered()[streams.ClassPermanent] == 3
			})
			tp, _ := r.cat.TopicFor("reservation.created")
			r.waitCommitted(t, r.sys.Group, tp.Name)

			// list: exact counts, and the dead letters' positions.
			res := r.run(t, "list", "--system", system, "--records", "--json")
			if res.Code != 0 {
				t.Fatalf("list: exit %d: %s", res.Code, res.ErrOut)
			}
			var l listJSON
			if err := json.Unmarshal([]byte(res.Out), &l); err != nil {
				t.Fatalf("list --json: %v\n%s", err, res.Out)
			}
			tenants := map[string]int64{}
			for id := range failing {
				tenants[envs[slices.IndexFunc(envs, func(e *streams.Envelope) bool { return e.EventID == id })].Metadata.TenantID]++
			}
			var wantTenants []kv
			for _, k := range []string{"tenant-1", "tenant-2", "tenant-3"} {
				wantTenants = append(wantTenants, kv{k, tenants[k]})
			}
			if l.Topic != r.sys.DeadLetterTopic || l.Total != 3 || l.Undecodable != 0 || fmt.Sprint(l.ByEventType) != "[{reservation.created 3}]" ||
				fmt.Sprint(l.ByErrorClass) != "[{permanent 3}]" || fmt.Sprint(l.ByTenant) != fmt.Sprint(wantTenants) ||
				len(l.ByTime) == 0 || len(l.ByTime) > 2 || len(l.Records) != 3 {
				t.Fatalf("list --json: %+v", l)
			}
			for _, rec := range l.Records {
				if !failing[rec.EventID] || rec.ErrorClass != streams.ClassPermanent {
					t.Fatalf("listed dead letter %+v is not one of the failing events", rec)
				}
			}
			res = r.run(t, "list", "--system", system)
			for _, want := range []string{regexp.QuoteMeta(r.sys.DeadLetterTopic) + `: 3 dead letters`, `\nreservation\.created +3\n`,
				`\npermanent +3\n`, `\ntenant-1 +1\ntenant-2 +1\ntenant-3 +1\n`, `\n\d{4}-\d\d-\d\dT\d\d:00:00Z +3\n`} {
				if res.Code != 0 || !regexp.MustCompile(want).MatchString(res.Out) {
					t.Fatalf("list (exit %d) lacks %q:\n%s%s", res.Code, want, res.Out, res.ErrOut)
				}
			}

			// show: every header, and the envelope as canonical JSON.
			res = r.run(t, "show", l.Records[0].Ref, "--json")
			var shown struct {
				Ref     string `json:"ref"`
				Headers []struct {
					Key, Value string
				} `json:"headers"`
				Envelope json.RawMessage `json:"envelope"`
			}
			if res.Code != 0 {
				t.Fatalf("show: exit %d: %s", res.Code, res.ErrOut)
			}
			if err := json.Unmarshal([]byte(res.Out), &shown); err != nil {
				t.Fatal(err)
			}
			env := envs[slices.IndexFunc(envs, func(e *streams.Envelope) bool { return e.EventID == l.Records[0].EventID })]
			canonical, err := r.serde.JSON(env)
			if err != nil {
				t.Fatal(err)
			}
			var gotEnv, wantEnv any
			_ = json.Unmarshal(shown.Envelope, &gotEnv)
			_ = json.Unmarshal(canonical, &wantEnv)
			if fmt.Sprint(gotEnv) != fmt.Sprint(wantEnv) || shown.Ref != l.Records[0].Ref {
				t.Fatalf("show --json envelope:\n got %s\nwant %s", shown.Envelope, canonical)
			}
			keys := map[string]string{}
			for _, h := range shown.Headers {
				keys[h.Key] = h.Value
			}
			for k, v := range map[string]string{streams.HeaderEventID: env.EventID, streams.HeaderEventType: "reservation.created",
				streams.HeaderDLQTopic: tp.Name, streams.HeaderDLQGroup: r.sys.Group, streams.HeaderDLQErrorClass: streams.ClassPermanent,
				streams.HeaderDLQAttempts: "1"} {
				if keys[k] != v {
					t.Errorf("show: header %s = %q, want %q", k, keys[k], v)
				}
			}
			if !strings.HasSuffix(keys[streams.HeaderDLQErrorMessage], "member record locked") {
				t.Errorf("show: error message %q", keys[streams.HeaderDLQErrorMessage])
			}
			if len(shown.Headers) != 16 {
				t.Errorf("show: %d headers, want the 6 envelope headers and 10 dlq headers", len(shown.Headers))
			}
			res = r.run(t, "show", l.Records[0].Ref)
			for _, want := range []string{`^dead letter +` + regexp.QuoteMeta(l.Records[0].Ref) + `\n`, `\n  hotelbus\.dlq\.error\.class +permanent\n`,
				`\nenvelope\n\{\n  "eventId": "` + env.EventID + `",\n`} {
				if res.Code != 0 || !regexp.MustCompile(want).MatchString(res.Out) {
					t.Fatalf("show (exit %d) lacks %q:\n%s%s", res.Code, want, res.Out, res.ErrOut)
				}
			}

			// redrive --dry-run writes nothing.
			res = r.run(t, "redrive", "--system", system, "--error-class", "permanent", "--dry-run")
			if res.Code != 0 || len(linesOf(res.Out, "would-redrive")) != 3 || r.records(t, r.sys.RedriveTopic) != 0 {
				t.Fatalf("dry run (exit %d):\n%s%s", res.Code, res.Out, res.ErrOut)
			}

			// The handler is fixed; the redrive sends exactly the 3 back, each handled once more.
			fixed.Store(true)
			res = r.run(t, "redrive", "--system", system, "--error-class", "permanent", "--rate", "100")
			if res.Code != 0 || len(linesOf(res.Out, "redriven")) != 3 || r.records(t, r.sys.RedriveTopic) != 3 {
				t.Fatalf("redrive (exit %d):\n%s%s", res.Code, res.Out, res.ErrOut)
			}
			for id := range failing {
				if !strings.Contains(res.Out, id) {
					t.Errorf("redrive output lacks %s:\n%s", id, res.Out)
				}
			}
			runID := regexp.MustCompile(`redrive run (\S+):`).FindStringSubmatch(res.ErrOut)
			if runID == nil {
				t.Fatalf("no run id on standard error:\n%s", res.ErrOut)
			}
			r.waitCommitted(t, r.sys.Group, r.sys.RedriveTopic)
			check := func(when string) {
				t.Helper()
				mu.Lock()
				defer mu.Unlock()
				for _, e := range envs {
					if handled[e.EventID] != 1 {
						t.Errorf("%s: %s handled %d times, want once", when, e.EventID, handled[e.EventID])
					}
				}
				if total.Load() != 12 {
					t.Errorf("%s: %d successful handler calls, want 12", when, total.Load())
				}
			}
			check("after the redrive")

			// A second run redrives nothing; the same run's redrives written again (a crashed run's
			// rewrite) are deduplicated by the consumer.
			res = r.run(t, "redrive", "--system", system, "--all")
			if res.Code != 0 || len(linesOf(res.Out, "skipped")) != 3 || len(linesOf(res.Out, "redriven")) != 0 || r.records(t, r.sys.RedriveTopic) != 3 {
				t.Fatalf("second redrive (exit %d):\n%s%s", res.Code, res.Out, res.ErrOut)
			}
			res = r.run(t, "redrive", "--system", system, "--all", "--force", "--run-id", runID[1])
			if res.Code != 0 || len(linesOf(res.Out, "skipped")) != 3 || r.records(t, r.sys.RedriveTopic) != 3 {
				t.Fatalf("forced rerun of the same run (exit %d):\n%s%s", res.Code, res.Out, res.ErrOut)
			}
			var again []*kgo.Record
			cl := b.Client(t, kgo.ConsumeTopics(r.sys.RedriveTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			for len(again) < 3 {
				fs := cl.PollFetches(ctx)
				fs.EachError(func(_ string, _ int32, err error) { t.Fatal(err) })
				fs.EachRecord(func(rec *kgo.Record) {
					again = append(again, &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Headers: rec.Headers})
				})
			}
			if err := b.Client(t).ProduceSync(ctx, again...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			r.waitCommitted(t, r.sys.Group, r.sys.RedriveTopic)
			if r.records(t, r.sys.RedriveTopic) != 6 {
				t.Fatal("the rewritten redrives are not in the redrive topic")
			}
			check("after the same redrives were written again")
		})
	}
}

// TestUsage: bad usage exits 2 naming the problem; a missing dead letter, or a redrive selection
// that matches nothing, exits 1.
func TestUsage(t *testing.T) {
	b := streamstest.Kfake(t)
	r := newRig(t, b)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"list"}, 2, "--system is required"},
		{[]string{"list", "--system", "hotel-nowhere"}, 2, `"hotel-nowhere"`},
		{[]string{"list", "--system", system, "--error-class", "oops"}, 2, "--error-class"},
		{[]string{"list", "--system", system, "--event-type", "[x"}, 2, "--event-type"},
		{[]string{"list", "--system", system, "--from", "yesterday"}, 2, "--from"},
		{[]string{"redrive", "--system", system}, 2, "no filter"},
		{[]string{"redrive", "--system", system, "--all", "--rate", "-5"}, 2, "--rate"},
		{[]string{"redrive", "--system", system, "--all", "--run-id", "0193a4c2-..."}, 2, `--run-id: "0193a4c2-..." is not a run id`},
		{[]string{"show", "--system", system, "1-2"}, 2, "PARTITION@OFFSET"},
		{[]string{"show", "nobody.dlq/0@0"}, 2, "no system's dead-letter topic"},
		{[]string{"show", "--system", system, "0@5"}, 1, "no such dead letter"},
		{[]string{"list", "--system", system, "--bucket", "10ms"}, 2, "--bucket"},
		// An explicit selection that matches nothing is a failure, not a silent success.
		{[]string{"redrive", "--system", system, "--event-id", "0193a4c2-unknown"}, 1,
			"nothing selected in " + r.sys.DeadLetterTopic + ": no dead letter has eventId 0193a4c2-unknown"},
		{[]string{"redrive", "--system", system, "--at", "7@0", "--dry-run"}, 1,
			"no dead letter has position " + r.sys.DeadLetterTopic + "/7@0 (the topic has "},
		{[]string{"redrive", "--system", system, "--at", "0@0"}, 1, "/0@0 (partition 0 is empty)"},
		{[]string{"redrive", "--system", system, "--event-type", "reservaton.created"}, 1,
			`none of the 0 dead letters read matches the filter (event type "reservaton.created" is not in the catalog; did you mean reservation.created?)`},
	} {
		res := r.run(t, c.args...)
		if res.Code != c.code || !strings.Contains(res.ErrOut, c.msg) {
			t.Errorf("dlq %v: exit %d, stderr %q; want exit %d mentioning %q", c.args, res.Code, res.ErrOut, c.code, c.msg)
		}
	}
	res := r.run(t, "list", "--system", system, "--json")
	if res.Code != 0 || !strings.Contains(res.Out, `"total": 0`) {
		t.Fatalf("list of an empty dead-letter topic: exit %d\n%s%s", res.Code, res.Out, res.ErrOut)
	}
}

// linesOf returns the lines of a redrive report with the given outcome.
func linesOf(out, outcome string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, outcome+" ") {
			ls = append(ls, l)
		}
	}
	return ls
}

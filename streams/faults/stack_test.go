package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/dispatch"
	"github.com/hotelbus/hotelbus/streams/faults"
	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/simulate"
	"github.com/hotelbus/hotelbus/streams/spool"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// events is how many simulated events every scenario publishes through the gateway.
const events = 50_000

// receiver is the system whose dispatcher delivers to the target: hotel-common subscribes to every
// event type, so every published event must arrive.
const receiver = "hotel-common"

const secret = "faults-dispatch-secret-0123456789"

// config is what differs between scenarios' stacks.
type config struct {
	scenario, title string
	seed            int64
	brokers         []string
	// replicated declares the topics with replication 3 and min.insync.replicas 2 (cluster3).
	replicated bool
	// dedupRedis is the dispatchers' Redis, gatewayRedis the gateway's (Idempotency-Key), by
	// default the rig's redis-server. Any form of --redis (redis-sentinel://, redis-cluster://).
	dedupRedis, gatewayRedis string
	// spoolAfter is the gateway's --spool-after.
	spoolAfter time.Duration
	// dispatchFlags are added to every dispatcher's command line.
	dispatchFlags []string
}

// stack is one scenario's system under test: a schema registry, the prefixed topics, the gateway
// and dispatcher processes, the target, the traffic generator and the checker.
type stack struct {
	t      *testing.T
	cfg    config
	bin    string
	prefix string
	cat    *topics.Catalog
	set    *schemas.Set
	regURL string
	reg    *sr.Client
	gen    *simulate.Generator
	chk    *streamstest.Checker
	target *faults.Target
	gw     *faults.Proc
	gwURL  string
	spool  string
	tokens map[string]string

	replicas []*replica

	mu       sync.Mutex
	acked    []string // eventIds answered 202, in the order of the answers
	ackedAt  map[string]time.Time
	system   map[string]string // eventId -> its publishing system
	status   map[string]string // eventId -> the gateway's status ("published", "spooled")
	answered map[string]string // eventId -> the phase in which the gateway answered
	phase    string
	outcomes map[string]map[string]int // phase -> outcome ("published", "spooled", "not accepted") -> events
	failed   int64
	firstErr error
	notes    []string
	recs     []*recovery

	report   *streamstest.CheckerReport
	finished bool
}

// replica is one dispatcher process.
type replica struct {
	name   string
	proc   *faults.Proc
	killed time.Time // when it was killed with -9 (zero: never)
}

// newStack creates the topics and registers the schemas on cfg.brokers, and starts the gateway
// and the target. The scenario's table is recorded when the test ends, also when it failed.
func newStack(t *testing.T, cfg config) *stack {
	t.Helper()
	rigRedis := os.Getenv(streamstest.EnvRedis)
	if cfg.dedupRedis == "" {
		cfg.dedupRedis = rigRedis
	}
	if cfg.gatewayRedis == "" {
		cfg.gatewayRedis = rigRedis
	}
	if cfg.spoolAfter == 0 {
		cfg.spoolAfter = 3 * time.Second
	}
	s := &stack{t: t, cfg: cfg, bin: faults.Binary(t), chk: streamstest.NewChecker(), status: map[string]string{}, answered: map[string]string{},
		outcomes: map[string]map[string]int{}, phase: "start", tokens: map[string]string{}, ackedAt: map[string]time.Time{}, system: map[string]string{}}
	t.Cleanup(s.record)

	s.prefix = streamstest.Name(t, "f") + "."
	base, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		t.Fatal(err)
	}
	s.cat = base.WithPrefix(s.prefix)
	if cfg.replicated {
		for i := range s.cat.Topics {
			s.cat.Topics[i].ReplicationFactor, s.cat.Topics[i].MinInsyncReplicas = 3, 2
		}
	}
	streamstest.CreateTopics(t, streamstest.Backend{Name: "kafka", Brokers: cfg.brokers, Real: true}, s.cat)
	regCl, regURL := streamstest.Registry(t)
	s.regURL, s.reg, s.set = regURL, regCl, streamstest.RegisterSchemas(t, regCl, s.cat)
	s.gen, err = simulate.New(s.cat, s.set, simulate.Options{Seed: cfg.seed, Tenants: 40, Skew: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.target = faults.NewTarget(t, s.gen, s.chk)

	var env []string
	for _, sys := range s.cat.Systems {
		if len(sys.Publishes) > 0 {
			s.tokens[sys.Name] = "faults-token-" + sys.Name + "-0123456789abcdef"
			env = append(env, gateway.EnvName(sys.Name)+"="+s.tokens[sys.Name])
		}
	}
	port := faults.FreePort(t)
	s.gwURL = "http://127.0.0.1:" + strconv.Itoa(port)
	s.spool = t.TempDir()
	s.gw = faults.Start(t, "gateway", env, s.bin, "gateway", "--listen", "127.0.0.1:"+strconv.Itoa(port),
		"--brokers", strings.Join(cfg.brokers, ","), "--registry", s.regURL, "--redis", cfg.gatewayRedis, "--prefix", s.prefix,
		"--spool-dir", s.spool, "--spool-after", cfg.spoolAfter.String(),
		// The suite measures delivery under faults, not admission: no rate limit.
		"--system-rate", "0", "--tenant-rate", "0")
	s.waitReady(s.gw, s.gwURL+gateway.RouteReady)
	return s
}

func (s *stack) waitReady(p *faults.Proc, url string) {
	s.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if p.Exited() || time.Now().After(deadline) {
			s.t.Fatalf("%s is not ready at %s:\n%s", p.Name, url, p.Tail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startDispatcher starts one more `hotelbus dispatch` replica for the receiver, delivering to the
// target under its own path so that the target knows which replica ran each side effect.
func (s *stack) startDispatcher() *replica {
	s.t.Helper()
	name := "r" + strconv.Itoa(len(s.replicas)+1)
	args := append([]string{"dispatch", "--system", receiver, "--target", s.target.URL + "/" + name,
		"--brokers", strings.Join(s.cfg.brokers, ","), "--registry", s.regURL, "--redis", s.cfg.dedupRedis, "--prefix", s.prefix,
		"--listen", "127.0.0.1:0"}, s.cfg.dispatchFlags...)
	r := &replica{name: name, proc: faults.Start(s.t, "dispatch-"+name, []string{"HOTELBUS_DISPATCH_SECRET=" + secret}, s.bin, args...)}
	s.replicas = append(s.replicas, r)
	return r
}

// kill9 kills a dispatcher replica with SIGKILL.
func (s *stack) kill9(r *replica) {
	s.t.Helper()
	r.proc.Kill9(s.t)
	r.killed = time.Now()
}

// live counts the replicas that have not been killed.
func (s *stack) live() int {
	n := 0
	for _, r := range s.replicas {
		if r.killed.IsZero() {
			n++
		}
	}
	return n
}

// setPhase names what is going on from now on; the gateway's answers are counted per phase.
func (s *stack) setPhase(p string) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
}

// outcome counts one gateway outcome in the current phase; s.mu is held.
func (s *stack) outcome(o string) {
	if s.outcomes[s.phase] == nil {
		s.outcomes[s.phase] = map[string]int{}
	}
	s.outcomes[s.phase][o]++
}

// note adds a line to the scenario's table.
func (s *stack) note(format string, a ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notes = append(s.notes, fmt.Sprintf(format, a...))
}

// statusTransport reads the gateway's batch answers on their way to the GatewayPublisher and keeps
// each accepted event's status ("published" or "spooled").
type statusTransport struct {
	base http.RoundTripper
	s    *stack
}

func (tr statusTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := tr.base.RoundTrip(r)
	if err != nil || (res.StatusCode != http.StatusAccepted && res.StatusCode != http.StatusMultiStatus) {
		return res, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(b))
	var out gateway.BatchResult
	if json.Unmarshal(b, &out) == nil {
		tr.s.mu.Lock()
		for _, it := range out.Results {
			if it.Accepted != nil {
				tr.s.status[it.EventID] = it.Status
				tr.s.answered[it.EventID] = tr.s.phase
				tr.s.outcome(it.Status)
			}
		}
		tr.s.mu.Unlock()
	}
	return res, nil
}

// ingestion is a running simulate.Runner.
type ingestion struct {
	done chan struct{}
	sum  simulate.Summary
	err  error
}

// ingest publishes count events through the gateway at rate events/s in the background. Every
// event answered 202 is published in the checker.
func (s *stack) ingest(count int64, rate float64) *ingestion {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	client := &http.Client{Timeout: 2 * time.Minute, Transport: statusTransport{base: tr, s: s}}
	pub := simulate.NewGatewayPublisher(s.gwURL, s.tokens, s.set, client, 16)
	r := &simulate.Runner{Generator: s.gen, Publisher: pub, Rate: rate, Count: count,
		Observe: func(ev *simulate.Event, err error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				s.failed++
				if s.firstErr == nil {
					s.firstErr = err
				}
				s.outcome("not accepted")
				return
			}
			s.acked = append(s.acked, ev.Envelope.EventID)
			s.ackedAt[ev.Envelope.EventID] = time.Now()
			s.system[ev.Envelope.EventID] = ev.System
			s.chk.Published(ev.Key, ev.Envelope.EventID, int(ev.Seq))
		}}
	in := &ingestion{done: make(chan struct{})}
	go func() {
		defer close(in.done)
		in.sum, in.err = r.Run(context.Background())
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pub.Close(ctx); err != nil && in.err == nil {
			in.err = err
		}
	}()
	s.t.Cleanup(func() { <-in.done })
	return in
}

// statusOf returns the gateway's status for an accepted event ("" when it was not accepted).
func (s *stack) statusOf(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status[id]
}

// answeredIn returns the phase in which the gateway accepted an event.
func (s *stack) answeredIn(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answered[id]
}

// ackedCount returns how many events the gateway answered 202.
func (s *stack) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// waitAcked waits until n events were answered 202.
func (s *stack) waitAcked(in *ingestion, n int) {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for s.ackedCount() < n {
		select {
		case <-in.done:
			s.t.Fatalf("ingestion ended with %d events acknowledged, before %d (%v)", s.ackedCount(), n, in.err)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %d acknowledged events (%d so far)", n, s.ackedCount())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitOutcome waits until the gateway gave outcome n times in the current phase.
func (s *stack) waitOutcome(outcome string, n int, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s.mu.Lock()
		got := s.outcomes[s.phase][outcome]
		s.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out after %s waiting for %d %q answers in phase %q (%d so far)", timeout, n, outcome, s.phase, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pauseAfter returns, from the deliveries at the target of every acknowledged event, the longest
// pause in deliveries that ends within window after t0 (or spans t0): when the last delivery before
// it and the first after it came, relative to t0 (the first is -1 when nothing came after t0).
// After a fault at t0, the first delivery after the pause is when the pipeline moved again.
func (s *stack) pauseAfter(t0 time.Time, window time.Duration) (last, first time.Duration) {
	s.mu.Lock()
	ids := slices.Clone(s.acked)
	s.mu.Unlock()
	var at []time.Time
	for _, id := range ids {
		for _, d := range s.target.Deliveries(id) {
			if d.At.After(t0.Add(-window)) && d.At.Before(t0.Add(window)) {
				at = append(at, d.At)
			}
		}
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	prev := t0
	last, first = 0, -1
	var longest time.Duration = -1
	for _, a := range at {
		if a.Before(t0) {
			prev = a
			continue
		}
		if gap := a.Sub(prev); gap > longest {
			longest, last, first = gap, prev.Sub(t0), a.Sub(t0)
		}
		prev = a
	}
	return last, first
}

// recovery measures how long after a fault the target had every event acknowledged when the
// measurement started.
type recovery struct {
	label string
	done  chan struct{}
	took  time.Duration // -1: not recovered when the stack finished
}

// recover measures, for the scenario's table, the time from from (the end of a fault, or its
// start for a stall) until the target has every event acknowledged so far.
func (s *stack) recover(label string, from time.Time) *recovery {
	rec := s.measure(label, from)
	s.mu.Lock()
	s.recs = append(s.recs, rec)
	s.mu.Unlock()
	return rec
}

// measure is recover without the table: it polls until the target has every event acknowledged so
// far, or the stack finished.
func (s *stack) measure(label string, from time.Time) *recovery {
	s.mu.Lock()
	pending := slices.Clone(s.acked)
	s.mu.Unlock()
	rec := &recovery{label: label, done: make(chan struct{}), took: -1}
	go func() {
		defer close(rec.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			s.mu.Lock()
			finished := s.finished
			s.mu.Unlock()
			if pending = s.target.Missing(pending); len(pending) == 0 {
				rec.took = time.Since(from)
				return
			}
			if finished {
				return
			}
			<-tick.C
		}
	}()
	return rec
}

// finish waits for the ingestion, then up to drain for the target to have every acknowledged
// event, stops the dispatchers and the gateway (SIGTERM), and takes the checker's report.
func (s *stack) finish(in *ingestion, drain time.Duration) streamstest.CheckerReport {
	s.t.Helper()
	<-in.done
	s.setPhase("drain")
	s.note("ingestion: %d events in %s (%.0f/s acknowledged)", in.sum.Events, in.sum.Elapsed.Round(100*time.Millisecond), in.sum.Rate())
	start := time.Now()
	all := s.measure("everything acknowledged", start)
	select {
	case <-all.done:
	case <-time.After(drain):
	}
	s.mu.Lock()
	s.finished = true
	s.mu.Unlock()
	<-all.done
	if all.took < 0 {
		s.t.Errorf("the target did not get every acknowledged event within %s of the end of the ingestion", drain)
	} else {
		s.note("every acknowledged event arrived %s after the ingestion ended", all.took.Round(100*time.Millisecond))
	}
	var wg sync.WaitGroup
	for _, r := range s.replicas {
		if !r.killed.IsZero() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.proc.Terminate(45 * time.Second); err != nil {
				s.t.Errorf("dispatcher %s: %v\n%s", r.name, err, r.proc.Tail(20))
			}
		}()
	}
	wg.Wait()
	if err := s.gw.Terminate(45 * time.Second); err != nil {
		s.t.Errorf("gateway: %v\n%s", err, s.gw.Tail(20))
	}
	var dispatchCPU time.Duration
	for _, r := range s.replicas {
		dispatchCPU += r.proc.CPU()
	}
	var self syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	s.note("CPU: gateway %s, dispatchers %s, test process (generator, publisher, target) %s so far",
		s.gw.CPU().Round(time.Second), dispatchCPU.Round(time.Second),
		(time.Duration(self.Utime.Nano()) + time.Duration(self.Stime.Nano())).Round(time.Second))
	rep := s.chk.Report()
	s.report = &rep
	if n := s.target.Foreign(); n > 0 {
		s.t.Errorf("the target got %d requests whose ce-id the generator did not produce", n)
	}
	return rep
}

// unknownOutcomes reads every dispatcher replica's log for the attempts whose outcome the
// dispatchers recorded as unknown, by eventId: a delivery sent without an answer (the dispatcher's
// class unknown-outcome: a timeout or a broken connection after the request was written), and a
// lease taken over from an owner that started the event and never finished it (dedup's "took
// over the expired lease": the owner was killed or stopped, or lost its lease while delivering),
// and a lease that Redis lost while its owner held it (dedup's "Redis lost the lease": a failover
// promoted a replica that had not received it, so another owner could take the event meanwhile;
// this is how a duplicate caused by the failover window is explained).
// It also counts, for the table, the transient failures by class and the group's troubles (lost
// partitions, failed commits).
func (s *stack) unknownOutcomes() (byEvent map[string][]string, classes map[string]int) {
	byEvent, classes = map[string][]string{}, map[string]int{}
	for _, r := range s.replicas {
		for _, line := range strings.Split(r.proc.Log(), "\n") {
			var reason string
			switch {
			case strings.Contains(line, "took over the expired lease"):
				classes["lease taken over"]++
				reason = r.name + " took over an expired lease of another owner"
			case strings.Contains(line, "Redis lost the lease"):
				classes["lease lost by Redis"]++
				reason = r.name + " found its lease gone from Redis (lost in the failover), so another owner could take the event meanwhile"
			case strings.Contains(line, "class="+dispatch.ClassUnknownOutcome):
				classes[dispatch.ClassUnknownOutcome]++
				reason = r.name + " sent a delivery and got no answer (" + logValue(line, "err") + ")"
			case strings.Contains(line, "class="+dispatch.ClassNotSent):
				classes[dispatch.ClassNotSent]++
			case strings.Contains(line, "class="+dispatch.ClassStatus):
				classes[dispatch.ClassStatus]++
			case strings.Contains(line, "partitions lost"):
				classes["partitions lost"]++
			case strings.Contains(line, "commit failed"):
				classes["commit failed"]++
			}
			if id := logValue(line, "eventId"); reason != "" && id != "" {
				byEvent[id] = append(byEvent[id], reason)
			}
		}
	}
	return byEvent, classes
}

// logValue returns the value of key in a log/slog text line ("" when absent), unquoted.
func logValue(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, "\"") {
		if u, err := strconv.QuotedPrefix(v); err == nil {
			v, _ = strconv.Unquote(u)
			return v
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// expectClean fails the test for every lost or reordered event, and for every duplicated one
// whose earlier delivery the dispatchers did not record as an unknown outcome (see
// unknownOutcomes): those are the only duplicates at-least-once HTTP delivery cannot avoid
// (receivers absorb them with ce-id). Every allowed duplicate is listed with its reason in the
// table; examples of the others are logged.
func (s *stack) expectClean(rep streamstest.CheckerReport) {
	s.t.Helper()
	if len(rep.Lost) > 0 {
		var ex []string
		for _, id := range rep.Lost[:min(5, len(rep.Lost))] {
			ex = append(ex, id+" ("+s.statusOf(id)+")")
		}
		s.t.Errorf("%d acknowledged events never reached the target, e.g. %v", len(rep.Lost), ex)
		for _, line := range s.locate(rep.Lost[:min(20, len(rep.Lost))]) {
			s.t.Log(line)
			s.note("lost: %s", line)
		}
	}
	if len(rep.OutOfOrder) > 0 {
		s.t.Errorf("%d events reached the target out of order, e.g. %v", len(rep.OutOfOrder), rep.OutOfOrder[:min(5, len(rep.OutOfOrder))])
	}
	unknown, classes := s.unknownOutcomes()
	var bad []string
	allowed := 0
	for _, id := range rep.Duplicated {
		if reasons := unknown[id]; len(reasons) > 0 {
			allowed++
			s.note("duplicate allowed: %s delivered %s; earlier outcome unknown: %s", id, describe(s.target.Deliveries(id)), strings.Join(reasons, "; "))
			continue
		}
		bad = append(bad, fmt.Sprintf("%s %s", id, describe(s.target.Deliveries(id))))
	}
	s.note("dispatcher logs: %s; duplicates: %d, %d of them after an unknown outcome",
		formatCounts(classes), len(rep.Duplicated), allowed)
	if len(bad) > 0 {
		s.t.Errorf("%d events had their side effect run more than once with no unknown outcome recorded for an earlier delivery, e.g. %v",
			len(bad), bad[:min(5, len(bad))])
	}
	if rep.Published != len(s.acked) {
		s.t.Errorf("the checker has %d published events, the gateway acknowledged %d", rep.Published, len(s.acked))
	}
}

// formatCounts prints counts as "a 1, b 2" in key order ("none" when empty).
func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// describe prints deliveries as "r1@15:04:05.000 r5@15:05:35.123" (replica and clock time).
func describe(ds []faults.Delivery) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Replica + "@" + d.At.Format("15:04:05.000")
	}
	return strings.Join(parts, " ")
}

// record logs the scenario's table and appends it to the report (a t.Cleanup).
func (s *stack) record() {
	s.mu.Lock()
	row := faults.Row{Scenario: s.cfg.scenario, Title: s.cfg.title, Events: int64(len(s.acked)) + s.failed, Acked: int64(len(s.acked)),
		Failed: s.failed, Recover: 0, TestFailed: s.t.Failed()}
	for id := range s.status {
		switch s.status[id] {
		case "published":
			row.Published++
		case "spooled":
			row.Spooled++
		}
	}
	recs := slices.Clone(s.recs)
	notes := slices.Clone(s.notes)
	phases := make([]string, 0, len(s.outcomes))
	for p := range s.outcomes {
		phases = append(phases, p)
	}
	if s.firstErr != nil {
		notes = append(notes, "first gateway failure: "+s.firstErr.Error())
	}
	s.mu.Unlock()
	slices.Sort(phases)
	for _, p := range phases {
		s.mu.Lock()
		o := s.outcomes[p]
		notes = append(notes, fmt.Sprintf("gateway answers while %s: %d published, %d spooled, %d not accepted", p, o["published"], o["spooled"], o["not accepted"]))
		s.mu.Unlock()
	}
	rep := s.chk.Report()
	if s.report != nil {
		rep = *s.report
	}
	row.Lost, row.Duplicated, row.Reordered, row.Effects = len(rep.Lost), len(rep.Duplicated), len(rep.OutOfOrder), s.target.Effects()
	for _, r := range recs {
		took := time.Duration(-1) // still measuring: the test ended first
		select {
		case <-r.done:
			took = r.took
		default:
		}
		if took < 0 {
			row.Recover = -1
			notes = append(notes, r.label+": not recovered")
			continue
		}
		if row.Recover >= 0 && took > row.Recover {
			row.Recover = took
		}
		notes = append(notes, fmt.Sprintf("%s: recovered in %s", r.label, took.Round(100*time.Millisecond)))
	}
	row.Notes = notes
	faults.Record(s.t, row)
}

// leaderCounts returns, per broker node id, how many partitions of the event topics it leads.
func (s *stack) leaderCounts() map[int32]int {
	s.t.Helper()
	adm := kadm.NewClient(streamstest.Backend{Brokers: s.cfg.brokers}.Client(s.t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var names []string
	for _, tp := range s.cat.Topics {
		if tp.Kind == topics.KindEvents {
			names = append(names, tp.Name)
		}
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		s.t.Fatalf("listing topics: %v", err)
	}
	out := map[int32]int{}
	for _, d := range details {
		for _, p := range d.Partitions {
			out[p.Leader]++
		}
	}
	return out
}

// locate says where each of the lost events ended: still in the gateway's spool, in Kafka (where),
// or neither; and what the receiver's dedup key in Redis holds. The gateway must have exited.
func (s *stack) locate(ids []string) []string {
	where := map[string][]string{}
	for _, sys := range s.cat.Systems {
		sp, err := spool.Open(filepath.Join(s.spool, sys.Name+".spool"))
		if err != nil {
			continue
		}
		entries, err := sp.Peek(sp.Len())
		_ = sp.Close()
		if err != nil {
			continue
		}
		for _, e := range entries {
			where[e.EventID] = append(where[e.EventID], fmt.Sprintf("in the gateway's %s spool (seq %d)", sys.Name, e.Seq))
		}
	}
	var names []string
	for _, tp := range s.cat.Topics {
		if tp.Kind == topics.KindEvents {
			names = append(names, tp.Name)
		}
	}
	cl := streamstest.Backend{Brokers: s.cfg.brokers}.Client(s.t, kgo.ConsumeTopics(names...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inKafka := "not in Kafka"
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, names...)
	if err != nil {
		inKafka = "Kafka not searched: " + err.Error()
	} else {
		remaining := 0
		ends.Each(func(o kadm.ListedOffset) { remaining += int(o.Offset) })
		for remaining > 0 && ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				remaining--
				if id := streams.Header(r, streams.HeaderEventID); slices.Contains(ids, id) {
					where[id] = append(where[id], fmt.Sprintf("in Kafka at %s/%d@%d", r.Topic, r.Partition, r.Offset))
				}
			})
		}
		if remaining > 0 {
			inKafka = fmt.Sprintf("Kafka search incomplete, %d records unread", remaining)
		}
	}
	sys, _ := s.cat.System(receiver)
	rdb, err := streams.NewRedisClient(s.cfg.dedupRedis)
	if err != nil {
		return []string{err.Error()}
	}
	defer rdb.Close()
	dedup, err := streams.NewDedup(rdb, sys.Group)
	if err != nil {
		return []string{err.Error()}
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		pos, _ := s.gen.Seq(id)
		w := where[id]
		if len(w) == 0 {
			w = []string{"not in the spool, " + inKafka}
		}
		key, err := rdb.Get(ctx, dedup.Key(s.system[id], id)).Result()
		if err != nil {
			key = err.Error()
		}
		out[i] = fmt.Sprintf("%s (%s seq %d, answered %q while %s): %s; dedup key: %s", id, strings.TrimPrefix(pos.Key, s.prefix), pos.Seq,
			s.statusOf(id), s.answeredIn(id), strings.Join(w, ", "), key)
	}
	return out
}

// TestLogValue: the rule for allowed duplicates reads the dispatchers' log lines with logValue.
func TestLogValue(t *testing.T) {
	line := `time=2026-12-03T17:00:00.000Z level=WARN msg="dispatch: delivery outcome unknown" class=unknown-outcome eventId=0192a7f0-0000-7000-8000-000000000001 topic=t err="dispatch: delivering x (sent, no answer): context deadline exceeded"`
	for key, want := range map[string]string{
		"class": "unknown-outcome", "eventId": "0192a7f0-0000-7000-8000-000000000001",
		"err": "dispatch: delivering x (sent, no answer): context deadline exceeded", "missing": "",
	} {
		if got := logValue(line, key); got != want {
			t.Errorf("logValue(%s) = %q, want %q", key, got, want)
		}
	}
}

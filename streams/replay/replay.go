// Package replay reads a bounded part of the hotelbus log back: the topics of systems, event types
// (globs) or named topics, between two times or from an offset, up to the high-water marks taken at
// the start (so a replay always finishes). Records are filtered by tenant, correlation id and a CEL
// expression over the decoded envelope, then written as JSONL, CSV or Parquet files (optionally with
// personal data replaced by keyed hashes) or republished to a sandbox topic. Partitions are decoded
// in parallel; the order of records within a partition is kept in the output.
//
// The --where expression sees the decoded envelope:
//
//	eventId, eventType, version  string
//	timestamp                    timestamp (the envelope's event time)
//	data                         map: the event's data; decimals are doubles, dates and instants
//	                             timestamps, enums strings, absent optional fields null
//	metadata                     map: tenantId, source, correlationId, userId (null when absent), traceId
//	topic                        string; partition, offset int (where the record was read)
//
// for example `data.grossTotal.amount > 50000 && metadata.source == "hotel-pms"`. A record the
// expression cannot be evaluated on (a field its type lacks) does not match and is counted in
// Summary.WhereErrors. One that needs more than Config.WhereCostLimit stops the replay
// (ErrWhereCost); canceling Run's context stops an evaluation in progress.
//
// Resync moves a system's consumer group to the first offsets at or after a time.
package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cel.dev/cel-go/cel"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// Replay is one configured replay. Build it with New, then call Run once.
type Replay struct {
	cfg     Config
	cat     *topics.Catalog
	serde   *streams.Serde
	sel     selection
	where   cel.Program
	tenants map[string]bool
	plans   sync.Map // *schemas.Version -> *plan
	planMu  sync.Mutex
}

// Summary is what a Run did.
type Summary struct {
	// Read counts the records read from the selected ranges; Matched those that passed every filter;
	// Written those written to the output (acknowledged by the broker with ToTopic).
	Read, Matched, Written int64
	// Undecodable counts records that are not hotelbus events of a known schema; WhereErrors the
	// records --where could not be evaluated on. Problem is the first such error.
	Undecodable, WhereErrors int64
	Problem                  string
	// BytesRead are the record values read; BytesWritten the bytes of the output files.
	BytesRead, BytesWritten int64
	Duration                time.Duration
	// Files are the files written, in the order they were opened.
	Files []string
	// Interrupted is true when the context ended the replay early; the files are complete up to
	// the records written.
	Interrupted bool
}

// String returns the summary line.
func (s Summary) String() string {
	rate := 0.0
	if s.Duration > 0 {
		rate = float64(s.Read) / s.Duration.Seconds()
	}
	out := fmt.Sprintf("read %d, matched %d, written %d in %s (%.0f records/s)", s.Read, s.Matched, s.Written,
		s.Duration.Round(time.Millisecond), rate)
	if s.Undecodable > 0 {
		out += fmt.Sprintf(", %d undecodable", s.Undecodable)
	}
	if s.WhereErrors > 0 {
		out += fmt.Sprintf(", %d where errors", s.WhereErrors)
	}
	if s.Interrupted {
		out += ", interrupted"
	}
	return out
}

// New checks cfg against the catalog and compiles its filters. The serde decodes (and, with
// ToTopic, encodes) events; cat is the catalog the selection refers to (usually the serde's).
func New(serde *streams.Serde, cat *topics.Catalog, cfg Config) (*Replay, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Replay{cfg: cfg, cat: cat, serde: serde}
	var err error
	if r.sel, err = selectTopics(cat, &r.cfg); err != nil {
		return nil, err
	}
	if cfg.Where != "" {
		if r.where, err = compileWhere(cfg.Where, cfg.WhereCostLimit); err != nil {
			return nil, err
		}
	}
	if len(cfg.Tenants) > 0 {
		r.tenants = map[string]bool{}
		for _, t := range cfg.Tenants {
			r.tenants[t] = true
		}
	}
	if cfg.ToTopic != "" {
		if t, ok := cat.Topic(cfg.ToTopic); ok && !cfg.AllowOwnerTopic {
			return nil, fmt.Errorf("%w: --to-topic: %q is a catalog topic (owner %s): republish to a sandbox topic, or pass --allow-owner-topic",
				ErrConfig, cfg.ToTopic, t.Owner)
		}
		if slices.Contains(r.sel.topics, cfg.ToTopic) {
			return nil, fmt.Errorf("%w: --to-topic: %q is one of the topics being replayed", ErrConfig, cfg.ToTopic)
		}
	}
	return r, nil
}

// Topics returns the topics the replay reads, sorted.
func (r *Replay) Topics() []string { return slices.Clone(r.sel.topics) }

// run is the state of one Run.
type run struct {
	*Replay
	ctx    context.Context // ends on the caller's cancellation
	work   context.Context // for decoding and encoding: not cancelled by the caller
	eval   context.Context // for --where: ends with ctx or work
	stop   context.CancelCauseFunc
	cut    atomic.Bool // ctx ended a batch midway; what it had kept before is written
	out    chan *encoded
	single bool     // the output is one stream, not a file per event type
	prod   *writers // with ToTopic
	pwg    sync.WaitGroup
	perr   atomic.Pointer[error]
	total  int64
	read   atomic.Int64
	bytes  atomic.Int64
	match  atomic.Int64
	wrote  atomic.Int64
	undec  atomic.Int64
	whereE atomic.Int64
	probMu sync.Mutex
	prob   string
}

// Run replays the selected ranges. When ctx ends it stops reading, completes the files with what
// was written and returns the summary with Interrupted set and a nil error.
func (r *Replay) Run(ctx context.Context) (Summary, error) {
	started := time.Now()
	base := []kgo.Opt{kgo.SeedBrokers(r.cfg.Brokers...)}
	base = append(base, r.cfg.KafkaOptions...)
	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return Summary{}, fmt.Errorf("replay: kafka client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if r.cfg.ToTopic != "" {
		td, err := adm.ListTopics(ctx, r.cfg.ToTopic)
		if err != nil {
			return Summary{}, fmt.Errorf("replay: --to-topic: %w", err)
		}
		if !td.Has(r.cfg.ToTopic) {
			return Summary{}, fmt.Errorf("replay: --to-topic: topic %q does not exist (create it first)", r.cfg.ToTopic)
		}
	}
	parts, err := spans(ctx, adm, r.sel.topics, &r.cfg)
	if err != nil {
		return Summary{}, err
	}
	work, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stop(nil)
	eval, cancelEval := context.WithCancel(ctx)
	defer cancelEval()
	defer context.AfterFunc(work, cancelEval)()
	st := &run{Replay: r, ctx: ctx, work: work, eval: eval, stop: stop}
	for _, p := range parts {
		st.total += p.end - p.start
	}

	var sink *sink
	var writer sync.WaitGroup
	var sinkErr error
	if r.cfg.ToTopic != "" {
		st.prod = &writers{cat: r.cat, opts: []streams.ProducerOption{streams.Brokers(r.cfg.Brokers...), streams.KafkaOptions(r.cfg.KafkaOptions...)},
			bySystem: map[string]*streams.Writer{}}
		defer st.prod.close()
	} else {
		if sink, err = newSink(&r.cfg); err != nil {
			return Summary{}, err
		}
		st.single = sink.dir == ""
		st.out = make(chan *encoded, 4*r.cfg.Workers)
		writer.Add(1)
		go func() {
			defer writer.Done()
			for e := range st.out {
				if sinkErr != nil {
					continue
				}
				if sinkErr = sink.write(e); sinkErr != nil {
					stop(sinkErr)
					continue
				}
				st.wrote.Add(int64(e.n))
			}
		}()
	}

	progressDone := st.progress()
	interrupted, readErr := st.consume(parts, base)

	if st.out != nil {
		close(st.out)
		writer.Wait()
	}
	if st.prod != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if err := st.prod.flush(fctx); err != nil && readErr == nil {
			readErr = fmt.Errorf("replay: --to-topic: flushing: %w", err)
		}
		cancel()
		st.pwg.Wait()
		if p := st.perr.Load(); p != nil && readErr == nil {
			readErr = *p
		}
	}
	progressDone()
	sum := Summary{Read: st.read.Load(), Matched: st.match.Load(), Written: st.wrote.Load(), Undecodable: st.undec.Load(),
		WhereErrors: st.whereE.Load(), Problem: st.prob, BytesRead: st.bytes.Load(), Interrupted: interrupted}
	if sink != nil {
		files, err := sink.close()
		sum.Files, sum.BytesWritten = files, sink.bytes
		readErr = errors.Join(readErr, sinkErr, err)
	}
	sum.Duration = time.Since(started)
	return sum, readErr
}

// consume reads every span to its end with a pool of workers, one partition always on the same
// worker so that its order is kept.
func (st *run) consume(parts []span, base []kgo.Opt) (interrupted bool, err error) {
	if len(parts) == 0 {
		return false, nil
	}
	offsets := map[string]map[int32]kgo.Offset{}
	type tp struct {
		topic string
		part  int32
	}
	index := map[tp]int{}
	for i, p := range parts {
		if offsets[p.topic] == nil {
			offsets[p.topic] = map[int32]kgo.Offset{}
		}
		offsets[p.topic][p.partition] = kgo.NewOffset().At(p.start)
		index[tp{p.topic, p.partition}] = i
	}
	cl, err := kgo.NewClient(append(slices.Clone(base), kgo.ConsumePartitions(offsets),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(8<<20))...)
	if err != nil {
		return false, fmt.Errorf("replay: kafka client: %w", err)
	}
	defer cl.Close()

	workers := min(st.cfg.Workers, len(parts))
	queues := make([]chan []*kgo.Record, workers)
	var wg sync.WaitGroup
	var skipped atomic.Bool // a batch fetched before ctx ended was not written
	for i := range queues {
		queues[i] = make(chan []*kgo.Record, 4)
		wg.Add(1)
		go func(q chan []*kgo.Record) {
			defer wg.Done()
			w := st.newWorker()
			for recs := range q {
				if st.ctx.Err() != nil || st.work.Err() != nil {
					skipped.Store(st.ctx.Err() != nil)
					continue
				}
				if err := w.batch(recs); err != nil {
					st.stop(err)
				}
			}
		}(queues[i])
	}
	defer func() {
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
		if cause := context.Cause(st.work); cause != nil && err == nil {
			err = cause
		}
		interrupted = interrupted || skipped.Load() || st.cut.Load()
	}()

	// A worker's failure must end a poll that waits for records.
	pollCtx, cancelPoll := context.WithCancel(st.ctx)
	defer cancelPoll()
	defer context.AfterFunc(st.work, cancelPoll)()
	left := len(parts)
	done := make([]bool, len(parts))
	for left > 0 {
		fs := cl.PollFetches(pollCtx)
		if st.ctx.Err() != nil {
			return true, nil
		}
		if st.work.Err() != nil {
			return false, nil
		}
		var ferr error
		fs.EachError(func(t string, p int32, e error) {
			if ferr == nil && !errors.Is(e, context.Canceled) {
				ferr = fmt.Errorf("replay: fetching %s[%d]: %w", t, p, e)
			}
		})
		if ferr != nil {
			return false, ferr
		}
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			i, ok := index[tp{fp.Topic, fp.Partition}]
			if !ok || done[i] || len(fp.Records) == 0 {
				return
			}
			end := parts[i].end
			recs := fp.Records
			if last := recs[len(recs)-1].Offset; last >= end-1 {
				cut, _ := slices.BinarySearchFunc(recs, end, func(r *kgo.Record, o int64) int { return int(r.Offset - o) })
				recs = recs[:cut]
				done[i] = true
				left--
				cl.PauseFetchPartitions(map[string][]int32{fp.Topic: {fp.Partition}})
			}
			if len(recs) > 0 {
				queues[i%workers] <- recs
			}
		})
	}
	return false, nil
}

// progress prints a progress line every ProgressInterval until the returned function is called.
func (st *run) progress() func() {
	if st.cfg.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		t := time.NewTicker(st.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprintln(st.cfg.Progress)
				return
			case <-t.C:
				st.printProgress(st.cfg.Progress, time.Since(start))
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

func (st *run) printProgress(w io.Writer, elapsed time.Duration) {
	read := st.read.Load()
	rate := float64(read) / elapsed.Seconds()
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(st.total-read)/rate) * time.Second).Round(time.Second).String()
	}
	pct := 100.0
	if st.total > 0 {
		pct = 100 * float64(read) / float64(st.total)
	}
	fmt.Fprintf(w, "\r%d/%d records (%.1f%%), %.1f MB, %.0f records/s, ETA %s, matched %d   ",
		read, st.total, pct, float64(st.bytes.Load())/1e6, rate, eta, st.match.Load())
}

// withhold returns err placed at where (topic, offset, type, eventId: never a field value), or,
// under --redact, an error that gives where and the error's class but not its message, which
// can quote a value of the event (CEL's `invalid RFC 3339 timestamp "<value>"`, a decoder's bad
// symbol). The original stays reachable through errors.Is and errors.As.
func (st *run) withhold(where string, err error) error {
	if !st.cfg.Redact {
		return fmt.Errorf("%s: %w", where, err)
	}
	return &withheldError{where: where, err: err}
}

type withheldError struct {
	where string
	err   error
}

func (e *withheldError) Error() string {
	class := "failed"
	for _, s := range []error{streams.ErrMalformedRecord, streams.ErrUnknownEventType, streams.ErrNotRegistered, streams.ErrRegistry, streams.ErrInvalidEvent} {
		if errors.Is(e.err, s) {
			class = s.Error()
			break
		}
	}
	return e.where + ": " + class + " (details withheld under --redact: they can quote a field value; replay this record without --redact to see them)"
}

func (e *withheldError) Unwrap() error { return e.err }

func (st *run) problem(counter *atomic.Int64, err error) {
	if counter.Add(1) == 1 {
		st.probMu.Lock()
		if st.prob == "" {
			st.prob = err.Error()
		}
		st.probMu.Unlock()
	}
}

// worker decodes, filters and encodes records; one goroutine each.
type worker struct {
	*run
	redact *redactor
	out    map[string]*encoded
}

func (st *run) newWorker() *worker {
	w := &worker{run: st}
	if st.cfg.Redact {
		w.redact = newRedactor(st.cfg.RedactKey)
	}
	return w
}

// batch handles the records of one partition fetch, in order.
func (w *worker) batch(recs []*kgo.Record) error {
	w.out = map[string]*encoded{}
	var keys []string
	for _, rec := range recs {
		w.read.Add(1)
		w.bytes.Add(int64(len(rec.Value)))
		env, ok, err := w.keep(rec)
		if errors.Is(err, errStopped) {
			break
		}
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		w.match.Add(1)
		if w.prod != nil {
			if err := w.republish(rec, env); err != nil {
				return err
			}
			continue
		}
		p, err := w.plan(env)
		if err != nil {
			return err
		}
		if w.redact != nil {
			w.redact.redactEnvelope(p.version, env)
		}
		key := p.file
		if w.single {
			key = ""
		}
		e := w.out[key]
		if e == nil {
			e = &encoded{plan: p}
			w.out[key] = e
			keys = append(keys, key)
		}
		if err := encode(e, p, w.cfg.Format, env); err != nil {
			return w.withhold(fmt.Sprintf("replay: writing %s[%d]@%d (%s %s) as %s", rec.Topic, rec.Partition, rec.Offset, env.EventType, env.EventID, w.cfg.Format), err)
		}
	}
	for _, k := range keys {
		w.run.out <- w.out[k]
	}
	return nil
}

// errStopped is keep's answer when the replay ended (Ctrl-C, or another worker's failure) while
// --where was evaluating: the batch stops there.
var errStopped = errors.New("replay: stopped during --where")

// keep applies the filters; it decodes only records that pass those the headers and key can
// decide. An error ends the batch: errStopped, or --where over its cost limit.
func (w *worker) keep(rec *kgo.Record) (*streams.Envelope, bool, error) {
	if !w.cfg.From.IsZero() && rec.Timestamp.Before(w.cfg.From) || !w.cfg.To.IsZero() && !rec.Timestamp.Before(w.cfg.To) {
		return nil, false, nil
	}
	if w.tenants != nil && !w.tenants[string(rec.Key)] {
		return nil, false, nil
	}
	if h := streams.Header(rec, streams.HeaderEventType); h != "" && w.sel.types != nil && !w.sel.types[h] {
		return nil, false, nil
	}
	if h := streams.Header(rec, streams.HeaderCorrelationID); h != "" && w.cfg.CorrelationID != "" && h != w.cfg.CorrelationID {
		return nil, false, nil
	}
	env, err := w.serde.Decode(w.work, rec.Value)
	if err != nil {
		w.problem(&w.undec, w.withhold(fmt.Sprintf("%s[%d]@%d", rec.Topic, rec.Partition, rec.Offset), err))
		return nil, false, nil
	}
	switch {
	case w.sel.types != nil && !w.sel.types[env.EventType],
		w.tenants != nil && !w.tenants[env.Metadata.TenantID],
		w.cfg.CorrelationID != "" && env.Metadata.CorrelationID != w.cfg.CorrelationID:
		return nil, false, nil
	}
	if w.where == nil {
		return env, true, nil
	}
	ok, err := evalWhere(w.eval, w.where, w.cfg.WhereCostLimit, env, rec)
	at := fmt.Sprintf("%s[%d]@%d (%s %s)", rec.Topic, rec.Partition, rec.Offset, env.EventType, env.EventID)
	switch {
	case err == nil:
	case w.eval.Err() != nil:
		if w.ctx.Err() != nil {
			w.cut.Store(true)
		}
		return nil, false, errStopped
	case errors.Is(err, ErrWhereCost):
		return nil, false, fmt.Errorf("%w on %s", err, at)
	default:
		w.problem(&w.whereE, w.withhold("--where on "+at, err))
	}
	return env, ok, nil
}

// plan returns the output plan of env's schema version, building it once.
func (w *worker) plan(env *streams.Envelope) (*plan, error) {
	v, ok := w.serde.Schemas().Version(env.EventType, env.Version)
	if !ok {
		return nil, fmt.Errorf("replay: no local schema for %s %s", env.EventType, env.Version)
	}
	if p, ok := w.plans.Load(v); ok {
		return p.(*plan), nil
	}
	w.planMu.Lock()
	defer w.planMu.Unlock()
	if p, ok := w.plans.Load(v); ok {
		return p.(*plan), nil
	}
	p, err := newPlan(v, &w.cfg)
	if err != nil {
		return nil, err
	}
	w.plans.Store(v, p)
	return p, nil
}

// writers are the SDK writers republishing with ToTopic, one per writing system: the topic's
// owner when it is a catalog topic, else the event's own source, so a replayed event is written
// as the system that owns it.
type writers struct {
	cat      *topics.Catalog
	opts     []streams.ProducerOption
	mu       sync.Mutex
	bySystem map[string]*streams.Writer
}

func (ws *writers) get(topic, source string) (*streams.Writer, error) {
	system := source
	if t, ok := ws.cat.Topic(topic); ok && t.Owner != "" {
		system = t.Owner
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w, ok := ws.bySystem[system]; ok {
		return w, nil
	}
	w, err := streams.NewWriter(system, ws.cat, ws.opts...)
	if err != nil {
		return nil, fmt.Errorf("replay: --to-topic: writer for %s: %w", system, err)
	}
	ws.bySystem[system] = w
	return w, nil
}

// flush waits for every writer's records until ctx ends.
func (ws *writers) flush(ctx context.Context) error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.bySystem {
		if err := w.Flush(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (ws *writers) close() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.bySystem {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = w.Close(ctx)
		cancel()
	}
}

// republish re-encodes env with its current schema and produces it to ToTopic with rec's
// timestamp, the key and envelope headers of env (rebuilt from the envelope the encoder checked
// against the identifier grammar, never copied: a record written around hotelbus may carry
// identifiers the grammar refuses), rec's other headers, and HeaderReplayedFrom.
func (w *worker) republish(rec *kgo.Record, env *streams.Envelope) error {
	_, value, err := w.serde.AppendEncode(w.work, nil, env)
	if err != nil {
		return fmt.Errorf("replay: --to-topic: re-encoding %s[%d]@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
	}
	headers := streams.Headers(env)
	for _, h := range rec.Headers {
		switch h.Key {
		case streams.HeaderEventType, streams.HeaderVersion, streams.HeaderEventID, streams.HeaderSource,
			streams.HeaderCorrelationID, streams.HeaderTraceparent:
			continue
		}
		headers = append(headers, h)
	}
	headers = append(headers, kgo.RecordHeader{Key: HeaderReplayedFrom, Value: fmt.Appendf(nil, "%s/%d@%d", rec.Topic, rec.Partition, rec.Offset)})
	out := &kgo.Record{Topic: w.cfg.ToTopic, Key: []byte(env.Metadata.TenantID), Value: value, Headers: headers, Timestamp: rec.Timestamp}
	writer, err := w.prod.get(w.cfg.ToTopic, env.Metadata.Source)
	if err != nil {
		return err
	}
	w.pwg.Add(1)
	writer.Write(w.work, out, func(_ streams.Result, err error) {
		defer w.pwg.Done()
		if err != nil {
			err = fmt.Errorf("replay: --to-topic: %w", err)
			w.perr.CompareAndSwap(nil, &err)
			w.stop(err)
			return
		}
		w.wrote.Add(1)
	})
	return nil
}

package streams

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"

	"github.com/hotelbus/hotelbus/streams/spool"
	"github.com/hotelbus/hotelbus/topics"
)

// Producer publishes the events one system owns. It is bound to that system's identity: the
// envelope's source is always the system, and event types it does not own are refused before
// anything is sent.
//
// Records go to the event type's topic from the catalog, keyed by tenantId, through franz-go's
// idempotent producer with acks=all, so one tenant's events on one topic keep the order in which
// Publish calls were made (across concurrent callers, the order in which they reached the
// Producer).
//
// With a spool (SpoolDir), events the broker does not acknowledge within SpoolAfter, or that do not
// fit the in-memory buffer, are written to disk (fsync) instead, and every later event goes to the
// spool too until the drainer has delivered the spool's contents in order, so per-key order holds
// across an outage and a restart. An event in flight when the broker became unreachable may have
// been written before it was spooled: it is then delivered twice with the same eventId, which
// consumers deduplicate.
//
// A Producer is safe for concurrent use.
type Producer struct {
	system string
	serde  *Serde
	cat    *topics.Catalog
	cfg    producerConfig
	kopts  []kgo.Opt
	w      *Writer // its client is replaced after a stall (see watch), under mu
	spool  *spool.Spool
	closed atomic.Bool

	mu       sync.Mutex
	cond     *sync.Cond // signalled when inflight reaches zero
	offline  bool       // events go to the spool; cleared by the drainer when it is empty
	inflight int        // records handed to franz-go whose promise has not run
	progress time.Time  // when inflight last rose from zero or a record was last acknowledged
	spoolErr error      // the drainer's last spool read error (a corrupt entry); nil when healthy
	wake     chan struct{}
	stop     chan struct{}
	drained  chan struct{}
}

// Result is the outcome of one accepted event.
type Result struct {
	EventID   string
	Topic     string
	Partition int32
	Offset    int64
	// Spooled is true when the event is in the durable spool (broker unreachable); Seq is its
	// position there. Partition and Offset are then unset.
	Spooled bool
	Seq     uint64
}

// NewProducer returns a producer for system, which must be in serde's catalog.
func NewProducer(system string, serde *Serde, opts ...ProducerOption) (*Producer, error) {
	cfg := defaultProducerConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if _, ok := serde.cat.System(system); !ok {
		return nil, fmt.Errorf("%w: system %q is not in the catalog", ErrConfig, system)
	}
	delivery := cfg.deliveryTimeout
	if cfg.spoolDir != "" {
		delivery = cfg.spoolAfter
	}
	p := &Producer{system: system, serde: serde, cat: serde.cat, cfg: cfg, kopts: append(cfg.clientOpts(system), kgo.RecordDeliveryTimeout(delivery)),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), drained: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	var err error
	if p.w, err = newWriter(system, serde.cat, cfg, p.kopts); err != nil {
		return nil, err
	}
	if cfg.spoolDir == "" {
		close(p.drained)
		return p, nil
	}
	if p.spool, err = spool.Open(spoolPath(cfg.spoolDir, system), spool.MaxBytes(cfg.spoolMaxBytes)); err != nil {
		p.w.client.Load().Close()
		return nil, fmt.Errorf("streams: spool: %w", err)
	}
	p.offline = p.spool.Len() > 0 // events left by an earlier run are delivered before any new one
	go p.drain()
	go p.watch()
	return p, nil
}

func spoolPath(dir, system string) string { return dir + "/" + system + ".spool" }

// Publish sends one event and returns after the broker acknowledged it, or after it was spooled.
// See Prepare for what is filled in and refused.
func (p *Producer) Publish(ctx context.Context, env *Envelope) (Result, error) {
	rs, err := p.PublishBatch(ctx, []*Envelope{env})
	if err != nil {
		return Result{}, err
	}
	return rs[0], nil
}

// PublishBatch sends events in order and returns when every one was acknowledged or spooled. It
// refuses the whole batch, sending nothing, when one event is refused; the error names its index.
// A failure after sending (the broker refused a record) is returned for the first failed event;
// Results then hold what succeeded.
func (p *Producer) PublishBatch(ctx context.Context, envs []*Envelope) ([]Result, error) {
	recs := make([]*kgo.Record, len(envs))
	for i, env := range envs {
		var err error
		if recs[i], err = p.record(ctx, env); err != nil {
			if len(envs) > 1 {
				return nil, fmt.Errorf("event %d: %w", i, err)
			}
			return nil, err
		}
	}
	return p.send(ctx, recs)
}

// PublishDual publishes one event in several versions of its schema (a migration's dual
// publishing): every copy carries the same eventId, timestamp, correlation and trace, so
// subscribers of either version see one event and deduplication treats the copies as one. Each
// envelope supplies its own Version and Data; all must have the same EventType and tenant. The
// copies are written newest major first, whatever the order of envs (the Results keep it): a
// reader that handles several majors through deduplication (dispatch's and the RabbitMQ bridge's
// HandleAll) handles the first copy on the partition, so it reads the newest version, the one a
// migration moves to (and, with guest-data protection, the one whose personal data is sealed
// rather than left out).
func (p *Producer) PublishDual(ctx context.Context, envs ...*Envelope) ([]Result, error) {
	return p.publishDual(ctx, envs, nil)
}

// publishDual is PublishDual with the data of envs[i] taken from typed[i] when typed is set.
func (p *Producer) publishDual(ctx context.Context, envs []*Envelope, typed []Event) ([]Result, error) {
	if len(envs) < 2 {
		return nil, fmt.Errorf("%w: PublishDual needs at least two versions", ErrInvalidEvent)
	}
	first := envs[0]
	if err := p.Prepare(ctx, first); err != nil {
		return nil, err
	}
	for _, e := range envs[1:] {
		if e.EventType != first.EventType || (e.Metadata.TenantID != "" && e.Metadata.TenantID != first.Metadata.TenantID) {
			return nil, fmt.Errorf("%w: dual-published copies must share eventType and tenantId", ErrInvalidEvent)
		}
		e.EventID, e.Timestamp, e.Metadata = first.EventID, first.Timestamp, first.Metadata
	}
	recs := make([]*kgo.Record, len(envs))
	for i, env := range envs {
		var data Event
		if typed != nil {
			data = typed[i]
		}
		var err error
		if recs[i], err = p.recordOf(ctx, env, data); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	order := make([]int, len(recs)) // order[j]: the index in envs of the j-th copy written
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(majorOf(Header(recs[b], HeaderVersion)), majorOf(Header(recs[a], HeaderVersion)))
	})
	sent := make([]*kgo.Record, len(recs))
	for j, i := range order {
		sent[j] = recs[i]
	}
	rs, err := p.send(ctx, sent)
	results := make([]Result, len(recs))
	for j, i := range order {
		results[i] = rs[j]
	}
	return results, err
}

// PublishAsync sends one event without waiting; done is called exactly once with the result, from
// a franz-go goroutine (keep it short). Refusals are reported through done before PublishAsync
// returns.
func (p *Producer) PublishAsync(ctx context.Context, env *Envelope, done func(Result, error)) {
	rec, err := p.record(ctx, env)
	if err != nil {
		done(Result{}, err)
		return
	}
	p.produce(ctx, rec, done)
}

// Prepare fills in what the producer owns and checks what it must refuse, without sending:
//
//   - eventId: a new UUIDv7 (time-ordered) when empty; a given UUID is lowercased;
//   - timestamp: now when zero;
//   - version: the newest schema version of the event type when empty;
//   - metadata.source: the producer's system (ErrNotOwner when the envelope names another);
//   - metadata.correlationId: from ctx (ContextWithCorrelationID), else the eventId;
//   - metadata.traceId: from ctx (an OpenTelemetry span, else ContextWithTraceparent), else a new
//     trace id.
//
// It refuses with ErrNotOwner an event type the system does not publish and with ErrMissingTenant
// an empty tenantId. Publishing then refuses with ErrInvalidEvent an identifier that breaks the
// grammar of identifiers.go (a client-chosen eventId that is no UUID, a tenantId with a slash or a
// CR, ...) and data that does not match the schema, naming every bad field.
func (p *Producer) Prepare(ctx context.Context, env *Envelope) error {
	if err := p.checkOwner(env.EventType, env.Metadata.Source); err != nil {
		return err
	}
	if env.Metadata.TenantID == "" {
		return fmt.Errorf("%w: metadata.tenantId is empty", ErrMissingTenant)
	}
	env.Metadata.Source = p.system
	if env.EventID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("streams: eventId: %w", err)
		}
		env.EventID = id.String()
	} else if isUUID(env.EventID) {
		env.EventID = strings.ToLower(env.EventID) // one spelling per UUID, so one dedup key
	}
	if env.Timestamp.IsZero() {
		env.Timestamp = p.cfg.now()
	}
	if env.Version == "" {
		v, ok := p.serde.set.Latest(env.EventType)
		if !ok {
			return fmt.Errorf("%w: no schema for %q", ErrUnknownEventType, env.EventType)
		}
		env.Version = v.String()
	}
	if env.Metadata.CorrelationID == "" {
		env.Metadata.CorrelationID = CorrelationID(ctx)
	}
	if env.Metadata.CorrelationID == "" {
		env.Metadata.CorrelationID = env.EventID
	}
	if sc := trace.SpanContextFromContext(ctx); env.Metadata.TraceID == "" && sc.IsValid() {
		env.Metadata.TraceID = sc.TraceID().String()
	}
	if env.Metadata.TraceID == "" {
		env.Metadata.TraceID = TraceID(ctx)
	}
	if env.Metadata.TraceID == "" {
		env.Metadata.TraceID = newTraceID()
	}
	return nil
}

// checkOwner refuses an event type the producer's system does not publish, and a source naming
// another system.
func (p *Producer) checkOwner(eventType, source string) error {
	if owner, ok := p.cat.Owner(eventType); !ok {
		return fmt.Errorf("%w: %q is not in the catalog", ErrUnknownEventType, eventType)
	} else if owner != p.system {
		return fmt.Errorf("%w: %s publishes %s, not %s", ErrNotOwner, owner, eventType, p.system)
	}
	if source != "" && source != p.system {
		return fmt.Errorf("%w: metadata.source is %q but this producer is %s", ErrNotOwner, source, p.system)
	}
	return nil
}

// ParseJSON decodes a JSON envelope for this producer (see the package function ParseJSON):
// ownership (event type and source) is checked after the JSON text (so a duplicated eventType
// key cannot pick the one checked) and before the data, so a foreign event is refused as such
// whatever its payload.
func (p *Producer) ParseJSON(b []byte) (*Envelope, error) {
	if err := checkStrictJSON(b); err != nil {
		return nil, err
	}
	var head struct {
		EventType string `json:"eventType"`
		Metadata  struct {
			Source string `json:"source"`
		} `json:"metadata"`
	}
	if json.Unmarshal(b, &head) == nil && head.EventType != "" {
		if err := p.checkOwner(head.EventType, head.Metadata.Source); err != nil {
			return nil, err
		}
	}
	return parseJSON(b, p.serde.DataSchema)
}

// record prepares, validates and encodes env.
func (p *Producer) record(ctx context.Context, env *Envelope) (*kgo.Record, error) {
	return p.recordOf(ctx, env, nil)
}

// recordOf is record with the data taken from typed instead of env.Data when it is set.
func (p *Producer) recordOf(ctx context.Context, env *Envelope, typed Event) (*kgo.Record, error) {
	if err := p.Prepare(ctx, env); err != nil {
		return nil, err
	}
	if typed == nil { // date strings; a typed event's are checked as it is encoded (encodeTyped)
		if err := p.serde.checkNew(env); err != nil {
			return nil, err
		}
	}
	var span trace.Span
	if p.cfg.tracer != nil {
		ctx, span = startPublishSpan(ctx, p.cfg.tracer, env)
	}
	rec, err := p.serde.record(ctx, env, typed)
	if err != nil {
		if span != nil {
			span.RecordError(err)
			span.End()
		}
		return nil, err
	}
	if span != nil {
		traceContext.Inject(ctx, headerCarrier{rec}) // the span's context replaces the derived traceparent
	}
	switch {
	case p.spool == nil:
		rec.Context = ctx // without a spool, the caller's context bounds the wait for the broker
	case span != nil: // with one, an accepted record is delivered or spooled, never abandoned because its caller left
		rec.Context = trace.ContextWithSpan(context.Background(), span)
	}
	return rec, nil
}

// send produces recs in order and waits for all of them.
func (p *Producer) send(ctx context.Context, recs []*kgo.Record) ([]Result, error) {
	results := make([]Result, len(recs))
	errs := make([]error, len(recs))
	if p.spool == nil || !p.spoolFirst(recs, results, errs) {
		var wg sync.WaitGroup
		wg.Add(len(recs))
		for i, rec := range recs {
			p.produce(ctx, rec, func(r Result, err error) {
				results[i], errs[i] = r, err
				wg.Done()
			})
		}
		wg.Wait()
	}
	for i, err := range errs {
		if err != nil {
			return results, fmt.Errorf("event %s: %w", Header(recs[i], HeaderEventID), err)
		}
	}
	return results, nil
}

// spoolFirst spools the whole batch in one transaction when the producer is offline, reporting
// whether it did.
func (p *Producer) spoolFirst(recs []*kgo.Record, results []Result, errs []error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.offline {
		return false
	}
	for p.inflight > 0 {
		p.cond.Wait()
	}
	seqs, err := p.appendLocked(recs...)
	for i, rec := range recs {
		if err != nil {
			errs[i] = err
		} else {
			results[i] = Result{EventID: Header(rec, HeaderEventID), Topic: rec.Topic, Spooled: true, Seq: seqs[i]}
		}
		p.w.observe(rec, results[i], errs[i])
	}
	return true
}

// produce writes one record through the writer, or, with a spool, to the spool while offline;
// done runs exactly once, after the observers.
func (p *Producer) produce(ctx context.Context, rec *kgo.Record, done func(Result, error)) {
	if p.closed.Load() {
		p.w.observe(rec, Result{}, ErrClosed)
		done(Result{}, ErrClosed)
		return
	}
	if p.spool == nil {
		p.w.write(ctx, rec, writeEvent, done)
		return
	}
	done = p.w.observed(rec, done)
	p.mu.Lock()
	if p.closed.Load() { // checked again under mu: Close may have begun since, and the spool closes with it
		p.mu.Unlock()
		done(Result{}, ErrClosed)
		return
	}
	if p.offline {
		// Wait for every record sent before the outage to be acknowledged or spooled, so spooled
		// records stay in publish order.
		for p.inflight > 0 {
			p.cond.Wait()
		}
		seqs, err := p.appendLocked(rec)
		p.mu.Unlock()
		if err != nil {
			done(Result{}, err)
			return
		}
		done(Result{EventID: Header(rec, HeaderEventID), Topic: rec.Topic, Spooled: true, Seq: seqs[0]}, nil)
		return
	}
	if p.inflight == 0 {
		p.progress = time.Now()
	}
	p.inflight++
	p.mu.Unlock()
	// Sent without blocking: a full buffer (ErrMaxBuffered) spools the record. The client is the
	// one of this moment; replaceClient waits for inflight to drop to zero before replacing it.
	p.w.send(ctx, rec, true, func(r *kgo.Record, err error) {
		if err == nil {
			p.mu.Lock()
			p.progress = time.Now()
			p.mu.Unlock()
			p.settle()
			done(Result{EventID: Header(r, HeaderEventID), Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}, nil)
			return
		}
		if !outage(err) {
			p.settle()
			done(Result{}, err)
			return
		}
		// franz-go fails every record behind a failed one in its partition, in order, so spooling
		// from the promise keeps per-partition order.
		p.mu.Lock()
		p.offline = true
		seqs, serr := p.appendLocked(r)
		p.inflight--
		if p.inflight == 0 {
			p.cond.Broadcast()
		}
		p.mu.Unlock()
		if serr != nil {
			done(Result{}, serr)
			return
		}
		done(Result{EventID: Header(r, HeaderEventID), Topic: r.Topic, Spooled: true, Seq: seqs[0]}, nil)
	})
}

func (p *Producer) settle() {
	p.mu.Lock()
	p.inflight--
	if p.inflight == 0 {
		p.cond.Broadcast()
	}
	p.mu.Unlock()
}

// appendLocked writes records to the spool (fsync) and wakes the drainer. p.mu must be held.
func (p *Producer) appendLocked(recs ...*kgo.Record) ([]uint64, error) {
	entries := make([]spool.Entry, len(recs))
	for i, r := range recs {
		hs := make([]spool.Header, len(r.Headers))
		for j, h := range r.Headers {
			hs[j] = spool.Header{Key: h.Key, Value: h.Value}
		}
		entries[i] = spool.Entry{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: hs, EventID: Header(r, HeaderEventID)}
	}
	seqs, err := p.spool.Append(entries...)
	if err != nil {
		return nil, fmt.Errorf("streams: spooling: %w", err)
	}
	p.kick()
	return seqs, nil
}

func (p *Producer) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// outage reports whether a produce error means the broker is unreachable or overloaded (spool the
// record) rather than a refusal of this record (return the error).
func outage(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries), errors.Is(err, kgo.ErrMaxBuffered),
		errors.Is(err, kgo.ErrAborting), errors.As(err, &ne):
		return true
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return false
	}
	return kerr.IsRetriable(err)
}

// watch spools everything franz-go holds when no record has been acknowledged for SpoolAfter while
// records wait: franz-go evaluates RecordDeliveryTimeout only around requests, so with the broker
// unreachable (no connection, no request) buffered records would otherwise wait forever. Aborting
// fails them in partition order with ErrAborting, and their promises spool them. The aborted
// client's idempotent sequence numbers no longer match the broker's, so it is replaced by a new
// client (a new producer id). A record the broker had written before the abort is then delivered
// again from the spool: a duplicate with the same eventId.
func (p *Producer) watch() {
	tick := time.NewTicker(min(p.cfg.spoolAfter/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		stalled := p.inflight > 0 && time.Since(p.progress) > p.cfg.spoolAfter
		p.mu.Unlock()
		if stalled {
			p.replaceClient()
		}
	}
}

func (p *Producer) replaceClient() {
	fresh, err := kgo.NewClient(p.kopts...)
	if err != nil {
		return // the options were valid at start; try again at the next tick
	}
	p.mu.Lock()
	old := p.w.client.Load()
	p.offline = true // new events go to the spool from now on, behind the aborted ones
	p.mu.Unlock()
	old.UnsafeAbortBufferedRecords()
	p.mu.Lock()
	for p.inflight > 0 {
		p.cond.Wait()
	}
	p.w.client.Store(fresh)
	p.mu.Unlock()
	old.Close()
}

// drain delivers spooled records in order whenever the producer is offline.
func (p *Producer) drain() {
	defer close(p.drained)
	backoff := time.NewTimer(0)
	defer backoff.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-p.wake:
		case <-backoff.C:
		}
		if p.drainOnce() {
			backoff.Reset(p.cfg.drainBackoff)
		}
	}
}

// drainOnce sends one batch from the head of the spool and reports whether to back off (the broker
// failed, or there is nothing to do).
func (p *Producer) drainOnce() (backoff bool) {
	entries, err := p.spool.Peek(p.cfg.drainBatch)
	p.mu.Lock()
	p.spoolErr = err
	p.mu.Unlock()
	if err != nil && len(entries) == 0 {
		// A corrupt entry at the head stops the drain (delivering what follows would break its
		// key's order); SpoolErr reports it for health checks and an operator.
		return true
	}
	if len(entries) == 0 {
		p.mu.Lock()
		if p.spool.Len() == 0 && p.inflight == 0 {
			p.offline = false
		}
		p.mu.Unlock()
		return true
	}
	recs := make([]*kgo.Record, len(entries))
	for i, e := range entries {
		hs := make([]kgo.RecordHeader, len(e.Headers))
		for j, h := range e.Headers {
			hs[j] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
		recs[i] = &kgo.Record{Topic: e.Topic, Key: e.Key, Value: e.Value, Headers: hs}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.spoolAfter+p.cfg.requestTimeout)
	defer cancel()
	// Spooled records were observed when they were spooled; they are sent again as they are.
	// Delete the acknowledged prefix in spool order; the rest is sent again (a record acknowledged
	// after a failed one is then written twice, with the same eventId): when one partition fails
	// and another succeeds, records behind a failure can be acknowledged.
	failed := make([]bool, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for i, r := range recs {
		p.w.send(ctx, r, false, func(_ *kgo.Record, err error) { failed[i] = err != nil; wg.Done() })
	}
	wg.Wait()
	done := -1
	for i := range recs {
		if failed[i] {
			break
		}
		done = i
	}
	if done >= 0 {
		if err := p.spool.Delete(entries[done].Seq); err != nil {
			return true
		}
	}
	if done < len(entries)-1 {
		return true
	}
	p.kick()
	return false
}

// SpoolDepth returns the number of spooled events (0 without a spool).
func (p *Producer) SpoolDepth() int {
	if p.spool == nil {
		return 0
	}
	return p.spool.Len()
}

// SpoolErr returns the error that stops the spool from draining (a corrupt entry, naming its
// Seq), or nil. Entries before a corrupt one are still delivered; nothing is dropped.
func (p *Producer) SpoolErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spoolErr
}

// SpoolOldestAge returns how long the oldest spooled event has waited (0 when none).
func (p *Producer) SpoolOldestAge() time.Duration {
	if p.spool == nil {
		return 0
	}
	return p.spool.OldestAge(time.Now())
}

// Close waits until ctx ends for buffered records to be acknowledged; with a spool, records still
// unacknowledged then are spooled, so nothing accepted is lost. It then stops the drainer and closes
// the client and the spool. Spooled events are delivered by the next Producer on the same SpoolDir.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	already := p.closed.Swap(true)
	p.mu.Unlock()
	if already {
		return nil
	}
	if p.spool != nil {
		close(p.stop)
		<-p.drained
	}
	p.mu.Lock()
	client := p.w.client.Load()
	p.mu.Unlock()
	err := client.Flush(ctx)
	if err != nil && p.spool != nil {
		client.UnsafeAbortBufferedRecords() // promises see ErrAborting and spool their records
		p.mu.Lock()
		for p.inflight > 0 {
			p.cond.Wait()
		}
		p.mu.Unlock()
	}
	client.Close()
	if p.spool != nil {
		if cerr := p.spool.Close(); cerr != nil {
			return fmt.Errorf("streams: closing spool: %w", cerr)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("streams: records not acknowledged at close: %w", err)
	}
	return nil
}

// Drained waits until the spool is empty and the producer is back online, or ctx ends.
func (p *Producer) Drained(ctx context.Context) error {
	if p.spool == nil {
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		p.mu.Lock()
		done := !p.offline && p.spool.Len() == 0
		p.mu.Unlock()
		if done {
			return nil
		}
		p.kick()
		select {
		case <-ctx.Done():
			return fmt.Errorf("streams: %d events still spooled: %w", p.spool.Len(), ctx.Err())
		case <-tick.C:
		}
	}
}

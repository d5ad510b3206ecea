package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/topics"
)

// Consumer reads the events one system subscribes to, through the system's consumer group (the
// catalog's System.Group) on the topics that carry them and on the system's redrive topic (dead
// letters written back by `hotelbus dlq redrive`), and calls the handler registered for each
// event's type and major version.
//
// Guarantees:
//
//   - A record whose key, envelope headers or envelope identifiers break the grammar of
//     identifiers.go (written by another client around the producer) reaches the chain with
//     DecodeErr wrapping ErrInvalidIdentifier: it is dead-lettered (class "invalid-identifier")
//     or, without the dead-letter middleware, logged and finished; the handler never sees it.
//   - Records of a type the system does not subscribe to are skipped by their eventType header,
//     without decoding. A subscribed event with no handler for its major version is logged at warn
//     and skipped. Skipped records count as finished.
//   - Within a partition, records with the same ordering key are handled strictly in offset order,
//     one at a time; records with different keys run concurrently, up to MaxInFlightPerPartition
//     per partition and MaxInFlight in all. The ordering key is the record key (tenantId), or the
//     value of the data field the catalog declares for the type (Catalog.OrderingKey) when the
//     record's data holds it as a non-empty string.
//   - A record is finished when its handler chain returns nil or a non-retryable error. A
//     non-retryable error that reaches the consumer (no middleware dead-lettered it) is logged and
//     the record is finished anyway: a partition never stops on a bad record. A retryable error
//     that reaches the consumer (the dead-letter write failed, Redis or the registry is down) does
//     not finish it: the chain runs again with backoff, blocking that key only, so nothing is
//     committed past an event that was neither handled nor dead-lettered. Undecodable records
//     reach the chain as Messages with DecodeErr set.
//   - The committed offset of a partition is the lowest offset not yet finished (every record
//     below it is finished), or held by middleware whose work for a finished record ends later
//     (Dedup's done marks, written together after their handlers returned). It never moves
//     backwards, and is committed every CommitInterval, when partitions are revoked and on
//     shutdown; records finished above it are handled again by the next owner after a rebalance
//     or a crash (at-least-once; dedup middleware removes the repeats).
//   - Rebalances are cooperative (cooperative-sticky). On revoke the consumer stops starting
//     handlers for the revoked partitions, waits up to ShutdownTimeout for their running handlers
//     and held records (then cancels their contexts and abandons them), commits what finished while it still owns
//     the partitions, and only then lets the rebalance proceed. Lost partitions (the member was
//     evicted) are dropped without a commit.
//
// Handlers must be registered with Handle or HandleType before Run.
type Consumer struct {
	system     string
	group      string
	topics     []string
	serde      *Serde
	cat        *topics.Catalog
	cfg        consumerConfig
	log        *slog.Logger
	subscribed map[string]bool

	regMu    sync.Mutex
	routes   map[routeKey]*route
	regErr   error
	started  bool
	closed   bool
	stopPoll context.CancelFunc
	done     chan struct{}

	cl     *kgo.Client
	base   context.Context // parent of the handler contexts: the Run context without its cancellation
	orphan Handler         // the chain for undecodable records whose type or major is unknown

	// commitMu serializes commits with the rebalance callbacks, so that no commit is issued for a
	// partition after the callback that gave it up has returned.
	commitMu sync.Mutex

	mu         sync.Mutex
	parts      map[topicPartition]*partState
	order      []*partState // live partitions, in round-robin order for dispatch
	rr         int
	running    int           // handler chains running, including abandoned ones
	unfinished int           // records of live partitions enqueued and not finished
	held       int           // commit holds (Message.holdCommit) of live partitions not released
	changed    chan struct{} // closed by the next notify; nil until someone waits (waitChanged)
}

type routeKey struct {
	eventType string
	major     int
}

// route is how records of one event type and major version are handled.
type route struct {
	reader     *schemas.Version // the newest local minor of the major: records are decoded into it
	handler    Handler          // the user's handler
	chain      Handler          // the middleware chain around the handler
	orderField string           // the data field naming the ordering key ("" = the record key)
	typed      *typedRoute      // set for a typed handler (Handle): records decode into its type
}

type topicPartition struct {
	topic     string
	partition int32
}

// partState is one assigned partition: the records fetched and not finished, in offset order
// (win), the per-key lanes that serialize records with the same ordering key, and the commit
// position. A new partState is made each time the partition is assigned; a dropped one (revoked,
// lost, shut down) ignores the handlers that finish late.
type partState struct {
	c      *Consumer
	tp     topicPartition
	ctx    context.Context
	cancel context.CancelFunc

	win        []*job            // enqueued records not yet known finished, in offset order
	lanes      map[string][]*job // per ordering key: the running or next record first
	ready      []*job            // records at the head of their lane, waiting for a slot
	running    int
	unfinished int
	held       int   // commit holds of its records not released
	last       int64 // highest offset enqueued (-1: none)
	next       int64 // offset to commit: every record below it is finished (-1: nothing finished)
	epoch      int32 // leader epoch of the record at next-1
	committed  int64 // highest offset committed by this member (-1: none)
	revoked    bool  // no handler is started for it anymore
	dropped    bool  // it is no longer the member's; late finishes are ignored
}

// job is one fetched record on its way through the consumer.
type job struct {
	part  *partState
	msg   *Message
	chain Handler // nil when the record is skipped (finished without a handler call)
	// undecoded is the route of a record routed by its headers and not decoded yet: the worker
	// decodes it before its chain, or, under LazyDecode, Message.Decode when the handler asks.
	undecoded *route
	key       string
	offset    int64
	epoch     int32
	started   bool // its chain was called (it is running or finished)
	done      bool
	holds     int // commit holds not released: the commit position stays below it while > 0
}

// readerKey is the Message state key under which a record whose decoding failed for a retryable
// reason keeps the reader version, so the final handler can decode it again.
type readerKey struct{}

// NewConsumer returns a consumer for system, which must be in serde's catalog and subscribe to at
// least one event type. It does not connect before Run.
func NewConsumer(system string, serde *Serde, opts ...ConsumerOption) (*Consumer, error) {
	cfg := defaultConsumerConfig()
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("%w: nil consumer option", ErrConfig)
		}
		o.applyConsumer(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sys, ok := serde.cat.System(system)
	if !ok {
		return nil, fmt.Errorf("%w: system %q is not in the catalog", ErrConfig, system)
	}
	if len(sys.Subscribes) == 0 {
		return nil, fmt.Errorf("%w: system %q subscribes to nothing", ErrConfig, system)
	}
	tps := serde.cat.SubscribedTopics(system)
	group := sys.Group
	if cfg.group != "" {
		group = cfg.group
	} else if sys.RedriveTopic != "" {
		tps = append(tps, sys.RedriveTopic)
		slices.Sort(tps)
	}
	c := &Consumer{system: system, group: group, topics: tps, serde: serde, cat: serde.cat,
		cfg: cfg, log: cfg.logger.With("system", system, "group", group), subscribed: map[string]bool{},
		routes: map[routeKey]*route{}, done: make(chan struct{}), parts: map[topicPartition]*partState{}}
	for _, et := range sys.Subscribes {
		c.subscribed[et] = true
	}
	return c, nil
}

// Group returns the consumer group the consumer reads through.
func (c *Consumer) Group() string { return c.group }

// Topics returns the topics the consumer reads (event topics and the redrive topic), sorted.
func (c *Consumer) Topics() []string { return append([]string(nil), c.topics...) }

// Handle registers h for the events of eventType written with major version major; h receives
// them decoded into the newest local minor version of that major. Registering handlers for two
// majors (dual subscription) gives each its own copy of a dual-published event; with Dedup in the
// chain the event is handled once, in the first copy on the partition (Producer.PublishDual
// writes the newest major first). A type the system does not subscribe to, a major with no local
// schema, a declared ordering key missing from that major's schema, or a second handler for the
// same pair makes Run fail with ErrConfig; a registration after Run is logged and ignored.
func (c *Consumer) Handle(eventType string, major int, h Handler) {
	c.handle(eventType, major, h, nil)
}

// handle registers h, decoding its records into typed values when typed is set (see Handle).
func (c *Consumer) handle(eventType string, major int, h Handler, typed *typedRoute) {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if c.started {
		c.log.Error("streams: consumer: handler registered after Run; ignored", "eventType", eventType, "major", major)
		return
	}
	if c.regErr == nil {
		c.regErr = c.register(eventType, major, h, typed)
	}
}

// failRegistration makes Run fail with err (the first registration error wins).
func (c *Consumer) failRegistration(err error) {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	if c.regErr == nil {
		c.regErr = err
	}
}

// HandleType registers h for the newest major version of eventType that has a local schema (see
// Handle). Events written with older majors then have no handler: they are logged and skipped.
func (c *Consumer) HandleType(eventType string, h Handler) {
	v, ok := c.serde.set.Latest(eventType)
	if !ok {
		c.failRegistration(fmt.Errorf("%w: handler for %s: no local schema", ErrConfig, eventType))
		return
	}
	c.Handle(eventType, v.Major, h)
}

func (c *Consumer) register(eventType string, major int, h Handler, typed *typedRoute) error {
	switch {
	case h == nil:
		return fmt.Errorf("%w: nil handler for %s v%d", ErrConfig, eventType, major)
	case !c.subscribed[eventType]:
		return fmt.Errorf("%w: handler for %s: %s does not subscribe to it in the catalog", ErrConfig, eventType, c.system)
	}
	sub, ok := c.serde.set.Lookup(eventType, major)
	if !ok {
		return fmt.Errorf("%w: handler for %s v%d: no local schema for that major version", ErrConfig, eventType, major)
	}
	k := routeKey{eventType, major}
	if _, dup := c.routes[k]; dup {
		return fmt.Errorf("%w: two handlers for %s v%d", ErrConfig, eventType, major)
	}
	r := &route{reader: sub.Latest(), handler: h, orderField: c.cat.OrderingKey(eventType), typed: typed}
	if typed != nil {
		r.reader = typed.reader
	}
	if r.orderField != "" && !isStringField(r.reader.Data, r.orderField) {
		return fmt.Errorf("%w: ordering key of %s: %s %s has no string field %q", ErrConfig, eventType, eventType, r.reader, r.orderField)
	}
	if r.orderField != "" && typed != nil && typed.key == nil {
		return fmt.Errorf("%w: ordering key of %s: the typed handler's type has no string field tagged %q", ErrConfig, eventType, r.orderField)
	}
	c.routes[k] = r
	return nil
}

// isStringField reports whether rec has a field name of type string or ["null", string].
func isStringField(rec *avro.RecordSchema, name string) bool {
	for _, f := range rec.Fields() {
		if f.Name() != name {
			continue
		}
		t := f.Type()
		if u, ok := t.(*avro.UnionSchema); ok {
			if n, i := u.Nullable(), len(u.Types()); !n || i != 2 {
				return false
			}
			t = u.Types()[1]
		}
		return t.Type() == avro.String
	}
	return false
}

// Run joins the group and handles events until ctx ends, Close is called, or a fatal error
// (authorization refused, a BatchPreparer failing) occurs. It then shuts down gracefully: it stops
// fetching, lets the records already fetched finish within ShutdownTimeout (abandoning the rest),
// commits, and leaves the group. It returns nil after a shutdown asked for by ctx or Close, and
// ErrClosed when the consumer was closed or run before.
func (c *Consumer) Run(ctx context.Context) error {
	c.regMu.Lock()
	switch {
	case c.closed || c.started:
		c.regMu.Unlock()
		return fmt.Errorf("%w: consumer %s already run or closed", ErrClosed, c.group)
	case c.regErr != nil:
		c.regMu.Unlock()
		return c.regErr
	case len(c.routes) == 0:
		c.regMu.Unlock()
		return fmt.Errorf("%w: consumer %s has no handlers", ErrConfig, c.group)
	}
	c.started = true
	pollCtx, stop := context.WithCancel(ctx)
	c.stopPoll = stop
	c.regMu.Unlock()
	defer close(c.done)
	defer stop()

	for _, r := range c.routes {
		r.chain = c.wrap(c.final(r.handler))
	}
	c.orphan = c.wrap(c.final(nil))
	c.base = context.WithoutCancel(ctx)
	start := kgo.NewOffset().AtStart()
	if c.cfg.start == StartLatest {
		start = kgo.NewOffset().AtEnd()
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(c.cfg.brokers...),
		kgo.ClientID("hotelbus-" + c.system),
		kgo.ConsumerGroup(c.group),
		kgo.ConsumeTopics(c.topics...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.BlockRebalanceOnPoll(),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(c.onAssigned),
		kgo.OnPartitionsRevoked(c.onRevoked),
		kgo.OnPartitionsLost(c.onLost),
		kgo.ConsumeResetOffset(start),
		kgo.SessionTimeout(c.cfg.sessionTimeout),
		kgo.RebalanceTimeout(c.cfg.rebalanceTimeout),
		kgo.FetchMaxBytes(c.cfg.fetchMaxBytes),
	}
	cl, err := kgo.NewClient(append(kopts, c.cfg.kafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("%w: kafka client: %v", ErrConfig, err)
	}
	c.cl = cl
	commitStop := make(chan struct{})
	commitDone := make(chan struct{})
	go c.commitLoop(commitStop, commitDone)

	err = c.poll(pollCtx)
	c.shutdown()
	close(commitStop)
	<-commitDone
	cl.CloseAllowingRebalance()
	return err
}

// Close stops a running consumer gracefully (see Run) and waits for Run to return, or for ctx to
// end. Closing a consumer that is not running only prevents it from running.
func (c *Consumer) Close(ctx context.Context) error {
	c.regMu.Lock()
	c.closed = true
	started, stop := c.started, c.stopPoll
	c.regMu.Unlock()
	if !started {
		return nil
	}
	stop()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("streams: consumer %s close: %w", c.group, ctx.Err())
	}
}

// wrap applies the middleware around h, the first registered outermost, and the tracing
// middleware around them all when Tracing is on.
func (c *Consumer) wrap(h Handler) Handler {
	for i := len(c.cfg.middleware) - 1; i >= 0; i-- {
		h = c.cfg.middleware[i](h)
	}
	if c.cfg.tracer != nil {
		h = traceMiddleware(c.cfg.tracer)(h)
	}
	return h
}

// final is the innermost handler of a chain: it returns Permanent(DecodeErr) for a record that
// does not decode (decoding it again first when the failure was retryable, such as the registry
// being unreachable, and then checking its identifiers), turns a panic of h into a permanent error, and otherwise calls h. With a nil
// h it finds the handler from the decoded envelope, for records whose headers did not name it.
func (c *Consumer) final(h Handler) Handler {
	return func(ctx context.Context, m *Message) (err error) {
		if m.DecodeErr != nil {
			if !IsRetryable(m.DecodeErr) {
				return Permanent(m.DecodeErr)
			}
			reader, _ := m.Value(readerKey{}).(*schemas.Version)
			env, derr := c.serde.DecodeAs(ctx, m.Record.Value, reader)
			if derr != nil {
				m.DecodeErr = derr
				if !IsRetryable(derr) {
					return Permanent(derr)
				}
				return derr
			}
			if err := recordIdentifiers(c.cat, m.Record, env); err != nil {
				m.DecodeErr = err
				return Permanent(err)
			}
			m.Envelope, m.DecodeErr = env, nil
			if m.job != nil {
				m.job.undecoded = nil
			}
		}
		if h == nil {
			r := c.routes[routeKey{m.Envelope.EventType, majorOf(m.Envelope.Version)}]
			if r == nil || !c.subscribed[m.Envelope.EventType] {
				c.log.Warn("streams: consumer: no handler found; event skipped", recordAttrs(m.Record, m.Envelope.EventType, m.Envelope.Version)...)
				return nil
			}
			h = r.handler
		}
		defer func() {
			if p := recover(); p != nil {
				err = Permanent(fmt.Errorf("streams: handler for %s panicked: %v", messageEventType(m), p))
			}
		}()
		return h(ctx, m)
	}
}

// majorOf returns the major of a "major.minor" version (-1 when it is not one).
func majorOf(version string) int {
	maj, _, ok := strings.Cut(version, ".")
	n, err := strconv.Atoi(maj)
	if !ok || err != nil {
		return -1
	}
	return n
}

func recordAttrs(r *kgo.Record, eventType, version string) []any {
	return []any{"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "eventType", eventType, "version", version,
		"eventId", Header(r, HeaderEventID)}
}

// poll fetches and dispatches until ctx ends or a fatal error.
func (c *Consumer) poll(ctx context.Context) error {
	for {
		room, err := c.waitRoom(ctx)
		if err != nil {
			return nil
		}
		fs := c.cl.PollRecords(ctx, room)
		parts := c.partsOf(fs)
		c.cl.AllowRebalance()
		if fs.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		var fatal error
		fs.EachError(func(topic string, partition int32, err error) {
			if isFatal(err) && fatal == nil {
				fatal = fmt.Errorf("streams: consumer %s: fetch %s/%d: %w", c.group, topic, partition, err)
			}
			c.log.Warn("streams: consumer: fetch error", "topic", topic, "partition", partition, "err", err)
		})
		if fatal != nil {
			return fatal
		}
		jobs, batch := c.jobs(ctx, fs, parts)
		for _, p := range c.cfg.preparers {
			if err := p.Prepare(ctx, batch); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("streams: consumer %s: prepare batch: %w", c.group, err)
			}
		}
		c.enqueue(jobs)
	}
}

// isFatal reports whether a fetch error means the consumer cannot go on.
func isFatal(err error) bool {
	return errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.ClusterAuthorizationFailed) || errors.Is(err, kerr.SaslAuthenticationFailed)
}

// waitRoom waits until fewer than MaxPending records are unfinished and returns how many more may
// be polled.
func (c *Consumer) waitRoom(ctx context.Context) (int, error) {
	for {
		c.mu.Lock()
		room, ch := c.cfg.maxPending-c.unfinished-c.held, c.waitChanged()
		c.mu.Unlock()
		if room > 0 {
			return room, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// partsOf maps the partitions of a poll to their current state. It runs before AllowRebalance, so
// the records belong to exactly these states (a partition revoked and assigned again later gets a
// new state, and these records are then dropped).
func (c *Consumer) partsOf(fs kgo.Fetches) map[topicPartition]*partState {
	out := map[topicPartition]*partState{}
	c.mu.Lock()
	defer c.mu.Unlock()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		tp := topicPartition{p.Topic, p.Partition}
		if st := c.parts[tp]; st != nil && len(p.Records) > 0 {
			out[tp] = st
		}
	})
	return out
}

// jobs turns the polled records into jobs, decoding those that reach a handler (on up to
// GOMAXPROCS goroutines: decoding is the poll loop's main cost), and returns them in fetch order
// with the messages that will enter the chain (the batch for the preparers).
func (c *Consumer) jobs(ctx context.Context, fs kgo.Fetches, parts map[topicPartition]*partState) ([]*job, []*Message) {
	var jobs []*job
	var recs []*kgo.Record
	fs.EachRecord(func(r *kgo.Record) {
		if p := parts[topicPartition{r.Topic, r.Partition}]; p != nil {
			jobs = append(jobs, &job{part: p, offset: r.Offset, epoch: r.LeaderEpoch, key: string(r.Key)})
			recs = append(recs, r)
		}
	})
	workers := min(runtime.GOMAXPROCS(0), len(jobs)/64+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(jobs); i += workers {
				c.route(ctx, jobs[i], recs[i])
			}
		}()
	}
	wg.Wait()
	var batch []*Message
	for _, j := range jobs {
		if j.chain == nil {
			j.done = true
			continue
		}
		batch = append(batch, j.msg)
	}
	return jobs, batch
}

// route decides what happens to one record: skipped (j.chain stays nil) or handed to a chain with
// its message and ordering key. A record whose headers name its type, version, eventId and source
// is routed and deduplicated by them and decoded later, by the worker that runs its chain
// (decode); an ordering key that is a data field is read from its encoding (Serde.dataString),
// unless the Serde has a FieldProtector. Any other record is decoded here.
func (c *Consumer) route(ctx context.Context, j *job, r *kgo.Record) {
	et, version := Header(r, HeaderEventType), Header(r, HeaderVersion)
	if et != "" && !c.subscribed[et] {
		return
	}
	m := &Message{Record: r, Group: c.group, job: j}
	var rt *route
	if et != "" && majorOf(version) >= 0 {
		if rt = c.routes[routeKey{et, majorOf(version)}]; rt == nil {
			c.log.Warn("streams: consumer: no handler found; event skipped", recordAttrs(r, et, version)...)
			return
		}
		switch {
		case Header(r, HeaderEventID) == "" || Header(r, HeaderSource) == "":
			c.decodeAs(ctx, m, rt)
		case rt.orderField == "":
			j.undecoded = rt
		case c.serde.cfg.protector == nil: // a sealed ordering key would differ from its clear value
			if key, ok := c.serde.dataString(ctx, r.Value, rt.orderField); ok {
				j.undecoded = rt
				if key != "" {
					j.key = key
				}
			} else {
				c.decodeAs(ctx, m, rt)
			}
		default:
			c.decodeAs(ctx, m, rt)
		}
	} else {
		// No usable headers: the envelope names the type and version.
		m.Envelope, m.DecodeErr = c.serde.Decode(ctx, r.Value)
		if m.DecodeErr == nil {
			et, version = m.Envelope.EventType, m.Envelope.Version
			if !c.subscribed[et] {
				return
			}
			if rt = c.routes[routeKey{et, majorOf(version)}]; rt == nil {
				c.log.Warn("streams: consumer: no handler found; event skipped", recordAttrs(r, et, version)...)
				return
			}
		}
	}
	if c.checkIdentifiers(m); m.DecodeErr != nil {
		j.undecoded = nil // dead-lettered undecoded
	}
	j.msg = m
	if rt == nil {
		j.chain = c.orphan
		return
	}
	j.chain = rt.chain
	switch {
	case rt.orderField == "" || m.Envelope == nil:
	case m.event != nil:
		if v := rt.typed.key(m.event); v != "" {
			j.key = v
		}
	default:
		if v, ok := m.Envelope.Data[rt.orderField].(string); ok && v != "" {
			j.key = v
		}
	}
}

// decodeAs decodes m's record into rt's reader version (and its typed value for a typed route),
// keeping the reader for the final handler when the failure is retryable.
func (c *Consumer) decodeAs(ctx context.Context, m *Message, rt *route) {
	if rt.typed != nil {
		e := rt.typed.new()
		if m.Envelope, m.DecodeErr = c.serde.decodeTyped(ctx, m.Record.Value, rt.reader, e); m.DecodeErr == nil {
			m.event = e
		}
	} else {
		m.Envelope, m.DecodeErr = c.serde.DecodeAs(ctx, m.Record.Value, rt.reader)
	}
	if m.DecodeErr != nil && IsRetryable(m.DecodeErr) {
		m.SetValue(readerKey{}, rt.reader)
	}
}

// checkIdentifiers turns a message whose key, headers or (once decoded) envelope identifiers break
// the grammar into an undecodable one (DecodeErr wraps ErrInvalidIdentifier). A record that does
// not decode is dead-lettered as such; one that does (or may, once decoded again) must also carry
// identifiers the handler can put in a header or a key.
func (c *Consumer) checkIdentifiers(m *Message) {
	if m.DecodeErr == nil || IsRetryable(m.DecodeErr) {
		if err := recordIdentifiers(c.cat, m.Record, m.Envelope); err != nil {
			m.Envelope, m.DecodeErr = nil, err
		}
	}
}

// decode decodes the record of j, routed by its headers, before its chain runs (on the worker, so
// decoding overlaps the poll and Redis round trips, and a record of a partition given up first is
// never decoded).
func (c *Consumer) decode(j *job) {
	rt := j.undecoded
	if rt == nil || c.cfg.lazyDecode && rt.typed == nil {
		return // decoded already, or left to the handler (LazyDecode; typed handlers need it)
	}
	j.undecoded = nil
	c.decodeChecked(j.part.ctx, j.msg, rt)
}

// decodeChecked decodes m, routed by its headers into rt, and checks the envelope's identifiers.
func (c *Consumer) decodeChecked(ctx context.Context, m *Message, rt *route) {
	c.decodeAs(ctx, m, rt)
	if m.DecodeErr == nil {
		if err := decodedIdentifiers(c.cat, m.Record, m.Envelope); err != nil {
			m.Envelope, m.DecodeErr = nil, err
		}
	}
}

// Decode returns the message's event: m.Envelope, decoding the record first when the consumer
// left it undecoded (LazyDecode), or the reason it does not decode (m.DecodeErr: permanent, such
// as a malformed record or identifiers that break the grammar, or retryable, such as the registry
// being unreachable; then the next call tries again). Call it from the chain, not concurrently.
func (m *Message) Decode(ctx context.Context) (*Envelope, error) {
	if j := m.job; j != nil && j.undecoded != nil {
		if j.part.c.decodeChecked(ctx, m, j.undecoded); m.DecodeErr == nil || !IsRetryable(m.DecodeErr) {
			j.undecoded = nil
		}
	}
	if m.DecodeErr != nil {
		if IsRetryable(m.DecodeErr) {
			return nil, m.DecodeErr
		}
		return nil, Permanent(m.DecodeErr)
	}
	return m.Envelope, nil
}

// enqueue adds polled jobs to their partitions (dropping those of partitions given up since the
// poll) and starts what may start.
func (c *Consumer) enqueue(jobs []*job) {
	var discarded []*Message
	defer func() { c.release(discarded) }()
	c.mu.Lock()
	defer c.mu.Unlock()
	touched := map[*partState]bool{}
	for _, j := range jobs {
		p := j.part
		if p.dropped || j.offset <= p.last {
			if j.msg != nil && !j.done {
				discarded = append(discarded, j.msg)
			}
			continue
		}
		p.last = j.offset
		p.win = append(p.win, j)
		touched[p] = true
		if j.done {
			continue
		}
		p.unfinished++
		c.unfinished++
		lane := append(p.lanes[j.key], j)
		p.lanes[j.key] = lane
		if len(lane) == 1 {
			p.ready = append(p.ready, j)
		}
	}
	for p := range touched {
		p.advance()
	}
	c.schedule()
	c.notify()
}

// advance moves the commit position past the finished records at the front of the window whose
// commit holds are released.
func (p *partState) advance() {
	for len(p.win) > 0 && p.win[0].done && p.win[0].holds == 0 {
		j := p.win[0]
		p.next, p.epoch = j.offset+1, j.epoch
		p.win[0] = nil
		p.win = p.win[1:]
	}
}

// schedule starts chains for ready records while slots are free, taking partitions in turn, each
// on a new worker goroutine (a worker that finishes a record takes the next ready one itself: see
// work). Caller holds c.mu.
func (c *Consumer) schedule() {
	for {
		j := c.take()
		if j == nil {
			return
		}
		go c.work(j)
	}
}

// take returns the next ready record when an in-flight slot is free, taking partitions in turn,
// with its slot counted; nil when none may start. Caller holds c.mu.
func (c *Consumer) take() *job {
	if c.running >= c.cfg.maxInFlight {
		return nil
	}
	n := len(c.order)
	for i := range n {
		p := c.order[(c.rr+i)%n]
		if len(p.ready) == 0 || p.running >= c.cfg.maxInFlightPart || p.revoked {
			continue
		}
		c.rr = (c.rr + i + 1) % n
		j := p.ready[0]
		p.ready[0] = nil
		p.ready = p.ready[1:]
		j.started = true
		p.running++
		c.running++
		return j
	}
	return nil
}

// work runs records on one goroutine: j, then, while slots are free, the next ready record, so
// that a busy consumer starts a goroutine per free slot rather than per record; records of one
// key still run one after another (a record becomes ready when the one before it in its lane
// finished).
func (c *Consumer) work(j *job) {
	for j != nil {
		err := c.run(j)
		c.mu.Lock()
		c.finish(j, err)
		j = c.take()
		c.schedule()
		c.notify()
		c.mu.Unlock()
	}
}

// run calls the chain for one record, again after a backoff while it fails with a retryable
// error, and returns the outcome.
func (c *Consumer) run(j *job) error {
	c.decode(j)
	err := j.chain(j.part.ctx, j.msg)
	bo := Backoff{Initial: 100 * time.Millisecond, Max: 30 * time.Second}
	for err != nil && IsRetryable(err) && j.part.ctx.Err() == nil {
		wait := bo.Next()
		c.log.Warn("streams: consumer: retryable failure reached the consumer; the record stays unfinished and runs again",
			append(recordAttrs(j.msg.Record, messageEventType(j.msg), Header(j.msg.Record, HeaderVersion)), "err", err, "backoff", wait)...)
		if sleepCtx(j.part.ctx, wait) == nil {
			err = j.chain(j.part.ctx, j.msg)
		}
	}
	if err != nil && j.part.ctx.Err() == nil {
		c.log.Error("streams: consumer: handler failed; event skipped",
			append(recordAttrs(j.msg.Record, messageEventType(j.msg), Header(j.msg.Record, HeaderVersion)), "err", err)...)
	}
	return err
}

// finish records the outcome of j's chain: j is finished (its lane's next record becomes ready,
// the commit position advances) unless its partition was given up meanwhile or it failed because
// its context ended. Caller holds c.mu.
func (c *Consumer) finish(j *job, err error) {
	p := j.part
	c.running--
	p.running--
	if p.dropped || (err != nil && p.ctx.Err() != nil) {
		// Given up (revoked past the deadline, lost or shut down): not finished, not committed.
		return
	}
	j.done = true
	p.unfinished--
	c.unfinished--
	if lane := p.lanes[j.key][1:]; len(lane) > 0 {
		p.lanes[j.key] = lane
		p.ready = append(p.ready, lane[0])
	} else {
		delete(p.lanes, j.key)
	}
	p.advance()
}

// holdCommit keeps the offset of m's record from being committed until the returned release is
// called (once), for middleware whose work for a record ends after the record's chain returned
// (Dedup writes the done marks of the records finishing meanwhile together). The record still
// counts as finished for its key: the next record of the key may start. Holds count towards
// MaxPending; a revoke and Close wait up to ShutdownTimeout for them, then give the partition up
// without committing past a held record. It returns nil for a message that did not come from a
// Consumer: the middleware must then finish its work before returning. Call it from the chain,
// before it returns.
func (m *Message) holdCommit() (release func()) {
	j := m.job
	if j == nil {
		return nil
	}
	p := j.part
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	j.holds++
	if !p.dropped {
		p.held++
		c.held++
	}
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		j.holds--
		if p.dropped {
			return // dropLocked forgot p's holds
		}
		p.held--
		c.held--
		if j.holds == 0 && j.done {
			p.advance()
		}
		c.notify()
	}
}

// notify wakes everything waiting for progress. Caller holds c.mu.
func (c *Consumer) notify() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// waitChanged returns a channel that the next notify closes. Caller holds c.mu. The channel is
// made only when someone waits: notify runs for every record finished.
func (c *Consumer) waitChanged() chan struct{} {
	if c.changed == nil {
		c.changed = make(chan struct{})
	}
	return c.changed
}

// waitUntil waits until cond (called with c.mu held) holds or the timeout passes, and reports
// whether it holds.
func (c *Consumer) waitUntil(timeout time.Duration, cond func() bool) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		ok, ch := cond(), c.waitChanged()
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		}
	}
}

// dropLocked gives up a partition: its running handlers are canceled and their outcome ignored,
// its waiting records are forgotten. It returns the messages of the records that never entered
// the chain, for release (see BatchPreparer) once the caller has let go of c.mu. Caller holds c.mu.
func (c *Consumer) dropLocked(p *partState) (unstarted []*Message) {
	if p.dropped {
		return nil
	}
	p.dropped = true
	p.cancel()
	for _, j := range p.win {
		if !j.done && !j.started {
			unstarted = append(unstarted, j.msg)
		}
	}
	c.unfinished -= p.unfinished
	c.held -= p.held
	delete(c.parts, p.tp)
	for i, q := range c.order {
		if q == p {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
	c.rr = 0
	c.notify()
	return unstarted
}

// release hands the messages of records that will never enter the chain back to the preparers
// (BatchPreparer.Release), within ShutdownTimeout. Caller does not hold c.mu.
func (c *Consumer) release(msgs []*Message) {
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(c.base, c.cfg.shutdownTimeout)
	defer cancel()
	for _, p := range c.cfg.preparers {
		if err := p.Release(ctx, msgs); err != nil {
			c.log.Warn("streams: consumer: could not release prepared records", "records", len(msgs), "err", err)
		}
	}
}

func (c *Consumer) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.log.Info("streams: consumer: partitions assigned", "partitions", assigned)
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, ps := range assigned {
		for _, partition := range ps {
			tp := topicPartition{topic, partition}
			if c.parts[tp] != nil {
				continue
			}
			ctx, cancel := context.WithCancel(c.base)
			p := &partState{c: c, tp: tp, ctx: ctx, cancel: cancel, lanes: map[string][]*job{}, last: -1, next: -1, committed: -1}
			c.parts[tp] = p
			c.order = append(c.order, p)
		}
	}
}

// onRevoked runs before revoked partitions are handed over: it stops starting handlers for them,
// waits up to ShutdownTimeout for the running ones, commits every finished offset while the
// partitions are still owned, and drops them. An empty map (the end of a group session) only
// commits.
func (c *Consumer) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.mu.Lock()
	var ps []*partState
	for topic, parts := range revoked {
		for _, partition := range parts {
			if p := c.parts[topicPartition{topic, partition}]; p != nil {
				p.revoked = true
				ps = append(ps, p)
			}
		}
	}
	c.mu.Unlock()
	if len(ps) > 0 {
		c.log.Info("streams: consumer: partitions revoked", "partitions", revoked)
		idle := c.waitUntil(c.cfg.shutdownTimeout, func() bool {
			for _, p := range ps {
				if p.running > 0 || p.held > 0 {
					return false
				}
			}
			return true
		})
		if !idle {
			c.log.Warn("streams: consumer: handlers of revoked partitions still running after the shutdown timeout; abandoned",
				"timeout", c.cfg.shutdownTimeout)
		}
	}
	var unstarted []*Message
	c.mu.Lock()
	for _, p := range ps {
		unstarted = append(unstarted, c.dropLocked(p)...)
	}
	c.mu.Unlock()
	c.release(unstarted)
	c.commit(ps)
}

// onLost drops lost partitions without committing: another member may own them already.
func (c *Consumer) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.log.Warn("streams: consumer: partitions lost", "partitions", lost)
	var unstarted []*Message
	c.mu.Lock()
	for topic, parts := range lost {
		for _, partition := range parts {
			if p := c.parts[topicPartition{topic, partition}]; p != nil {
				unstarted = append(unstarted, c.dropLocked(p)...)
			}
		}
	}
	c.mu.Unlock()
	c.release(unstarted)
}

// commitLoop commits finished offsets every CommitInterval until stop is closed.
func (c *Consumer) commitLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(c.cfg.commitInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.commitMu.Lock()
			c.commit(nil)
			c.commitMu.Unlock()
		}
	}
}

// commit commits the finished offsets of the live partitions and of extra (partitions being given
// up in the caller's revoke, still owned until it returns) that moved since their last commit.
// Caller holds c.commitMu.
func (c *Consumer) commit(extra []*partState) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	states := map[topicPartition]*partState{}
	c.mu.Lock()
	for _, p := range append(append([]*partState(nil), c.order...), extra...) {
		if p.next > p.committed {
			if offsets[p.tp.topic] == nil {
				offsets[p.tp.topic] = map[int32]kgo.EpochOffset{}
			}
			offsets[p.tp.topic][p.tp.partition] = kgo.EpochOffset{Epoch: p.epoch, Offset: p.next}
			states[p.tp] = p
		}
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.shutdownTimeout)
	defer cancel()
	c.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			c.log.Warn("streams: consumer: commit failed", "err", err)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, t := range resp.Topics {
			for _, pr := range t.Partitions {
				if err := kerr.ErrorForCode(pr.ErrorCode); err != nil {
					c.log.Warn("streams: consumer: commit failed", "topic", t.Topic, "partition", pr.Partition, "err", err)
					continue
				}
				if p := states[topicPartition{t.Topic, pr.Partition}]; p != nil {
					p.committed = max(p.committed, offsets[t.Topic][pr.Partition].Offset)
				}
			}
		}
	})
}

// shutdown lets the fetched records finish within ShutdownTimeout, abandons the rest, and commits.
func (c *Consumer) shutdown() {
	if !c.waitUntil(c.cfg.shutdownTimeout, func() bool { return c.unfinished == 0 && c.held == 0 }) {
		c.log.Warn("streams: consumer: records still unfinished after the shutdown timeout; abandoned", "timeout", c.cfg.shutdownTimeout)
	}
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	var unstarted []*Message
	c.mu.Lock()
	all := append([]*partState(nil), c.order...)
	for _, p := range all {
		unstarted = append(unstarted, c.dropLocked(p)...)
	}
	c.mu.Unlock()
	c.release(unstarted)
	c.commit(all)
}

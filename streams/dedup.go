package streams

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Dedup is the deduplication middleware: it makes a consumer group handle each event once, even
// when it is delivered again (after a crash, a rebalance, or as the other version of a
// dual-published event), by keeping per group, publishing system and eventId a Redis key
//
//	hotelbus:dedup:{<group>}:<source>:<eventId>
//
// The group is a hash tag (see "Redis Cluster" below). The source (metadata.source: the system whose credential published the event, set
// by its Producer, never by the payload; a system of the catalog, which the Consumer checks) is a
// namespace: eventIds may be chosen by clients, and one system publishing another's eventId must
// not make a group drop that other system's event as a duplicate. Dual-published copies share
// eventId and source, so they stay one event.
//
// The key holds a lease while a consumer handles the event, "<owner token>|<deadline in Unix ms>"
// taken with SET NX, and "done" once it succeeded; both live for the done TTL. A lease ends at its
// deadline, not when the key expires: the key outlives it so that the next owner of the event
// knows that an earlier attempt started and never finished (its owner crashed, was stopped, or
// lost the lease while its handler ran). Taking such a lease over is logged at warn with the
// eventId ("took over the expired lease") and counted (TakeOvers): the earlier attempt's outcome is
// unknown, so a handler with external side effects may repeat one. Deadlines are the consumers'
// clocks: keep them within a small fraction of the lease of each other. A lease without a
// deadline (written by an older version) ends when its key expires.
//
// Protocol, per message:
//   - Prepare checks a whole polled batch in one Redis round trip: for each distinct eventId it
//     tries to take the lease and reads the key. Each message is then acquired (this message owns
//     the lease), done, or leased by another owner (another consumer, or an earlier message of the
//     batch with the same eventId).
//   - The middleware commits a done event without calling the handler (returns nil). It waits for
//     a lease held by another owner, polling with backoff, until the key is done (skip), free (take
//     it and handle), past its deadline (take it over, compare-and-set, and handle) or the context
//     ends: a live foreign lease is never skipped.
//   - An acquired message is handled; while the handler runs the lease is extended (owner-checked)
//     every third of the lease. On success an owner-checked script turns the key into "done" with
//     the done TTL; on failure the lease is deleted (owner-checked) so that redelivery handles the
//     event again, and the handler's error is returned.
//
// Redis unreachable: by default Dedup fails closed. Prepare and the middleware retry with
// exponential backoff, logging each failure, until Redis answers or the context ends; no event is
// handled without its lease. With DedupFailOpen, a batch prepared while Redis is unreachable is
// handled without deduplication, logged at error level once per batch.
//
// Redis Cluster: every key of a Dedup carries the group as its hash tag, so all of them are in one
// slot, on one node, by design: the batch check of Prepare (SET NX + GET per event, one
// pipeline), Release's pipeline, the coalesced done marks (one pipeline of one-key scripts) and
// the OnDone transaction (WATCH on the event's key, then MULTI/EXEC) each go to one node in one
// round trip, and a transaction is possible at all. The other scripts (extend, take over,
// release) touch one key. OnDone's effects must use keys containing "{" + Tag() + "}"; a key in
// another slot makes the transaction fail with CROSSSLOT. The gateway's Idempotency-Key records
// (hotelbus:gateway:idempotency:<system>:<sha256 of the key>) are read and written by one-key
// commands only (SET NX, GET, a one-key script), so they may spread over every slot.
// TestDedupKeysShareOneSlot and the dedup suite run on a real three-master Cluster.
//
// Failover (Sentinel, Cluster): Redis replicates asynchronously, so a primary killed before its
// replica received the latest writes loses them when the replica is promoted: leases just taken
// or extended, and done marks just written. Dedup keeps its guarantees through that: a lost done
// mark means an event can be handled again (a duplicate delivery) if it is redelivered (its
// offset was not committed yet, and its partition moved or its consumer restarted) or its other
// dual-published copy arrives later; a lost lease means another owner that receives the same
// event meanwhile may handle it concurrently (a duplicate). Nothing is ever skipped that was not
// handled, because a key is only "done" after its handler succeeded, and a lost key reads as
// never seen; and order is the consumer's, which Redis does not decide. The scripts treat a
// vanished key as the caller's (extend, finish), so an owner whose lease was lost in the
// failover finishes normally. While no primary answers (the failover window, seconds), Dedup
// fails closed as for any outage. A lost lease is seen by its owner (KeysLost, logged with the
// eventId); a lost done mark is not seen by anyone (the key reads as never seen), so such a
// duplicate leaves no trace but the failover itself. DedupWaitReplicas (one server or Sentinel,
// not a Cluster) bounds what a failover can lose: done marks are acknowledged by a replica before
// the handler's success is reported, so only events whose done mark was in flight at the crash
// can be handled twice, and a WAIT that timed out is logged.
//
// The source and eventId are the envelope's; for a record whose decoding failed transiently (a
// retryable DecodeErr, such as the registry being unreachable) they are the record's source and
// eventId headers (checked against the identifier grammar by the Consumer). A redriven record's
// key adds its redrive id (see HeaderRedriveID). Records that cannot decode or break the
// identifier grammar (a non-retryable DecodeErr) or carry no eventId pass through without
// deduplication: they have no eventId to trust.
//
// Wiring: Dedup is the outermost middleware and the consumer's BatchPreparer,
//
//	streams.Use(d.Middleware(), dl.Middleware(), streams.Retry()), streams.UsePreparer(d)
//
// so that a message keeps its lease through all its attempts, and a dead-lettered message (for
// which the dead-letter middleware returns nil) is done too.
//
// A Dedup is safe for concurrent use; its counters are for metrics.
type Dedup struct {
	rdb    redis.UniversalClient
	tag    string // the group
	prefix string // "hotelbus:dedup:{<group>}:"
	cfg    dedupConfig
	owner  string // unique per Dedup instance
	seq    atomic.Uint64
	fin    finisher

	hits, acquired, waits, roundTrips, takeOvers, keysLost, redisFailures atomic.Int64
}

// dedupStatus is what the middleware knows about a message's key.
type dedupStatus int

const (
	statusUnknown  dedupStatus = iota // not checked yet (or the lease was lost): check and take
	statusAcquired                    // this message holds the lease since at
	statusDone                        // handled before: skip
	statusBusy                        // another owner holds the lease: wait
	statusOpen                        // Redis was unreachable with fail-open: handle without dedup
	statusExpired                     // another owner's lease is past its deadline: take it over
)

// dedupState is what a Dedup records in a Message (state key: the *Dedup).
type dedupState struct {
	key     string
	token   string
	status  dedupStatus
	at      time.Time               // when the lease was taken or last extended (before the request was sent)
	effects func(p redis.Pipeliner) // registered by the handler with OnDone
	seen    string                  // statusExpired: the expired lease's value, for the compare-and-set
}

const doneValue = "done"

// The scripts below recognise the caller's lease by its owner token (ARGV[1]): the value is the
// token followed by "|" and the deadline, or the token alone (a lease of an older version).
const ownsLua = `
local function owns(v, tok)
  return v == tok or string.sub(v, 1, #tok + 1) == tok .. "|"
end
`

// finishSrc turns the caller's lease into "done" for ARGV[2] ms. A missing key (Redis lost it) is
// marked done too: the event was handled. Returns 1 when the key is now done by this call, 3 when
// it did so for a missing key, 2 when it was already done, 0 when another owner holds it.
const finishSrc = ownsLua + `
local v = redis.call("GET", KEYS[1])
if v == false then
  redis.call("SET", KEYS[1], "done", "PX", ARGV[2])
  return 3
end
if owns(v, ARGV[1]) then
  redis.call("SET", KEYS[1], "done", "PX", ARGV[2])
  return 1
end
if v == "done" then return 2 end
return 0`

// releaseScript deletes the caller's lease and nothing else. Returns 1 when deleted.
const releaseSrc = ownsLua + `
local v = redis.call("GET", KEYS[1])
if v and owns(v, ARGV[1]) then return redis.call("DEL", KEYS[1]) end
return 0`

var releaseScript = redis.NewScript(releaseSrc)

// extendScript sets the caller's lease to ARGV[2] (its new value, with the new deadline) for
// ARGV[3] ms, also when the key vanished (Redis lost it: a restart without persistence, a
// failover to a replica that had not received it). Returns 1 when the caller holds the lease, 2
// when it does again after the key vanished, 0 when another owner does or the event is done.
var extendScript = redis.NewScript(ownsLua + `
local v = redis.call("GET", KEYS[1])
if v == false then redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3]) return 2 end
if owns(v, ARGV[1]) then redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3]) return 1 end
return 0`)

// takeOverScript replaces an expired lease (ARGV[1], the value read) by the caller's (ARGV[2]) for
// ARGV[3] ms, unless the key changed meanwhile. Returns 1 when the caller holds the lease.
var takeOverScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3]) return 1 end
return 0`)

// leaseValue is the value of the lease token holds until at + the lease.
func (d *Dedup) leaseValue(token string, at time.Time) string {
	return token + "|" + strconv.FormatInt(at.Add(d.cfg.lease).UnixMilli(), 10)
}

// leaseDeadline returns the deadline a lease value records (ok is false for a value without one:
// an older version's lease, which ends with its key instead).
func leaseDeadline(v string) (deadline time.Time, ok bool) {
	i := strings.LastIndexByte(v, '|')
	if i < 0 {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(v[i+1:], 10, 64)
	return time.UnixMilli(ms), err == nil
}

// leaseExpired reports whether a foreign lease value is past its deadline at now.
func leaseExpired(v string, now time.Time) bool {
	deadline, ok := leaseDeadline(v)
	return ok && !now.Before(deadline)
}

// ownedBy reports whether the key's value is the lease of token.
func ownedBy(v, token string) bool { return v == token || strings.HasPrefix(v, token+"|") }

// keyTTL is how long a dedup key lives: the done TTL, for done marks and leases alike (see Dedup).
func (d *Dedup) keyTTL() time.Duration { return d.cfg.doneTTL }

// NewDedup returns the dedup middleware of a consumer group, storing its keys in rdb (a single
// Redis, a Redis Cluster, or a failover client). group must be non-empty and free of '{' and '}'
// (it is the keys' hash tag).
func NewDedup(rdb redis.UniversalClient, group string, opts ...DedupOption) (*Dedup, error) {
	cfg := defaultDedupConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if rdb == nil {
		return nil, fmt.Errorf("%w: NewDedup: nil Redis client", ErrConfig)
	}
	if _, cluster := rdb.(*redis.ClusterClient); cluster && cfg.waitReplicas > 0 {
		return nil, fmt.Errorf("%w: DedupWaitReplicas: not available with a Redis Cluster client", ErrConfig)
	}
	if group == "" || strings.ContainsAny(group, "{}") {
		return nil, fmt.Errorf("%w: NewDedup: group %q must be non-empty and hold no braces", ErrConfig, group)
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("streams: dedup owner token: %w", err)
	}
	return &Dedup{
		rdb:    rdb,
		tag:    group,
		prefix: "hotelbus:dedup:{" + group + "}:",
		cfg:    cfg,
		owner:  hex.EncodeToString(b[:]),
	}, nil
}

// Key returns the Redis key that deduplicates the event eventID published by source.
func (d *Dedup) Key(source, eventID string) string { return d.prefix + source + ":" + eventID }

// Hits counts messages committed without calling the handler because their event was done.
func (d *Dedup) Hits() int64 { return d.hits.Load() }

// Acquired counts leases taken (by Prepare or by the middleware).
func (d *Dedup) Acquired() int64 { return d.acquired.Load() }

// Waits counts messages that had to wait for another owner's lease.
func (d *Dedup) Waits() int64 { return d.waits.Load() }

// RoundTrips counts Prepare calls that got Redis's answer (one per batch, outages excepted).
func (d *Dedup) RoundTrips() int64 { return d.roundTrips.Load() }

// TakeOvers counts expired leases of other owners taken over: events whose earlier attempt started
// and never finished, so that its outcome is unknown.
func (d *Dedup) TakeOvers() int64 { return d.takeOvers.Load() }

// KeysLost counts the leases this Dedup held that Redis no longer had when it extended them or
// marked their event done: Redis lost the key (a failover to a replica that had not received it,
// a restart without persistence), so another owner receiving the same event meanwhile could have
// handled it too. Each is logged at warn with the eventId ("Redis lost the lease"). These, and
// TakeOvers, are where a duplicate delivery caused by a Redis failover shows.
func (d *Dedup) KeysLost() int64 { return d.keysLost.Load() }

// RedisFailures counts Redis calls of the protocol that failed (Redis unreachable, no primary
// during a failover, a timeout): each is followed by a backoff (fail closed) or by handling without
// deduplication (DedupFailOpen).
func (d *Dedup) RedisFailures() int64 { return d.redisFailures.Load() }

// lostKey counts and logs a lease Redis no longer had (see KeysLost).
func (d *Dedup) lostKey(m *Message, st *dedupState, when string) {
	d.keysLost.Add(1)
	d.cfg.logger.Warn("streams: dedup: Redis lost the lease "+when+" (a failover or restart lost the key); another owner may have handled the event meanwhile",
		"eventId", Header(m.Record, HeaderEventID), "key", st.key, "topic", m.Record.Topic, "partition", m.Record.Partition, "offset", m.Record.Offset)
}

func (d *Dedup) token() string {
	return d.owner + ":" + strconv.FormatUint(d.seq.Add(1), 36)
}

// Prepare checks every message of a polled batch in one Redis round trip and records the outcome
// in each message for the middleware. Messages sharing an eventId share one lease, owned by the
// first of them; the others wait for it. When Redis is unreachable it retries with backoff until
// Redis answers or ctx ends (returning ctx's error), unless failing open.
func (d *Dedup) Prepare(ctx context.Context, batch []*Message) error {
	type check struct {
		st  *dedupState
		set *redis.BoolCmd
		get *redis.StringCmd
	}
	var checks []check
	first := map[string]bool{}
	for _, m := range batch {
		source, id := eventID(m)
		if id == "" {
			continue
		}
		key := d.Key(source, id)
		if first[key] {
			// The same event twice in one batch (dual publishing): wait for the first copy.
			m.SetValue(d, &dedupState{key: key, token: d.token(), status: statusBusy})
			continue
		}
		first[key] = true
		st := &dedupState{key: key, token: d.token()}
		m.SetValue(d, st)
		checks = append(checks, check{st: st})
	}
	if len(checks) == 0 {
		return nil
	}
	bo := d.backoff()
	for {
		at := time.Now()
		cmds, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range checks {
				c := &checks[i]
				c.set = p.SetNX(ctx, c.st.key, d.leaseValue(c.st.token, at), d.keyTTL())
				c.get = p.Get(ctx, c.st.key)
			}
			return nil
		})
		err = pipelineErr(cmds, err)
		if err == nil {
			d.roundTrips.Add(1)
			for _, c := range checks {
				c.st.at = at
				d.classify(c.st, c.set.Val(), c.get.Val())
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("streams: dedup prepare: %w", ctx.Err())
		}
		if d.cfg.failOpen {
			d.redisFailures.Add(1)
			d.cfg.logger.Error("streams: dedup: Redis unreachable, handling the batch WITHOUT deduplication (fail-open)",
				"err", err, "messages", len(batch))
			for _, m := range batch {
				if st, ok := m.Value(d).(*dedupState); ok {
					st.status = statusOpen
				}
			}
			return nil
		}
		if err := bo.wait(ctx, d, "prepare", err); err != nil {
			return err
		}
	}
}

// Release gives up the leases a batch's messages acquired in Prepare and never used (the consumer
// abandons them, for example because their partition was revoked), pipelined (one round trip
// per releaseChunk messages), so that the next owner of the partition does not wait for them to
// expire. Messages already handled are left alone; none of them may be in the chain during the
// call. A failed round trip does not stop the others; the first error is returned, not retried:
// an unreleased lease expires by itself.
func (d *Dedup) Release(ctx context.Context, batch []*Message) error {
	var first error
	for start := 0; start < len(batch); start += releaseChunk {
		if err := d.release(ctx, batch[start:min(start+releaseChunk, len(batch))]); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// releaseChunk bounds the leases released in one pipeline, so that a large release (a partition
// lost with thousands of prepared records) is many short round trips, none of them long enough
// to hit the client's read timeout.
const releaseChunk = 500

func (d *Dedup) release(ctx context.Context, batch []*Message) error {
	var n int
	cmds, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range batch {
			st, ok := m.Value(d).(*dedupState)
			if !ok || st.status != statusAcquired {
				continue
			}
			st.status = statusUnknown
			p.Eval(ctx, releaseSrc, []string{st.key}, st.token)
			n++
		}
		return nil
	})
	if n == 0 {
		return nil
	}
	if err := pipelineErr(cmds, err); err != nil {
		return fmt.Errorf("streams: dedup release: %w", err)
	}
	return nil
}

// OnDone registers Redis writes that are the handler's side effects for m: they are queued on p in
// the same MULTI/EXEC transaction that marks m's event done, so that after any crash (kill -9
// included) either the event is done and its effects are applied, or neither; they are applied
// exactly once per event and group. Call it from the handler, once per attempt (a later call
// replaces an earlier one); the effects are dropped when the handler returns an error, and when
// the event turns out to be done by another owner. With Redis Cluster every key written must hash
// to the group's slot: put Tag() in braces in each key. Under DedupFailOpen with Redis
// unreachable the effects cannot be applied: the handler's success becomes a retryable error.
// A message that Dedup does not deduplicate (no eventId) gets its effects applied in a
// transaction of their own after the handler succeeds. OnDone panics when m did not come through
// d's Middleware (the effects would never be applied).
func (d *Dedup) OnDone(m *Message, effects func(p redis.Pipeliner)) {
	st, ok := m.Value(d).(*dedupState)
	if !ok {
		panic("streams: Dedup.OnDone: the message did not come through this Dedup's middleware")
	}
	st.effects = effects
}

// Tag returns the consumer group's Redis Cluster hash tag (the group name), for the keys of
// OnDone effects: a key containing "{" + Tag() + "}" is in the slot of the group's dedup keys.
func (d *Dedup) Tag() string { return d.tag }

// classify records in st the status that a SET NX of st's lease (taken at st.at) and the key's
// value read right after it mean.
func (d *Dedup) classify(st *dedupState, set bool, value string) {
	switch {
	case set:
		d.acquired.Add(1)
		st.status = statusAcquired
	case ownedBy(value, st.token):
		// This message's lease without set: a SET NX whose reply was lost was sent again (by
		// go-redis, or by Prepare retrying after a failed round trip). The lease ends at the
		// deadline it recorded then.
		if deadline, ok := leaseDeadline(value); ok {
			st.at = deadline.Add(-d.cfg.lease)
		}
		d.acquired.Add(1)
		st.status = statusAcquired
	case value == doneValue:
		st.status = statusDone
	case value == "":
		// The key was deleted between SET and GET: check again.
		st.status = statusUnknown
	case leaseExpired(value, time.Now()):
		st.status, st.seen = statusExpired, value
	default:
		st.status = statusBusy
	}
}

// Middleware returns the dedup middleware (outermost in the chain). See Dedup for the protocol.
func (d *Dedup) Middleware() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			st, ok := m.Value(d).(*dedupState)
			if !ok {
				source, id := eventID(m)
				if id == "" {
					st = &dedupState{status: statusOpen}
				} else {
					st = &dedupState{key: d.Key(source, id), token: d.token()}
				}
				m.SetValue(d, st)
			}
			return d.handle(ctx, m, st, next)
		}
	}
}

func (d *Dedup) handle(ctx context.Context, m *Message, st *dedupState, next Handler) error {
	redisBO, leaseBO := d.backoff(), d.backoff()
	waited := false
	for {
		switch st.status {
		case statusOpen:
			st.effects = nil
			if err := next(ctx, m); err != nil || st.effects == nil {
				return err
			}
			if _, err := d.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error { st.effects(p); return nil }); err != nil {
				return fmt.Errorf("streams: dedup: applying the handler's effects without deduplication: %w", err)
			}
			return nil
		case statusDone:
			d.hits.Add(1)
			m.SetOutcome(OutcomeDuplicate, "")
			return nil
		case statusAcquired:
			if time.Since(st.at) < d.cfg.lease/3 {
				return d.run(ctx, m, st, next)
			}
			// The lease may have expired while the message waited its turn: confirm it first.
			at := time.Now()
			held, err := extendScript.Run(ctx, d.rdb, []string{st.key}, st.token, d.leaseValue(st.token, at), d.keyTTL().Milliseconds()).Int()
			if err != nil {
				if err := d.unreachable(ctx, m, st, redisBO, "confirm lease", err); err != nil {
					return err
				}
				continue
			}
			if held != 0 {
				if held == 2 {
					d.lostKey(m, st, "while the event waited its turn")
				}
				st.at = at
				return d.run(ctx, m, st, next)
			}
			st.status = statusUnknown
		case statusBusy:
			if !waited {
				waited = true
				d.waits.Add(1)
			}
			if err := leaseBO.sleep(ctx); err != nil {
				return fmt.Errorf("streams: dedup: waiting for the lease of %s: %w", st.key, err)
			}
			st.status = statusUnknown
		case statusExpired:
			at := time.Now()
			took, err := takeOverScript.Run(ctx, d.rdb, []string{st.key}, st.seen, d.leaseValue(st.token, at), d.keyTTL().Milliseconds()).Int()
			if err != nil {
				if err := d.unreachable(ctx, m, st, redisBO, "take over lease", err); err != nil {
					return err
				}
				continue
			}
			redisBO.reset()
			st.status = statusUnknown
			if took == 1 {
				d.acquired.Add(1)
				d.takeOvers.Add(1)
				d.cfg.logger.Warn("streams: dedup: took over the expired lease of another owner: its attempt started and never finished, so its outcome is unknown and the handler may repeat a side effect",
					"eventId", Header(m.Record, HeaderEventID), "key", st.key, "previous", st.seen, "topic", m.Record.Topic, "partition", m.Record.Partition, "offset", m.Record.Offset)
				st.at, st.status = at, statusAcquired
			}
		case statusUnknown:
			at := time.Now()
			var set *redis.BoolCmd
			var get *redis.StringCmd
			cmds, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				set = p.SetNX(ctx, st.key, d.leaseValue(st.token, at), d.keyTTL())
				get = p.Get(ctx, st.key)
				return nil
			})
			if err := pipelineErr(cmds, err); err != nil {
				if err := d.unreachable(ctx, m, st, redisBO, "acquire", err); err != nil {
					return err
				}
				continue
			}
			redisBO.reset()
			st.at = at
			d.classify(st, set.Val(), get.Val())
		}
	}
}

// unreachable handles a failed Redis call of the middleware: it fails open (status open) or waits
// one backoff step (fail closed), returning ctx's error when ctx ends.
func (d *Dedup) unreachable(ctx context.Context, m *Message, st *dedupState, bo *backoff, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("streams: dedup %s: %w", op, ctx.Err())
	}
	if d.cfg.failOpen {
		d.redisFailures.Add(1)
		d.cfg.logger.Error("streams: dedup: Redis unreachable, handling WITHOUT deduplication (fail-open)",
			"err", err, "key", st.key, "topic", m.Record.Topic, "partition", m.Record.Partition, "offset", m.Record.Offset)
		st.status = statusOpen
		return nil
	}
	return bo.wait(ctx, d, op, err)
}

// run calls the handler under the lease, extending it while the handler runs, and then marks the
// key done or releases it.
func (d *Dedup) run(ctx context.Context, m *Message, st *dedupState, next Handler) error {
	st.effects = nil
	stop := d.keepLease(ctx, m, st)
	err := next(ctx, m)
	stop()
	// The outcome must reach Redis even when ctx was canceled while the handler finished.
	octx := context.WithoutCancel(ctx)
	if err != nil {
		rctx, cancel := context.WithTimeout(octx, d.cfg.lease)
		defer cancel()
		st.status = statusUnknown
		if rerr := releaseScript.Run(rctx, d.rdb, []string{st.key}, st.token).Err(); rerr != nil {
			d.cfg.logger.Warn("streams: dedup: could not release the lease after a failure; it expires by itself",
				"key", st.key, "lease", d.cfg.lease, "err", rerr)
		}
		return err
	}
	bo := d.backoff()
	for {
		rctx, cancel := context.WithTimeout(octx, d.cfg.lease)
		res, ferr := d.finish(rctx, st)
		cancel()
		if ferr == nil {
			st.status = statusDone
			switch res {
			case 0:
				d.cfg.logger.Warn("streams: dedup: lease lost while the handler ran; another owner is handling the event",
					"key", st.key, "topic", m.Record.Topic, "partition", m.Record.Partition, "offset", m.Record.Offset)
			case 3:
				d.lostKey(m, st, "before the event was marked done")
			}
			return nil
		}
		if d.cfg.failOpen {
			d.redisFailures.Add(1)
			d.cfg.logger.Error("streams: dedup: Redis unreachable, event handled but NOT marked done (fail-open)",
				"key", st.key, "err", ferr)
			if st.effects != nil {
				st.status = statusUnknown
				return fmt.Errorf("streams: dedup: the handler's effects were not applied: %w", ferr)
			}
			return nil
		}
		if werr := bo.wait(ctx, d, "finish", ferr); werr != nil {
			// The handler succeeded: let the offset be committed; the lease expires by itself.
			d.cfg.logger.Error("streams: dedup: event handled but not marked done before shutdown",
				"key", st.key, "err", ferr)
			return nil
		}
	}
}

// finish marks the caller's lease done (see finishSrc for the result) and, when the handler
// registered effects with OnDone, applies them in the same transaction: WATCH the key, check the
// lease is still the caller's (or gone), then MULTI, SET done, the effects, EXEC; a concurrent
// change of the key makes it check again.
func (d *Dedup) finish(ctx context.Context, st *dedupState) (int, error) {
	if st.effects == nil {
		return d.markDone(ctx, st)
	}
	for {
		res := 1
		err := d.rdb.Watch(ctx, func(tx *redis.Tx) error {
			v, err := tx.Get(ctx, st.key).Result()
			switch {
			case errors.Is(err, redis.Nil):
				res = 3
			case err != nil:
				return err
			case v == doneValue:
				res = 2
				return nil
			case v != "" && !ownedBy(v, st.token):
				res = 0
				return nil
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, st.key, doneValue, d.cfg.doneTTL)
				st.effects(p)
				return nil
			})
			if err == nil && d.cfg.waitReplicas > 0 {
				n, werr := tx.Wait(ctx, d.cfg.waitReplicas, d.cfg.waitTimeout).Result()
				d.checkWait(n, werr, 1)
			}
			return err
		}, st.key)
		if !errors.Is(err, redis.TxFailedErr) {
			return res, err
		}
	}
}

// keepLease extends the lease every third of the lease, from a timer (no goroutine waits while
// the handler runs), until the returned stop is called; stop waits for an extension in progress.
func (d *Dedup) keepLease(ctx context.Context, m *Message, st *dedupState) (stop func()) {
	every := d.cfg.lease / 3
	octx := context.WithoutCancel(ctx)
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock() // the callback may fire at once: it must see t
	defer mu.Unlock()
	t = time.AfterFunc(time.Until(st.at.Add(every)), func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		at := time.Now()
		rctx, cancel := context.WithTimeout(octx, every)
		held, err := extendScript.Run(rctx, d.rdb, []string{st.key}, st.token, d.leaseValue(st.token, at), d.keyTTL().Milliseconds()).Int()
		cancel()
		switch {
		case err != nil:
			d.cfg.logger.Warn("streams: dedup: could not extend the lease", "key", st.key, "err", err)
			t.Reset(d.cfg.backoffInitial)
		case held == 0:
			d.cfg.logger.Warn("streams: dedup: lease lost while the handler runs; another owner may handle the event",
				"key", st.key, "topic", m.Record.Topic, "partition", m.Record.Partition, "offset", m.Record.Offset)
		default:
			if held == 2 {
				d.lostKey(m, st, "while the handler ran")
			}
			st.at = at
			t.Reset(every - time.Since(at))
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// finisher coalesces the done marks of handlers finishing at the same time into one pipeline
// (group commit): the first caller flushes, the others wait for its round trip.
type finisher struct {
	mu       sync.Mutex
	pending  []*finishReq
	flushing bool
}

type finishReq struct {
	key, token string
	res        int // finishSrc's result
	err        error
	done       chan struct{}
}

// markDone runs finishSrc for st's key, in a pipeline with those of other handlers finishing at
// the same time. It returns when the result is known or ctx ends.
func (d *Dedup) markDone(ctx context.Context, st *dedupState) (int, error) {
	req := &finishReq{key: st.key, token: st.token, done: make(chan struct{})}
	f := &d.fin
	f.mu.Lock()
	f.pending = append(f.pending, req)
	if f.flushing {
		f.mu.Unlock()
		select {
		case <-req.done:
			return req.res, req.err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	f.flushing = true
	f.mu.Unlock()
	for {
		f.mu.Lock()
		batch := f.pending
		f.pending = nil
		if len(batch) == 0 {
			f.flushing = false
			f.mu.Unlock()
			return req.res, req.err
		}
		f.mu.Unlock()
		d.flushDone(batch)
	}
}

// checkWait logs a WAIT (DedupWaitReplicas) that returned before enough replicas acknowledged
// marks done marks: a failover now could lose them.
func (d *Dedup) checkWait(n int64, err error, marks int) {
	if err != nil || n < int64(d.cfg.waitReplicas) {
		d.cfg.logger.Warn("streams: dedup: done marks not acknowledged by enough replicas in time (WAIT); a failover now could lose them",
			"marks", marks, "replicas", n, "want", d.cfg.waitReplicas, "timeout", d.cfg.waitTimeout, "err", err)
	}
}

// flushDone sends one pipeline of done marks and hands each caller its result.
func (d *Dedup) flushDone(batch []*finishReq) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.lease)
	defer cancel()
	cmds := make([]*redis.Cmd, len(batch))
	var wait *redis.Cmd
	_, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range batch {
			cmds[i] = p.Eval(ctx, finishSrc, []string{r.key}, r.token, d.cfg.doneTTL.Milliseconds())
		}
		if d.cfg.waitReplicas > 0 {
			// On the same connection as the marks: WAIT covers this client's writes before it.
			wait = p.Do(ctx, "wait", d.cfg.waitReplicas, d.cfg.waitTimeout.Milliseconds())
		}
		return nil
	})
	if wait != nil && err == nil {
		n, werr := wait.Int64()
		d.checkWait(n, werr, len(batch))
	}
	for i, r := range batch {
		r.res, r.err = cmds[i].Int()
		if r.err == nil && err != nil && !errors.Is(err, redis.Nil) {
			r.err = err
		}
		close(r.done)
	}
}

// eventID returns the publishing system and the id a message is deduplicated by (id "" for
// none): the envelope's, or the source and eventId headers of a record whose decoding failed
// transiently (the consumer decodes it again inside the chain); for a redriven record, the id is
// followed by its redrive id (see HeaderRedriveID).
func eventID(m *Message) (source, id string) {
	switch {
	case m.DecodeErr == nil && m.Envelope != nil:
		source, id = m.Envelope.Metadata.Source, m.Envelope.EventID
	case m.DecodeErr != nil && IsRetryable(m.DecodeErr) && m.Record != nil:
		source, id = Header(m.Record, HeaderSource), Header(m.Record, HeaderEventID)
	}
	if id == "" || m.Record == nil {
		return source, id
	}
	if r := Header(m.Record, HeaderRedriveID); r != "" {
		return source, id + "/redrive/" + r
	}
	return source, id
}

// pipelineErr returns the first real error of a pipeline (a missing key is not one).
func pipelineErr(cmds []redis.Cmder, err error) error {
	if err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
			return e
		}
	}
	return nil
}

func (d *Dedup) backoff() *backoff {
	return &backoff{initial: d.cfg.backoffInitial, max: d.cfg.backoffMax}
}

// backoff is an exponential backoff without jitter: initial, doubling, up to max.
type backoff struct {
	initial, max, next time.Duration
}

func (b *backoff) reset() { b.next = 0 }

// sleep waits for the next step, or until ctx ends (returning its error).
func (b *backoff) sleep(ctx context.Context) error {
	if b.next == 0 {
		b.next = b.initial
	}
	d := b.next
	b.next = min(2*b.next, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// wait logs a failed Redis call and sleeps one backoff step (fail closed). A Cluster client is
// asked to reload the cluster's layout meanwhile: go-redis does not do so when a pipeline cannot
// reach a node, so after a master died it would keep sending the group's slot to the dead node
// until its periodic refresh (TestRedisClusterFailover: 25 s instead of a few).
func (b *backoff) wait(ctx context.Context, d *Dedup, op string, err error) error {
	d.redisFailures.Add(1)
	if cc, ok := d.rdb.(*redis.ClusterClient); ok {
		cc.ReloadState(ctx)
	}
	d.cfg.logger.Warn("streams: dedup: Redis unreachable, waiting (fail-closed)", "op", op, "err", err, "retry_in", max(b.next, b.initial))
	if serr := b.sleep(ctx); serr != nil {
		return fmt.Errorf("streams: dedup %s: Redis unreachable (%v): %w", op, err, serr)
	}
	return nil
}

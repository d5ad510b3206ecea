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
// The key holds the lease of the consumer that handles the event, "<owner token>|<deadline in Unix
// ms>" taken with SET NX, for the done TTL. Once the handler succeeded the lease's owner marks the
// event done by adding the token's sequence number to a done set of its own, shared by 512
// consecutive tokens,
//
//	hotelbus:dedup-done:{<group>}:<owner>:<sequence / 512, base 36>   members: sequence % 512
//
// which lives for the done TTL after its last mark; so marking a batch done costs one SADD per
// done set, not a command per event (a handler with OnDone effects sets the key to "done"
// instead, in its transaction). An event is done when its key says "done" or holds a lease whose
// token is in its done set (IsDone). A lease ends at its
// deadline, not when the key expires: the key outlives it so that the next owner of the event
// knows that an earlier attempt started and never finished (its owner crashed, was stopped, or
// lost the lease while its handler ran). Taking such a lease over is logged at warn with the
// eventId ("took over the expired lease") and counted (TakeOvers): the earlier attempt's outcome is
// unknown, so a handler with external side effects may repeat one. Deadlines are the consumers'
// clocks: keep them within a small fraction of the lease of each other. A lease without a
// deadline (written by an older version) ends when its key expires. Versions before the done
// sets marked an event done by writing "done" into its key; this one reads both. During a
// rolling upgrade an older consumer does not read the done sets: an event this version marked
// done and that is redelivered to an older one (its offset not committed yet when its partition
// moved) reads as an expired lease there and is taken over, handled again and logged as a
// takeover.
//
// Protocol, per message:
//   - Prepare checks a whole polled batch in one Redis round trip: for each distinct eventId one
//     SET NX GET tries to take the lease and reads the key otherwise (no script: Redis 7.0 or
//     later). A Redis too slow to answer a large batch within the read timeout gets it in smaller
//     round trips until it answers in time again (see prepareLimit). Keys found holding another
//     owner's lease (a redelivery, the other copy of a dual-published event) cost one more round
//     trip, one SISMEMBER each, to read whether that owner marked the event done. Each message is
//     then acquired (this message owns the lease), done, or leased by another owner (another
//     consumer, or an earlier message of the batch with the same eventId).
//   - The middleware commits a done event without calling the handler (returns nil). It waits for
//     a lease held by another owner, polling with backoff, until the key is done (skip), free (take
//     it and handle), past its deadline (take it over, compare-and-set unless the owner marked it
//     done meanwhile, and handle) or the context ends: a live foreign lease is never skipped.
//   - An acquired message is handled; while the handler runs the lease is extended (owner-checked)
//     between a third and a half of the lease after it was taken or last extended, by one goroutine
//     per Dedup for all its running handlers, in one round trip (see keeper). On success the event
//     is marked done in the owner's done set, without reading the key and without a script: the
//     done marks of the handlers finishing while a round trip is in flight are coalesced into the
//     next one (group commit: one SADD per done set), so a batch costs the lease round trip and a
//     few done round trips. For a message from a Consumer the middleware returns as soon as
//     the handler succeeded and the mark is queued: the consumer commits no offset at or past the
//     message's before the mark is acknowledged (a commit hold), while the next record of the same
//     key already runs, so a key's records do not each wait for a Redis round trip. A crash before
//     the mark is written leaves the lease, and the next owner takes it over when it expires
//     (logged, as above). A handler that registered OnDone effects waits for its transaction. On
//     failure the lease is deleted (owner-checked) so that redelivery handles the event again, and
//     the handler's error is returned.
//
// Redis unreachable: by default Dedup fails closed. Prepare and the middleware retry with
// exponential backoff, logging each failure, until Redis answers or the context ends; no event is
// handled without its lease. With DedupFailOpen, a batch prepared while Redis is unreachable is
// handled without deduplication, logged at error level once per batch.
//
// Redis Cluster: every key of a Dedup carries the group as its hash tag, so all of them are in one
// slot, on one node, by design: the batch check of Prepare (one SET NX GET per event, one
// pipeline), Release's script call, the coalesced done marks (one SADD per done set, one pipeline),
// the takeover script (the key and its owner's done set) and the OnDone transaction (WATCH on the
// event's key, then MULTI/EXEC) each go to one node in one round trip, and a multi-key script or a
// transaction is possible at all. The other scripts (extend, release after a failure) touch one
// key. OnDone's effects must use keys containing "{" + Tag() + "}"; a key in another slot makes the
// transaction fail with CROSSSLOT. A tag per partition (or per hash bucket of the eventId) was
// considered and not taken: the key of an event must not depend on where its record sits, since the
// two copies of a dual-published event, a record replayed after the topic gained partitions, and an
// event published again by another path must find the same key; and OnDone's effects would need a
// tag per event. The load a group puts on its node is one SET per event (the lease's SET NX GET)
// and a share of one SADD of up to 512 members per done round trip: about 2.2 µs of redis-server
// time per event on the rig, where a SET NX alone costs 1.7–2.5 µs (marking each event done with a
// SET of its own took 3.5–4.5 µs an event); groups spread over the nodes with their tags. The
// gateway's Idempotency-Key records (hotelbus:gateway:idempotency:<system>:<sha256 of the key>) are
// read and written by one-key commands only (SET NX, GET, a one-key script), so they may spread
// over every slot. TestDedupKeysShareOneSlot and the dedup suite run on a real three-master
// Cluster.
//
// Failover (Sentinel, Cluster): Redis replicates asynchronously, so a primary killed before its
// replica received the latest writes loses them when the replica is promoted: leases just taken
// or extended, and done marks just written. Dedup keeps its guarantees through that: a lost done
// mark means an event can be handled again (a duplicate delivery) if it is redelivered (its
// offset was not committed yet, and its partition moved or its consumer restarted) or its other
// dual-published copy arrives later; a lost lease means another owner that receives the same
// event meanwhile may handle it concurrently (a duplicate). Nothing is ever skipped that was not
// handled, because an event is only done after its handler succeeded, and a lost key reads as
// never seen; and order is the consumer's, which Redis does not decide. The lease extension
// treats a vanished key as the caller's, so an owner whose lease was lost in the failover
// finishes normally; its done mark goes to its done set and does not write the key back, so an
// event whose lease was lost reads as never seen even after it was marked done (handled again if
// it is delivered again, as for a lost mark). While no primary answers (the failover window,
// seconds), Dedup fails closed as for any outage. A lost lease is seen by its owner when it
// extends or confirms the lease (KeysLost, logged with the eventId); a lost done mark is not seen
// by anyone (the key reads as never seen), so such a duplicate leaves no trace but the failover
// itself. DedupWaitReplicas (one server or Sentinel, not a Cluster) bounds what a failover can
// lose: done marks are acknowledged by a replica before the handler's success is reported (and,
// replication being in order, the leases written before them), so only events whose done mark
// was in flight at the crash can be handled twice, and a WAIT that timed out is logged.
//
// The source and eventId are the envelope's; for a record whose decoding failed transiently (a
// retryable DecodeErr, such as the registry being unreachable) they are the record's source and
// eventId headers (checked against the identifier grammar by the Consumer). A redriven record's
// key adds its redrive id (see HeaderRedriveID). Records that cannot decode or break the
// identifier grammar (a non-retryable DecodeErr) or carry no eventId pass through without
// deduplication: they have no eventId to trust.
//
// Wiring: Dedup is outside dead letters and retry, and the consumer's BatchPreparer, so that a
// message keeps its lease through all its attempts, and a dead-lettered message (for which the
// dead-letter middleware returns nil) is done too; UseStandard does both:
//
//	streams.UseStandard(streams.StandardChain{Metrics: m, Audit: a, Dedup: d, DeadLetters: dl})
//
// A Dedup is safe for concurrent use; its counters are for metrics.
type Dedup struct {
	rdb        redis.UniversalClient
	tag        string // the group
	prefix     string // "hotelbus:dedup:{<group>}:"
	donePrefix string // "hotelbus:dedup-done:{<group>}:", of the done sets
	cfg        dedupConfig
	owner      string // unique per Dedup instance
	seq        atomic.Uint64
	fin        finisher
	keep       keeper

	hits, acquired, waits, roundTrips, doneTrips, takeOvers, keysLost, redisFailures atomic.Int64

	prepareLimit atomic.Int64 // events per Prepare round trip, 0: all (see minPrepareLimit)
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
	statusLeased                      // another owner's lease: read its done set (readDoneSets)
)

// dedupState is what a Dedup records in a Message (state key: the *Dedup).
type dedupState struct {
	key     string
	token   string
	seq     uint64 // token's sequence number (its done set's)
	status  dedupStatus
	at      time.Time               // when the lease was taken or last extended (before the request was sent)
	effects func(p redis.Pipeliner) // registered by the handler with OnDone
	seen    string                  // statusLeased, statusExpired: the other owner's lease value (for the compare-and-set)
}

const doneValue = "done"

// The scripts below recognise the caller's lease by its owner token (ARGV[1]): the value is the
// token followed by "|" and the deadline, or the token alone (a lease of an older version).
const ownsLua = `
local function owns(v, tok)
  return v == tok or string.sub(v, 1, #tok + 1) == tok .. "|"
end
`

// releaseSrc deletes the caller's leases of a batch (KEYS[i], owner token ARGV[i]) and nothing
// else, in one script call. Returns how many it deleted.
const releaseSrc = ownsLua + `
local n = 0
for i, k in ipairs(KEYS) do
  local v = redis.call("GET", k)
  if v and owns(v, ARGV[i]) then n = n + redis.call("DEL", k) end
end
return n`

var releaseScript = redis.NewScript(releaseSrc)

// doneSetSpan is how many consecutive lease tokens of one Dedup share a done set (see Dedup):
// members 0 to 511 keep the set in Redis's compact integer encoding (set-max-intset-entries,
// default 512), about 1 KB for the marks of 512 events.
const doneSetSpan = 512

// doneSet returns the done set and the member that mark done the event of another owner's lease
// value v (see leaseValue), ok false for a lease of no done set (its token is not
// "<owner>:<sequence>": a lease written by an older version, or a value no Dedup wrote), whose
// event is done only when its key says "done".
func (d *Dedup) doneSet(v string) (key, member string, ok bool) {
	if i := strings.LastIndexByte(v, '|'); i >= 0 {
		v = v[:i]
	}
	owner, seq, found := strings.Cut(v, ":")
	if !found || len(owner) != 2*ownerBytes || strings.Trim(owner, "0123456789abcdef") != "" {
		return "", "", false
	}
	n, err := strconv.ParseUint(seq, 36, 64)
	if err != nil {
		return "", "", false
	}
	key, member = d.doneSetOf(owner, n)
	return key, member, true
}

// doneSetOf returns the done set and the member of the token of owner numbered seq.
func (d *Dedup) doneSetOf(owner string, seq uint64) (key, member string) {
	return d.donePrefix + owner + ":" + strconv.FormatUint(seq/doneSetSpan, 36), strconv.FormatUint(seq%doneSetSpan, 10)
}

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
// ARGV[3] ms, unless the key changed meanwhile or the lease's owner marked the event done
// meanwhile (member ARGV[4] of its done set KEYS[2]; ARGV[4] "" for a lease of no done set).
// Returns 1 when the caller holds the lease, 2 when the event is done, 0 when the key changed.
var takeOverScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[4] ~= "" and redis.call("SISMEMBER", KEYS[2], ARGV[4]) == 1 then return 2 end
redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
return 1`)

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
	var b [ownerBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("streams: dedup owner token: %w", err)
	}
	return &Dedup{
		rdb:        rdb,
		tag:        group,
		prefix:     "hotelbus:dedup:{" + group + "}:",
		donePrefix: "hotelbus:dedup-done:{" + group + "}:",
		cfg:        cfg,
		owner:      hex.EncodeToString(b[:]),
	}, nil
}

// Key returns the Redis key that deduplicates the event eventID published by source.
func (d *Dedup) Key(source, eventID string) string { return d.prefix + source + ":" + eventID }

// IsDone reports whether the group handled the event eventID published by source (eventID as
// Key takes it): its key says "done", or holds the lease of an owner that marked the event done
// in its done set. One Redis round trip, two for a key holding a lease.
func (d *Dedup) IsDone(ctx context.Context, source, eventID string) (bool, error) {
	v, err := d.rdb.Get(ctx, d.Key(source, eventID)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, err
	case v == doneValue:
		return true, nil
	}
	key, member, ok := d.doneSet(v)
	if !ok {
		return false, nil
	}
	return d.rdb.SIsMember(ctx, key, member).Result()
}

// Hits counts messages committed without calling the handler because their event was done.
func (d *Dedup) Hits() int64 { return d.hits.Load() }

// Acquired counts leases taken (by Prepare or by the middleware).
func (d *Dedup) Acquired() int64 { return d.acquired.Load() }

// Waits counts messages that had to wait for another owner's lease.
func (d *Dedup) Waits() int64 { return d.waits.Load() }

// RoundTrips counts Prepare calls that got Redis's answer (one per batch, outages excepted).
func (d *Dedup) RoundTrips() int64 { return d.roundTrips.Load() }

// DoneRoundTrips counts the round trips that marked events done (each one pipeline carrying the
// done marks of the handlers that finished meanwhile).
func (d *Dedup) DoneRoundTrips() int64 { return d.doneTrips.Load() }

// TakeOvers counts expired leases of other owners taken over: events whose earlier attempt started
// and never finished, so that its outcome is unknown.
func (d *Dedup) TakeOvers() int64 { return d.takeOvers.Load() }

// KeysLost counts the leases this Dedup held that Redis no longer had when it extended or confirmed
// them, or applied OnDone effects under them: Redis lost the key (a failover to a replica that had
// not received it, a restart without persistence), so another owner receiving the same event
// meanwhile could have handled it too. Each is logged at warn with the eventId ("Redis lost the
// lease"). These, and TakeOvers, are where a duplicate delivery caused by a Redis failover shows.
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

// ownerBytes is the length of a Dedup's random owner id (hex in its tokens).
const ownerBytes = 12

// newState returns the state of a message whose event has key, with a new lease token of d:
// "<owner>:<sequence, base 36>" (see doneSet).
func (d *Dedup) newState(key string) *dedupState {
	seq := d.seq.Add(1)
	return &dedupState{key: key, token: d.owner + ":" + strconv.FormatUint(seq, 36), seq: seq}
}

// Prepare checks every message of a polled batch in one Redis round trip and records the outcome
// in each message for the middleware. Messages sharing an eventId share one lease, owned by the
// first of them; the others wait for it. When Redis is unreachable it retries with backoff until
// Redis answers or ctx ends (returning ctx's error), unless failing open: then the messages not
// checked yet are handled without deduplication. After a failed round trip the batch is checked
// in smaller round trips (see prepareLimit).
func (d *Dedup) Prepare(ctx context.Context, batch []*Message) error {
	type check struct {
		st  *dedupState
		set *redis.StatusCmd
	}
	var checks []check
	first := map[string]int{} // key -> its check
	for _, m := range batch {
		source, id := eventID(m)
		if id == "" {
			continue
		}
		key := d.Key(source, id)
		if _, dup := first[key]; dup {
			// The same event twice in one batch (dual publishing): wait for the first copy.
			st := d.newState(key)
			st.status = statusBusy
			m.SetValue(d, st)
			continue
		}
		first[key] = len(checks)
		st := d.newState(key)
		m.SetValue(d, st)
		checks = append(checks, check{st: st})
	}
	bo := d.backoff()
	for start := 0; start < len(checks); {
		chunk := checks[start : start+d.prepareBound(len(checks)-start)]
		at := time.Now()
		cmds, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range chunk {
				c := &chunk[i]
				c.set = d.acquire(ctx, p, c.st.key, d.leaseValue(c.st.token, at))
			}
			return nil
		})
		err = pipelineErr(cmds, err)
		if err == nil {
			d.roundTrips.Add(1)
			for _, c := range chunk {
				c.st.at = at
				d.classify(c.st, c.set)
			}
			start += len(chunk)
			d.growPrepare(len(chunk))
			continue
		}
		d.shrinkPrepare(len(chunk))
		if ctx.Err() != nil {
			return fmt.Errorf("streams: dedup prepare: %w", ctx.Err())
		}
		if d.cfg.failOpen {
			d.redisFailures.Add(1)
			d.cfg.logger.Error("streams: dedup: Redis unreachable, handling the batch WITHOUT deduplication (fail-open)",
				"err", err, "messages", len(batch))
			for _, m := range batch {
				if st, ok := m.Value(d).(*dedupState); ok && first[st.key] >= start {
					st.status = statusOpen
				}
			}
			return nil
		}
		if err := d.wait(ctx, bo, "prepare", err); err != nil {
			return err
		}
	}
	var leased []*dedupState
	for _, c := range checks {
		if c.st.status == statusLeased {
			leased = append(leased, c.st)
		}
	}
	// Events another owner leased (redelivered, or the other copy of a dual-published event): one
	// more round trip reads whether they are done, split and shrunk under prepareLimit as the
	// leases' are. When even the smallest fails, the middleware reads each of them again.
	for len(leased) > 0 {
		n := d.prepareBound(len(leased))
		if err := d.readDoneSets(ctx, leased[:n]); err != nil {
			if n > minPrepareLimit && ctx.Err() == nil {
				d.shrinkPrepare(n)
				continue
			}
			for _, st := range leased {
				st.status = statusUnknown
			}
			break
		}
		d.roundTrips.Add(1)
		leased = leased[n:]
	}
	return nil
}

// prepareLimit (a Dedup field) bounds the events checked in one round trip of Prepare: none (0)
// while Redis answers in time. A polled batch holds up to MaxPending (10,000) records, and a
// Redis that answers slowly (a loaded server, an in-process miniredis under the race detector)
// may not answer that many within the client's read timeout: Prepare would retry the same round
// trip forever. So each failed round trip quarters the bound (down to minPrepareLimit), and each
// round trip that succeeds at the bound doubles it, back to none at maxPrepareLimit.
const (
	minPrepareLimit = 250
	maxPrepareLimit = 16384
)

// prepareBound returns how many of n commands go in one round trip of Prepare.
func (d *Dedup) prepareBound(n int) int {
	if limit := int(d.prepareLimit.Load()); limit > 0 {
		return min(n, limit)
	}
	return n
}

// growPrepare doubles the bound after a round trip of n commands at the bound succeeded, back to
// none at maxPrepareLimit.
func (d *Dedup) growPrepare(n int) {
	if limit := d.prepareLimit.Load(); limit > 0 && n == int(limit) {
		next := 2 * limit
		if next >= maxPrepareLimit {
			next = 0
		}
		d.prepareLimit.CompareAndSwap(limit, next)
	}
}

// shrinkPrepare lowers the bound after a round trip of n commands failed.
func (d *Dedup) shrinkPrepare(n int) {
	d.prepareLimit.Store(int64(max(n/4, minPrepareLimit)))
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
	var keys []string
	var tokens []any
	for _, m := range batch {
		st, ok := m.Value(d).(*dedupState)
		if !ok || st.status != statusAcquired {
			continue
		}
		st.status = statusUnknown
		keys, tokens = append(keys, st.key), append(tokens, st.token)
	}
	if len(keys) == 0 {
		return nil
	}
	if err := releaseScript.Eval(ctx, d.rdb, keys, tokens...).Err(); err != nil {
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

// acquire queues on c the one command that tries to take a lease and reads what holds the key
// otherwise: SET key lease NX GET PX ttl (Redis 7.0 or later), read with acquired.
func (d *Dedup) acquire(ctx context.Context, c redis.StringCmdable, key, lease string) *redis.StatusCmd {
	return c.SetArgs(ctx, key, lease, redis.SetArgs{Mode: "NX", Get: true, TTL: d.keyTTL()})
}

// classify records in st the status that the answer of acquire for st's lease (taken at st.at)
// means: a nil answer is the lease taken (the key did not exist), any other the key's value.
func (d *Dedup) classify(st *dedupState, cmd *redis.StatusCmd) {
	value, err := cmd.Result()
	set := errors.Is(err, redis.Nil)
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
	default:
		st.seen = value
		if _, _, ok := d.doneSet(value); ok {
			st.status = statusLeased
		} else {
			st.byDeadline(time.Now())
		}
	}
}

// byDeadline sets st's status for another owner's lease (st.seen) that is not done: expired at
// its deadline, busy before.
func (st *dedupState) byDeadline(now time.Time) {
	if leaseExpired(st.seen, now) {
		st.status = statusExpired
	} else {
		st.status = statusBusy
	}
}

// readDoneSets reads, in one round trip, whether the owners of the leases that sts found
// (statusLeased) marked their events done, and sets each status: done, expired or busy. On an
// error no status changes.
func (d *Dedup) readDoneSets(ctx context.Context, sts []*dedupState) error {
	cmds := make([]*redis.BoolCmd, len(sts))
	res, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, st := range sts {
			key, member, _ := d.doneSet(st.seen)
			cmds[i] = p.SIsMember(ctx, key, member)
		}
		return nil
	})
	if err = pipelineErr(res, err); err != nil {
		return err
	}
	now := time.Now()
	for i, st := range sts {
		if cmds[i].Val() {
			st.status = statusDone
		} else {
			st.byDeadline(now)
		}
	}
	return nil
}

// Middleware returns the dedup middleware (outermost in the chain). See Dedup for the protocol.
func (d *Dedup) Middleware() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			st, ok := m.Value(d).(*dedupState)
			if ok && m.DecodeErr != nil && !IsRetryable(m.DecodeErr) {
				// Prepared by its headers, which the record did not bear out (it does not
				// decode, or its envelope names another event): not deduplicated, and no lease
				// of the event its headers name is kept or marked done for it.
				if st.status == statusAcquired {
					d.releaseOne(ctx, st)
				}
				st, ok = &dedupState{status: statusOpen}, true
				m.SetValue(d, st)
			}
			if !ok {
				source, id := eventID(m)
				if id == "" {
					st = &dedupState{status: statusOpen}
				} else {
					st = d.newState(d.Key(source, id))
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
			if settled := d.pendingMark(st.key); settled != nil {
				// The lease is this Dedup's own, on an event handled and being marked done.
				select {
				case <-settled:
					st.status = statusUnknown
					continue
				case <-ctx.Done():
					return fmt.Errorf("streams: dedup: waiting for the done mark of %s: %w", st.key, ctx.Err())
				}
			}
			if err := leaseBO.Wait(ctx); err != nil {
				return fmt.Errorf("streams: dedup: waiting for the lease of %s: %w", st.key, err)
			}
			st.status = statusUnknown
		case statusLeased:
			if err := d.readDoneSets(ctx, []*dedupState{st}); err != nil {
				if err := d.unreachable(ctx, m, st, redisBO, "read done set", err); err != nil {
					return err
				}
				continue
			}
			redisBO.Reset()
		case statusExpired:
			at := time.Now()
			set, member, ok := d.doneSet(st.seen)
			if !ok {
				set = st.key
			}
			took, err := takeOverScript.Run(ctx, d.rdb, []string{st.key, set}, st.seen, d.leaseValue(st.token, at), d.keyTTL().Milliseconds(), member).Int()
			if err != nil {
				if err := d.unreachable(ctx, m, st, redisBO, "take over lease", err); err != nil {
					return err
				}
				continue
			}
			redisBO.Reset()
			st.status = statusUnknown
			if took == 2 {
				st.status = statusDone
			}
			if took == 1 {
				d.acquired.Add(1)
				d.takeOvers.Add(1)
				d.cfg.logger.Warn("streams: dedup: took over the expired lease of another owner: its attempt started and never finished, so its outcome is unknown and the handler may repeat a side effect",
					"eventId", Header(m.Record, HeaderEventID), "key", st.key, "previous", st.seen, "topic", m.Record.Topic, "partition", m.Record.Partition, "offset", m.Record.Offset)
				st.at, st.status = at, statusAcquired
			}
		case statusUnknown:
			at := time.Now()
			set := d.acquire(ctx, d.rdb, st.key, d.leaseValue(st.token, at))
			if err := set.Err(); err != nil && !errors.Is(err, redis.Nil) {
				if err := d.unreachable(ctx, m, st, redisBO, "acquire", err); err != nil {
					return err
				}
				continue
			}
			redisBO.Reset()
			st.at = at
			d.classify(st, set)
		}
	}
}

// unreachable handles a failed Redis call of the middleware: it fails open (status open) or waits
// one backoff step (fail closed), returning ctx's error when ctx ends.
func (d *Dedup) unreachable(ctx context.Context, m *Message, st *dedupState, bo *Backoff, op string, err error) error {
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
	return d.wait(ctx, bo, op, err)
}

// run calls the handler under the lease, extending it while the handler runs, and then marks the
// key done or releases it.
func (d *Dedup) run(ctx context.Context, m *Message, st *dedupState, next Handler) error {
	// A Consumer's message may be marked done after the middleware returned (markDoneLater).
	later := m.job != nil
	if later {
		if err := d.reserve(ctx); err != nil {
			d.releaseOne(ctx, st)
			return fmt.Errorf("streams: dedup: waiting for done marks to be acknowledged: %w", err)
		}
	}
	reserved := later // until a queued mark takes the reservation over (settle gives it back)
	defer func() {
		if reserved {
			d.unreserve()
		}
	}()
	st.effects = nil
	d.keepLease(m, st)
	err := next(ctx, m)
	d.releaseLease(st)
	// The outcome must reach Redis even when ctx was canceled while the handler finished.
	octx := context.WithoutCancel(ctx)
	if err == nil && m.DecodeErr != nil && !IsRetryable(m.DecodeErr) {
		// Decoded in the chain (LazyDecode) and not borne out by its envelope, then dead-lettered:
		// the event its headers name is not this record, so its key is released, not done.
		d.releaseOne(octx, st)
		return nil
	}
	if err != nil {
		d.releaseOne(octx, st)
		return err
	}
	if later && st.effects == nil {
		// The mark is written with those of the records finishing meanwhile, and the consumer
		// commits no offset at or past m's before it is acknowledged.
		st.status, reserved = statusDone, false
		d.markDoneLater(ctx, st, m.holdCommit())
		return nil
	}
	bo := d.backoff()
	for {
		res, ferr := d.finish(octx, st)
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
		if werr := d.wait(ctx, bo, "finish", ferr); werr != nil {
			// The handler succeeded: let the offset be committed; the lease expires by itself.
			d.cfg.logger.Error("streams: dedup: event handled but not marked done before shutdown",
				"key", st.key, "err", ferr)
			return nil
		}
	}
}

// releaseOne deletes st's lease (owner-checked), so that the event is handled again when it is
// delivered again; a lease it cannot delete expires by itself.
func (d *Dedup) releaseOne(ctx context.Context, st *dedupState) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.lease)
	defer cancel()
	st.status = statusUnknown
	if err := releaseScript.Run(rctx, d.rdb, []string{st.key}, st.token).Err(); err != nil {
		d.cfg.logger.Warn("streams: dedup: could not release the lease; it expires by itself",
			"key", st.key, "lease", d.cfg.lease, "err", err)
	}
}

// finish marks the caller's event done and returns what held its key: 1 the caller's lease, 2
// "done" already, 3 nothing (Redis lost the key), 0 another owner's lease. Without OnDone effects
// the mark goes to the caller's done set (markDone) and the result is 1: the key is not read.
// With effects they are applied in the same transaction as the mark: WATCH the key, check the
// lease is still the caller's (or gone), then MULTI, SET "done", the effects, EXEC; a concurrent
// change of the key makes it check again. Each attempt is bounded by a lease.
func (d *Dedup) finish(ctx context.Context, st *dedupState) (int, error) {
	if st.effects == nil {
		return 1, d.markDone(ctx, st) // bounded by the flush's own deadline (a lease)
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.lease)
	defer cancel()
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

// keeper extends the leases of a Dedup's running handlers: one goroutine, started when a lease is
// kept and ending when none is, wakes every sixth of the lease and extends, in one pipelined round
// trip, each lease last taken or extended a third of the lease ago or more. A lease is thus
// extended between a third and a half of the lease after the last time, and a handler costs a map
// entry, not a timer of its own. Fields under mu.
type keeper struct {
	mu        sync.Mutex
	held      map[*dedupState]*Message
	running   bool
	extending map[*dedupState]bool // in the round trip under way
	ended     *sync.Cond           // broadcast when a round trip ends
}

// keepLease keeps st's lease (m's) extended until releaseLease(st).
func (d *Dedup) keepLease(m *Message, st *dedupState) {
	k := &d.keep
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.held == nil {
		k.held, k.extending = map[*dedupState]*Message{}, map[*dedupState]bool{}
		k.ended = sync.NewCond(&k.mu)
	}
	k.held[st] = m
	if !k.running {
		k.running = true
		go d.keepLeases()
	}
}

// releaseLease stops extending st's lease, waiting for an extension of it under way: none is
// written after it returns, so the done mark or the release that follows is the key's last word.
func (d *Dedup) releaseLease(st *dedupState) {
	k := &d.keep
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.held, st)
	for k.extending[st] {
		k.ended.Wait()
	}
}

// keepLeases is the keeper's goroutine.
func (d *Dedup) keepLeases() {
	k := &d.keep
	every := d.cfg.lease / 3
	t := time.NewTimer(every / 2)
	defer t.Stop()
	for range t.C {
		k.mu.Lock()
		if len(k.held) == 0 {
			k.running = false
			k.mu.Unlock()
			return
		}
		now := time.Now()
		var due []heldLease
		for st, m := range k.held {
			if now.Sub(st.at) >= every {
				due = append(due, heldLease{st: st, m: m})
				k.extending[st] = true
			}
		}
		k.mu.Unlock()
		failed := len(due) > 0 && d.extendLeases(due, every)
		k.mu.Lock()
		clear(k.extending)
		k.ended.Broadcast()
		k.mu.Unlock()
		if failed {
			t.Reset(d.cfg.backoffInitial)
		} else {
			t.Reset(every / 2)
		}
	}
}

// heldLease is a lease the keeper extends: its state and message, and the extension's command.
type heldLease struct {
	st  *dedupState
	m   *Message
	cmd *redis.Cmd
}

// extendLeases extends the due leases in one round trip of at most timeout, owner-checked
// (extendScript), and records each outcome; it reports whether the round trip failed. A lease found
// held by another owner or done is no longer kept: the handler runs on, and its done mark tells
// the outcome.
func (d *Dedup) extendLeases(due []heldLease, timeout time.Duration) (failed bool) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	at := time.Now()
	_, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range due {
			due[i].cmd = extendScript.Eval(ctx, p, []string{h.st.key}, h.st.token, d.leaseValue(h.st.token, at), d.keyTTL().Milliseconds())
		}
		return nil
	})
	if err != nil {
		d.cfg.logger.Warn("streams: dedup: could not extend the leases", "leases", len(due), "err", err)
	}
	k := &d.keep
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, h := range due {
		held, cerr := h.cmd.Int()
		switch {
		case cerr != nil:
			failed = true
		case held == 0:
			d.cfg.logger.Warn("streams: dedup: lease lost while the handler runs; another owner may handle the event",
				"key", h.st.key, "topic", h.m.Record.Topic, "partition", h.m.Record.Partition, "offset", h.m.Record.Offset)
			delete(k.held, h.st)
		default:
			if held == 2 {
				d.lostKey(h.m, h.st, "while the handler ran")
			}
			h.st.at = at
		}
	}
	return failed
}

// finisher coalesces the done marks of handlers finishing at the same time into one pipeline
// (group commit): a background flush writes everything pending, then what arrived meanwhile, and
// stops when nothing is pending.
type finisher struct {
	mu        sync.Mutex
	pending   []*finishReq
	flushing  bool
	later     map[string]*finishReq // marks of markDoneLater not yet acknowledged, by key
	unmarked  int                   // reserved: handlers running or handled, whose mark may come later
	roomAgain chan struct{}         // closed when unmarked decreases, for reserve's waiters
}

type finishReq struct {
	key  string
	seq  uint64 // of the lease's token
	err  error
	done chan struct{} // closed when err is known (markDone) or the mark is settled (markDoneLater)

	// markDoneLater's: its context (its end gives the mark up) and the consumer's commit hold,
	// released when the mark is settled.
	ctx     context.Context
	release func()
}

// markDone marks st's event done (in its done set), in a pipeline with those of other handlers
// finishing at the same time. It returns when Redis acknowledged it or ctx ends.
func (d *Dedup) markDone(ctx context.Context, st *dedupState) error {
	req := &finishReq{key: st.key, seq: st.seq, done: make(chan struct{})}
	d.enqueueMark(req)
	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// markDoneLater queues the done mark of m, handled by a Consumer whose commit of m's offset waits
// for release, and returns at once: the handler of the next record of m's key runs meanwhile, and
// the marks of every record finishing before the next flush share one round trip. The mark is
// settled (release called) when Redis acknowledged it, or when it is given up: ctx ended (the
// consumer gave the partition up, so the offset is not committed and the next owner waits for the
// lease), or Redis is unreachable under DedupFailOpen. A failed flush is retried with backoff
// (fail closed) while the consumer holds the offset. The event was counted by reserve before its
// handler ran: DedupMaxUnmarked bounds the marks outstanding, so a Redis outage stops the handlers
// soon after it began.
func (d *Dedup) markDoneLater(ctx context.Context, st *dedupState, release func()) {
	d.enqueueMark(&finishReq{key: st.key, seq: st.seq, done: make(chan struct{}), ctx: ctx, release: release})
}

func (d *Dedup) enqueueMark(req *finishReq) {
	f := &d.fin
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending = append(f.pending, req)
	if req.release != nil {
		if f.later == nil {
			f.later = map[string]*finishReq{}
		}
		f.later[req.key] = req
	}
	if !f.flushing {
		f.flushing = true
		go d.flushPending()
	}
}

// reserve counts one more event that may be marked done later, waiting while DedupMaxUnmarked
// are (see markDoneLater); unreserve (or settle) gives it back.
func (d *Dedup) reserve(ctx context.Context) error {
	f := &d.fin
	for {
		f.mu.Lock()
		if f.unmarked < d.cfg.maxUnmarked {
			f.unmarked++
			f.mu.Unlock()
			return nil
		}
		if f.roomAgain == nil {
			f.roomAgain = make(chan struct{})
		}
		ch := f.roomAgain
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (d *Dedup) unreserve() {
	f := &d.fin
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unreserveLocked()
}

func (f *finisher) unreserveLocked() {
	f.unmarked--
	if f.roomAgain != nil {
		close(f.roomAgain)
		f.roomAgain = nil
	}
}

// pendingMark returns a channel closed when the queued done mark of key (markDoneLater) is
// settled, or nil when none is queued.
func (d *Dedup) pendingMark(key string) <-chan struct{} {
	f := &d.fin
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.later[key]; r != nil {
		return r.done
	}
	return nil
}

// flushPending flushes the pending marks until none is left, retrying markDoneLater's failed
// ones after a backoff step.
func (d *Dedup) flushPending() {
	f := &d.fin
	bo := d.backoff()
	var retry []*finishReq
	for {
		f.mu.Lock()
		batch := append(retry, f.pending...)
		f.pending = nil
		if len(batch) == 0 {
			f.flushing = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		var err error
		if retry, err = d.flushDone(batch); len(retry) == 0 {
			bo.Reset()
		} else {
			_ = d.wait(context.Background(), bo, "done marks", err)
		}
	}
}

// settle ends a markDoneLater request: its outcome logged, the consumer's hold released.
func (d *Dedup) settle(r *finishReq) {
	switch {
	case r.err != nil && d.cfg.failOpen:
		d.redisFailures.Add(1)
		d.cfg.logger.Error("streams: dedup: Redis unreachable, event handled but NOT marked done (fail-open)", "key", r.key, "err", r.err)
	case r.err != nil:
		d.cfg.logger.Error("streams: dedup: event handled but not marked done before its partition was given up", "key", r.key, "err", r.err)
	}
	f := &d.fin
	f.mu.Lock()
	if f.later[r.key] == r {
		delete(f.later, r.key)
	}
	f.unreserveLocked()
	f.mu.Unlock()
	close(r.done)
	r.release()
}

// checkWait logs a WAIT (DedupWaitReplicas) that returned before enough replicas acknowledged
// marks done marks: a failover now could lose them.
func (d *Dedup) checkWait(n int64, err error, marks int) {
	if err != nil || n < int64(d.cfg.waitReplicas) {
		d.cfg.logger.Warn("streams: dedup: done marks not acknowledged by enough replicas in time (WAIT); a failover now could lose them",
			"marks", marks, "replicas", n, "want", d.cfg.waitReplicas, "timeout", d.cfg.waitTimeout, "err", err)
	}
}

// flushDone marks a batch of leases done in one round trip: each done set gets its members in one
// SADD and its TTL renewed (no command per event, no script), with the WAIT of DedupWaitReplicas
// behind them; each caller gets the round trip's error. It returns the markDoneLater requests to
// try again (failed, with their context alive and failing closed; a SADD may be sent again) and
// the error.
func (d *Dedup) flushDone(batch []*finishReq) (retry []*finishReq, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.lease)
	defer cancel()
	sets := map[string][]any{}
	for _, r := range batch {
		key, member := d.doneSetOf(d.owner, r.seq)
		sets[key] = append(sets[key], member)
	}
	var wait *redis.Cmd
	cmds, err := d.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for key, members := range sets {
			p.SAdd(ctx, key, members...)
			p.PExpire(ctx, key, d.cfg.doneTTL)
		}
		if d.cfg.waitReplicas > 0 {
			// On the same connection as the marks: WAIT covers this client's writes before it.
			wait = p.Do(ctx, "wait", d.cfg.waitReplicas, d.cfg.waitTimeout.Milliseconds())
		}
		return nil
	})
	err = pipelineErr(cmds, err)
	d.doneTrips.Add(1)
	if wait != nil && err == nil {
		n, werr := wait.Int64()
		d.checkWait(n, werr, len(batch))
	}
	for _, r := range batch {
		r.err = err
		switch {
		case r.release == nil:
			close(r.done)
		case r.err != nil && !d.cfg.failOpen && r.ctx.Err() == nil:
			retry = append(retry, r)
		default:
			d.settle(r)
		}
	}
	return retry, err
}

// eventID returns the publishing system and the id a message is deduplicated by (id "" for
// none): the envelope's, or the source and eventId headers of a record not decoded yet (the
// Consumer decodes a record routed by its headers after Prepare, and checks that these headers
// are the envelope's) or whose decoding failed transiently (decoded again inside the chain); for
// a redriven record, the id is
// followed by its redrive id (see HeaderRedriveID).
func eventID(m *Message) (source, id string) {
	switch {
	case m.DecodeErr == nil && m.Envelope != nil:
		source, id = m.Envelope.Metadata.Source, m.Envelope.EventID
	case (m.DecodeErr == nil || IsRetryable(m.DecodeErr)) && m.Record != nil:
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

func (d *Dedup) backoff() *Backoff {
	return &Backoff{Initial: d.cfg.backoffInitial, Max: d.cfg.backoffMax}
}

// wait logs a failed Redis call and sleeps one backoff step (fail closed). A Cluster client is
// asked to reload the cluster's layout meanwhile: go-redis does not do so when a pipeline cannot
// reach a node, so after a master died it would keep sending the group's slot to the dead node
// until its periodic refresh (TestRedisClusterFailover: 25 s instead of a few).
func (d *Dedup) wait(ctx context.Context, b *Backoff, op string, err error) error {
	d.redisFailures.Add(1)
	if cc, ok := d.rdb.(*redis.ClusterClient); ok {
		cc.ReloadState(ctx)
	}
	d.cfg.logger.Warn("streams: dedup: Redis unreachable, waiting (fail-closed)", "op", op, "err", err, "retry_in", b.Step())
	if serr := b.Wait(ctx); serr != nil {
		return fmt.Errorf("streams: dedup %s: Redis unreachable (%v): %w", op, err, serr)
	}
	return nil
}

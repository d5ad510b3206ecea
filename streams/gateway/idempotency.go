package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hotelbus/hotelbus/streams"
)

// answer is a response as it is written and as Idempotency-Key replays it.
type answer struct {
	Status      int    `json:"status"`
	ContentType string `json:"contentType"`
	RetryAfter  bool   `json:"retryAfter,omitempty"`
	Body        []byte `json:"body"`
	// retryIn, when set, is the Retry-After instead of Config.RetryAfter (a rate limit's wait).
	retryIn time.Duration
}

// replayable reports whether an answer is final for its request: anything but an overload or a
// server failure, which a retry with the same key may turn into a success.
func (a *answer) replayable() bool {
	return a.Status < 500 && a.Status != 429
}

// idempotency keeps the first answer to each (system, Idempotency-Key) in Redis. A request takes a
// lease on its key (SET NX with the lease's expiry) and replaces it with its answer; a concurrent
// request with the same key waits for that answer. The stored fingerprint of the route and body
// refuses a key reused for a different request.
type idempotency struct {
	rdb   redis.UniversalClient
	ttl   time.Duration
	lease time.Duration
	wait  time.Duration
}

// entry is the Redis value: a lease (Holder set, Answer nil) or the stored answer.
type entry struct {
	Fingerprint string  `json:"fp"`
	Holder      string  `json:"holder,omitempty"`
	Answer      *answer `json:"answer,omitempty"`
}

type lease struct {
	key, value, fingerprint string // value: the lease entry exactly as stored
}

const maxKeyLen = 255

func (i *idempotency) redisKey(system, key string) string {
	d := sha256.Sum256([]byte(key))
	return "hotelbus:gateway:idempotency:" + system + ":" + hex.EncodeToString(d[:])
}

func fingerprint(route string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(route))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// validKey reports whether an Idempotency-Key header value is usable: 1 to 255 visible ASCII
// characters.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > maxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// begin takes the key's lease, or returns the answer stored for it, or the problem that prevents
// either (a key reused for another request, Redis unreachable, the holder taking too long).
func (i *idempotency) begin(ctx context.Context, system, key, fp string) (*lease, *answer, *Problem) {
	rk := i.redisKey(system, key)
	ctx, cancel := context.WithTimeout(ctx, i.wait)
	defer cancel()
	bo := streams.Backoff{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond}
	for {
		v, _ := json.Marshal(entry{Fingerprint: fp, Holder: rand.Text()})
		ok, err := i.rdb.SetNX(ctx, rk, v, i.lease).Result()
		if err != nil {
			return nil, nil, i.unavailable(ctx, err)
		}
		if ok {
			return &lease{key: rk, value: string(v), fingerprint: fp}, nil, nil
		}
		raw, err := i.rdb.Get(ctx, rk).Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			continue // expired or released between the two commands
		case err != nil:
			return nil, nil, i.unavailable(ctx, err)
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, nil, kindInternal.problem(fmt.Sprintf("unreadable idempotency record: %v", err))
		}
		if e.Fingerprint != fp {
			return nil, nil, kindKeyReused.problem("this Idempotency-Key was used for a different request (route or body) within its lifetime")
		}
		if e.Answer != nil {
			return nil, e.Answer, nil
		}
		if bo.Wait(ctx) != nil {
			return nil, nil, kindUnavailable.problem("a request with this Idempotency-Key is still being processed; retry later")
		}
	}
}

func (i *idempotency) unavailable(ctx context.Context, err error) *Problem {
	if ctx.Err() != nil {
		return kindUnavailable.problem("a request with this Idempotency-Key is still being processed; retry later")
	}
	return kindUnavailable.problem(fmt.Sprintf("the idempotency store is unavailable: %v", err))
}

// storeScript replaces the lease with the answer (or deletes it) only while this request still
// holds it.
var storeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`)

// finish stores a replayable answer under the lease's key for the TTL, or releases the key so a
// retry runs again. It runs even when the client has gone: ctx should not be the request's.
func (i *idempotency) finish(ctx context.Context, l *lease, a *answer) error {
	val := ""
	if a.replayable() {
		b, err := json.Marshal(entry{Fingerprint: l.fingerprint, Answer: a})
		if err != nil {
			return fmt.Errorf("gateway: idempotency record: %w", err)
		}
		val = string(b)
	}
	ok, err := storeScript.Run(ctx, i.rdb, []string{l.key}, l.value, val, i.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("gateway: storing the idempotent answer: %w", err)
	}
	if ok == 0 {
		return fmt.Errorf("gateway: idempotency lease expired before the answer was stored")
	}
	return nil
}

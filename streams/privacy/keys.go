package privacy

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
)

// Keys is the store of data keys: it writes key records to the key topic through the SDK's Writer
// and tails the topic into a map of wrapped keys, with unwrapped keys in a bounded LRU whose
// entries expire (see the package doc). Safe for concurrent use; Close stops the tail.
type Keys struct {
	w     *streams.Writer
	kms   KMS
	topic string
	cfg   keysConfig
	cl    *kgo.Client
	adm   *kadm.Client
	cache *expirable.LRU[cacheKey, cipher.AEAD]

	mu       sync.Mutex
	live     map[string]map[KeyID]keyRecord // tenant/subject -> key id -> record
	byRecord map[string]liveRef             // Kafka key of a key record -> where it is in live
	byID     map[tenantKeyID]string         // (tenant, key id) -> subject, for OpenData
	erasures map[string][]Erasure           // tenant/subject -> erasures, oldest first
	pos      map[int32]int64                // next offset to read, per partition
	moved    chan struct{}                  // closed and replaced whenever pos advances
	stats    Stats
	hits     atomic.Int64
	misses   atomic.Int64
	gen      uint64 // changes of live, for sealers

	// sealers holds sealKey's answer per subject, read without a lock; see sealer.
	sealers     sync.Map // subjectRef -> *sealer
	sealerCount atomic.Int64

	stop context.CancelFunc
	done chan struct{}
}

type liveRef struct {
	ts string
	id KeyID
}

// tenantKeyID names a data key without its subject. Key ids are 8 random bytes: two subjects of a
// tenant sharing one (odds 2^-64 a pair) would make the later one's values read through OpenData
// fail to authenticate (ErrTampered), never open under the other's key.
type tenantKeyID struct {
	tenant string
	id     KeyID
}

// subjectRef names a subject of a tenant (a struct: no string built per lookup).
type subjectRef struct{ tenant, subject string }

// sealer is the key a subject's new values are sealed with: the oldest live key, unwrapped. It is
// what sealKey found the slow way (the map of live keys under the global lock, then the LRU),
// kept so that the subject's next event finds it with one lock-free lookup: with thousands of
// guests the slow way was 42% of sealing an event. An entry is stored only if live did not change
// since it was computed (gen, under mu); it is dropped by every change of the subject's keys (a key
// record or tombstone read, a key created, Forget), so a forgotten key is not used once the tail
// has read its tombstone, as without it; it lives at most KeyCacheTTL, and the cache is emptied
// when it reaches KeyCacheSize entries, the bounds of the LRU.
type sealer struct {
	id      KeyID
	aead    cipher.AEAD
	expires time.Time
}

// cacheKey names an unwrapped data key in the cache (a struct: no string built per lookup).
type cacheKey struct {
	tenant, subject string
	id              KeyID
}

// KeyID names one data key of a subject; a sealed value carries it.
type KeyID [8]byte

func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// keyRecord is the value of a key record on the key topic (JSON; the data key wrapped).
type keyRecord struct {
	Kind      string    `json:"kind"` // "key"
	Tenant    string    `json:"tenantId"`
	Subject   string    `json:"subject"`
	KeyID     string    `json:"keyId"`
	KEK       string    `json:"kek"`
	Wrapped   []byte    `json:"wrapped"`
	CreatedAt time.Time `json:"createdAt"`
}

// Erasure is the record `hotelbus privacy forget` leaves on the key topic: who erased which
// subject of which tenant, when, and how many keys were destroyed. It holds no personal data
// besides the subject's id.
type Erasure struct {
	Kind    string    `json:"kind"` // "erasure"
	Tenant  string    `json:"tenantId"`
	Subject string    `json:"subject"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Keys    int       `json:"keys"`
}

// Stats counts what a Keys did; it never holds key material.
type Stats struct {
	Live                                         int // data keys known now
	KeysCreated, KeysLoaded, Erasures, Rewrapped int64
	CacheHits, CacheMisses, Unwraps              int64
	Malformed                                    int64 // key topic records that do not parse
}

// KeysOption configures Keys.
type KeysOption func(*keysConfig)

type keysConfig struct {
	cacheSize   int
	cacheTTL    time.Duration
	syncTimeout time.Duration
	now         func() time.Time
}

// KeyCacheSize bounds the number of unwrapped data keys held in memory. Default 10000.
func KeyCacheSize(n int) KeysOption { return func(c *keysConfig) { c.cacheSize = n } }

// KeyCacheTTL is how long an unwrapped data key stays in memory after it was unwrapped. Default 10m.
func KeyCacheTTL(d time.Duration) KeysOption { return func(c *keysConfig) { c.cacheTTL = d } }

// KeySyncTimeout bounds the wait to catch up with the key topic (a lookup that misses, Forget,
// Rewrap) and each write to it. Default 10s.
func KeySyncTimeout(d time.Duration) KeysOption { return func(c *keysConfig) { c.syncTimeout = d } }

// NewKeys starts tailing topic (topics.Catalog.KeyTopic) from its beginning with a Kafka client of
// kafka (at least kgo.SeedBrokers), and writes key records with w. It returns at once; lookups wait
// for the tail to catch up.
func NewKeys(w *streams.Writer, kms KMS, topic string, kafka []kgo.Opt, opts ...KeysOption) (*Keys, error) {
	cfg := keysConfig{cacheSize: 10000, cacheTTL: 10 * time.Minute, syncTimeout: 10 * time.Second, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case w == nil || kms == nil:
		return nil, fmt.Errorf("%w: Keys need a Writer and a KMS", streams.ErrConfig)
	case topic == "":
		return nil, fmt.Errorf("%w: no key topic (topics.yaml declares no privacyKeys)", streams.ErrConfig)
	case cfg.cacheSize < 1 || cfg.cacheTTL <= 0 || cfg.syncTimeout <= 0:
		return nil, fmt.Errorf("%w: KeyCacheSize, KeyCacheTTL and KeySyncTimeout must be positive", streams.ErrConfig)
	}
	cl, err := kgo.NewClient(append(slices.Clone(kafka), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return nil, fmt.Errorf("%w: key topic client: %v", streams.ErrConfig, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Keys{w: w, kms: kms, topic: topic, cfg: cfg, cl: cl, adm: kadm.NewClient(cl),
		cache: expirable.NewLRU[cacheKey, cipher.AEAD](cfg.cacheSize, nil, cfg.cacheTTL),
		live:  map[string]map[KeyID]keyRecord{}, byRecord: map[string]liveRef{}, byID: map[tenantKeyID]string{}, erasures: map[string][]Erasure{}, pos: map[int32]int64{},
		moved: make(chan struct{}), stop: cancel, done: make(chan struct{})}
	go k.tail(ctx)
	return k, nil
}

// Close stops the tail and closes its client (not the Writer, which belongs to the caller).
func (k *Keys) Close() {
	k.stop()
	<-k.done
	k.cl.Close()
}

// Stats returns the counters so far.
func (k *Keys) Stats() Stats {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := k.stats
	s.CacheHits, s.CacheMisses = k.hits.Load(), k.misses.Load()
	s.Live = len(k.byRecord)
	return s
}

func (k *Keys) tail(ctx context.Context) {
	defer close(k.done)
	for {
		fs := k.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		k.mu.Lock()
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Err != nil {
				return
			}
			for _, r := range p.Records {
				k.apply(r)
				k.pos[p.Partition] = r.Offset + 1
			}
			// An empty fetch without error means nothing is left below the high watermark (a
			// compacted tail); without this a catch-up would wait for offsets that no longer exist.
			if len(p.Records) == 0 && p.HighWatermark > k.pos[p.Partition] {
				k.pos[p.Partition] = p.HighWatermark
			}
		})
		close(k.moved)
		k.moved = make(chan struct{})
		k.mu.Unlock()
	}
}

// recordKey returns the Kafka key of a key record: a hash, so keys follow the record-key grammar
// and a tombstone names no subject.
func recordKey(kind, tenant, subject, id string) []byte {
	h := sha256.Sum256([]byte(kind + "\x00" + tenant + "\x00" + subject + "\x00" + id))
	return []byte(kind + ":" + hex.EncodeToString(h[:20]))
}

func liveKey(tenant, subject string) string { return tenant + "/" + subject }

// apply updates the map from one key topic record; called with mu held.
func (k *Keys) apply(r *kgo.Record) {
	if r.Value == nil { // a tombstone
		if ref, ok := k.byRecord[string(r.Key)]; ok {
			k.remove(ref)
		}
		return
	}
	var head struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal(r.Value, &head) != nil {
		k.stats.Malformed++
		return
	}
	switch head.Kind {
	case "key":
		var rec keyRecord
		var id KeyID
		if json.Unmarshal(r.Value, &rec) != nil {
			k.stats.Malformed++
			return
		}
		if raw, err := hex.DecodeString(rec.KeyID); err != nil || len(raw) != len(id) ||
			string(recordKey("k", rec.Tenant, rec.Subject, rec.KeyID)) != string(r.Key) {
			k.stats.Malformed++
			return
		}
		_, _ = hex.Decode(id[:], []byte(rec.KeyID))
		ts := liveKey(rec.Tenant, rec.Subject)
		if k.live[ts] == nil {
			k.live[ts] = map[KeyID]keyRecord{}
		}
		k.live[ts][id] = rec
		k.byRecord[string(r.Key)] = liveRef{ts, id}
		k.byID[tenantKeyID{rec.Tenant, id}] = rec.Subject
		k.stats.KeysLoaded++
		k.changed(rec.Tenant, rec.Subject)
	case "erasure":
		var e Erasure
		if json.Unmarshal(r.Value, &e) != nil {
			k.stats.Malformed++
			return
		}
		ts := liveKey(e.Tenant, e.Subject)
		k.erasures[ts] = append(k.erasures[ts], e)
	default:
		k.stats.Malformed++
	}
}

// remove drops one key from the map and the cache; called with mu held.
func (k *Keys) remove(ref liveRef) {
	rec, ok := k.live[ref.ts][ref.id]
	if !ok {
		return
	}
	delete(k.live[ref.ts], ref.id)
	if len(k.live[ref.ts]) == 0 {
		delete(k.live, ref.ts)
	}
	delete(k.byRecord, string(recordKey("k", rec.Tenant, rec.Subject, rec.KeyID)))
	if tk := (tenantKeyID{rec.Tenant, ref.id}); k.byID[tk] == rec.Subject {
		delete(k.byID, tk)
	}
	k.cache.Remove(cacheKey{rec.Tenant, rec.Subject, ref.id})
	k.changed(rec.Tenant, rec.Subject)
}

// changed records a change of the live keys of (tenant, subject); called with mu held.
func (k *Keys) changed(tenant, subject string) {
	k.gen++
	if _, ok := k.sealers.LoadAndDelete(subjectRef{tenant, subject}); ok {
		k.sealerCount.Add(-1)
	}
}

// sync waits until the tail has read everything the key topic held when sync was called.
func (k *Keys) sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, k.cfg.syncTimeout)
	defer cancel()
	ends, err := k.adm.ListEndOffsets(ctx, k.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("%w: end offsets of %s: %v", ErrKeys, k.topic, err)
	}
	for {
		k.mu.Lock()
		behind := false
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 && k.pos[o.Partition] < o.Offset {
				behind = true
			}
		})
		moved := k.moved
		k.mu.Unlock()
		if !behind {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("%w: catching up with %s: %v", ErrKeys, k.topic, ctx.Err())
		}
	}
}

// sealKey returns the key to seal new values of (tenant, subject) with, creating it when the
// subject has none.
func (k *Keys) sealKey(ctx context.Context, tenant, subject string) (KeyID, cipher.AEAD, error) {
	ref := subjectRef{tenant, subject}
	if s, ok := k.sealers.Load(ref); ok {
		if s := s.(*sealer); k.cfg.now().Before(s.expires) {
			k.hits.Add(1)
			return s.id, s.aead, nil
		}
	}
	if id, a, ok, err := k.oldestKept(ctx, ref); ok {
		return id, a, err
	}
	if err := k.sync(ctx); err != nil { // another publisher may have created it
		return KeyID{}, nil, err
	}
	if id, a, ok, err := k.oldestKept(ctx, ref); ok {
		return id, a, err
	}
	return k.create(ctx, tenant, subject)
}

// oldestKept returns the oldest live key of ref unwrapped, and keeps it for the subject's next
// events (keepSealer); ok is false when the subject has no live key.
func (k *Keys) oldestKept(ctx context.Context, ref subjectRef) (id KeyID, a cipher.AEAD, ok bool, err error) {
	id, rec, gen, ok := k.oldest(ref.tenant, ref.subject)
	if !ok {
		return id, nil, false, nil
	}
	if a, err = k.aead(ctx, id, rec); err == nil {
		k.keepSealer(ref, gen, id, a)
	}
	return id, a, true, err
}

// keepSealer stores sealKey's answer for ref, unless live changed since gen (see sealer).
func (k *Keys) keepSealer(ref subjectRef, gen uint64, id KeyID, a cipher.AEAD) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.gen != gen {
		return
	}
	if k.sealerCount.Load() >= int64(k.cfg.cacheSize) {
		k.sealers.Clear()
		k.sealerCount.Store(0)
	}
	if _, loaded := k.sealers.Swap(ref, &sealer{id: id, aead: a, expires: k.cfg.now().Add(k.cfg.cacheTTL)}); !loaded {
		k.sealerCount.Add(1)
	}
}

// oldest returns the earliest created live key of (tenant, subject): every publisher picks the
// same one once it has read the same records. gen is the generation of live it was read from.
func (k *Keys) oldest(tenant, subject string) (best KeyID, rec keyRecord, gen uint64, found bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, r := range k.live[liveKey(tenant, subject)] {
		if !found || r.CreatedAt.Before(rec.CreatedAt) || (r.CreatedAt.Equal(rec.CreatedAt) && r.KeyID < rec.KeyID) {
			best, rec, found = id, r, true
		}
	}
	return best, rec, k.gen, found
}

func (k *Keys) create(ctx context.Context, tenant, subject string) (KeyID, cipher.AEAD, error) {
	var id KeyID
	raw := make([]byte, 32)
	if _, err := rand.Read(id[:]); err != nil {
		return id, nil, fmt.Errorf("privacy: random key id: %w", err)
	}
	if _, err := rand.Read(raw); err != nil {
		return id, nil, fmt.Errorf("privacy: random data key: %w", err)
	}
	rec := keyRecord{Kind: "key", Tenant: tenant, Subject: subject, KeyID: id.String(), CreatedAt: k.cfg.now().UTC()}
	key := recordKey("k", tenant, subject, rec.KeyID)
	var err error
	if rec.KEK, rec.Wrapped, err = k.kms.Wrap(ctx, raw, key); err != nil {
		return id, nil, fmt.Errorf("%w: wrapping a data key: %v", ErrKeys, err)
	}
	if err := k.write(ctx, key, rec); err != nil {
		return id, nil, err
	}
	a, err := newAEAD(raw)
	if err != nil {
		return id, nil, err
	}
	k.mu.Lock()
	ts := liveKey(tenant, subject)
	if k.live[ts] == nil {
		k.live[ts] = map[KeyID]keyRecord{}
	}
	k.live[ts][id] = rec
	k.byRecord[string(key)] = liveRef{ts, id}
	k.byID[tenantKeyID{tenant, id}] = subject
	k.stats.KeysCreated++
	k.changed(tenant, subject)
	k.mu.Unlock()
	k.cache.Add(cacheKey{tenant, subject, id}, a)
	return id, a, nil
}

// write writes one key topic record (value nil: a tombstone) and waits for it.
func (k *Keys) write(ctx context.Context, key []byte, v any) error {
	var value []byte
	if v != nil {
		var err error
		if value, err = json.Marshal(v); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, k.cfg.syncTimeout)
	defer cancel()
	if _, err := k.w.WriteSync(ctx, &kgo.Record{Topic: k.topic, Key: key, Value: value}); err != nil {
		return fmt.Errorf("%w: %v", ErrKeys, err)
	}
	return nil
}

// openKey returns the key id names for (tenant, subject), or nil when it is erased (no live key of
// that id once the tail has caught up).
func (k *Keys) openKey(ctx context.Context, tenant, subject string, id KeyID) (cipher.AEAD, error) {
	rec, ok := k.lookup(tenant, subject, id)
	if !ok {
		if err := k.sync(ctx); err != nil {
			return nil, err
		}
		if rec, ok = k.lookup(tenant, subject, id); !ok {
			return nil, nil
		}
	}
	return k.aead(ctx, id, rec)
}

func (k *Keys) lookup(tenant, subject string, id KeyID) (keyRecord, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	rec, ok := k.live[liveKey(tenant, subject)][id]
	return rec, ok
}

// openKeyByID is openKey for a value whose subject is not known: the key id names it among the
// tenant's live keys.
func (k *Keys) openKeyByID(ctx context.Context, tenant string, id KeyID) (cipher.AEAD, error) {
	rec, ok := k.lookupByID(tenant, id)
	if !ok {
		if err := k.sync(ctx); err != nil {
			return nil, err
		}
		if rec, ok = k.lookupByID(tenant, id); !ok {
			return nil, nil
		}
	}
	return k.aead(ctx, id, rec)
}

func (k *Keys) lookupByID(tenant string, id KeyID) (keyRecord, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	subject, ok := k.byID[tenantKeyID{tenant, id}]
	if !ok {
		return keyRecord{}, false
	}
	rec, ok := k.live[liveKey(tenant, subject)][id]
	return rec, ok
}

// aead returns the unwrapped key of rec from the cache, unwrapping it on a miss.
func (k *Keys) aead(ctx context.Context, id KeyID, rec keyRecord) (cipher.AEAD, error) {
	ck := cacheKey{rec.Tenant, rec.Subject, id}
	if a, ok := k.cache.Get(ck); ok {
		k.hits.Add(1)
		return a, nil
	}
	k.misses.Add(1)
	raw, err := k.kms.Unwrap(ctx, rec.KEK, rec.Wrapped, recordKey("k", rec.Tenant, rec.Subject, rec.KeyID))
	if err != nil {
		if errors.Is(err, ErrTampered) || errors.Is(err, ErrUnknownKEK) {
			return nil, fmt.Errorf("key %s of a subject of tenant %s: %w", id, rec.Tenant, err)
		}
		return nil, fmt.Errorf("%w: unwrapping key %s: %v", ErrKeys, id, err)
	}
	a, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.stats.Unwraps++
	k.mu.Unlock()
	// Forget may have removed the key while it was being unwrapped: cache only a key still live.
	if _, live := k.lookup(rec.Tenant, rec.Subject, id); live {
		k.cache.Add(ck, a)
	}
	return a, nil
}

// Forget erases (tenant, subject): it tombstones every key of the subject on the key topic (every
// Keys tailing it drops them), then writes an Erasure naming by. It returns the number of keys
// destroyed (0 when the subject had none: the erasure is recorded all the same).
func (k *Keys) Forget(ctx context.Context, tenant, subject, by string) (int, error) {
	if !validName(tenant) || !validName(subject) {
		return 0, fmt.Errorf("%w: tenant and subject must match %s", ErrNoSubject, SubjectGrammar)
	}
	if err := k.sync(ctx); err != nil {
		return 0, err
	}
	k.mu.Lock()
	var ids []keyRecord
	for _, rec := range k.live[liveKey(tenant, subject)] {
		ids = append(ids, rec)
	}
	k.mu.Unlock()
	for _, rec := range ids {
		if err := k.write(ctx, recordKey("k", tenant, subject, rec.KeyID), nil); err != nil {
			return 0, err
		}
	}
	k.mu.Lock()
	for ref := range k.live[liveKey(tenant, subject)] {
		k.remove(liveRef{liveKey(tenant, subject), ref})
	}
	k.stats.Erasures++
	k.mu.Unlock()
	at := k.cfg.now().UTC()
	e := Erasure{Kind: "erasure", Tenant: tenant, Subject: subject, By: by, At: at, Keys: len(ids)}
	if err := k.write(ctx, recordKey("e", tenant, subject, at.Format(time.RFC3339Nano)), e); err != nil {
		return len(ids), fmt.Errorf("keys destroyed, but the erasure record was not written: %w", err)
	}
	return len(ids), nil
}

// KeyInfo describes one live data key without its material.
type KeyInfo struct {
	KeyID     string    `json:"keyId"`
	KEK       string    `json:"kek"`
	CreatedAt time.Time `json:"createdAt"`
}

// SubjectStatus is what the key topic says about one subject.
type SubjectStatus struct {
	Tenant   string    `json:"tenantId"`
	Subject  string    `json:"subject"`
	Keys     []KeyInfo `json:"keys"`
	Erasures []Erasure `json:"erasures"`
}

// Status catches up with the key topic and returns the live keys and erasures of (tenant, subject).
func (k *Keys) Status(ctx context.Context, tenant, subject string) (SubjectStatus, error) {
	if err := k.sync(ctx); err != nil {
		return SubjectStatus{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ts := liveKey(tenant, subject)
	st := SubjectStatus{Tenant: tenant, Subject: subject, Keys: []KeyInfo{}, Erasures: slices.Clone(k.erasures[ts])}
	for _, rec := range k.live[ts] {
		st.Keys = append(st.Keys, KeyInfo{KeyID: rec.KeyID, KEK: rec.KEK, CreatedAt: rec.CreatedAt})
	}
	slices.SortFunc(st.Keys, func(a, b KeyInfo) int { return a.CreatedAt.Compare(b.CreatedAt) })
	if st.Erasures == nil {
		st.Erasures = []Erasure{}
	}
	return st, nil
}

// Rewrap catches up with the key topic and re-wraps every live data key not wrapped by the KMS's
// current KEK under it (a KEK rotation); events are not touched. It returns how many it re-wrapped.
func (k *Keys) Rewrap(ctx context.Context) (int, error) {
	if err := k.sync(ctx); err != nil {
		return 0, err
	}
	cur := k.kms.CurrentKEK()
	k.mu.Lock()
	var old []keyRecord
	for _, ids := range k.live {
		for _, rec := range ids {
			if rec.KEK != cur {
				old = append(old, rec)
			}
		}
	}
	k.mu.Unlock()
	n := 0
	for _, rec := range old {
		key := recordKey("k", rec.Tenant, rec.Subject, rec.KeyID)
		raw, err := k.kms.Unwrap(ctx, rec.KEK, rec.Wrapped, key)
		if err != nil {
			return n, fmt.Errorf("re-wrapping key %s: %w", rec.KeyID, err)
		}
		next := rec
		if next.KEK, next.Wrapped, err = k.kms.Wrap(ctx, raw, key); err != nil {
			return n, fmt.Errorf("%w: re-wrapping key %s: %v", ErrKeys, rec.KeyID, err)
		}
		if err := k.write(ctx, key, next); err != nil {
			return n, err
		}
		n++
	}
	k.mu.Lock()
	k.stats.Rewrapped += int64(n)
	k.mu.Unlock()
	return n, nil
}

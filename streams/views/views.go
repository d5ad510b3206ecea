package views

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// Changelog record headers: where in the source topic the state change was made.
const (
	HeaderSourceTopic     = "hotelbus-source-topic"
	HeaderSourcePartition = "hotelbus-source-partition"
	// HeaderSourceOffset is the source partition's offset where the batch that made the change
	// began. A restore resumes there and applies that batch again (harmless: see the package
	// documentation), since it may have read only part of the batch's changelog records.
	HeaderSourceOffset = "hotelbus-source-offset"
)

// idRe is the grammar of the tenantIds and keys a view stores: the SDK's tenantId grammar (see
// streams/identifiers.go, which keeps it unexported). They become bbolt keys, changelog keys and
// URL path segments. Written here as a regexp because a view checks it once per applied event.
var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// Local is one system's views: the store, the readers of the source topics, the changelog writer.
// It is safe for concurrent use.
type Local struct {
	cfg     Config
	st      *store
	serde   *streams.Serde
	writer  *streams.Writer // changelog records
	admin   *kgo.Client     // metadata, topic creation, offsets: no records
	adm     *kadm.Client
	views   map[string]*View
	names   []string
	started time.Time
	m       *metrics

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// View is one view of a Local.
type View struct {
	l         *Local
	def       topics.View
	changelog string

	mu          sync.Mutex
	pos         map[int32]int64 // committed next offsets
	count       int64
	ends        map[int32]int64 // end offsets last listed
	startEnds   map[int32]int64 // end offsets first listed after start: readiness
	hadDisk     bool            // the store held positions when it opened
	restored    bool
	ready       bool
	caughtUpAt  time.Time // last time the positions were at the end offsets (persisted)
	savedFresh  time.Time // caughtUpAt as last written to the store
	contactedAt time.Time // last successful end-offset listing
	changed     chan struct{}
	seen        recentIDs
	lastErr     string
}

// Open opens (or creates) the store in cfg.Dir and starts keeping every view of cfg.Views up to
// date in the background: restore from the changelog when a view's store is empty, then read the
// source partitions from the stored positions. It returns without waiting for Kafka or the
// registry: Get and Scan answer from disk at once. Close stops it.
func Open(cfg Config) (*Local, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := CheckSchemas(cfg.Views, cfg.Schemas); err != nil {
		return nil, err
	}
	st, err := openStore(cfg.Dir)
	if err != nil {
		return nil, err
	}
	l := &Local{cfg: cfg, st: st, views: map[string]*View{}, started: time.Now()}
	fail := func(err error) (*Local, error) { l.closeClients(); return nil, err }
	rc, err := sr.NewClient(append([]sr.ClientOpt{sr.URLs(cfg.RegistryURLs...),
		sr.HTTPClient(&http.Client{Transport: schemaCache{st: st, next: http.DefaultTransport}, Timeout: cfg.RequestTimeout})}, cfg.RegistryOptions...)...)
	if err != nil {
		return fail(fmt.Errorf("%w: RegistryURLs: %v", ErrConfig, err))
	}
	if l.serde, err = streams.NewSerde(rc, cfg.Schemas, cfg.Catalog); err != nil {
		return fail(err)
	}
	// The changelog is written by the SDK's writer of state records (the producer's settings,
	// partitioned by hand: a change goes to the partition of its source record).
	l.writer, err = streams.NewStateWriter(cfg.System, cfg.Catalog, streams.Brokers(cfg.Brokers...),
		streams.RequestTimeout(cfg.RequestTimeout), streams.DeliveryTimeout(cfg.RequestTimeout), streams.KafkaOptions(cfg.KafkaOptions...))
	if err != nil {
		return fail(fmt.Errorf("%w: changelog writer: %v", ErrConfig, err))
	}
	l.admin, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.KafkaOptions...)...)
	if err != nil {
		return fail(fmt.Errorf("%w: Kafka client: %v", ErrConfig, err))
	}
	l.adm = kadm.NewClient(l.admin)
	for _, def := range cfg.Views {
		v, err := l.openView(def)
		if err != nil {
			return fail(err)
		}
		l.views[def.Name] = v
		l.names = append(l.names, def.Name)
	}
	slices.Sort(l.names)
	if cfg.Metrics != nil {
		if l.m, err = newMetrics(l, cfg.Metrics); err != nil {
			return fail(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for _, name := range l.names {
		v := l.views[name]
		l.wg.Add(2)
		go func() { defer l.wg.Done(); v.run(ctx) }()
		go func() { defer l.wg.Done(); v.check(ctx) }()
	}
	return l, nil
}

func (l *Local) openView(def topics.View) (*View, error) {
	st, err := l.st.state(def.Name)
	if err != nil {
		return nil, fmt.Errorf("views: reading the store of %s: %w", def, err)
	}
	v := &View{l: l, def: def, changelog: l.cfg.Prefix + def.Changelog, pos: map[int32]int64{}, changed: make(chan struct{})}
	if st.restored && st.topic == def.Topic {
		v.restored, v.hadDisk, v.pos, v.count = true, true, st.pos, st.count
		v.caughtUpAt = l.st.fresh(def.Name)
		v.savedFresh = v.caughtUpAt
	} else if st.topic != "" && st.topic != def.Topic {
		l.cfg.Logger.Warn("views: the view's source topic changed; its store is rebuilt", "view", def.String(), "was", st.topic, "now", def.Topic)
	}
	return v, nil
}

// View returns the view called name.
func (l *Local) View(name string) (*View, error) {
	v, ok := l.views[name]
	if !ok {
		return nil, fmt.Errorf("%w %q of %s (views: %s)", ErrUnknownView, name, l.cfg.System, strings.Join(l.names, ", "))
	}
	return v, nil
}

// Names returns the views' names, sorted.
func (l *Local) Names() []string { return slices.Clone(l.names) }

// System returns the system the views belong to.
func (l *Local) System() string { return l.cfg.System }

// Ready returns nil when every view is ready (see the package documentation), or an error naming
// the first that is not.
func (l *Local) Ready() error {
	for _, n := range l.names {
		if !l.views[n].Ready() {
			return fmt.Errorf("view %s is catching up (lag %d)", n, l.views[n].Lag())
		}
	}
	return nil
}

// Close stops reading, waits for the batch being applied, and closes the store.
func (l *Local) Close() error {
	var err error
	l.once.Do(func() {
		if l.cancel != nil {
			l.cancel()
		}
		l.wg.Wait()
		for _, v := range l.views {
			if v.caughtUpAt.After(v.savedFresh) {
				_ = l.st.putFresh(v.def.Name, v.caughtUpAt) // staleness carries over the restart
			}
		}
		err = l.closeClients()
	})
	return err
}

func (l *Local) closeClients() error {
	if l.writer != nil {
		// Each batch waited for its records; one still in flight past its timeout is abandoned
		// (its batch was not committed and is applied again), so there is nothing to flush.
		done, cancel := context.WithCancel(context.Background())
		cancel()
		_ = l.writer.Close(done)
	}
	if l.admin != nil {
		l.admin.Close()
	}
	return l.st.close()
}

// Name returns the view's name.
func (v *View) Name() string { return v.def.Name }

// Definition returns the view's declaration.
func (v *View) Definition() topics.View { return v.def }

// Get returns the item of key in tenant, or an error wrapping ErrNotFound. With
// Config.Protector, its personal-data values are opened (a miss on the key topic waits at most the
// keys' sync timeout, privacy.KeySyncTimeout).
func (v *View) Get(tenant, key string) (Item, error) { return v.get(context.Background(), tenant, key) }

func (v *View) get(ctx context.Context, tenant, key string) (Item, error) {
	if !idRe.MatchString(tenant) || !idRe.MatchString(key) {
		return Item{}, fmt.Errorf("%w: tenantId and key must match %s", ErrInvalid, idRe)
	}
	b, err := v.l.st.get(v.def.Name, itemKey(tenant, key))
	if err != nil {
		return Item{}, fmt.Errorf("views: %s: %w", v.def, err)
	}
	if b == nil {
		return Item{}, fmt.Errorf("%w: %s has no %q in tenant %s", ErrNotFound, v.def, key, tenant)
	}
	var it Item
	if err := json.Unmarshal(b, &it); err != nil {
		return Item{}, fmt.Errorf("views: %s: stored item: %w", v.def, err)
	}
	v.open(ctx, tenant, &it)
	return it, nil
}

// Scan returns up to limit (1 to 1000) items of tenant whose key starts with prefix, in key order,
// starting after the key after ("" = from the first), and the key to pass as after for the next
// page ("" when there is none). With Config.Protector, the items' personal-data values are opened
// (as Get).
func (v *View) Scan(tenant, prefix, after string, limit int) (items []Item, next string, err error) {
	return v.scan(context.Background(), tenant, prefix, after, limit)
}

func (v *View) scan(ctx context.Context, tenant, prefix, after string, limit int) (items []Item, next string, err error) {
	switch {
	case !idRe.MatchString(tenant):
		return nil, "", fmt.Errorf("%w: tenantId must match %s", ErrInvalid, idRe)
	case prefix != "" && !idRe.MatchString(prefix):
		return nil, "", fmt.Errorf("%w: prefix must match %s", ErrInvalid, idRe)
	case after != "" && (!idRe.MatchString(after) || !strings.HasPrefix(after, prefix)):
		return nil, "", fmt.Errorf("%w: cursor must be a key that starts with the prefix", ErrInvalid)
	case limit < 1 || limit > 1000:
		return nil, "", fmt.Errorf("%w: limit must be 1 to 1000", ErrInvalid)
	}
	var from []byte
	if after != "" {
		from = itemKey(tenant, after)
	}
	items, more, err := v.l.st.scan(v.def.Name, itemKey(tenant, prefix), from, limit)
	if err != nil {
		return nil, "", fmt.Errorf("views: %s: %w", v.def, err)
	}
	if more {
		next = items[len(items)-1].Key
	}
	for i := range items {
		v.open(ctx, tenant, &items[i])
	}
	return items, next, nil
}

// WaitFor waits until the view has applied the source partition's record at offset (the
// Partition and Offset a Producer's Result gives): read-your-writes. It returns ctx's error when
// ctx ends first.
func (v *View) WaitFor(ctx context.Context, partition int32, offset int64) error {
	return v.wait(ctx, func() bool { return v.pos[partition] > offset })
}

// WaitForEvent waits until the view has read the event with eventID (applied or skipped as not
// feeding it). It knows the last 65,536 events read since Open; for an older event use WaitFor.
func (v *View) WaitForEvent(ctx context.Context, eventID string) error {
	return v.wait(ctx, func() bool { return v.seen.has(eventID) })
}

func (v *View) wait(ctx context.Context, done func() bool) error {
	for {
		v.mu.Lock()
		ok, ch := done(), v.changed
		v.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("views: %s: waiting: %w", v.def, ctx.Err())
		}
	}
}

// Positions returns the next offset of every source partition the view has applied.
func (v *View) Positions() map[int32]int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[int32]int64, len(v.pos))
	for p, o := range v.pos {
		out[p] = o
	}
	return out
}

// Size returns the number of items.
func (v *View) Size() int64 { v.mu.Lock(); defer v.mu.Unlock(); return v.count }

// Lag returns the records between the view's positions and the source partitions' end offsets
// last listed (-1 before the first listing).
func (v *View) Lag() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lagLocked()
}

func (v *View) lagLocked() int64 {
	if v.ends == nil {
		return -1
	}
	var lag int64
	for p, end := range v.ends {
		lag += max(0, end-v.pos[p])
	}
	return lag
}

// Staleness returns the time since the view was last confirmed caught up with its source
// partitions (since Open when never).
func (v *View) Staleness() time.Duration {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.caughtUpAt.IsZero() {
		return time.Since(v.l.started)
	}
	return time.Since(v.caughtUpAt)
}

// Ready reports whether the view caught up with the end offsets listed after Open, or, opened on
// a store that held positions, Kafka stayed unreachable for OfflineGrace.
func (v *View) Ready() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.ready && v.hadDisk && v.startEnds == nil && time.Since(v.l.started) >= v.l.cfg.OfflineGrace {
		v.ready = true
		v.l.cfg.Logger.Warn("views: Kafka unreachable; serving the view from disk", "view", v.def.String(), "staleness", time.Since(v.caughtUpAt).Round(time.Second))
	}
	return v.ready
}

// recentIDs is a bounded set of the eventIds read last.
type recentIDs struct {
	ring []string
	next int
	set  map[string]struct{}
}

const recentCap = 1 << 16

func (r *recentIDs) add(id string) {
	if r.set == nil {
		r.set, r.ring = map[string]struct{}{}, make([]string, recentCap)
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.set, old)
	}
	r.ring[r.next] = id
	r.next = (r.next + 1) % recentCap
	r.set[id] = struct{}{}
}

func (r *recentIDs) has(id string) bool { _, ok := r.set[id]; return ok }

// sleep waits d or until ctx ends, reporting whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// logOnce logs err at warn unless it is the error logged last for the view.
func (v *View) logOnce(msg string, err error) {
	v.mu.Lock()
	same := v.lastErr == err.Error()
	v.lastErr = err.Error()
	v.mu.Unlock()
	if !same && !errors.Is(err, context.Canceled) {
		v.l.cfg.Logger.Warn(msg, "view", v.def.String(), "err", err)
	}
}

func partitionHeader(p int32) []byte { return []byte(strconv.Itoa(int(p))) }

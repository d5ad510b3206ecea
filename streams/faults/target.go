package faults

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams/simulate"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// Target modes: how the dispatcher's target answers.
const (
	// Healthy runs the side effect and answers 204.
	Healthy int32 = iota
	// Failing answers 503 without a side effect.
	Failing
	// Hanging answers nothing until the dispatcher gives up (or a minute passes), without a side
	// effect.
	Hanging
)

// Delivery is one side effect the target ran.
type Delivery struct {
	// Replica names the dispatcher that delivered: the last element of the target URL's path it
	// was given.
	Replica string
	At      time.Time
}

// Target is the dispatchers' HTTP endpoint. Every request it answers 2xx is one side effect,
// recorded in the checker under the event's position (decoded from ce-id by the generator) and in
// its own log of deliveries per eventId. It deduplicates nothing: a repeated ce-id is a second
// side effect, for the checker to count.
type Target struct {
	// URL is the server's base URL; each dispatcher replica gets URL + "/" + its name.
	URL string

	gen  *simulate.Generator
	chk  *streamstest.Checker
	mode atomic.Int32

	refused, hung, foreign atomic.Int64
	owner                  func(topic string) string // see CheckSource

	collisions []string // see Collisions

	mu         sync.Mutex
	deliveries map[string][]Delivery
	effects    int64
	byReplica  map[string]int64
}

// NewTarget serves a target that records into chk the events gen generated; it is closed when
// the test ends.
func NewTarget(t testing.TB, gen *simulate.Generator, chk *streamstest.Checker) *Target {
	t.Helper()
	tg := &Target{gen: gen, chk: chk, deliveries: map[string][]Delivery{}, byReplica: map[string]int64{}}
	srv := httptest.NewServer(tg)
	t.Cleanup(srv.Close)
	tg.URL = srv.URL
	return tg
}

// CheckSource makes the target tell a delivery of another system's event that reuses a
// generated eventId (a colliding client eventId) from the generated event: a request whose
// ce-source is not "/hotelbus/" + owner(the generated event's topic) is answered 204 and recorded
// as a collision, not as a side effect of the generated event.
func (tg *Target) CheckSource(owner func(topic string) string) { tg.owner = owner }

// Collisions returns the ce-ids delivered by another system than the generated event's owner.
func (tg *Target) Collisions() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return slices.Clone(tg.collisions)
}

// SetMode switches how the target answers from now on.
func (tg *Target) SetMode(m int32) { tg.mode.Store(m) }

// ServeHTTP implements http.Handler.
func (tg *Target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	switch tg.mode.Load() {
	case Failing:
		tg.refused.Add(1)
		http.Error(w, "burst of failures", http.StatusServiceUnavailable)
		return
	case Hanging:
		tg.hung.Add(1)
		ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
		defer cancel()
		<-ctx.Done()
		http.Error(w, "too late", http.StatusServiceUnavailable)
		return
	}
	id := r.Header.Get("ce-id")
	pos, ok := tg.gen.Seq(id)
	if !ok {
		tg.foreign.Add(1)
		http.Error(w, "unknown ce-id", http.StatusBadRequest)
		return
	}
	replica := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	tg.mu.Lock()
	if tg.owner != nil && r.Header.Get("ce-source") != "/hotelbus/"+tg.owner(pos.Topic) {
		tg.collisions = append(tg.collisions, id)
		tg.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	tg.chk.Handled(pos.Key, id, int(pos.Seq))
	tg.deliveries[id] = append(tg.deliveries[id], Delivery{Replica: replica, At: time.Now()})
	tg.effects++
	tg.byReplica[replica]++
	tg.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Missing returns the eventIds of ids that have had no side effect yet, reusing ids' storage.
func (tg *Target) Missing(ids []string) []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return slices.DeleteFunc(ids, func(id string) bool { return len(tg.deliveries[id]) > 0 })
}

// Effects counts side effects, repeats included.
func (tg *Target) Effects() int64 {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.effects
}

// EffectsBy counts the side effects delivered by one replica.
func (tg *Target) EffectsBy(replica string) int64 {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.byReplica[replica]
}

// Deliveries returns the side effects of one event, in order.
func (tg *Target) Deliveries(id string) []Delivery {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]Delivery(nil), tg.deliveries[id]...)
}

// Refused counts requests answered 503 while Failing.
func (tg *Target) Refused() int64 { return tg.refused.Load() }

// Hung counts requests held without an answer while Hanging.
func (tg *Target) Hung() int64 { return tg.hung.Load() }

// Foreign counts requests whose ce-id the generator did not produce (answered 400).
func (tg *Target) Foreign() int64 { return tg.foreign.Load() }

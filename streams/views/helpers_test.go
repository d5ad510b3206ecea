package views_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/simulate"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/streams/views"
	"github.com/hotelbus/hotelbus/topics"
)

// rig is one test's platform: a broker, the registry, a prefixed catalog with its topics, and the
// shipped views.
// raceEnabled is set under -race (race_test.go).
var raceEnabled bool

// scaled is n, the size, on a real broker (the rig under make test) and on kfake in a plain
// run; a fifth on kfake under -race or -short, where the detector multiplies the cost of every
// event and the package must finish in well under 3 minutes.
func scaled(b streamstest.Backend, n int) int {
	if b.Real || !(raceEnabled || testing.Short()) {
		return n
	}
	return n / 5
}

type rig struct {
	b      streamstest.Backend
	cat    *topics.Catalog
	prefix string
	set    *schemas.Set
	regURL string
	serde  *streams.Serde
	all    *topics.Views
}

func newRig(t *testing.T, b streamstest.Backend) *rig {
	t.Helper()
	rc, url := streamstest.Registry(t)
	return newRigWith(t, b, rc, url)
}

// newRigWith is newRig on a given registry.
func newRigWith(t *testing.T, b streamstest.Backend, rc *sr.Client, url string) *rig {
	t.Helper()
	prefix := streamstest.Name(t, "t") + "."
	cat := streamstest.PrefixedCatalog(t, b, prefix)
	set := streamstest.RegisterSchemas(t, rc, cat)
	serde, err := streams.NewSerde(rc, set, cat)
	if err != nil {
		t.Fatal(err)
	}
	all, err := topics.LoadViews(topics.Embedded(), cat)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{b: b, cat: cat, prefix: prefix, set: set, regURL: url, serde: serde, all: all}
}

// feeding returns the generated events, in generation order, until n of them feed a shipped view
// (with every event of other types generated in between on the views' topics, so that skipping
// by type is exercised too).
func (r *rig) events(t *testing.T, n, tenants int, seed int64) []*simulate.Event {
	t.Helper()
	g, err := simulate.New(r.cat, r.set, simulate.Options{Seed: seed, Tenants: tenants})
	if err != nil {
		t.Fatal(err)
	}
	feeds, onTopic := map[string]bool{}, map[string]bool{}
	for _, v := range r.all.Views {
		onTopic[v.Topic] = true
		for _, et := range v.EventTypes {
			feeds[et] = true
		}
	}
	var out []*simulate.Event
	for k := 0; k < n; {
		ev := g.Next()
		if feeds[ev.Envelope.EventType] {
			k++
			out = append(out, ev)
		} else if onTopic[ev.Topic] && len(out)%4 == 0 {
			out = append(out, ev)
		}
	}
	return out
}

// publish sends events through the SDK producers, in order, and waits for every acknowledgement.
func (r *rig) publish(t *testing.T, evs []*simulate.Event) {
	t.Helper()
	g, _ := simulate.New(r.cat, r.set, simulate.Options{Seed: 1})
	p, err := simulate.NewSDKPublisher(g, r.serde, streams.Brokers(r.b.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, ev := range evs {
		wg.Add(1)
		p.Publish(ctx, ev, func(err error) {
			defer wg.Done()
			mu.Lock()
			if err != nil && first == nil {
				first = err
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := p.Close(ctx); err != nil || first != nil {
		t.Fatalf("publishing: %v %v", err, first)
	}
}

// modelItem is what a view should hold for one key: computed here from the events, independently
// of the package's apply code.
type modelItem struct {
	data    map[string]any
	eventID string
}

// model applies evs to every view of system, in generation order (the order of each tenant's
// events on its partition).
func (r *rig) model(t *testing.T, system string, evs []*simulate.Event) map[string]map[string]*modelItem {
	t.Helper()
	out := map[string]map[string]*modelItem{}
	for _, v := range r.all.ForSystem(system) {
		m := map[string]*modelItem{}
		for _, ev := range evs {
			a, ok := v.Apply[ev.Envelope.EventType]
			if !ok {
				continue
			}
			data := r.dataJSON(t, ev.Envelope)
			k := ev.Envelope.Metadata.TenantID + "/" + data[v.Key].(string)
			switch a {
			case topics.Upsert:
				m[k] = &modelItem{data: data, eventID: ev.Envelope.EventID}
			case topics.Merge:
				cur := m[k]
				if cur == nil {
					cur = &modelItem{data: map[string]any{}}
					m[k] = cur
				}
				for f, val := range data {
					if val != nil {
						cur.data[f] = val
					}
				}
				cur.eventID = ev.Envelope.EventID
			case topics.Delete:
				delete(m, k)
			}
		}
		out[v.Name] = m
	}
	return out
}

// dataJSON returns the event's data in its JSON form, decoded into generic values.
func (r *rig) dataJSON(t *testing.T, env *streams.Envelope) map[string]any {
	t.Helper()
	b, err := r.serde.JSON(env)
	if err != nil {
		t.Fatal(err)
	}
	var whole struct{ Data map[string]any }
	if err := json.Unmarshal(b, &whole); err != nil {
		t.Fatal(err)
	}
	return whole.Data
}

func (r *rig) config(system, dir string) views.Config {
	return views.Config{System: system, Dir: dir, Catalog: r.cat, Views: r.all.ForSystem(system), Schemas: r.set, Prefix: r.prefix,
		Brokers: r.b.Brokers, RegistryURLs: []string{r.regURL}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		CheckEvery: 100 * time.Millisecond}
}

func (r *rig) open(t *testing.T, system, dir string) *views.Local {
	t.Helper()
	l, err := views.Open(r.config(system, dir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// ends returns the end offsets of a topic.
func (r *rig) ends(t *testing.T, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(r.b.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	l.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// caughtUp waits until every view of l has applied its source topic up to its current end.
func (r *rig) caughtUp(t *testing.T, l *views.Local, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, name := range l.Names() {
		v, _ := l.View(name)
		for p, end := range r.ends(t, v.Definition().Topic) {
			if end == 0 {
				continue
			}
			if err := v.WaitFor(ctx, p, end-1); err != nil {
				t.Fatalf("view %s: partition %d never reached %d (at %v): %v", name, p, end, v.Positions(), err)
			}
		}
	}
}

// diff compares every view of l with the model, key by key, both ways, and returns the number of
// differences (logging the first few).
func diff(t *testing.T, l *views.Local, model map[string]map[string]*modelItem, tenants []string) int {
	t.Helper()
	n := 0
	report := func(format string, a ...any) {
		n++
		if n <= 5 {
			t.Logf("difference: "+format, a...)
		}
	}
	for _, name := range l.Names() {
		v, _ := l.View(name)
		m := model[name]
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			want := m[k]
			tenant, key := splitKey(k)
			it, err := v.Get(tenant, key)
			if err != nil {
				report("%s %s: %v", name, k, err)
				continue
			}
			var got map[string]any
			_ = json.Unmarshal(it.Data, &got)
			if !reflect.DeepEqual(got, normalize(want.data)) || it.EventID != want.eventID || it.Key != key {
				report("%s %s: got %s (event %s), want %v (event %s)", name, k, it.Data, it.EventID, want.data, want.eventID)
			}
		}
		held := 0
		for _, tenant := range tenants {
			cursor := ""
			for {
				items, next, err := v.Scan(tenant, "", cursor, 1000)
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range items {
					held++
					if m[tenant+"/"+it.Key] == nil {
						report("%s %s/%s: held, not in the model", name, tenant, it.Key)
					}
				}
				if next == "" {
					break
				}
				cursor = next
			}
		}
		if held != len(m) || v.Size() != int64(len(m)) {
			report("%s: holds %d items (size %d), the model %d", name, held, v.Size(), len(m))
		}
	}
	return n
}

func splitKey(k string) (string, string) {
	for i := range k {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}

// normalize round-trips v through JSON, as the view's stored data is.
func normalize(v map[string]any) map[string]any {
	b, _ := json.Marshal(v)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

func tenantsOf(evs []*simulate.Event) []string {
	seen := map[string]bool{}
	var out []string
	for _, ev := range evs {
		if id := ev.Envelope.Metadata.TenantID; !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func modelSize(m map[string]map[string]*modelItem) string {
	s := ""
	for name, items := range m {
		s += fmt.Sprintf(" %s=%d", name, len(items))
	}
	return s
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

package monitor_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/monitor"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// rig is the catalog's topics, unique to the test, on one backend.
type rig struct {
	b   streamstest.Backend
	cat *topics.Catalog
	cl  *kgo.Client // produces to the partition a record names
	adm *kadm.Client
}

func newRig(t *testing.T, b streamstest.Backend) *rig {
	t.Helper()
	r := &rig{b: b, cat: streamstest.Catalog(t, b)}
	r.cl = b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	r.adm = kadm.NewClient(r.cl)
	return r
}

func (r *rig) system(t *testing.T, name string) topics.System {
	t.Helper()
	s, ok := r.cat.System(name)
	if !ok {
		t.Fatalf("no system %s", name)
	}
	return s
}

func (r *rig) topicOf(t *testing.T, eventType string) string {
	t.Helper()
	tp, ok := r.cat.TopicFor(eventType)
	if !ok {
		t.Fatalf("no topic for %s", eventType)
	}
	return tp.Name
}

// event is a record of eventType as its owner publishes it (the hotelbus headers; the value is
// not read by the monitor), on the given partition, timestamped ts.
func (r *rig) event(t *testing.T, eventType, tenant, correlationID string, partition int32, ts time.Time) *kgo.Record {
	t.Helper()
	owner, _ := r.cat.Owner(eventType)
	env := &streams.Envelope{EventID: fmt.Sprintf("ev-%s-%d", eventType, ts.UnixNano()), EventType: eventType, Version: "1.0", Timestamp: ts,
		Metadata: streams.Metadata{TenantID: tenant, Source: owner, CorrelationID: correlationID, TraceID: strings.Repeat("ab", 16)}}
	return &kgo.Record{Topic: r.topicOf(t, eventType), Partition: partition, Key: []byte(tenant), Value: []byte("{}"), Timestamp: ts,
		Headers: streams.Headers(env)}
}

// deadLetter is a record on system's dead-letter topic with the given error class.
func (r *rig) deadLetter(t *testing.T, system, class string) *kgo.Record {
	t.Helper()
	return &kgo.Record{Topic: r.system(t, system).DeadLetterTopic, Key: []byte("hotel-kyoto"), Value: []byte("x"),
		Headers: []kgo.RecordHeader{{Key: streams.HeaderDLQErrorClass, Value: []byte(class)}, {Key: streams.HeaderDLQGroup, Value: []byte(r.system(t, system).Group)}}}
}

// auditRecord is a ready-to-produce audit record.
func (r *rig) auditRecord(t *testing.T, a streams.AuditRecord) *kgo.Record {
	t.Helper()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: r.cat.AuditTopic, Key: []byte(a.CorrelationID), Value: b, Timestamp: a.At}
}

func (r *rig) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	if err := r.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

func (r *rig) commit(t *testing.T, group, topic string, offsets map[int32]int64) {
	t.Helper()
	var os kadm.Offsets
	for p, at := range offsets {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1})
	}
	resp, err := r.adm.CommitOffsets(context.Background(), group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("committing for %s: %v", group, err)
	}
}

// start runs a monitor over the rig until the test ends and serves its handler.
func (r *rig) start(t *testing.T, cfg monitor.Config) (*monitor.Monitor, *httptest.Server) {
	t.Helper()
	cfg.Catalog, cfg.Client = r.cat, r.b.Client(t)
	m, err := monitor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("monitor.Run: %v", err)
		}
	})
	return m, srv
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func snapshot(t *testing.T, base, query string) monitor.Snapshot {
	t.Helper()
	code, b := get(t, base+"/api/snapshot?"+query)
	var s monitor.Snapshot
	if code != http.StatusOK {
		t.Fatalf("snapshot: %d %s", code, b)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// metrics scrapes /metrics into series ("name{label=\"v\",...}", labels sorted) -> value.
func metrics(t *testing.T, base string) map[string]string {
	t.Helper()
	code, b := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	out := map[string]string{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		out[line[:i]] = line[i+1:]
	}
	return out
}

// events reads the server-sent snapshots of url into a channel until the test ends.
func events(t *testing.T, url string) <-chan monitor.Snapshot {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("/events: %d %s", resp.StatusCode, ct)
	}
	ch := make(chan monitor.Snapshot, 1024)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); resp.Body.Close(); wg.Wait() })
	wg.Go(func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 16<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "snapshot":
				var s monitor.Snapshot
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &s); err != nil {
					if ctx.Err() == nil { // not a line cut short by the end of the test
						t.Errorf("undecodable snapshot event: %v", err)
					}
					return
				}
				ch <- s
			}
		}
	})
	return ch
}

// next receives snapshots until cond holds, failing after timeout.
func next(t *testing.T, ch <-chan monitor.Snapshot, timeout time.Duration, what string, cond func(monitor.Snapshot) bool) monitor.Snapshot {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case s, ok := <-ch:
			if !ok {
				t.Fatalf("event stream ended while waiting for %s", what)
			}
			if cond(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

func systemView(s monitor.Snapshot, name string) monitor.SystemView {
	for _, v := range s.Systems {
		if v.Name == name {
			return v
		}
	}
	return monitor.SystemView{}
}

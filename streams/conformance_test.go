package streams_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// TestConformance runs the platform's promises once per backend: the in-process kfake broker
// always, and Apache Kafka under `make test`. A promise that holds on one and not the other fails
// here, so the fake cannot drift from the real broker.
func TestConformance(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			t.Run("EnsureTopics", func(t *testing.T) { conformEnsureTopics(t, b) })
			t.Run("WireRoundTrip", func(t *testing.T) { conformWireRoundTrip(t, b) })
			t.Run("PerKeyOrderNoLoss", func(t *testing.T) { conformPerKeyOrder(t, b) })
		})
	}
}

// testCatalog returns the test-environment catalog with topics unique to this test.
func testCatalog(t *testing.T) *topics.Catalog {
	t.Helper()
	_, cat := loadAll(t)
	return cat.WithPrefix(streamstest.Name(t, "t") + ".")
}

func ensure(t *testing.T, b streamstest.Backend, cat *topics.Catalog) []string {
	t.Helper()
	return ensureB(t, b, cat)
}

// ensureB creates the catalog's topics on b and deletes them when the test or benchmark ends.
func ensureB(t testing.TB, b streamstest.Backend, cat *topics.Catalog) []string {
	t.Helper()
	return streamstest.CreateTopics(t, b, cat)
}

func conformEnsureTopics(t *testing.T, b streamstest.Backend) {
	cat := testCatalog(t)
	created := ensure(t, b, cat)
	if len(created) != len(cat.Topics) {
		t.Fatalf("created %d topics, the catalog has %d", len(created), len(cat.Topics))
	}
	adm := kadm.NewClient(b.Client(t))
	ctx := context.Background()
	again, err := topics.Ensure(ctx, adm, cat)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Ensure created %v, %v; want nothing", again, err)
	}
	details, err := adm.ListTopics(ctx, created...)
	if err != nil {
		t.Fatal(err)
	}
	configs, err := adm.DescribeTopicConfigs(ctx, created...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range cat.Topics {
		d, ok := details[tp.Name]
		if !ok || len(d.Partitions) != int(tp.Partitions) {
			t.Errorf("%s: %d partitions, want %d", tp.Name, len(d.Partitions), tp.Partitions)
		}
		rc, err := configs.On(tp.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, c := range rc.Configs {
			got[c.Key] = c.MaybeValue()
		}
		for k, want := range tp.Configs() {
			if got[k] != want {
				t.Errorf("%s: %s = %q, want %q", tp.Name, k, got[k], want)
			}
		}
	}
}

func conformWireRoundTrip(t *testing.T, b streamstest.Backend) {
	set, _ := loadAll(t)
	cat := testCatalog(t)
	ensure(t, b, cat)
	serde, _ := newSerde(t, set, cat)
	ctx := context.Background()
	want := map[string][]byte{}
	var topicNames []string
	for i, res := range produceGoldens(t, b, serde) {
		want[res.EventID] = set.Subjects[i].Latest().Example
		topicNames = append(topicNames, res.Topic)
	}
	recs := consume(t, b, len(want), topicNames...)
	for _, r := range recs {
		env, err := serde.Decode(ctx, r.Value)
		if err != nil {
			t.Fatalf("decode %s@%d: %v", r.Topic, r.Offset, err)
		}
		if string(r.Key) != env.Metadata.TenantID {
			t.Errorf("key %q, tenantId %q", r.Key, env.Metadata.TenantID)
		}
		for k, v := range map[string]string{streams.HeaderEventType: env.EventType, streams.HeaderEventID: env.EventID,
			streams.HeaderVersion: env.Version, streams.HeaderSource: env.Metadata.Source, streams.HeaderCorrelationID: env.Metadata.CorrelationID} {
			if got := streams.Header(r, k); got != v {
				t.Errorf("%s header %s = %q, want %q", env.EventType, k, got, v)
			}
		}
		out, err := serde.JSON(env)
		if err != nil {
			t.Fatal(err)
		}
		var ind bytes.Buffer
		_ = json.Indent(&ind, out, "", "  ")
		ind.WriteByte('\n')
		if !bytes.Equal(ind.Bytes(), want[env.EventID]) {
			t.Errorf("%s changed on its way through %s:\n%s", env.EventType, b.Name, ind.Bytes())
		}
		delete(want, env.EventID)
	}
	if len(want) != 0 {
		t.Errorf("%d events never came back", len(want))
	}
}

// conformPerKeyOrder: events of one tenant come back in the order they were published, none lost
// and none twice, while 16 tenants share the topic's partitions.
func conformPerKeyOrder(t *testing.T, b streamstest.Backend) {
	set, _ := loadAll(t)
	cat := testCatalog(t)
	ensure(t, b, cat)
	serde, _ := newSerde(t, set, cat)
	cl := b.Client(t, kgo.ProducerLinger(5*time.Millisecond))
	ctx := context.Background()
	base, err := serde.ParseJSON(latest(t, set, "points.added").Example)
	if err != nil {
		t.Fatal(err)
	}
	const tenants, perTenant = 16, 150
	var topic string
	done := make(chan error, tenants*perTenant)
	for i := range perTenant {
		for tn := range tenants {
			env := *base
			env.EventID = fmt.Sprintf("%s%04x%04x", base.EventID[:28], tn, i) // a UUID per event
			env.Metadata.TenantID = fmt.Sprintf("tenant-%02d", tn)
			env.Metadata.CorrelationID = strconv.Itoa(i)
			rec, err := serde.Record(ctx, &env)
			if err != nil {
				t.Fatal(err)
			}
			topic = rec.Topic
			cl.Produce(ctx, rec, func(_ *kgo.Record, err error) { done <- err })
		}
	}
	for range tenants * perTenant {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	next := map[string]int{}
	partitionOf := map[string]int32{}
	for _, r := range consume(t, b, tenants*perTenant, topic) {
		k := string(r.Key)
		seq, _ := strconv.Atoi(streams.Header(r, streams.HeaderCorrelationID))
		if seq != next[k] {
			t.Fatalf("tenant %s: got sequence %d, want %d (lost, duplicated or reordered)", k, seq, next[k])
		}
		next[k]++
		if p, seen := partitionOf[k]; seen && p != r.Partition {
			t.Fatalf("tenant %s on partitions %d and %d", k, p, r.Partition)
		}
		partitionOf[k] = r.Partition
	}
	for tn := range tenants {
		if k := fmt.Sprintf("tenant-%02d", tn); next[k] != perTenant {
			t.Errorf("tenant %s: %d events, want %d", k, next[k], perTenant)
		}
	}
}

// consume reads exactly n records from the start of the topics, failing after a minute.
func consume(t *testing.T, b streamstest.Backend, n int, topicNames ...string) []*kgo.Record {
	t.Helper()
	cl := b.Client(t, kgo.ConsumeTopics(topicNames...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline", len(out), n)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("consumed %d records, want %d", len(out), n)
	}
	return out
}

// produceGoldens publishes the golden example of every subject, in set order, each through a
// Producer of its owning system, and returns the acknowledged results.
func produceGoldens(t *testing.T, b streamstest.Backend, serde *streams.Serde) []streams.Result {
	t.Helper()
	ctx := context.Background()
	producers := map[string]*streams.Producer{}
	var out []streams.Result
	for _, sub := range serde.Schemas().Subjects {
		env, err := serde.ParseJSON(sub.Latest().Example)
		if err != nil {
			t.Fatal(err)
		}
		p := producers[env.Metadata.Source]
		if p == nil {
			p = newProducer(t, env.Metadata.Source, b, serde)
			producers[env.Metadata.Source] = p
		}
		res, err := p.Publish(ctx, env)
		if err != nil {
			t.Fatalf("publish %s: %v", sub.EventType, err)
		}
		out = append(out, res)
	}
	return out
}

// isolated returns a Serde (auto-registering, on a fresh embedded registry) and the test
// environment's catalog with topics unique to this test, created on b.
func isolated(t *testing.T, b streamstest.Backend) (*streams.Serde, *topics.Catalog) {
	t.Helper()
	set, _ := loadAll(t)
	cat := testCatalog(t)
	ensure(t, b, cat)
	serde, _ := newSerde(t, set, cat)
	return serde, cat
}

package streams_test

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestStateWriterWritesState: a state record (a view's changelog) keeps its own key, which the
// tenantId grammar of an event's key would refuse, lands on the partition it names, may be a
// tombstone, and leaves no publish audit record; a catalog topic, an empty or oversized key are
// refused. The plain Writer refuses the same key.
func TestStateWriterWritesState(t *testing.T) {
	b := streamstest.Kfake(t)
	_, cat := isolated(t, b)
	ctx := context.Background()
	topic := streamstest.Name(t, "t") + ".changelog"
	adm := kadm.NewClient(b.Client(t))
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"cleanup.policy": new("compact")}, topic); err != nil {
		t.Fatal(err)
	}
	w, err := streams.NewStateWriter("hotel-saas", cat, streams.Brokers(b.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	recs := []*kgo.Record{
		{Topic: topic, Partition: 2, Key: []byte("sakura-hotels/cus_1"), Value: []byte(`{"key":"cus_1"}`)},
		{Topic: topic, Partition: 1, Key: []byte("sakura-hotels/cus_2")}, // a tombstone
	}
	if _, err := w.WriteSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	got := map[string]*kgo.Record{}
	for _, r := range consume(t, b, 2, topic) {
		got[string(r.Key)] = r
	}
	if r := got["sakura-hotels/cus_1"]; r == nil || r.Partition != 2 || string(r.Value) != `{"key":"cus_1"}` {
		t.Errorf("state record: %+v", r)
	}
	if r := got["sakura-hotels/cus_2"]; r == nil || r.Partition != 1 || r.Value != nil {
		t.Errorf("tombstone: %+v", r)
	}
	ends, err := adm.ListEndOffsets(ctx, cat.AuditTopic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 {
			t.Errorf("audit partition %d has %d records; state records are not publishes", o.Partition, o.Offset)
		}
	})

	events, _ := cat.System("hotel-saas")
	for name, c := range map[string]struct {
		rec  *kgo.Record
		want error
	}{
		"a catalog topic": {&kgo.Record{Topic: events.RedriveTopic, Key: []byte("sakura-hotels")}, streams.ErrNotOwner},
		"an empty key":    {&kgo.Record{Topic: topic}, streams.ErrInvalidIdentifier},
		"a key too long":  {&kgo.Record{Topic: topic, Key: make([]byte, streams.MaxStateKeyBytes+1)}, streams.ErrInvalidIdentifier},
	} {
		if _, err := w.WriteSync(ctx, c.rec); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	plain, err := streams.NewWriter("hotel-saas", cat, streams.Brokers(b.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close(ctx)
	if _, err := plain.WriteSync(ctx, &kgo.Record{Topic: topic, Key: []byte("sakura-hotels/cus_1")}); !errors.Is(err, streams.ErrInvalidIdentifier) {
		t.Errorf("the event Writer took a state key: %v", err)
	}
}

package views_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/streams/views"
)

// TestRestoreFromPartialBatch: a replica restoring while another is writing a batch to the
// changelog (or after a writer died with only part of a batch acknowledged) sees only the first
// records of that batch. It must still end equal to the model: it resumes the source where the
// batch began and applies the batch again, instead of after it (which would lose the changes of
// the records it did not see). The partial changelog is made by copying a view's changelog
// without the last record of one partition's last batch.
func TestRestoreFromPartialBatch(t *testing.T) {
	const system, view = "hotel-saas", "stays"
	r := newRig(t, streamstest.Kfake(t))
	evs := r.events(t, scaled(r.b, 4000), 40, 61)
	tenants := tenantsOf(evs)
	half := len(evs) / 2
	r.publish(t, evs[:half])
	dir := t.TempDir()
	a := r.open(t, system, dir)
	r.caughtUp(t, a, time.Minute)
	_ = a.Close()
	r.publish(t, evs[half:]) // read by the next Open in few, large batches
	a = r.open(t, system, dir)
	r.caughtUp(t, a, time.Minute)
	_ = a.Close()

	full := r.prefix + r.all.ForSystem(system)[1].Changelog
	if r.all.ForSystem(system)[1].Name != view {
		t.Fatalf("view order changed: %v", r.all.ForSystem(system))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ends := r.ends(t, full)
	ranges := map[int32]streams.OffsetRange{}
	for p, end := range ends {
		ranges[p] = streams.OffsetRange{End: end}
	}
	byPart := map[int32][]*kgo.Record{}
	if err := streams.ReadRanges(ctx, []kgo.Opt{kgo.SeedBrokers(r.b.Brokers...)}, full, ranges, func(rec *kgo.Record) error {
		byPart[rec.Partition] = append(byPart[rec.Partition], rec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Drop the last record of the last batch (the records sharing the last source-offset header)
	// of the first partition whose last batch has two or more.
	dropped := false
	for p := int32(0); p < int32(len(ends)) && !dropped; p++ {
		recs := byPart[p]
		if n := len(recs); n >= 2 && streams.Header(recs[n-1], views.HeaderSourceOffset) == streams.Header(recs[n-2], views.HeaderSourceOffset) {
			byPart[p] = recs[:n-1]
			dropped = true
			t.Logf("partition %d: dropped %s of the batch with %s=%s", p, recs[n-1].Key, views.HeaderSourceOffset, streams.Header(recs[n-1], views.HeaderSourceOffset))
		}
	}
	if !dropped {
		t.Fatal("no partition's last batch has two records")
	}

	prefix := "partial" + r.prefix
	adm := kadm.NewClient(r.b.Client(t))
	if _, err := adm.CreateTopic(ctx, int32(len(ends)), 1, nil, prefix+r.all.ForSystem(system)[1].Changelog); err != nil {
		t.Fatal(err)
	}
	w := r.b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, recs := range byPart {
		for _, rec := range recs {
			cp := &kgo.Record{Topic: prefix + r.all.ForSystem(system)[1].Changelog, Partition: rec.Partition, Key: rec.Key, Value: rec.Value, Headers: rec.Headers}
			if err := w.ProduceSync(ctx, cp).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cfg := r.config(system, t.TempDir())
	cfg.Prefix = prefix
	b, err := views.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r.caughtUp(t, b, time.Minute)
	if n := diff(t, b, r.model(t, system, evs), tenants); n != 0 {
		t.Fatalf("restored from a changelog holding part of a batch: %d differences", n)
	}
}

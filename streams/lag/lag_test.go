package lag_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams/lag"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// createTopic creates a topic with n partitions, deleted when the test ends.
func createTopic(t *testing.T, adm *kadm.Client, n int32) string {
	t.Helper()
	topic := streamstest.Name(t, "lag")
	ctx := context.Background()
	resp, err := adm.CreateTopic(ctx, n, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating %s: %v", topic, err)
	}
	t.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), topic) })
	return topic
}

// produce writes the records synchronously to their partitions and returns them as written.
func produce(t *testing.T, cl *kgo.Client, recs ...*kgo.Record) []*kgo.Record {
	t.Helper()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
	return recs
}

func record(topic string, partition int32, ts time.Time, i int) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: partition, Timestamp: ts, Value: []byte(fmt.Sprint(i))}
}

func commit(t *testing.T, adm *kadm.Client, group, topic string, offsets map[int32]int64) {
	t.Helper()
	var os kadm.Offsets
	for p, at := range offsets {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1})
	}
	resp, err := adm.CommitOffsets(context.Background(), group, os)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("committing %v for %s: %v", offsets, group, err)
	}
}

func read(t *testing.T, r *lag.Reader, groups ...string) *lag.Report {
	t.Helper()
	rep, err := r.Read(context.Background(), groups...)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != len(groups) {
		t.Fatalf("%d groups reported, want %d", len(rep.Groups), len(groups))
	}
	return rep
}

func checkPartition(t *testing.T, got lag.Partition, want lag.Partition) {
	t.Helper()
	if got != want {
		t.Errorf("partition %s/%d:\n got %+v\nwant %+v", want.Topic, want.Partition, got, want)
	}
}

// TestOffsetsAndSecondsExact writes records with chosen timestamps, commits chosen offsets for a
// group with no members, and checks every reported number: the offsets exactly, the time lag as the
// report's time minus the timestamp of the record at the committed offset, to the millisecond.
func TestOffsetsAndSecondsExact(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			adm := kadm.NewClient(cl)
			topic := createTopic(t, adm, 3)
			group := streamstest.Name(t, "group")
			// partition 0: 10 records, one second apart, the oldest 100 s ago; partition 1: 4
			// records; partition 2: 2 records, committed past its end (lag 0, not negative).
			base := time.Now().Add(-100 * time.Second).Truncate(time.Millisecond)
			var recs []*kgo.Record
			for i := range 10 {
				recs = append(recs, record(topic, 0, base.Add(time.Duration(i)*time.Second), i))
			}
			for i := range 4 {
				recs = append(recs, record(topic, 1, base.Add(time.Duration(i)*time.Second), i))
			}
			recs = append(recs, record(topic, 2, base, 0), record(topic, 2, base, 1))
			produce(t, cl, recs...)
			commit(t, adm, group, topic, map[int32]int64{0: 3, 1: 4, 2: 2})

			rep := read(t, lag.NewReader(cl), group)
			g := rep.Groups[0]
			if g.Group != group || g.State != "Empty" || len(g.Members) != 0 || g.Error != "" {
				t.Errorf("group = %+v, want %s Empty with no members", g, group)
			}
			if len(g.Partitions) != 3 {
				t.Fatalf("partitions = %+v, want 3", g.Partitions)
			}
			wantSeconds := float64(rep.At.Sub(base.Add(3*time.Second)).Milliseconds()) / 1000
			checkPartition(t, g.Partitions[0], lag.Partition{Topic: topic, Partition: 0, Committed: 3, End: 10, Lag: 7, LagSeconds: wantSeconds})
			checkPartition(t, g.Partitions[1], lag.Partition{Topic: topic, Partition: 1, Committed: 4, End: 4})
			checkPartition(t, g.Partitions[2], lag.Partition{Topic: topic, Partition: 2, Committed: 2, End: 2})
			if g.Lag != 7 || g.LagSeconds != wantSeconds {
				t.Errorf("group lag %d, %.3f s; want 7, %.3f s", g.Lag, g.LagSeconds, wantSeconds)
			}
			// The oldest unconsumed record is 97 s old when the records were written.
			if wantSeconds < 97 || wantSeconds > 97+60 {
				t.Errorf("time lag %.3f s, want about 97 s", wantSeconds)
			}

			// The group consumes two more records of partition 0: the time lag follows the commit.
			commit(t, adm, group, topic, map[int32]int64{0: 5})
			rep = read(t, lag.NewReader(cl), group)
			p := rep.Groups[0].Partitions[0]
			if want := float64(rep.At.Sub(base.Add(5*time.Second)).Milliseconds()) / 1000; p.Lag != 5 || p.LagSeconds != want {
				t.Errorf("after committing 5: lag %d, %.3f s; want 5, %.3f s", p.Lag, p.LagSeconds, want)
			}
			// Caught up: both lags are 0.
			commit(t, adm, group, topic, map[int32]int64{0: 10})
			rep = read(t, lag.NewReader(cl), group)
			if g := rep.Groups[0]; g.Lag != 0 || g.LagSeconds != 0 {
				t.Errorf("caught up: lag %d, %.3f s; want 0, 0", g.Lag, g.LagSeconds)
			}
		})
	}
}

// TestSecondsOfPausedConsumer runs a real group member that consumes and commits three records
// and then stops polling while more records arrive. Its time lag is the age of the fourth record,
// whose timestamp the producing client set: the reported value lies between the earliest and the
// latest it can be given when the record was produced and when the report was taken (with one
// millisecond for truncation), and it grows by the pause.
func TestSecondsOfPausedConsumer(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cl := b.Client(t)
			adm := kadm.NewClient(cl)
			topic := createTopic(t, adm, 1)
			group := streamstest.Name(t, "group")
			for i := range 3 {
				produce(t, cl, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))})
			}
			member := b.Client(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ClientID("lag-test-member"))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var got []*kgo.Record
			for len(got) < 3 {
				fs := member.PollRecords(ctx, 3-len(got))
				if err := fs.Err0(); err != nil {
					t.Fatalf("polling: %v", err)
				}
				got = append(got, fs.Records()...)
			}
			if err := member.CommitRecords(ctx, got...); err != nil {
				t.Fatal(err)
			}

			// The member pauses: it polls no more while five records arrive.
			beforeProduce := time.Now()
			for i := range 5 {
				produce(t, cl, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(3 + i))})
			}
			afterProduce := time.Now()
			const pause = 1500 * time.Millisecond
			time.Sleep(pause) // the paused time is what the test measures

			r := lag.NewReader(cl)
			beforeRead := time.Now()
			rep := read(t, r, group)
			afterRead := time.Now()
			g := rep.Groups[0]
			if g.State != "Stable" || len(g.Members) != 1 || g.Members[0].ClientID != "lag-test-member" || g.Members[0].Partitions != 1 {
				t.Errorf("group = %s with members %+v, want Stable with lag-test-member on 1 partition", g.State, g.Members)
			}
			if len(g.Partitions) != 1 {
				t.Fatalf("partitions = %+v", g.Partitions)
			}
			p := g.Partitions[0]
			if p.Committed != 3 || p.End != 8 || p.Lag != 5 || p.Member != "lag-test-member" {
				t.Errorf("partition = %+v, want committed 3, end 8, lag 5, member lag-test-member", p)
			}
			lo := beforeRead.Sub(afterProduce).Seconds() - 0.001
			hi := afterRead.Sub(beforeProduce).Seconds() + 0.001
			if p.LagSeconds < lo || p.LagSeconds > hi || p.LagSeconds < pause.Seconds() {
				t.Errorf("time lag %.3f s, want within [%.3f, %.3f] and at least the %s pause", p.LagSeconds, lo, hi, pause)
			}
			t.Logf("%s: time lag %.3f s after a %s pause (bounds %.3f..%.3f)", b.Name, p.LagSeconds, pause, lo, hi)
		})
	}
}

// TestUnknownGroup reports a group the cluster does not know as Dead with nothing to measure.
func TestUnknownGroup(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			group := streamstest.Name(t, "nobody")
			rep := read(t, lag.NewReader(b.Client(t)), group)
			g := rep.Groups[0]
			if g.State != lag.StateDead || len(g.Partitions) != 0 || len(g.Members) != 0 || g.Lag != 0 {
				t.Errorf("unknown group = %+v, want Dead and empty", g)
			}
		})
	}
}

// TestNotStartedGroup: told a group's topics, the Reader counts the records of every partition the
// group has not committed to as pending from the log start, with the age of the first as the time
// lag: a group that never committed is NotStarted with all of them, a group that committed on
// one partition also lags on the other.
func TestNotStartedGroup(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			adm := kadm.NewClient(cl)
			topic, empty := createTopic(t, adm, 3), createTopic(t, adm, 1)
			base := time.Now().Add(-50 * time.Second).Truncate(time.Millisecond)
			produce(t, cl, record(topic, 0, base, 0), record(topic, 0, base.Add(time.Second), 1), record(topic, 0, base.Add(2*time.Second), 2),
				record(topic, 2, base.Add(10*time.Second), 0))
			fresh, started := streamstest.Name(t, "fresh"), streamstest.Name(t, "started")
			commit(t, adm, started, topic, map[int32]int64{0: 3})
			r := lag.NewReader(cl, lag.GroupTopics(map[string][]string{fresh: {topic, empty}, started: {topic, empty}}))
			rep := read(t, r, fresh, started)

			g := rep.Groups[0]
			if g.State != lag.StateNotStarted || g.Lag != 4 || len(g.Partitions) != 2 {
				t.Fatalf("never committed: %+v, want NotStarted with 4 records pending on 2 partitions", g)
			}
			secs := func(ts time.Time) float64 { return float64(rep.At.Sub(ts).Milliseconds()) / 1000 }
			checkPartition(t, g.Partitions[0], lag.Partition{Topic: topic, Partition: 0, Committed: -1, End: 3, Lag: 3, LagSeconds: secs(base)})
			checkPartition(t, g.Partitions[1], lag.Partition{Topic: topic, Partition: 2, Committed: -1, End: 1, Lag: 1, LagSeconds: secs(base.Add(10 * time.Second))})
			if g.LagSeconds != secs(base) {
				t.Errorf("group time lag %.3f, want %.3f", g.LagSeconds, secs(base))
			}

			g = rep.Groups[1]
			if g.State != "Empty" || g.Lag != 1 || len(g.Partitions) != 2 {
				t.Fatalf("committed on partition 0: %+v, want Empty with 1 record pending on partition 2", g)
			}
			checkPartition(t, g.Partitions[0], lag.Partition{Topic: topic, Partition: 0, Committed: 3, End: 3})
			checkPartition(t, g.Partitions[1], lag.Partition{Topic: topic, Partition: 2, Committed: -1, End: 1, Lag: 1, LagSeconds: secs(base.Add(10 * time.Second))})

			if g := read(t, lag.NewReader(cl), fresh).Groups[0]; g.State != lag.StateDead || len(g.Partitions) != 0 {
				t.Errorf("without its topics: %+v, want Dead", g)
			}
		})
	}
}

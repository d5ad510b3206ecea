package resync_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams/replay"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

type tp struct {
	topic string
	part  int32
}

// TestResync writes records with known timestamps to the topics hotel-member reads, then checks
// --dry-run, the refusal while the group has a live member, the offsets the resync commits, and
// that the group then receives exactly the records from the resync time on.
func TestResync(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { testResync(t, b) })
	}
}

func testResync(t *testing.T, b streamstest.Backend) {
	ctx := context.Background()
	prefix := streamstest.Name(t, "rs") + "."
	cat, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		t.Fatal(err)
	}
	cat = cat.WithPrefix(prefix)
	adm := kadm.NewClient(b.Client(t))
	if _, err := topics.Ensure(ctx, adm, cat); err != nil {
		t.Fatal(err)
	}
	sys, _ := cat.System("hotel-member")
	read := cat.SubscribedTopics("hotel-member")
	billing, _ := cat.TopicFor("billing.paid")
	reservations, _ := cat.TopicFor("reservation.created")
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	at := t0.Add(15 * time.Second)
	var recs []*kgo.Record
	for i := range 40 {
		topic := billing.Name
		if i%2 == 0 {
			topic = reservations.Name
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "tenant-%d", i%7), Value: []byte("x"),
			Timestamp: t0.Add(time.Duration(i) * time.Second)})
	}
	if err := b.Client(t).ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, read...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[tp]int64{}
	fromAt := map[tp][]int64{} // the offsets at or after at, per partition
	ends.Each(func(o kadm.ListedOffset) { want[tp{o.Topic, o.Partition}] = o.Offset })
	for _, r := range recs {
		k := tp{r.Topic, r.Partition}
		if !r.Timestamp.Before(at) {
			want[k] = min(want[k], r.Offset)
			fromAt[k] = append(fromAt[k], r.Offset)
		}
	}
	args := []string{"resync", "--system", "hotel-member", "--to-time", at.Format(time.RFC3339), "--prefix", prefix,
		"--brokers", strings.Join(b.Brokers, ",")}

	r := cmdtest.Run(t, nil, "", append(args, "--dry-run")...)
	if r.Code != 0 || !strings.Contains(r.ErrOut, "dry run") {
		t.Fatalf("--dry-run: exit %d\n%s%s", r.Code, r.Out, r.ErrOut)
	}
	for k, off := range want {
		if line := fmt.Sprintf("%s\t%d\t-\t->\t%d\n", k.topic, k.part, off); !strings.Contains(r.Out, line) {
			t.Errorf("--dry-run output lacks %q:\n%s", line, r.Out)
		}
	}
	if got := committed(t, adm, sys.Group); len(got) != 0 {
		t.Errorf("--dry-run committed %v", got)
	}

	member := b.Client(t, kgo.ConsumerGroup(sys.Group), kgo.ConsumeTopics(read...), kgo.DisableAutoCommit())
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for pollCtx.Err() == nil {
			member.PollFetches(pollCtx)
		}
	}()
	waitMembers(t, adm, sys.Group, func(n int) bool { return n > 0 })
	r = cmdtest.Run(t, nil, "", append(args, "--dry-run")...)
	if r.Code != 0 || !strings.Contains(r.ErrOut, "warning: the real run will be refused: resync: the consumer group has live members") {
		t.Errorf("--dry-run with a live member: exit %d, want 0 and a warning that the real run will be refused\n%s", r.Code, r.ErrOut)
	}
	r = cmdtest.Run(t, nil, "", args...)
	if r.Code != 1 || !strings.Contains(r.ErrOut, "resync: the consumer group has live members") || !strings.Contains(r.ErrOut, "--force") {
		t.Errorf("with a live member: exit %d, want 1 and a refusal naming --force\n%s%s", r.Code, r.Out, r.ErrOut)
	}
	if got := committed(t, adm, sys.Group); len(got) != 0 {
		t.Errorf("the refused resync committed %v", got)
	}
	stopPoll()
	<-polled
	member.Close()
	waitMembers(t, adm, sys.Group, func(n int) bool { return n == 0 })

	r = cmdtest.Run(t, nil, "", append(args, "--json")...)
	if r.Code != 0 {
		t.Fatalf("resync: exit %d\n%s%s", r.Code, r.Out, r.ErrOut)
	}
	var plan replay.ResyncPlan
	if err := json.Unmarshal([]byte(r.Out), &plan); err != nil || plan.Group != sys.Group || len(plan.Moves) != len(want) {
		t.Errorf("--json plan %+v (%v), want %d moves of %s", plan, err, len(want), sys.Group)
	}
	if got := committed(t, adm, sys.Group); !mapsEqual(got, want) {
		t.Errorf("committed %v\nwant %v", got, want)
	}

	// The system now receives exactly the records from the resync time on.
	cons := b.Client(t, kgo.ConsumerGroup(sys.Group), kgo.ConsumeTopics(read...))
	got := map[tp][]int64{}
	n, total := 0, 0
	for _, offs := range fromAt {
		total += len(offs)
	}
	deadline, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for n < total && deadline.Err() == nil {
		cons.PollFetches(deadline).EachRecord(func(r *kgo.Record) {
			got[tp{r.Topic, r.Partition}] = append(got[tp{r.Topic, r.Partition}], r.Offset)
			n++
		})
	}
	for k, offs := range fromAt {
		if !slices.Equal(got[k], offs) {
			t.Errorf("%s[%d]: the group received offsets %v, want %v", k.topic, k.part, got[k], offs)
		}
	}
	if n != total {
		t.Errorf("the group received %d records, want %d", n, total)
	}
}

func committed(t *testing.T, adm *kadm.Client, group string) map[tp]int64 {
	t.Helper()
	resp, err := adm.FetchOffsets(context.Background(), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[tp]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At >= 0 {
			out[tp{o.Topic, o.Partition}] = o.At
		}
	})
	return out
}

func waitMembers(t *testing.T, adm *kadm.Client, group string, ok func(int) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err == nil && ok(len(gs[group].Members)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s: members never reached the wanted count (%v, %v)", group, gs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mapsEqual(a, b map[tp]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

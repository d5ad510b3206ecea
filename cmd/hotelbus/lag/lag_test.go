package lag_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams/lag"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestLagCommand writes five records to one partition of hotel-pms' reservations topic, commits
// offset 2 for hotel-member's group, and reads the lag back as JSON and as a table; the other
// systems' groups, never created, are NotStarted with every record of their topics pending. A
// --group the cluster does not know fails, and a system's name given as --group is refused with
// the system's group.
func TestLagCommand(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			prefix := streamstest.Name(t, "lagcmd") + "."
			cat := streamstest.PrefixedCatalog(t, b, prefix)
			topic, _ := cat.TopicFor("reservation.created")
			member, _ := cat.System("hotel-member")
			saas, _ := cat.System("hotel-saas")
			common, _ := cat.System("hotel-common")
			cl := b.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			base := time.Now().Add(-30 * time.Second).Truncate(time.Millisecond)
			for i := range 5 {
				r := &kgo.Record{Topic: topic.Name, Partition: 1, Key: []byte("hotel-kyoto"), Value: []byte(fmt.Sprint(i)), Timestamp: base.Add(time.Duration(i) * time.Second)}
				if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			var offsets kadm.Offsets
			offsets.Add(kadm.Offset{Topic: topic.Name, Partition: 1, At: 2, LeaderEpoch: -1})
			if _, err := kadm.NewClient(cl).CommitOffsets(context.Background(), member.Group, offsets); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"HOTELBUS_BROKERS": strings.Join(b.Brokers, ",")}

			before := time.Now()
			res := cmdtest.Run(t, env, "", "lag", "--prefix", prefix, "--json")
			if res.Code != 0 {
				t.Fatalf("lag --json: exit %d\n%s", res.Code, res.ErrOut)
			}
			var rep lag.Report
			if err := json.Unmarshal([]byte(res.Out), &rep); err != nil {
				t.Fatalf("%v\n%s", err, res.Out)
			}
			if len(rep.Groups) != len(cat.Systems) {
				t.Fatalf("%d groups, want one per system: %s", len(rep.Groups), res.Out)
			}
			for _, g := range rep.Groups {
				if g.Group != member.Group {
					// hotel-saas and hotel-common read the same topic: the 5 records wait for them.
					want := int64(0)
					if g.Group == saas.Group || g.Group == common.Group {
						want = 5
					}
					if g.State != lag.StateNotStarted || g.Lag != want {
						t.Errorf("group %s: %+v, want NotStarted with %d records pending", g.Group, g, want)
					}
					for _, p := range g.Partitions {
						if p.Committed != -1 || p.Lag != p.End-p.Start || p.Topic != topic.Name || p.Partition != 1 {
							t.Errorf("group %s, %s/%d: %+v, want all pending", g.Group, p.Topic, p.Partition, p)
						}
					}
					continue
				}
				want := lag.Partition{Topic: topic.Name, Partition: 1, Committed: 2, End: 5, Lag: 3,
					LagSeconds: float64(rep.At.Sub(base.Add(2*time.Second)).Milliseconds()) / 1000}
				if g.State != "Empty" || len(g.Partitions) != 1 || g.Partitions[0] != want || g.Lag != 3 {
					t.Errorf("group %s: %+v, want Empty with %+v", g.Group, g, want)
				}
				if s := g.Partitions[0].LagSeconds; s < before.Sub(base).Seconds()-2-0.001 || s > time.Since(base).Seconds()-2+0.001 {
					t.Errorf("lag seconds %.3f, want the age of the record written at base+2s", s)
				}
			}

			res = cmdtest.Run(t, env, "", "lag", "--prefix", prefix, "--group", member.Group, "--group", "nobody-"+prefix)
			if res.Code != 1 || !strings.Contains(res.ErrOut, `lag: group "nobody-`+prefix+`" is not known to the cluster`) {
				t.Fatalf("lag with an unknown group: exit %d, want 1 naming it\n%s", res.Code, res.ErrOut)
			}
			lines := strings.Split(strings.TrimSpace(res.Out), "\n")
			if len(lines) != 3 {
				t.Fatalf("table:\n%s", res.Out)
			}
			if got := strings.Fields(lines[0]); strings.Join(got, " ") != "GROUP STATE MEMBERS TOPIC PARTITION COMMITTED END LAG LAG-SECONDS MEMBER" {
				t.Errorf("header %q", lines[0])
			}
			row := strings.Fields(lines[1])
			if len(row) != 10 || strings.Join(append(row[:8:8], row[9]), " ") != member.Group+" Empty 0 "+topic.Name+" 1 2 5 3 -" {
				t.Errorf("row %q", lines[1])
			}
			if got := strings.Join(strings.Fields(lines[2]), " "); got != "nobody-"+prefix+" Dead 0 - - - - - - -" {
				t.Errorf("unknown group row %q", got)
			}
		})
	}
}

func TestLagCommandUsage(t *testing.T) {
	env := map[string]string{"HOTELBUS_BROKERS": "127.0.0.1:1"}
	if r := cmdtest.Run(t, env, "", "lag", "--group", "hotel-member"); r.Code != 2 ||
		!strings.Contains(r.ErrOut, "--group hotel-member: that is a system; its consumer group is hotelbus.hotel-member (--group hotelbus.hotel-member)") {
		t.Errorf("a system as --group: %d %s", r.Code, r.ErrOut)
	}

	if r := cmdtest.Run(t, nil, "", "lag"); r.Code != 2 || !strings.Contains(r.ErrOut, "--brokers") {
		t.Errorf("without brokers: %d %s", r.Code, r.ErrOut)
	}
	if r := cmdtest.Run(t, nil, "", "lag", "extra"); r.Code != 2 {
		t.Errorf("an argument: %d %s", r.Code, r.ErrOut)
	}
}

// Package lag measures how far consumer groups are behind: per group, topic and partition, the
// committed offset, the end offset, the offset lag, and the time lag in seconds, which is the age
// of the oldest record the group has not consumed (the record at the committed offset), as
// kafka-lag-exporter measures it. It is what `hotelbus lag` prints and what `hotelbus monitor`
// exports.
package lag

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hotelbus/hotelbus/topics"
)

// Group states the Reader reports besides the coordinator's (Stable, Empty, PreparingRebalance,
// CompletingRebalance).
const (
	// StateDead is the state of a group the cluster does not know (never created, or deleted) and
	// whose topics the Reader was not told (GroupTopics).
	StateDead = "Dead"
	// StateNotStarted is the state of a group the cluster does not know but whose topics the
	// Reader was told: its consumer has not committed yet, and every record of its topics is
	// pending.
	StateNotStarted = "NotStarted"
)

// Partition is the lag of one group on one partition.
type Partition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the group's committed offset: the next record it will read (-1: none).
	Committed int64 `json:"committed"`
	// Start and End are the partition's log start offset and end offset (high-water mark).
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	// Lag is the number of records from the committed offset (or the log start when nothing
	// is committed, or the commit fell below it) to the end.
	Lag int64 `json:"lag"`
	// LagSeconds is the age of the oldest unconsumed record: now minus the timestamp of the record
	// at the committed offset; 0 when the group is caught up.
	LagSeconds float64 `json:"lagSeconds"`
	// Member is the client id of the member the partition is assigned to ("" when unassigned).
	Member string `json:"member,omitempty"`
	// Error says why the partition's lag could not be measured (Lag is then -1).
	Error string `json:"error,omitempty"`
}

// Member is one member of a group.
type Member struct {
	ID       string `json:"id"`
	ClientID string `json:"clientId"`
	Host     string `json:"host"`
	// Partitions is the number of partitions assigned to the member.
	Partitions int `json:"partitions"`
}

// Group is the lag of one consumer group.
type Group struct {
	Group string `json:"group"`
	// State is the group coordinator's state: Stable, Empty, PreparingRebalance,
	// CompletingRebalance; for a group the cluster does not know, NotStarted when the Reader knows
	// its topics (GroupTopics), else Dead.
	State   string   `json:"state"`
	Members []Member `json:"members"`
	// Partitions are sorted by topic, then partition: every partition the group has committed to
	// or is assigned, and every partition of its topics (GroupTopics) with records it has not
	// committed past (Committed -1, Lag from the log start).
	Partitions []Partition `json:"partitions"`
	// Lag sums the partitions' lag; LagSeconds is their largest time lag.
	Lag        int64   `json:"lag"`
	LagSeconds float64 `json:"lagSeconds"`
	// Error says why the group could not be described or its offsets fetched.
	Error string `json:"error,omitempty"`
}

// Report is the lag of a set of groups at one instant.
type Report struct {
	At     time.Time `json:"at"`
	Groups []Group   `json:"groups"`
}

// Err returns an error naming every group and partition whose lag could not be measured, or nil.
func (r *Report) Err() error {
	var errs []error
	for _, g := range r.Groups {
		if g.Error != "" {
			errs = append(errs, fmt.Errorf("lag: group %s: %s", g.Group, g.Error))
		}
		for _, p := range g.Partitions {
			if p.Error != "" {
				errs = append(errs, fmt.Errorf("lag: group %s, %s/%d: %s", g.Group, p.Topic, p.Partition, p.Error))
			}
		}
	}
	return errors.Join(errs...)
}

// Reader measures lag through a franz-go client. It is safe for concurrent use.
type Reader struct {
	cl     *kgo.Client
	adm    *kadm.Client
	now    func() time.Time
	topics map[string][]string
}

// Option configures a Reader.
type Option func(*Reader)

// Clock makes the Reader take the current time from now (tests).
func Clock(now func() time.Time) Option { return func(r *Reader) { r.now = now } }

// GroupTopics tells the Reader the topics each group reads, so that the records a group has not
// committed past on them count as its lag even before it first committed (default: none; a group
// is then measured on what it committed to or is assigned only).
func GroupTopics(topics map[string][]string) Option { return func(r *Reader) { r.topics = topics } }

// CatalogTopics is GroupTopics for the consumer group of every system of cat: the event topics of
// its subscriptions and its redrive topic.
func CatalogTopics(cat *topics.Catalog) Option {
	m := map[string][]string{}
	for _, s := range cat.Systems {
		if len(s.Subscribes) == 0 {
			continue
		}
		m[s.Group] = cat.SubscribedTopics(s.Name)
		if s.RedriveTopic != "" {
			m[s.Group] = append(m[s.Group], s.RedriveTopic)
		}
	}
	return GroupTopics(m)
}

// NewReader returns a Reader over cl; the caller keeps ownership of cl.
func NewReader(cl *kgo.Client, opts ...Option) *Reader {
	r := &Reader{cl: cl, adm: kadm.NewClient(cl), now: time.Now}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Read measures the lag of the named groups, in the order given. A group that cannot be
// described or whose offsets cannot be fetched has its Error set; the returned error is for
// failures that leave nothing measured (the cluster unreachable, not authorized).
func (r *Reader) Read(ctx context.Context, groups ...string) (*Report, error) {
	if len(groups) == 0 {
		return &Report{At: r.now().UTC(), Groups: []Group{}}, nil
	}
	lags, err := r.adm.Lag(ctx, groups...)
	if err != nil {
		return nil, fmt.Errorf("lag: %w", err)
	}
	rep := &Report{Groups: make([]Group, 0, len(groups))}
	for _, name := range groups {
		rep.Groups = append(rep.Groups, group(name, lags[name]))
	}
	if err := r.pending(ctx, rep.Groups); err != nil {
		return nil, err
	}
	// The time of the report is taken after the offsets: a record timestamped after the end
	// offsets were listed can then never make a time lag negative.
	oldest, err := r.oldest(ctx, rep.Groups)
	rep.At = r.now().UTC()
	if err != nil {
		return nil, err
	}
	for gi := range rep.Groups {
		g := &rep.Groups[gi]
		for pi := range g.Partitions {
			p := &g.Partitions[pi]
			if p.Lag <= 0 || p.Error != "" {
				continue
			}
			ts, ok := oldest[tpo{p.Topic, p.Partition, unconsumed(p)}]
			if !ok {
				continue
			}
			p.LagSeconds = max(0, float64(rep.At.Sub(ts).Milliseconds())/1000)
			g.LagSeconds = max(g.LagSeconds, p.LagSeconds)
		}
	}
	return rep, nil
}

// group converts kadm's view of one group.
func group(name string, l kadm.DescribedGroupLag) Group {
	g := Group{Group: name, State: l.State, Members: []Member{}, Partitions: []Partition{}}
	if err := l.Error(); err != nil {
		if errors.Is(err, kerr.GroupIDNotFound) {
			g.State = StateDead
			return g
		}
		g.Error = err.Error()
		return g
	}
	if g.State == "" {
		g.State = StateDead
	}
	for _, m := range l.Members {
		n := 0
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range c.Topics {
				n += len(t.Partitions)
			}
		}
		g.Members = append(g.Members, Member{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Partitions: n})
	}
	for _, ml := range l.Lag.Sorted() {
		if ml.Commit.At < 0 && ml.Member == nil {
			continue // neither committed nor assigned (some brokers list such partitions)
		}
		p := Partition{Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At, Start: ml.Start.Offset,
			End: ml.End.Offset, Lag: ml.Lag}
		if ml.Member != nil {
			p.Member = ml.Member.ClientID
		}
		if ml.Start.Err != nil {
			p.Start = 0
		}
		if ml.Err != nil {
			p.Lag = -1
			p.Error = ml.Err.Error()
		} else {
			g.Lag += p.Lag
		}
		g.Partitions = append(g.Partitions, p)
	}
	return g
}

// pending adds to each group whose topics the Reader knows the partitions of those topics that
// hold records and that the group neither committed to nor is assigned, as wholly unconsumed; a
// group the cluster does not know becomes NotStarted. A topic that does not exist adds nothing.
func (r *Reader) pending(ctx context.Context, groups []Group) error {
	var want []string
	for _, g := range groups {
		for _, t := range r.topics[g.Group] {
			if g.Error == "" && !slices.Contains(want, t) {
				want = append(want, t)
			}
		}
	}
	if len(want) == 0 {
		return nil
	}
	starts, err := r.adm.ListStartOffsets(ctx, want...)
	if err != nil {
		return fmt.Errorf("lag: listing the start offsets of %v: %w", want, err)
	}
	ends, err := r.adm.ListEndOffsets(ctx, want...)
	if err != nil {
		return fmt.Errorf("lag: listing the end offsets of %v: %w", want, err)
	}
	for gi := range groups {
		g := &groups[gi]
		if g.Error != "" || len(r.topics[g.Group]) == 0 {
			continue
		}
		if g.State == StateDead {
			g.State = StateNotStarted
		}
		seen := map[topicPartition]bool{}
		for _, p := range g.Partitions {
			seen[topicPartition{p.Topic, p.Partition}] = true
		}
		for _, t := range r.topics[g.Group] {
			ends.Each(func(e kadm.ListedOffset) {
				s, ok := starts.Lookup(e.Topic, e.Partition)
				if e.Topic != t || e.Err != nil || !ok || s.Err != nil || e.Offset <= s.Offset || seen[topicPartition{t, e.Partition}] {
					return
				}
				g.Partitions = append(g.Partitions, Partition{Topic: t, Partition: e.Partition, Committed: -1, Start: s.Offset,
					End: e.Offset, Lag: e.Offset - s.Offset})
				g.Lag += e.Offset - s.Offset
			})
		}
		slices.SortFunc(g.Partitions, func(a, b Partition) int {
			return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
		})
	}
	return nil
}

// unconsumed returns the offset of the oldest record of p the group has not consumed.
func unconsumed(p *Partition) int64 {
	if p.Committed < p.Start {
		return p.Start
	}
	return p.Committed
}

type topicPartition struct {
	topic     string
	partition int32
}

// tpo is one offset of one partition.
type tpo struct {
	topic     string
	partition int32
	offset    int64
}

// maxFetchRounds bounds the fetches for the oldest records: a broker answers with at least one
// partition's batch per round even when the response size limit cuts the others.
const maxFetchRounds = 5

// oldest returns the timestamp of the record at the unconsumed offset of every lagging partition
// of groups. A partition whose record could not be read is absent (its time lag stays 0).
func (r *Reader) oldest(ctx context.Context, groups []Group) (map[tpo]time.Time, error) {
	want := map[tpo]struct{}{}
	var topics []string
	for _, g := range groups {
		for _, p := range g.Partitions {
			if p.Lag > 0 && p.Error == "" {
				want[tpo{p.Topic, p.Partition, unconsumed(&p)}] = struct{}{}
				if !slices.Contains(topics, p.Topic) {
					topics = append(topics, p.Topic)
				}
			}
		}
	}
	out := make(map[tpo]time.Time, len(want))
	if len(want) == 0 {
		return out, nil
	}
	md, err := r.adm.Metadata(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("lag: metadata: %w", err)
	}
	for round := 0; round < maxFetchRounds && len(want) > 0; round++ {
		byLeader := map[int32][]tpo{}
		for k := range want {
			pd, ok := md.Topics[k.topic].Partitions[k.partition]
			if !ok || pd.Leader < 0 {
				delete(want, k)
				continue
			}
			byLeader[pd.Leader] = append(byLeader[pd.Leader], k)
		}
		progress := false
		for leader, parts := range byLeader {
			got, err := r.fetch(ctx, leader, md, parts)
			if err != nil {
				return nil, err
			}
			for k, ts := range got {
				out[k] = ts
				delete(want, k)
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	return out, nil
}

// fetch reads the first record at or after each of parts' offsets from their leader, and returns
// the timestamps of those it got.
func (r *Reader) fetch(ctx context.Context, leader int32, md kadm.Metadata, parts []tpo) (map[tpo]time.Time, error) {
	slices.SortFunc(parts, func(a, b tpo) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 1
	req.MaxBytes = 4 << 20
	req.IsolationLevel = 0
	req.SessionEpoch = -1
	byID := map[[16]byte]string{}
	for _, p := range parts {
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != p.topic {
			ft := kmsg.NewFetchRequestTopic()
			ft.Topic = p.topic
			ft.TopicID = md.Topics[p.topic].ID
			byID[ft.TopicID] = p.topic
			req.Topics = append(req.Topics, ft)
		}
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition = p.partition
		fp.FetchOffset = p.offset
		fp.CurrentLeaderEpoch = -1
		fp.LastFetchedEpoch = -1
		fp.LogStartOffset = -1
		fp.PartitionMaxBytes = 64 << 10
		t := &req.Topics[len(req.Topics)-1]
		t.Partitions = append(t.Partitions, fp)
	}
	resp, err := req.RequestWith(ctx, r.cl.Broker(int(leader)))
	if err != nil {
		return nil, fmt.Errorf("lag: fetching the oldest unconsumed records from broker %d: %w", leader, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("lag: fetching the oldest unconsumed records from broker %d: %w", leader, err)
	}
	offsets := make(map[topicPartition]int64, len(parts))
	for _, p := range parts {
		offsets[topicPartition{p.topic, p.partition}] = p.offset
	}
	out := map[tpo]time.Time{}
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		topic := rt.Topic
		if topic == "" {
			topic = byID[rt.TopicID]
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			off, ok := offsets[topicPartition{topic, rp.Partition}]
			if !ok || rp.ErrorCode != 0 {
				continue
			}
			fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: off, Topic: topic, Partition: rp.Partition},
				rp, kgo.DefaultDecompressor(), nil)
			if len(fp.Records) > 0 {
				out[tpo{topic, rp.Partition, off}] = fp.Records[0].Timestamp
			}
		}
	}
	return out, nil
}

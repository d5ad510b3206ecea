package topics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Diff is what reconciling a cluster to a catalog changes, and what it refuses to change.
// Plan computes it; Apply carries it out. Changes only ever add: topics are created, partitions
// added, managed configs set. Shrinking, re-replicating and deleting are reported as Warnings and
// left to a human.
type Diff struct {
	// Declared is the number of topics the catalog declares.
	Declared   int               `json:"declared"`
	Create     []Creation        `json:"create"`
	Partitions []PartitionChange `json:"partitions"`
	Configs    []ConfigChange    `json:"configs"`
	Warnings   []Warning         `json:"warnings"`
}

// Creation is a declared topic the cluster lacks.
type Creation struct {
	Topic             string            `json:"topic"`
	Partitions        int32             `json:"partitions"`
	ReplicationFactor int16             `json:"replicationFactor"`
	Configs           map[string]string `json:"configs"`
}

// PartitionChange raises a topic's partition count From the cluster's To the declared one.
type PartitionChange struct {
	Topic string `json:"topic"`
	From  int32  `json:"from"`
	To    int32  `json:"to"`
}

// ConfigChange sets one managed config key (see Topic.Configs) From its current value ("" when
// the broker reports none) To the declared one.
type ConfigChange struct {
	Topic string `json:"topic"`
	Key   string `json:"key"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// Warning is a difference that Apply will not reconcile.
type Warning struct {
	Topic   string `json:"topic"`
	Message string `json:"message"`
}

// Empty reports whether the diff has no changes to apply (it may still carry warnings).
func (d *Diff) Empty() bool {
	return len(d.Create) == 0 && len(d.Partitions) == 0 && len(d.Configs) == 0
}

// String prints the diff one change per line, terraform style ("+ create", "~" for a change,
// "! warning"); an empty diff prints one line that starts with "in sync" when there are no
// warnings either.
func (d *Diff) String() string {
	var b strings.Builder
	for _, c := range d.Create {
		fmt.Fprintf(&b, "+ create %s (partitions %d, rf %d", c.Topic, c.Partitions, c.ReplicationFactor)
		for _, k := range slices.Sorted(maps.Keys(c.Configs)) {
			fmt.Fprintf(&b, ", %s=%s", k, c.Configs[k])
		}
		b.WriteString(")\n")
	}
	for _, p := range d.Partitions {
		fmt.Fprintf(&b, "~ %s partitions %d -> %d\n", p.Topic, p.From, p.To)
	}
	for _, c := range d.Configs {
		from := c.From
		if from == "" {
			from = "(unset)"
		}
		fmt.Fprintf(&b, "~ %s %s %s -> %s\n", c.Topic, c.Key, from, c.To)
	}
	for _, w := range d.Warnings {
		fmt.Fprintf(&b, "! warning %s: %s\n", w.Topic, w.Message)
	}
	switch {
	case !d.Empty():
	case len(d.Warnings) == 0:
		fmt.Fprintf(&b, "in sync: %d declared topics match the cluster\n", d.Declared)
	default:
		fmt.Fprintf(&b, "no changes to apply to %d declared topics; %d warning(s) need a human\n", d.Declared, len(d.Warnings))
	}
	return b.String()
}

// TopicState is a declared topic as the cluster has it.
type TopicState struct {
	Declared Topic
	// Exists is false when the cluster lacks the topic; the fields below are then zero.
	Exists            bool
	Partitions        int32
	ReplicationFactor int16
	// Configs holds the current values of the managed keys (those of Topic.Configs) that the
	// broker reports.
	Configs map[string]string
}

// Drift describes, one phrase each, how the topic differs from its declaration: nothing when it
// is in sync.
func (s TopicState) Drift() []string {
	t := s.Declared
	if !s.Exists {
		return []string{"missing"}
	}
	var out []string
	if s.Partitions != t.Partitions {
		out = append(out, fmt.Sprintf("partitions %d, declared %d", s.Partitions, t.Partitions))
	}
	if s.ReplicationFactor != t.ReplicationFactor {
		out = append(out, fmt.Sprintf("replication factor %d, declared %d", s.ReplicationFactor, t.ReplicationFactor))
	}
	want := t.Configs()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if !sameConfig(k, s.Configs[k], want[k]) {
			out = append(out, fmt.Sprintf("%s %s, declared %s", k, s.Configs[k], want[k]))
		}
	}
	return out
}

// InSync reports whether the topic exists exactly as declared.
func (s TopicState) InSync() bool { return len(s.Drift()) == 0 }

// Describe returns the cluster's view of every declared topic, in catalog order.
func Describe(ctx context.Context, adm *kadm.Client, c *Catalog) ([]TopicState, error) {
	states, _, err := observe(ctx, adm, c)
	return states, err
}

// observe returns the declared topics' states and the names of every topic in the cluster.
func observe(ctx context.Context, adm *kadm.Client, c *Catalog) ([]TopicState, []string, error) {
	details, err := listTopics(ctx, adm)
	if err != nil {
		return nil, nil, err
	}
	states := make([]TopicState, len(c.Topics))
	var existing []string
	for i, t := range c.Topics {
		states[i].Declared = t
		d, ok := details[t.Name]
		if !ok {
			continue
		}
		if d.Err != nil {
			return nil, nil, fmt.Errorf("topics: describing %s: %w", t.Name, d.Err)
		}
		states[i].Exists = true
		states[i].Partitions = int32(len(d.Partitions))
		states[i].ReplicationFactor = int16(d.Partitions.NumReplicas())
		existing = append(existing, t.Name)
	}
	current, err := topicConfigs(ctx, adm, existing)
	if err != nil {
		return nil, nil, err
	}
	for i := range states {
		if states[i].Exists {
			states[i].Configs = current[states[i].Declared.Name]
		}
	}
	return states, details.Names(), nil
}

// listTopics lists the named topics (all when none are named) from a fresh metadata response.
// kadm.ListTopics otherwise answers from the client's metadata cache, which may be seconds old
// and would hide what an Apply just changed; asking for authorized operations makes kadm send
// the request (the cache does not hold them).
func listTopics(ctx context.Context, adm *kadm.Client, names ...string) (kadm.TopicDetails, error) {
	details, err := adm.ListTopics(kadm.WithAuthorizedOps(ctx), names...)
	if err != nil {
		return nil, fmt.Errorf("topics: listing topics: %w", err)
	}
	return details, nil
}

// topicConfigs returns the current values of the managed config keys of the named topics.
func topicConfigs(ctx context.Context, adm *kadm.Client, names []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if len(names) == 0 {
		return out, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("topics: describing configs: %w", err)
	}
	managed := Topic{}.Configs()
	for _, rc := range rcs {
		if rc.Err != nil {
			return nil, fmt.Errorf("topics: describing configs of %s: %w", rc.Name, rc.Err)
		}
		m := map[string]string{}
		for _, cfg := range rc.Configs {
			if _, ok := managed[cfg.Key]; ok && cfg.Value != nil {
				m[cfg.Key] = *cfg.Value
			}
		}
		out[rc.Name] = m
	}
	return out, nil
}

// sameConfig compares config values; cleanup.policy is a list whose order carries no meaning.
func sameConfig(key, got, want string) bool {
	if key != "cleanup.policy" {
		return got == want
	}
	split := func(s string) []string {
		parts := strings.Split(s, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		slices.Sort(parts)
		return parts
	}
	return slices.Equal(split(got), split(want))
}

// Plan compares the cluster with the catalog and returns what Apply would change. It changes
// nothing. Topics in the cluster that share the declared topics' namespace (the longest common
// prefix of their names up to a dot, e.g. "hotelbus.") but are not declared are warned about.
func Plan(ctx context.Context, adm *kadm.Client, c *Catalog) (*Diff, error) {
	states, all, err := observe(ctx, adm, c)
	if err != nil {
		return nil, err
	}
	d := &Diff{Declared: len(c.Topics), Create: []Creation{}, Partitions: []PartitionChange{}, Configs: []ConfigChange{}, Warnings: []Warning{}}
	for _, s := range states {
		t := s.Declared
		if !s.Exists {
			d.Create = append(d.Create, creation(t))
			continue
		}
		switch {
		case t.Partitions > s.Partitions:
			d.Partitions = append(d.Partitions, PartitionChange{Topic: t.Name, From: s.Partitions, To: t.Partitions})
		case t.Partitions < s.Partitions:
			d.Warnings = append(d.Warnings, Warning{t.Name, fmt.Sprintf("declares %d partitions but has %d: partitions are never removed (it would break per-key order)", t.Partitions, s.Partitions)})
		}
		if t.ReplicationFactor != s.ReplicationFactor {
			d.Warnings = append(d.Warnings, Warning{t.Name, fmt.Sprintf("replication factor is %d, declared %d: changing it needs a partition reassignment, which apply does not do", s.ReplicationFactor, t.ReplicationFactor)})
		}
		want := t.Configs()
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if !sameConfig(k, s.Configs[k], want[k]) {
				d.Configs = append(d.Configs, ConfigChange{Topic: t.Name, Key: k, From: s.Configs[k], To: want[k]})
			}
		}
	}
	if ns := namespace(c); ns != "" {
		for _, name := range all {
			if _, declared := c.Topic(name); !declared && strings.HasPrefix(name, ns) {
				d.Warnings = append(d.Warnings, Warning{name, "in the cluster under " + ns + " but not declared: topics are never deleted"})
			}
		}
	}
	return d, nil
}

// namespace returns the longest common prefix of the declared topic names that ends in a dot, or
// "" when there is none.
func namespace(c *Catalog) string {
	if len(c.Topics) == 0 {
		return ""
	}
	p := c.Topics[0].Name
	for _, t := range c.Topics[1:] {
		n := 0
		for n < len(p) && n < len(t.Name) && p[n] == t.Name[n] {
			n++
		}
		p = p[:n]
	}
	return p[:strings.LastIndexByte(p, '.')+1]
}

func creation(t Topic) Creation {
	return Creation{Topic: t.Name, Partitions: t.Partitions, ReplicationFactor: t.ReplicationFactor, Configs: t.Configs()}
}

// create creates one topic and reports whether it did; a topic that already exists is not an
// error (it was created concurrently, or is not yet in the metadata the caller listed).
func create(ctx context.Context, adm *kadm.Client, c Creation) (bool, error) {
	configs := map[string]*string{}
	for k, v := range c.Configs {
		configs[k] = &v
	}
	resp, err := adm.CreateTopic(ctx, c.Partitions, c.ReplicationFactor, configs, c.Topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case errors.Is(err, kerr.TopicAlreadyExists):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("topics: creating %s: %w", c.Topic, err)
	}
	return true, nil
}

// settleTimeout bounds how long Apply waits for the cluster's metadata to show its changes.
const settleTimeout = 30 * time.Second

// Apply carries out the diff's changes: it creates the missing topics, raises partition counts to
// the declared totals and sets the changed configs (incrementally: other configs stay as they
// are). Warnings are not acted on. It returns once the cluster's metadata and configs show the
// changes (a broker serves metadata that may trail the controller for a moment), so a Plan right
// after an Apply is empty.
func Apply(ctx context.Context, adm *kadm.Client, d *Diff) error {
	for _, c := range d.Create {
		if _, err := create(ctx, adm, c); err != nil {
			return err
		}
	}
	for _, p := range d.Partitions {
		resp, err := adm.UpdatePartitions(ctx, int(p.To), p.Topic)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("topics: raising %s to %d partitions: %w", p.Topic, p.To, err)
		}
	}
	byTopic := map[string][]kadm.AlterConfig{}
	for _, c := range d.Configs {
		byTopic[c.Topic] = append(byTopic[c.Topic], kadm.AlterConfig{Op: kadm.SetConfig, Name: c.Key, Value: kadm.StringPtr(c.To)})
	}
	for _, topic := range slices.Sorted(maps.Keys(byTopic)) {
		resp, err := adm.AlterTopicConfigs(ctx, byTopic[topic], topic)
		if err == nil {
			var r kadm.AlterConfigsResponse
			r, err = resp.On(topic, nil)
			if err == nil {
				err = r.Err
			}
		}
		if err != nil {
			return fmt.Errorf("topics: setting configs of %s: %w", topic, err)
		}
	}
	return settle(ctx, adm, d)
}

// settle waits until the cluster shows the diff's changes: created topics exist, partition counts
// reached their targets and changed configs hold their new values.
func settle(ctx context.Context, adm *kadm.Client, d *Diff) error {
	if d.Empty() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	// Not streams.Backoff: the SDK imports this package, so this one doubling wait stays here.
	backoff := 10 * time.Millisecond
	for {
		pending, err := unsettled(ctx, adm, d)
		if err == nil && pending == "" {
			return nil
		}
		if err == nil {
			err = errors.New(pending)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics: applied, but the cluster does not show it yet: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// unsettled returns the first change of d the cluster does not show yet, or "".
func unsettled(ctx context.Context, adm *kadm.Client, d *Diff) (string, error) {
	var names []string
	for _, c := range d.Create {
		names = append(names, c.Topic)
	}
	for _, p := range d.Partitions {
		names = append(names, p.Topic)
	}
	details, err := listTopics(ctx, adm, names...)
	if err != nil {
		return "", err
	}
	for _, c := range d.Create {
		td, ok := details[c.Topic]
		if !ok || td.Err != nil {
			return c.Topic + " is not in the metadata", nil
		}
		if n := len(td.Partitions); n < int(c.Partitions) {
			return fmt.Sprintf("%s shows %d of its %d partitions", c.Topic, n, c.Partitions), nil
		}
	}
	for _, p := range d.Partitions {
		if n := len(details[p.Topic].Partitions); n < int(p.To) {
			return fmt.Sprintf("%s has %d of %d partitions", p.Topic, n, p.To), nil
		}
	}
	var altered []string
	for _, c := range d.Configs {
		if !slices.Contains(altered, c.Topic) {
			altered = append(altered, c.Topic)
		}
	}
	current, err := topicConfigs(ctx, adm, altered)
	if err != nil {
		return "", err
	}
	for _, c := range d.Configs {
		if got := current[c.Topic][c.Key]; !sameConfig(c.Key, got, c.To) {
			return fmt.Sprintf("%s %s is %q, not %q", c.Topic, c.Key, got, c.To), nil
		}
	}
	return "", nil
}

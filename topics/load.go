package topics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrInvalid is wrapped by every error Load returns for declarations that are malformed or
// inconsistent; the message names the file and the key.
var ErrInvalid = errors.New("topics: invalid declarations")

type catalogFile struct {
	Systems      map[string]systemDecl `yaml:"systems"`
	OrderingKeys map[string]string     `yaml:"orderingKeys"`
	RabbitMQ     *rabbitMQDecl         `yaml:"rabbitmq"`
}

type systemDecl struct {
	Description string   `yaml:"description"`
	Publishes   []string `yaml:"publishes"`
	Subscribes  []string `yaml:"subscribes"`
}

type topicsFile struct {
	Defaults     settings               `yaml:"defaults"`
	Environments map[string]envSettings `yaml:"environments"`
	Topics       []topicDecl            `yaml:"topics"`
	DeadLetters  deadLetterDecl         `yaml:"deadLetters"`
	Redrive      deadLetterDecl         `yaml:"redrive"`
	Audit        deadLetterDecl         `yaml:"audit"`
	PrivacyKeys  *deadLetterDecl        `yaml:"privacyKeys"`
	GroupPrefix  string                 `yaml:"groupPrefix"`
}

// envSettings override the topic settings for one environment, and may change the group prefix.
type envSettings struct {
	settings    `yaml:",inline"`
	GroupPrefix *string `yaml:"groupPrefix"`
}

// settings are the per-topic values that defaults, topics and environments may set; nil = unset.
type settings struct {
	Partitions        *int32  `yaml:"partitions"`
	ReplicationFactor *int16  `yaml:"replicationFactor"`
	MinInsyncReplicas *int    `yaml:"minInsyncReplicas"`
	Retention         *string `yaml:"retention"`
	CleanupPolicy     *string `yaml:"cleanupPolicy"`
}

type topicDecl struct {
	Name         string              `yaml:"name"`
	Owner        string              `yaml:"owner"`
	Description  string              `yaml:"description"`
	EventTypes   []string            `yaml:"eventTypes"`
	Environments map[string]settings `yaml:"environments"`
	settings     `yaml:",inline"`
}

type deadLetterDecl struct {
	Name     string `yaml:"name"`
	settings `yaml:",inline"`
}

var (
	eventTypeRe = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$`)
	fieldRe     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	systemRe    = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	topicRe     = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
)

// Load reads CatalogFile and TopicsFile from fsys and resolves topic settings for env ("" for the
// defaults alone). Unknown keys, unknown environments and every inconsistency are refused with an
// error wrapping ErrInvalid.
func Load(fsys fs.FS, env string) (*Catalog, error) {
	var cf catalogFile
	if err := decodeStrict(fsys, CatalogFile, &cf); err != nil {
		return nil, err
	}
	var tf topicsFile
	if err := decodeStrict(fsys, TopicsFile, &tf); err != nil {
		return nil, err
	}
	if _, ok := tf.Environments[env]; env != "" && !ok {
		return nil, invalid(TopicsFile, "environments", "unknown environment %q (declared: %s)", env, strings.Join(sortedKeys(tf.Environments), ", "))
	}
	c := &Catalog{Env: env, Environments: sortedKeys(tf.Environments), systems: map[string]int{}, topics: map[string]int{}, route: map[string]int{}, owner: map[string]string{},
		orderingKeys: map[string]string{}}
	if err := c.loadSystems(cf); err != nil {
		return nil, err
	}
	if err := c.loadOrderingKeys(cf); err != nil {
		return nil, err
	}
	if err := c.loadTopics(tf, env); err != nil {
		return nil, err
	}
	if err := c.loadRabbitMQ(cf.RabbitMQ, tf, env); err != nil {
		return nil, err
	}
	return c, nil
}

func decodeStrict(fsys fs.FS, name string, v any) error {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return fmt.Errorf("topics: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, name, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

func invalid(file, key, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s: %s", ErrInvalid, file, key, fmt.Sprintf(format, a...))
}

func (c *Catalog) loadSystems(cf catalogFile) error {
	if len(cf.Systems) == 0 {
		return invalid(CatalogFile, "systems", "no systems declared")
	}
	for _, name := range sortedKeys(cf.Systems) {
		d := cf.Systems[name]
		key := "systems." + name
		if !systemRe.MatchString(name) {
			return invalid(CatalogFile, key, "system name must match %s", systemRe)
		}
		for i, et := range d.Publishes {
			k := fmt.Sprintf("%s.publishes[%d]", key, i)
			if !eventTypeRe.MatchString(et) {
				return invalid(CatalogFile, k, "event type %q is not {resource}.{action} in lower snake case", et)
			}
			if prev, dup := c.owner[et]; dup {
				return invalid(CatalogFile, k, "event type %q is already published by %s: one owner per type", et, prev)
			}
			c.owner[et] = name
		}
		c.systems[name] = len(c.Systems)
		c.Systems = append(c.Systems, System{Name: name, Description: d.Description, Publishes: slices.Clone(d.Publishes)})
	}
	for _, name := range sortedKeys(cf.Systems) {
		d := cf.Systems[name]
		s := &c.Systems[c.systems[name]]
		if slices.Equal(d.Subscribes, []string{"*"}) {
			s.SubscribesAll = true
			s.Subscribes = c.EventTypes()
			continue
		}
		for i, et := range d.Subscribes {
			k := fmt.Sprintf("systems.%s.subscribes[%d]", name, i)
			if et == "*" {
				return invalid(CatalogFile, k, `"*" must be the only entry`)
			}
			if _, ok := c.owner[et]; !ok {
				return invalid(CatalogFile, k, "subscription to %q, which no system publishes", et)
			}
			if slices.Contains(s.Subscribes, et) {
				return invalid(CatalogFile, k, "%q listed twice", et)
			}
			s.Subscribes = append(s.Subscribes, et)
		}
		slices.Sort(s.Subscribes)
	}
	return nil
}

// loadOrderingKeys checks that every ordering key names a published event type and is a valid Avro
// field name. Whether the field exists in the type's schemas is checked by the consumer, which has
// the schemas.
func (c *Catalog) loadOrderingKeys(cf catalogFile) error {
	for _, et := range sortedKeys(cf.OrderingKeys) {
		field := cf.OrderingKeys[et]
		if _, ok := c.owner[et]; !ok {
			return invalid(CatalogFile, "orderingKeys."+et, "%q is not published by any system", et)
		}
		if !fieldRe.MatchString(field) {
			return invalid(CatalogFile, "orderingKeys."+et, "%q is not a top-level data field name", field)
		}
		c.orderingKeys[et] = field
	}
	return nil
}

func (c *Catalog) loadTopics(tf topicsFile, env string) error {
	envSet := tf.Environments[env]
	groupPrefix := tf.GroupPrefix
	if envSet.GroupPrefix != nil {
		groupPrefix = *envSet.GroupPrefix
	}
	for i, d := range tf.Topics {
		key := fmt.Sprintf("topics[%d]", i)
		if d.Name != "" {
			key = fmt.Sprintf("topics[%s]", d.Name)
		}
		if !topicRe.MatchString(d.Name) {
			return invalid(TopicsFile, key+".name", "topic name %q must be 1-249 of [a-zA-Z0-9._-]", d.Name)
		}
		if _, dup := c.topics[d.Name]; dup {
			return invalid(TopicsFile, key+".name", "topic declared twice")
		}
		if _, ok := c.systems[d.Owner]; !ok {
			return invalid(TopicsFile, key+".owner", "owner %q is not a system of %s", d.Owner, CatalogFile)
		}
		if len(d.EventTypes) == 0 {
			return invalid(TopicsFile, key+".eventTypes", "a topic carries at least one event type")
		}
		for j, et := range d.EventTypes {
			k := fmt.Sprintf("%s.eventTypes[%d]", key, j)
			owner, ok := c.owner[et]
			if !ok {
				return invalid(TopicsFile, k, "%q is not published by any system in %s", et, CatalogFile)
			}
			if owner != d.Owner {
				return invalid(TopicsFile, k, "%q is published by %s, but the topic's owner is %s (one writer per topic)", et, owner, d.Owner)
			}
			if prev, dup := c.route[et]; dup {
				return invalid(TopicsFile, k, "%q is routed twice (also to %s)", et, c.Topics[prev].Name)
			}
			c.route[et] = len(c.Topics)
		}
		for e := range d.Environments {
			if _, ok := tf.Environments[e]; !ok {
				return invalid(TopicsFile, key+".environments."+e, "unknown environment (declared: %s)", strings.Join(sortedKeys(tf.Environments), ", "))
			}
		}
		t := Topic{Name: d.Name, Kind: KindEvents, Owner: d.Owner, Description: d.Description, EventTypes: slices.Clone(d.EventTypes)}
		if err := resolve(&t, key, tf.Defaults, d.settings, envSet.settings, d.Environments[env]); err != nil {
			return err
		}
		c.add(t)
	}
	for _, et := range c.EventTypes() {
		if _, ok := c.route[et]; !ok {
			return invalid(TopicsFile, "topics", "event type %q (published by %s) is routed to no topic", et, c.owner[et])
		}
	}
	for _, d := range []struct {
		key  string
		decl deadLetterDecl
	}{{"deadLetters", tf.DeadLetters}, {"redrive", tf.Redrive}} {
		if !strings.Contains(d.decl.Name, "{system}") {
			return invalid(TopicsFile, d.key+".name", "must contain {system}, got %q", d.decl.Name)
		}
	}
	audit := Topic{Name: tf.Audit.Name, Kind: KindAudit, Description: "every publish and handling outcome of every system"}
	if _, dup := c.topics[audit.Name]; dup || !topicRe.MatchString(audit.Name) {
		return invalid(TopicsFile, "audit.name", "topic %q clashes with a declared topic or is not a valid name", audit.Name)
	}
	if err := resolve(&audit, "audit", tf.Defaults, tf.Audit.settings, envSet.settings); err != nil {
		return err
	}
	c.add(audit)
	c.AuditTopic = audit.Name
	if d := tf.PrivacyKeys; d != nil {
		keys := Topic{Name: d.Name, Kind: KindKeys, Description: "wrapped data keys and erasures of guest-data protection"}
		if _, dup := c.topics[keys.Name]; dup || !topicRe.MatchString(keys.Name) {
			return invalid(TopicsFile, "privacyKeys.name", "topic %q clashes with a declared topic or is not a valid name", keys.Name)
		}
		if err := resolve(&keys, "privacyKeys", tf.Defaults, d.settings, envSet.settings); err != nil {
			return err
		}
		// A deleted key record would destroy every event sealed with it: only compaction may remove one.
		if keys.CleanupPolicy != "compact" || keys.Retention >= 0 {
			return invalid(TopicsFile, "privacyKeys", `must have cleanupPolicy "compact" and retention "infinite" (a deleted key makes its events unreadable)`)
		}
		c.add(keys)
		c.KeyTopic = keys.Name
	}
	for i := range c.Systems {
		s := &c.Systems[i]
		s.Group = groupPrefix + s.Name
		if len(s.Subscribes) == 0 {
			continue
		}
		var err error
		if s.DeadLetterTopic, err = c.addPerSystem(s.Name, "deadLetters", KindDeadLetter, "events "+s.Name+" gave up on",
			tf.DeadLetters, tf.Defaults, envSet.settings); err != nil {
			return err
		}
		if s.RedriveTopic, err = c.addPerSystem(s.Name, "redrive", KindRedrive, "dead letters redriven to "+s.Name,
			tf.Redrive, tf.Defaults, envSet.settings); err != nil {
			return err
		}
	}
	return nil
}

// addPerSystem adds the topic of system that decl (under key) names with {system}, and returns its name.
func (c *Catalog) addPerSystem(system, key, kind, description string, decl deadLetterDecl, defaults, env settings) (string, error) {
	t := Topic{Name: strings.ReplaceAll(decl.Name, "{system}", system), Kind: kind, Owner: system, Description: description}
	if _, dup := c.topics[t.Name]; dup || !topicRe.MatchString(t.Name) {
		return "", invalid(TopicsFile, key+".name", "topic %q clashes with a declared topic or is not a valid name", t.Name)
	}
	if err := resolve(&t, key, defaults, decl.settings, env); err != nil {
		return "", err
	}
	c.add(t)
	return t.Name, nil
}

func (c *Catalog) add(t Topic) {
	c.topics[t.Name] = len(c.Topics)
	c.Topics = append(c.Topics, t)
}

// resolve applies layers in order (later wins) and validates the result.
func resolve(t *Topic, key string, layers ...settings) error {
	var m settings
	for _, l := range layers {
		m.Partitions = pick(m.Partitions, l.Partitions)
		m.ReplicationFactor = pick(m.ReplicationFactor, l.ReplicationFactor)
		m.MinInsyncReplicas = pick(m.MinInsyncReplicas, l.MinInsyncReplicas)
		m.Retention = pick(m.Retention, l.Retention)
		m.CleanupPolicy = pick(m.CleanupPolicy, l.CleanupPolicy)
	}
	switch {
	case m.Partitions == nil || *m.Partitions < 1:
		return invalid(TopicsFile, key+".partitions", "must be at least 1 (set it here or in defaults)")
	case m.ReplicationFactor == nil || *m.ReplicationFactor < 1:
		return invalid(TopicsFile, key+".replicationFactor", "must be at least 1 (set it here or in defaults)")
	case m.MinInsyncReplicas == nil || *m.MinInsyncReplicas < 1 || *m.MinInsyncReplicas > int(*m.ReplicationFactor):
		return invalid(TopicsFile, key+".minInsyncReplicas", "must be between 1 and the replication factor")
	case m.Retention == nil:
		return invalid(TopicsFile, key+".retention", "must be set here or in defaults")
	case m.CleanupPolicy == nil || !slices.Contains([]string{"delete", "compact", "compact,delete"}, *m.CleanupPolicy):
		return invalid(TopicsFile, key+".cleanupPolicy", `must be "delete", "compact" or "compact,delete"`)
	}
	r, err := ParseDuration(*m.Retention)
	if err != nil {
		return invalid(TopicsFile, key+".retention", "%v", err)
	}
	t.Partitions, t.ReplicationFactor, t.MinInsyncReplicas = *m.Partitions, *m.ReplicationFactor, *m.MinInsyncReplicas
	t.Retention, t.CleanupPolicy = r, *m.CleanupPolicy
	return nil
}

func pick[T any](cur, next *T) *T {
	if next != nil {
		return next
	}
	return cur
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

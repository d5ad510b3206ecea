// Package topics loads the hotelbus event catalog and topic declarations (the YAML files in this
// directory, embedded in the binary) and validates them.
//
// The catalog says which system publishes and which subscribes to each event type; the topic
// declarations say which topic carries each type and how the topic is configured per environment.
// Load refuses a declaration set that would let two systems write one topic, route a type twice or
// never, or subscribe a system to a type that nobody publishes; every refusal names the file and key.
package topics

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed catalog.yaml topics.yaml views.yaml privacy.yaml
var embedded embed.FS

// Embedded returns the declarations compiled into the binary.
func Embedded() fs.FS { return embedded }

// Files read by Load, relative to the root of the fs.FS.
const (
	CatalogFile = "catalog.yaml"
	TopicsFile  = "topics.yaml"
	// PrivacyFile names the data subject of each event type with personal data; streams/privacy
	// reads and validates it (Load does not).
	PrivacyFile = "privacy.yaml"
)

// Topic kinds.
const (
	KindEvents     = "events"
	KindDeadLetter = "deadletter"
	KindRedrive    = "redrive"
	KindAudit      = "audit"
	KindKeys       = "keys"
)

// Catalog is the validated, environment-resolved view of the declarations.
type Catalog struct {
	// Env is the environment the settings were resolved for ("" = the defaults).
	Env string
	// Environments are the environments topics.yaml declares, sorted.
	Environments []string
	Systems      []System
	Topics       []Topic
	// AuditTopic is the audit log every system writes (see streams.AuditRecord).
	AuditTopic string
	// KeyTopic is the compacted topic of wrapped data keys and erasures (streams/privacy); "" when
	// topics.yaml declares none.
	KeyTopic string
	// RabbitMQ is the RabbitMQ bridge's topology; nil when the catalog declares none.
	RabbitMQ *RabbitMQ

	systems map[string]int
	topics  map[string]int
	route   map[string]int // event type -> index into Topics
	owner   map[string]string
	// orderingKeys maps an event type to the data field that orders it (absent: the record key).
	orderingKeys map[string]string
}

// System is one hotel system: what it publishes and subscribes to, its consumer group and its
// dead-letter topic.
type System struct {
	Name        string
	Description string
	// Publishes lists the event types the system owns, in declaration order.
	Publishes []string
	// Subscribes lists the event types the system reads, sorted; a "*" subscription is expanded.
	Subscribes []string
	// SubscribesAll is true when the declaration was ["*"].
	SubscribesAll bool
	// Group is the consumer group the system reads through.
	Group string
	// DeadLetterTopic is where the system's consumer sends events it gave up on ("" when it
	// subscribes to nothing).
	DeadLetterTopic string
	// RedriveTopic carries dead letters redriven to the system; its consumer group reads it with
	// the event topics ("" when it subscribes to nothing).
	RedriveTopic string
}

// Topic is one declared topic with its settings resolved for the catalog's environment.
type Topic struct {
	Name        string
	Kind        string
	Owner       string
	Description string
	// EventTypes routed to the topic, in declaration order (empty for dead-letter topics).
	EventTypes        []string
	Partitions        int32
	ReplicationFactor int16
	MinInsyncReplicas int
	// Retention is retention.ms; a negative value keeps records forever.
	Retention     time.Duration
	CleanupPolicy string
}

// Configs returns the topic-level Kafka configs hotelbus manages for the topic.
func (t Topic) Configs() map[string]string {
	ms := int64(-1)
	if t.Retention >= 0 {
		ms = t.Retention.Milliseconds()
	}
	return map[string]string{
		"cleanup.policy":      t.CleanupPolicy,
		"min.insync.replicas": strconv.Itoa(t.MinInsyncReplicas),
		"retention.ms":        strconv.FormatInt(ms, 10),
	}
}

// System returns the named system.
func (c *Catalog) System(name string) (System, bool) {
	i, ok := c.systems[name]
	if !ok {
		return System{}, false
	}
	return c.Systems[i], true
}

// ErrUnknownSystem is wrapped by LookupSystem's error for a name the catalog does not declare.
var ErrUnknownSystem = errors.New("topics: unknown system")

// ErrUnknownEventType is wrapped by LookupEventType's error for a type no system publishes.
var ErrUnknownEventType = errors.New("topics: unknown event type")

// LookupSystem returns the named system, or an error wrapping ErrUnknownSystem that quotes the
// name, suggests the systems it may be a typo of (Suggest) and lists the declared systems.
func (c *Catalog) LookupSystem(name string) (System, error) {
	if s, ok := c.System(name); ok {
		return s, nil
	}
	names := make([]string, len(c.Systems))
	for i, s := range c.Systems {
		names[i] = s.Name
	}
	return System{}, fmt.Errorf("%w %q%s (the systems are %s)", ErrUnknownSystem, name, DidYouMean(name, names), strings.Join(names, ", "))
}

// LookupEventType returns the topic of eventType, or an error wrapping ErrUnknownEventType that
// quotes the name and suggests the published types it may be a typo of (Suggest).
func (c *Catalog) LookupEventType(eventType string) (Topic, error) {
	if t, ok := c.TopicFor(eventType); ok {
		return t, nil
	}
	return Topic{}, fmt.Errorf("%w %q%s (`hotelbus catalog` lists them)", ErrUnknownEventType, eventType, DidYouMean(eventType, c.EventTypes()))
}

// Suggest returns the candidates name may be a typo of, in the candidates' order: those within an
// edit distance of 2 (ignoring case, as cobra's command suggestions with their default
// SuggestionsMinimumDistance) and those name is a prefix of (when it has at least 3 characters).
func Suggest(name string, candidates []string) []string {
	var out []string
	lower := strings.ToLower(name)
	for _, c := range candidates {
		if c == name {
			continue
		}
		lc := strings.ToLower(c)
		if editDistance(lower, lc) <= 2 || (len(lower) >= 3 && strings.HasPrefix(lc, lower)) {
			out = append(out, c)
		}
	}
	return out
}

// DidYouMean returns "; did you mean A or B?" for Suggest's candidates, or "" when there are none.
func DidYouMean(name string, candidates []string) string {
	s := Suggest(name, candidates)
	if len(s) == 0 {
		return ""
	}
	return "; did you mean " + strings.Join(s, " or ") + "?"
}

// editDistance is the Levenshtein distance of a and b in runes. It is written here because
// cobra's is unexported and the names it compares are short (a two-row table suffices).
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev, cur := make([]int, len(rb)+1), make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// Topic returns the named topic.
func (c *Catalog) Topic(name string) (Topic, bool) {
	i, ok := c.topics[name]
	if !ok {
		return Topic{}, false
	}
	return c.Topics[i], true
}

// TopicFor returns the topic an event type is routed to.
func (c *Catalog) TopicFor(eventType string) (Topic, bool) {
	i, ok := c.route[eventType]
	if !ok {
		return Topic{}, false
	}
	return c.Topics[i], true
}

// Owner returns the system that publishes an event type.
func (c *Catalog) Owner(eventType string) (string, bool) {
	o, ok := c.owner[eventType]
	return o, ok
}

// OrderingKey returns the top-level data field whose value orders events of eventType within a
// consumer (declared under orderingKeys in the catalog), or "" when the type is ordered by its record
// key, tenantId.
func (c *Catalog) OrderingKey(eventType string) string { return c.orderingKeys[eventType] }

// EventTypes returns every published event type, sorted.
func (c *Catalog) EventTypes() []string {
	out := make([]string, 0, len(c.owner))
	for t := range c.owner {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// SubscribedTopics returns the event topics that carry at least one type the system subscribes to,
// sorted.
func (c *Catalog) SubscribedTopics(system string) []string {
	s, ok := c.System(system)
	if !ok {
		return nil
	}
	var out []string
	for _, et := range s.Subscribes {
		if t, ok := c.TopicFor(et); ok && !slices.Contains(out, t.Name) {
			out = append(out, t.Name)
		}
	}
	slices.Sort(out)
	return out
}

// ParseDuration parses a retention: a Go duration, a whole number of days ("7d"), or "infinite".
func ParseDuration(s string) (time.Duration, error) {
	switch {
	case s == "infinite":
		return -1, nil
	case strings.HasSuffix(s, "d"):
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a whole number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (use s, m, h, d or \"infinite\")", s)
	}
	return d, nil
}

// WithPrefix returns a copy of the catalog whose topic names (event and dead-letter) and consumer
// groups start with prefix, so that several copies of the platform (test runs, staging beside
// production) can share one cluster without seeing each other.
func (c *Catalog) WithPrefix(prefix string) *Catalog {
	out := &Catalog{Env: c.Env, systems: c.systems, route: c.route, owner: c.owner, orderingKeys: c.orderingKeys,
		topics: make(map[string]int, len(c.topics))}
	out.Systems = make([]System, len(c.Systems))
	for i, s := range c.Systems {
		s.Group = prefix + s.Group
		if s.DeadLetterTopic != "" {
			s.DeadLetterTopic = prefix + s.DeadLetterTopic
			s.RedriveTopic = prefix + s.RedriveTopic
		}
		out.Systems[i] = s
	}
	out.AuditTopic = prefix + c.AuditTopic
	if c.KeyTopic != "" {
		out.KeyTopic = prefix + c.KeyTopic
	}
	if c.RabbitMQ != nil {
		r := *c.RabbitMQ
		r.Group, r.DeadLetterTopic = prefix+r.Group, prefix+r.DeadLetterTopic
		out.RabbitMQ = &r
	}
	out.Topics = make([]Topic, len(c.Topics))
	for i, t := range c.Topics {
		t.Name = prefix + t.Name
		out.Topics[i] = t
		out.topics[t.Name] = i
	}
	return out
}

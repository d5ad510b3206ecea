// Package topology renders the chart's files/topology.yaml from the repository's topic
// declarations (topics/catalog.yaml, topics/topics.yaml): per environment, every topic with its
// partitions, replicas and configs, every system's consumer group, the partitions that group reads
// and the broker ACLs ownership gives it. The chart reads that file for Strimzi KafkaTopic and
// KafkaUser resources and for the KEDA replica cap; TestTopologyIsCurrent keeps it in step.
package topology

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hotelbus/hotelbus/topics"
)

// Environments are the environments rendered, in file order.
var Environments = []string{"dev", "test", "staging", "prod"}

// File is the document written to files/topology.yaml.
type File struct {
	Environments map[string]Environment `yaml:"environments"`
}

// Environment is the catalog resolved for one environment. Names carry no --prefix: the chart
// prepends kafka.topicPrefix to every topic and group name.
type Environment struct {
	Topics  []Topic           `yaml:"topics"`
	Systems map[string]System `yaml:"systems"`
	// Gateway holds the ACLs of the gateway's principal: it publishes for every system, so it
	// writes every event topic and the audit topic.
	Gateway Principal `yaml:"gateway"`
	// GroupPrefix starts every consumer group name (the monitor reads groups by this prefix).
	GroupPrefix string `yaml:"groupPrefix"`
	// TopicPrefix starts every topic name.
	TopicPrefix string `yaml:"topicPrefix"`
}

// Topic is one topic as Strimzi's KafkaTopic spec wants it.
type Topic struct {
	Name       string `yaml:"name"`
	Kind       string `yaml:"kind"`
	Owner      string `yaml:"owner,omitempty"`
	Partitions int32  `yaml:"partitions"`
	Replicas   int16  `yaml:"replicas"`
	// Config holds Kafka topic configs as strings (as Kafka itself does), so that no number
	// passes through a float on its way into a manifest.
	Config map[string]string `yaml:"config"`
}

// System is one system's consumer side and its principal's ACLs.
type System struct {
	// Group is the consumer group; empty for a system that subscribes to nothing.
	Group string `yaml:"group"`
	// GroupPartitions is the number of partitions the group reads (subscribed event topics and the
	// redrive topic): more members than that stay idle, so it caps autoscaling.
	GroupPartitions int32 `yaml:"groupPartitions"`
	Principal       `yaml:",inline"`
}

// Principal is a set of ACLs in Strimzi's KafkaUser terms.
type Principal struct {
	ACLs []ACL `yaml:"acls"`
}

// ACL is one Strimzi simple-authorization rule: literal resource, operations allowed from any host.
type ACL struct {
	Type       string   `yaml:"type"`
	Name       string   `yaml:"name"`
	Operations []string `yaml:"operations"`
}

// Build resolves the declarations load returns for each of Environments.
func Build(load func(env string) (*topics.Catalog, error)) (*File, error) {
	f := &File{Environments: map[string]Environment{}}
	for _, env := range Environments {
		cat, err := load(env)
		if err != nil {
			return nil, fmt.Errorf("topology: environment %s: %w", env, err)
		}
		e := Environment{Systems: map[string]System{}}
		partitions := map[string]int32{}
		for _, t := range cat.Topics {
			partitions[t.Name] = t.Partitions
			cfg := t.Configs()
			e.Topics = append(e.Topics, Topic{Name: t.Name, Kind: t.Kind, Owner: t.Owner, Partitions: t.Partitions,
				Replicas: t.ReplicationFactor, Config: cfg})
			switch t.Kind {
			case topics.KindEvents, topics.KindAudit:
				e.Gateway.ACLs = append(e.Gateway.ACLs, ACL{Type: "topic", Name: t.Name, Operations: []string{"Write"}})
			case topics.KindKeys: // the gateway seals: it reads data keys and creates new subjects' keys
				e.Gateway.ACLs = append(e.Gateway.ACLs, ACL{Type: "topic", Name: t.Name, Operations: []string{"Read", "Write"}})
			}
		}
		byPrincipal := map[string][]topics.ACL{}
		for _, a := range topics.ACLs(cat, nil) {
			byPrincipal[a.Principal] = append(byPrincipal[a.Principal], a)
		}
		for _, s := range cat.Systems {
			sys := System{}
			if len(s.Subscribes) > 0 {
				sys.Group = s.Group
				for _, t := range cat.SubscribedTopics(s.Name) {
					sys.GroupPartitions += partitions[t]
				}
				sys.GroupPartitions += partitions[s.RedriveTopic]
			}
			sys.ACLs = strimziACLs(byPrincipal[topics.DefaultPrincipal(s.Name)])
			e.Systems[s.Name] = sys
		}
		e.GroupPrefix, e.TopicPrefix = commonPrefix(cat)
		f.Environments[env] = e
	}
	return f, nil
}

// strimziACLs folds entries on the same resource into one rule with several operations.
func strimziACLs(in []topics.ACL) []ACL {
	var out []ACL
	for _, a := range in {
		if a.Permission != "ALLOW" || a.PatternType != "literal" || a.Host != "*" {
			continue
		}
		op := operation(a.Operation)
		if n := len(out); n > 0 && out[n-1].Type == a.ResourceType && out[n-1].Name == a.Resource {
			if !slices.Contains(out[n-1].Operations, op) {
				out[n-1].Operations = append(out[n-1].Operations, op)
			}
			continue
		}
		out = append(out, ACL{Type: a.ResourceType, Name: a.Resource, Operations: []string{op}})
	}
	return out
}

// operation spells a Kafka operation (READ, DESCRIBE_CONFIGS) as Strimzi does (Read, DescribeConfigs).
func operation(op string) string {
	var b []byte
	upper := true
	for i := 0; i < len(op); i++ {
		c := op[i]
		switch {
		case c == '_':
			upper = true
			continue
		case upper:
			upper = false
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// commonPrefix returns the prefix shared by the consumer groups and the one shared by the topics,
// each cut after its last '.', for the monitor's prefixed ACLs.
func commonPrefix(cat *topics.Catalog) (group, topic string) {
	var groups, names []string
	for _, s := range cat.Systems {
		if s.Group != "" {
			groups = append(groups, s.Group)
		}
	}
	for _, t := range cat.Topics {
		names = append(names, t.Name)
	}
	return dotPrefix(groups), dotPrefix(names)
}

func dotPrefix(names []string) string {
	if len(names) == 0 {
		return ""
	}
	p := names[0]
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, p) {
			p = p[:len(p)-1]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i+1]
	}
	return ""
}

// Header is the comment at the top of files/topology.yaml.
const Header = `# Code generated from topics/catalog.yaml and topics/topics.yaml by
# charts/hotelbus/test/cmd/gentopology (make chart-topology). DO NOT EDIT.
# The chart reads it for Strimzi KafkaTopic/KafkaUser resources and the KEDA replica cap.
`

// Render returns the file's bytes: the header, then the document with sorted keys.
func Render(f *File) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(Header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("topology: encoding: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("topology: encoding: %w", err)
	}
	return buf.Bytes(), nil
}

// Embedded builds the topology of the declarations compiled into the topics package.
func Embedded() (*File, error) {
	return Build(func(env string) (*topics.Catalog, error) { return topics.Load(topics.Embedded(), env) })
}

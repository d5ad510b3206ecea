package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ACL is one broker ACL entry, in the terms of Kafka's kafka-acls tool.
type ACL struct {
	Principal string `json:"principal"`
	// Host is the client host the entry applies to; "*" is every host.
	Host string `json:"host"`
	// ResourceType is "topic" or "group" for derived ACLs (also "cluster", "transactional_id",
	// "delegation_token" or "user" for ones found on a cluster).
	ResourceType string `json:"resourceType"`
	Resource     string `json:"resource"`
	// PatternType is "literal" for derived ACLs ("prefixed" may be found on a cluster).
	PatternType string `json:"patternType"`
	// Operation is the Kafka operation in upper case: "READ", "WRITE", "DESCRIBE" ...
	Operation string `json:"operation"`
	// Permission is "ALLOW" or "DENY".
	Permission string `json:"permission"`
}

// String prints the entry as "<principal> ALLOW WRITE on topic hotelbus.pms.billing", naming the
// pattern and host only when they are not literal and "*".
func (a ACL) String() string {
	s := fmt.Sprintf("%s %s %s on %s %s", a.Principal, a.Permission, a.Operation, a.ResourceType, a.Resource)
	if a.PatternType != "literal" {
		s += " (" + a.PatternType + ")"
	}
	if a.Host != "*" {
		s += " from host " + a.Host
	}
	return s
}

// DefaultPrincipal maps a system to the principal its clients authenticate as: "User:<system>".
func DefaultPrincipal(system string) string { return "User:" + system }

// ACLs derives from ownership the ACLs the catalog's systems need, for principals named by
// principal (DefaultPrincipal when nil), sorted by principal, resource type, resource and
// operation. The set is minimal:
//
//   - WRITE on each topic the system owns, its dead-letter topic included;
//   - READ on each topic carrying a type it subscribes to, and on its own dead-letter topic (to
//     re-drive it);
//   - READ on its consumer group.
//
// DESCRIBE is not granted separately: Kafka's authorizer implies it from READ and WRITE (KIP-253
// ACL semantics), which covers metadata, list-offsets, find-coordinator and offset-fetch. Nor is
// IDEMPOTENT_WRITE on the cluster: since Kafka 3.0 (KIP-679) an idempotent producer needs only
// WRITE on some topic to get its producer id. Producing transactionally would need WRITE on a
// transactional id, which hotelbus does not use.
func ACLs(c *Catalog, principal func(system string) string) []ACL {
	if principal == nil {
		principal = DefaultPrincipal
	}
	seen := map[ACL]bool{}
	var out []ACL
	add := func(system, resourceType, resource, op string) {
		a := ACL{Principal: principal(system), Host: "*", ResourceType: resourceType, Resource: resource,
			PatternType: "literal", Operation: op, Permission: "ALLOW"}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, t := range c.Topics {
		if t.Kind == KindAudit || t.Kind == KindKeys {
			for _, s := range c.Systems {
				add(s.Name, "topic", t.Name, "WRITE")
				if t.Kind == KindKeys { // every reader of events with personal data needs the keys
					add(s.Name, "topic", t.Name, "READ")
				}
			}
			continue
		}
		add(t.Owner, "topic", t.Name, "WRITE")
	}
	for _, s := range c.Systems {
		for _, t := range c.SubscribedTopics(s.Name) {
			add(s.Name, "topic", t, "READ")
		}
		if s.DeadLetterTopic != "" {
			add(s.Name, "topic", s.DeadLetterTopic, "READ")
			add(s.Name, "topic", s.RedriveTopic, "READ")
		}
		if len(s.Subscribes) > 0 {
			add(s.Name, "group", s.Group, "READ")
		}
	}
	sortACLs(out)
	return out
}

func sortACLs(acls []ACL) {
	slices.SortFunc(acls, func(a, b ACL) int {
		for _, c := range [][2]string{{a.Principal, b.Principal}, {a.ResourceType, b.ResourceType}, {a.Resource, b.Resource},
			{a.Operation, b.Operation}, {a.Permission, b.Permission}, {a.PatternType, b.PatternType}, {a.Host, b.Host}} {
			if n := strings.Compare(c[0], c[1]); n != 0 {
				return n
			}
		}
		return 0
	})
}

// PlanACLs compares want with the ACLs the cluster holds for want's principals. add is what the
// cluster lacks; extra is what it holds for those principals beyond want (on any resource, allow or
// deny), reported for a human: hotelbus never deletes ACLs. Both are sorted.
func PlanACLs(ctx context.Context, adm *kadm.Client, want []ACL) (add, extra []ACL, err error) {
	var principals []string
	for _, a := range want {
		if !slices.Contains(principals, a.Principal) {
			principals = append(principals, a.Principal)
		}
	}
	have := map[ACL]bool{}
	if len(principals) > 0 {
		filter := kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Operations().
			Allow(principals...).AllowHosts().Deny(principals...).DenyHosts()
		results, err := adm.DescribeACLs(ctx, filter)
		if err != nil {
			return nil, nil, fmt.Errorf("topics: describing ACLs: %w", err)
		}
		for _, r := range results {
			if r.Err != nil {
				return nil, nil, fmt.Errorf("topics: describing ACLs: %w", r.Err)
			}
			for _, d := range r.Described {
				have[ACL{Principal: d.Principal, Host: d.Host, ResourceType: strings.ToLower(d.Type.String()), Resource: d.Name,
					PatternType: strings.ToLower(d.Pattern.String()), Operation: d.Operation.String(), Permission: d.Permission.String()}] = true
			}
		}
	}
	add, extra = []ACL{}, []ACL{}
	wanted := map[ACL]bool{}
	for _, a := range want {
		wanted[a] = true
		if !have[a] {
			add = append(add, a)
		}
	}
	for a := range have {
		if !wanted[a] {
			extra = append(extra, a)
		}
	}
	sortACLs(add)
	sortACLs(extra)
	return add, extra, nil
}

// ApplyACLs creates the given ACLs (topic and group ones). Creating an ACL that exists is a no-op
// on the broker.
func ApplyACLs(ctx context.Context, adm *kadm.Client, acls []ACL) error {
	// One CreateACLs request per principal, host and kind of entry, naming all its resources.
	type batch struct {
		principal, host string
		kind            parsedACL
	}
	var order []batch
	resources := map[batch][]string{}
	for _, a := range acls {
		kind, err := parseACL(a)
		if err != nil {
			return err
		}
		b := batch{a.Principal, a.Host, kind}
		if _, ok := resources[b]; !ok {
			order = append(order, b)
		}
		resources[b] = append(resources[b], a.Resource)
	}
	var errs []error
	for _, bt := range order {
		b := kadm.NewACLs().ResourcePatternType(bt.kind.pattern).Operations(bt.kind.op)
		if bt.kind.resourceType == kmsg.ACLResourceTypeTopic {
			b.Topics(resources[bt]...)
		} else {
			b.Groups(resources[bt]...)
		}
		if bt.kind.perm == kmsg.ACLPermissionTypeAllow {
			b.Allow(bt.principal).AllowHosts(bt.host)
		} else {
			b.Deny(bt.principal).DenyHosts(bt.host)
		}
		results, err := adm.CreateACLs(ctx, b)
		if err != nil {
			return fmt.Errorf("topics: creating ACLs: %w", err)
		}
		for _, r := range results {
			if r.Err != nil {
				errs = append(errs, fmt.Errorf("topics: creating ACL %s %s %s on %s %s: %w %s", r.Principal, r.Permission, r.Operation,
					strings.ToLower(r.Type.String()), r.Name, r.Err, r.ErrMessage))
			}
		}
	}
	return errors.Join(errs...)
}

// parsedACL is an ACL's kind in kmsg terms.
type parsedACL struct {
	resourceType kmsg.ACLResourceType
	pattern      kmsg.ACLResourcePatternType
	op           kmsg.ACLOperation
	perm         kmsg.ACLPermissionType
}

func parseACL(a ACL) (parsedACL, error) {
	var p parsedACL
	var err error
	if p.resourceType, err = kmsg.ParseACLResourceType(a.ResourceType); err != nil ||
		(p.resourceType != kmsg.ACLResourceTypeTopic && p.resourceType != kmsg.ACLResourceTypeGroup) {
		return p, fmt.Errorf("topics: ACL %s: resource type %q: only topic and group ACLs are created", a, a.ResourceType)
	}
	if p.pattern, err = kmsg.ParseACLResourcePatternType(a.PatternType); err != nil ||
		(p.pattern != kmsg.ACLResourcePatternTypeLiteral && p.pattern != kmsg.ACLResourcePatternTypePrefixed) {
		return p, fmt.Errorf("topics: ACL %s: pattern type %q is not literal or prefixed", a, a.PatternType)
	}
	if p.op, err = kmsg.ParseACLOperation(a.Operation); err != nil || p.op == kmsg.ACLOperationAny {
		return p, fmt.Errorf("topics: ACL %s: operation %q is not a Kafka operation", a, a.Operation)
	}
	if p.perm, err = kmsg.ParseACLPermissionType(a.Permission); err != nil || p.perm == kmsg.ACLPermissionTypeAny {
		return p, fmt.Errorf("topics: ACL %s: permission %q is not ALLOW or DENY", a, a.Permission)
	}
	if a.Principal == "" || a.Host == "" || a.Resource == "" {
		return p, fmt.Errorf("topics: ACL %s: principal, host and resource must be set", a)
	}
	return p, nil
}

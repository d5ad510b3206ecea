package topics_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/hotelbus/hotelbus/topics"
)

// grants are ACLs in short: "<principal> <operation> <type> <resource>".
func grants(acls []topics.ACL) []string {
	var out []string
	for _, a := range acls {
		out = append(out, a.Principal+" "+a.Operation+" "+a.ResourceType+" "+a.Resource)
	}
	return out
}

func TestACLsDerivedFromOwnership(t *testing.T) {
	c, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	acls := topics.ACLs(c, nil)
	got := grants(acls)

	// hotel-pms, written out by hand from the seed's table and topics.yaml, in ACLs' order.
	var pms []string
	for _, g := range got {
		if strings.HasPrefix(g, "User:hotel-pms ") {
			pms = append(pms, g)
		}
	}
	wantPMS := []string{
		"User:hotel-pms READ group hotelbus.hotel-pms",
		"User:hotel-pms WRITE topic hotelbus.audit",
		"User:hotel-pms READ topic hotelbus.dlq.hotel-pms",
		"User:hotel-pms WRITE topic hotelbus.dlq.hotel-pms",
		"User:hotel-pms READ topic hotelbus.member.customers",
		"User:hotel-pms READ topic hotelbus.member.loyalty",
		"User:hotel-pms WRITE topic hotelbus.pms.billing",
		"User:hotel-pms WRITE topic hotelbus.pms.reservations",
		"User:hotel-pms READ topic hotelbus.privacy.keys",
		"User:hotel-pms WRITE topic hotelbus.privacy.keys",
		"User:hotel-pms READ topic hotelbus.redrive.hotel-pms",
		"User:hotel-pms WRITE topic hotelbus.redrive.hotel-pms",
		"User:hotel-pms READ topic hotelbus.saas.services",
	}
	if !slices.Equal(pms, wantPMS) {
		t.Errorf("hotel-pms ACLs:\n got %q\nwant %q", pms, wantPMS)
	}

	// Every system: WRITE exactly on what it owns, the audit log and the key topic, READ exactly on
	// what it subscribes to plus its dead letters, redrive topic and the key topic, READ on its own
	// group, nothing else.
	for _, s := range c.Systems {
		want := []string{"User:" + s.Name + " WRITE topic " + c.AuditTopic,
			"User:" + s.Name + " WRITE topic " + c.KeyTopic, "User:" + s.Name + " READ topic " + c.KeyTopic}
		for _, tp := range c.Topics {
			if tp.Owner == s.Name {
				want = append(want, "User:"+s.Name+" WRITE topic "+tp.Name)
			}
		}
		for _, tn := range c.SubscribedTopics(s.Name) {
			want = append(want, "User:"+s.Name+" READ topic "+tn)
		}
		want = append(want, "User:"+s.Name+" READ topic "+s.DeadLetterTopic, "User:"+s.Name+" READ topic "+s.RedriveTopic,
			"User:"+s.Name+" READ group "+s.Group)
		var have []string
		for _, g := range got {
			if strings.HasPrefix(g, "User:"+s.Name+" ") {
				have = append(have, g)
			}
		}
		slices.Sort(want)
		want = slices.Compact(want)
		slices.Sort(have)
		if !slices.Equal(have, want) {
			t.Errorf("%s:\n got %q\nwant %q", s.Name, have, want)
		}
	}
	writers := map[string][]string{}
	for _, a := range acls {
		if a.Host != "*" || a.PatternType != "literal" || a.Permission != "ALLOW" {
			t.Errorf("not a literal ALLOW for every host: %+v", a)
		}
		if a.Operation == "WRITE" {
			writers[a.Resource] = append(writers[a.Resource], a.Principal)
		}
		if a.ResourceType != "topic" && a.ResourceType != "group" {
			t.Errorf("ACL on a %s: %s", a.ResourceType, a)
		}
	}
	for _, tp := range c.Topics {
		if tp.Kind == topics.KindAudit || tp.Kind == topics.KindKeys {
			if len(writers[tp.Name]) != len(c.Systems) {
				t.Errorf("%s writers %v, want every system", tp.Name, writers[tp.Name])
			}
			continue
		}
		if w := writers[tp.Name]; len(w) != 1 || w[0] != "User:"+tp.Owner {
			t.Errorf("%s writers %v, want only its owner %s", tp.Name, w, tp.Owner)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(got)))) != len(got) {
		t.Errorf("duplicate ACLs: %q", got)
	}

	custom := grants(topics.ACLs(c.WithPrefix("staging."), func(s string) string { return "User:CN=" + s + ".hotels.example" }))
	for _, want := range []string{"User:CN=hotel-pms.hotels.example WRITE topic staging.hotelbus.pms.reservations",
		"User:CN=hotel-pms.hotels.example READ group staging.hotelbus.hotel-pms"} {
		if !slices.Contains(custom, want) {
			t.Errorf("with a principal mapping and a prefix, %q missing from %q", want, custom)
		}
	}
}

// TestACLsEnforcedByBroker applies the derived ACLs to a broker with SASL and an authorizer and
// checks that the broker enforces ownership. It runs on kfake only: the rig's Apache Kafka has no
// authorizer configured.
func TestACLsEnforcedByBroker(t *testing.T) {
	const mech = "SCRAM-SHA-256"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(mech, "admin", "admin-pw"),
		kfake.User(mech, "hotel-pms", "pms-pw"),
		kfake.User(mech, "hotel-saas", "saas-pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	client := func(user, pass string, opts ...kgo.Opt) *kgo.Client {
		t.Helper()
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...),
			kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism())}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	adm := kadm.NewClient(client("admin", "admin-pw"))
	c, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topics.Ensure(ctx, adm, c); err != nil {
		t.Fatal(err)
	}
	want := topics.ACLs(c, nil)
	add, extra, err := topics.PlanACLs(ctx, adm, want)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(add, want) || len(extra) != 0 {
		t.Fatalf("plan on a cluster without ACLs: add %d of %d, extra %v", len(add), len(want), extra)
	}
	if err := topics.ApplyACLs(ctx, adm, add); err != nil {
		t.Fatal(err)
	}
	if add, extra, err := topics.PlanACLs(ctx, adm, want); err != nil || len(add) != 0 || len(extra) != 0 {
		t.Fatalf("plan after apply: add %v, extra %v, %v", add, extra, err)
	}

	// An ACL someone granted by hand is reported, never removed.
	if _, err := adm.CreateACLs(ctx, kadm.NewACLs().Topics("hotelbus.common.system").Allow("User:hotel-saas").Operations(kadm.OpRead)); err != nil {
		t.Fatal(err)
	}
	_, extra, err = topics.PlanACLs(ctx, adm, want)
	handGranted := topics.ACL{Principal: "User:hotel-saas", Host: "*", ResourceType: "topic", Resource: "hotelbus.common.system",
		PatternType: "literal", Operation: "READ", Permission: "ALLOW"}
	if err != nil || !slices.Equal(extra, []topics.ACL{handGranted}) {
		t.Fatalf("extra = %v, %v; want the hand-granted %s", extra, err, handGranted)
	}

	produce := func(cl *kgo.Client, topic string) error {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("tenant-1"), Value: []byte("v")}).FirstErr()
	}
	pms := client("hotel-pms", "pms-pw")
	for _, topic := range []string{"hotelbus.pms.reservations", "hotelbus.pms.billing", "hotelbus.dlq.hotel-pms"} {
		if err := produce(pms, topic); err != nil {
			t.Errorf("hotel-pms producing to its own %s: %v", topic, err)
		}
	}
	if err := produce(pms, "hotelbus.saas.services"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("hotel-pms producing to hotel-saas's topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := produce(client("hotel-saas", "saas-pw"), "hotelbus.saas.services"); err != nil {
		t.Fatalf("hotel-saas producing to its own topic: %v", err)
	}

	consume := func(group string) ([]*kgo.Record, error) {
		cl := client("hotel-pms", "pms-pw", kgo.ConsumerGroup(group), kgo.ConsumeTopics("hotelbus.saas.services"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		for {
			fs := cl.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				return nil, err
			}
			if recs := fs.Records(); len(recs) > 0 {
				return recs, cl.CommitUncommittedOffsets(ctx)
			}
		}
	}
	if recs, err := consume("hotelbus.hotel-pms"); err != nil || len(recs) != 1 {
		t.Errorf("hotel-pms consuming hotelbus.saas.services in its own group: %d records, %v", len(recs), err)
	}
	if recs, err := consume("hotelbus.hotel-saas"); !errors.Is(err, kerr.GroupAuthorizationFailed) {
		t.Errorf("hotel-pms consuming in hotel-saas's group: %d records, %v; want GROUP_AUTHORIZATION_FAILED", len(recs), err)
	}
}

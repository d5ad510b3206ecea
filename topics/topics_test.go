package topics_test

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hotelbus/hotelbus/topics"
)

// seedTable is the seed's "システム別イベント発行・購読一覧", transcribed independently of catalog.yaml.
var seedTable = map[string]struct{ publishes, subscribes []string }{
	"hotel-saas": {
		publishes:  []string{"service.ordered", "service.canceled", "feedback.submitted"},
		subscribes: []string{"reservation.updated", "checkin_checkout.checked_in", "checkin_checkout.checked_out", "customer.updated"},
	},
	"hotel-pms": {
		publishes: []string{"reservation.created", "reservation.updated", "reservation.canceled",
			"checkin_checkout.checked_in", "checkin_checkout.checked_out", "billing.created", "billing.paid"},
		subscribes: []string{"service.ordered", "service.canceled", "customer.updated", "member.status_changed"},
	},
	"hotel-member": {
		publishes: []string{"customer.created", "customer.updated", "member.registered", "member.status_changed", "points.added", "points.used"},
		subscribes: []string{"reservation.created", "reservation.canceled", "checkin_checkout.checked_in",
			"checkin_checkout.checked_out", "billing.paid", "feedback.submitted"},
	},
	"hotel-common": {
		publishes: []string{"system.maintenance", "system.error", "auth.user_created", "auth.permissions_changed"},
	},
}

func TestCatalogEqualsSeedTable(t *testing.T) {
	c, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Systems) != len(seedTable) {
		t.Fatalf("got %d systems, the seed has %d", len(c.Systems), len(seedTable))
	}
	var all []string
	for _, row := range seedTable {
		all = append(all, row.publishes...)
	}
	slices.Sort(all)
	if len(all) != 20 {
		t.Fatalf("seed table transcription has %d types, want 20", len(all))
	}
	if got := c.EventTypes(); !slices.Equal(got, all) {
		t.Errorf("event types:\n got %v\nwant %v", got, all)
	}
	for name, row := range seedTable {
		s, ok := c.System(name)
		if !ok {
			t.Errorf("system %s missing", name)
			continue
		}
		if !slices.Equal(s.Publishes, row.publishes) {
			t.Errorf("%s publishes %v, want %v", name, s.Publishes, row.publishes)
		}
		want := slices.Clone(row.subscribes)
		if name == "hotel-common" {
			want = all // すべてのイベント
			if !s.SubscribesAll {
				t.Errorf("hotel-common must subscribe to every event")
			}
		}
		slices.Sort(want)
		if !slices.Equal(s.Subscribes, want) {
			t.Errorf("%s subscribes %v, want %v", name, s.Subscribes, want)
		}
		for _, et := range row.publishes {
			if o, _ := c.Owner(et); o != name {
				t.Errorf("owner of %s = %q, want %s", et, o, name)
			}
		}
	}
}

func TestRoutingAndOwnership(t *testing.T) {
	c, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	writers := map[string]string{}
	for _, et := range c.EventTypes() {
		tp, ok := c.TopicFor(et)
		if !ok {
			t.Fatalf("%s is not routed", et)
		}
		owner, _ := c.Owner(et)
		if tp.Owner != owner {
			t.Errorf("%s routed to %s owned by %s, but published by %s", et, tp.Name, tp.Owner, owner)
		}
		if w, seen := writers[tp.Name]; seen && w != owner {
			t.Errorf("topic %s has two writers: %s and %s", tp.Name, w, owner)
		}
		writers[tp.Name] = owner
	}
	for _, s := range c.Systems {
		if s.Group != "hotelbus."+s.Name {
			t.Errorf("%s group = %q", s.Name, s.Group)
		}
		dlq, ok := c.Topic(s.DeadLetterTopic)
		if !ok || dlq.Kind != topics.KindDeadLetter || dlq.Owner != s.Name {
			t.Errorf("%s dead-letter topic %q: %+v", s.Name, s.DeadLetterTopic, dlq)
		}
		for _, tn := range c.SubscribedTopics(s.Name) {
			tp, _ := c.Topic(tn)
			if !slices.ContainsFunc(tp.EventTypes, func(et string) bool { return slices.Contains(s.Subscribes, et) }) {
				t.Errorf("%s reads %s but subscribes to none of its types", s.Name, tn)
			}
		}
	}
	if got := c.SubscribedTopics("hotel-pms"); !slices.Equal(got, []string{"hotelbus.member.customers", "hotelbus.member.loyalty", "hotelbus.saas.services"}) {
		t.Errorf("hotel-pms reads %v", got)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	prod, err := topics.Load(topics.Embedded(), "prod")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := topics.Load(topics.Embedded(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := prod.Topic("hotelbus.pms.billing")
	d, _ := dev.Topic("hotelbus.pms.billing")
	if p.ReplicationFactor != 3 || p.MinInsyncReplicas != 2 || p.Partitions != 12 || p.Retention != 30*24*time.Hour {
		t.Errorf("prod billing = %+v", p)
	}
	if d.ReplicationFactor != 1 || d.MinInsyncReplicas != 1 || d.Partitions != 3 || d.Retention != 30*24*time.Hour {
		t.Errorf("dev billing = %+v", d)
	}
	cfg := p.Configs()
	if cfg["retention.ms"] != "2592000000" || cfg["min.insync.replicas"] != "2" || cfg["cleanup.policy"] != "delete" {
		t.Errorf("configs = %v", cfg)
	}
	if _, err := topics.Load(topics.Embedded(), "qa"); !errors.Is(err, topics.ErrInvalid) || !strings.Contains(err.Error(), `unknown environment "qa"`) {
		t.Errorf("unknown env: %v", err)
	}
}

func TestLoadRefusesBadDeclarations(t *testing.T) {
	cat := read(t, topics.CatalogFile)
	top := read(t, topics.TopicsFile)
	cases := []struct {
		name, file, old, new string
		want                 []string // every fragment must appear in the error
	}{
		{"unknown key in catalog", topics.CatalogFile, "    description: AI concierge", "    descripton: AI concierge",
			[]string{"catalog.yaml", "descripton"}},
		{"unknown key in topics", topics.TopicsFile, "    partitions: 24", "    partitons: 24",
			[]string{"topics.yaml", "partitons"}},
		{"type routed twice", topics.TopicsFile, "      - billing.created\n      - billing.paid", "      - billing.created\n      - billing.paid\n      - reservation.created",
			[]string{"topics.yaml", "topics[hotelbus.pms.billing].eventTypes[2]", `"reservation.created" is routed twice`}},
		{"type never routed", topics.TopicsFile, "      - points.added\n", "",
			[]string{"topics.yaml", `"points.added"`, "routed to no topic"}},
		{"topic carries type its owner does not publish", topics.TopicsFile, "      - feedback.submitted\n    partitions: 6", "      - feedback.submitted\n      - customer.created\n    partitions: 6",
			[]string{"topics[hotelbus.saas.feedback].eventTypes[1]", `"customer.created" is published by hotel-member`, "one writer per topic"}},
		{"subscription nobody publishes", topics.CatalogFile, "      - customer.updated\n\n  hotel-pms:", "      - customer.updated\n      - room.cleaned\n\n  hotel-pms:",
			[]string{"catalog.yaml", "systems.hotel-saas.subscribes[4]", `"room.cleaned", which no system publishes`}},
		{"two owners of a type", topics.CatalogFile, "      - feedback.submitted\n    subscribes:\n      - reservation.updated", "      - feedback.submitted\n      - billing.paid\n    subscribes:\n      - reservation.updated",
			[]string{"catalog.yaml", "billing.paid", "one owner per type"}},
		{"unknown owner", topics.TopicsFile, "    owner: hotel-common\n    description: users", "    owner: hotel-spa\n    description: users",
			[]string{"topics[hotelbus.common.auth].owner", `"hotel-spa"`}},
		{"bad retention", topics.TopicsFile, "    retention: 30d\n\n  - name: hotelbus.saas.services", "    retention: 30 days\n\n  - name: hotelbus.saas.services",
			[]string{"topics[hotelbus.pms.billing].retention", "30 days"}},
		{"min ISR above replication", topics.TopicsFile, "  minInsyncReplicas: 2", "  minInsyncReplicas: 4",
			[]string{"minInsyncReplicas", "replication factor"}},
		{"bad cleanup policy", topics.TopicsFile, "  cleanupPolicy: delete", "  cleanupPolicy: purge",
			[]string{"cleanupPolicy"}},
		{"bad event type name", topics.CatalogFile, "      - service.canceled\n      - feedback", "      - Service-Canceled\n      - feedback",
			[]string{"systems.hotel-saas.publishes[1]", "Service-Canceled"}},
		{"key topic deleting by time", topics.TopicsFile, "  name: hotelbus.privacy.keys\n  partitions: 3\n  retention: infinite", "  name: hotelbus.privacy.keys\n  partitions: 3\n  retention: 30d",
			[]string{"privacyKeys", `retention "infinite"`}},
		{"key topic not compacted", topics.TopicsFile, "  retention: infinite\n  cleanupPolicy: compact", "  retention: infinite\n  cleanupPolicy: compact,delete",
			[]string{"privacyKeys", `cleanupPolicy "compact"`}},
		{"dead-letter pattern without placeholder", topics.TopicsFile, "  name: hotelbus.dlq.{system}", "  name: hotelbus.dlq",
			[]string{"deadLetters.name", "{system}"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{topics.CatalogFile: cat, topics.TopicsFile: top}
			if !strings.Contains(files[tc.file], tc.old) {
				t.Fatalf("fixture text %q not found in %s", tc.old, tc.file)
			}
			files[tc.file] = strings.Replace(files[tc.file], tc.old, tc.new, 1)
			fsys := fstest.MapFS{}
			for n, s := range files {
				fsys[n] = &fstest.MapFile{Data: []byte(s)}
			}
			_, err := topics.Load(fsys, "")
			if !errors.Is(err, topics.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "infinite": -1, "90m": 90 * time.Minute} {
		if got, err := topics.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0d", "-1h", "1w", "d"} {
		if _, err := topics.ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(topics.Embedded(), name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWithPrefix(t *testing.T) {
	c, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		t.Fatal(err)
	}
	p := c.WithPrefix("run42.")
	tp, ok := p.TopicFor("billing.paid")
	if !ok || tp.Name != "run42.hotelbus.pms.billing" {
		t.Errorf("TopicFor(billing.paid) = %q, %v", tp.Name, ok)
	}
	if _, ok := p.Topic("run42.hotelbus.pms.billing"); !ok {
		t.Error("prefixed topic not found by name")
	}
	s, _ := p.System("hotel-pms")
	if s.Group != "run42.hotelbus.hotel-pms" || s.DeadLetterTopic != "run42.hotelbus.dlq.hotel-pms" {
		t.Errorf("system = %+v", s)
	}
	if got := p.SubscribedTopics("hotel-saas"); len(got) == 0 || !strings.HasPrefix(got[0], "run42.") {
		t.Errorf("SubscribedTopics = %v", got)
	}
	if orig, _ := c.TopicFor("billing.paid"); orig.Name != "hotelbus.pms.billing" {
		t.Errorf("WithPrefix changed the original: %q", orig.Name)
	}
}

// TestLookupSuggestsNames: a mistyped system or event type is refused with the names it may be a
// typo of, and a name far from every declared one gets no suggestion.
func TestLookupSuggestsNames(t *testing.T) {
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"hotel-pm":     `topics: unknown system "hotel-pm"; did you mean hotel-pms? (the systems are `,
		"Hotel-Member": `unknown system "Hotel-Member"; did you mean hotel-member?`,
		"hotel-sass":   `did you mean hotel-saas?`,
	} {
		if _, err := cat.LookupSystem(name); !errors.Is(err, topics.ErrUnknownSystem) || !strings.Contains(err.Error(), want) {
			t.Errorf("LookupSystem(%q) = %v, want %q", name, err, want)
		}
	}
	if _, err := cat.LookupSystem("billing"); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("LookupSystem(billing) = %v, want no suggestion", err)
	}
	if _, err := cat.LookupEventType("reservaton.created"); !errors.Is(err, topics.ErrUnknownEventType) ||
		!strings.Contains(err.Error(), `unknown event type "reservaton.created"; did you mean reservation.created?`) {
		t.Errorf("LookupEventType(reservaton.created) = %v", err)
	}
	if tp, err := cat.LookupEventType("points.added"); err != nil || tp.Name == "" {
		t.Errorf("LookupEventType(points.added) = %v, %v", tp, err)
	}
	if got := topics.Suggest("hotel", []string{"hotel-pms", "hotel-saas", "billing"}); !slices.Equal(got, []string{"hotel-pms", "hotel-saas"}) {
		t.Errorf("Suggest(hotel) = %v, want the names it starts", got)
	}
}

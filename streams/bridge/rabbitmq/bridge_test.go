package rabbitmq_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/bridge/rabbitmq"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// EnvAMQP names the rig's RabbitMQ (`make test` sets it): amqp://hotelbus-bridge:PASS@HOST:PORT/,
// with users rmq-pms, rmq-member, rmq-saas and rmq-common under the same password.
const EnvAMQP = "HOTELBUS_TEST_AMQP"

// amqpURL returns the rig's RabbitMQ; it skips the test when HOTELBUS_TEST_AMQP is unset, and
// fails it under HOTELBUS_TEST_REAL=1 or CI, where the rig must provide it.
func amqpURL(t testing.TB) *url.URL {
	t.Helper()
	v := os.Getenv(EnvAMQP)
	if v == "" {
		if streamstest.Real() || os.Getenv("CI") != "" {
			t.Fatalf("a real RabbitMQ is required (HOTELBUS_TEST_REAL=1 or CI) but %s is not set: run the tests through `make test`", EnvAMQP)
		}
		t.Skipf("RabbitMQ not available: %s unset (runs under `make test`; or start .ci/rig/rabbitmq.sh and source its env)", EnvAMQP)
	}
	u, err := url.Parse(v)
	if err != nil {
		t.Fatalf("%s: %v", EnvAMQP, err)
	}
	return u
}

// The users of the rig's node and the systems they publish as.
var userMap = map[string]string{"rmq-pms": "hotel-pms", "rmq-member": "hotel-member", "rmq-saas": "hotel-saas"}

type fixture struct {
	amqp     *url.URL
	cat      *topics.Catalog
	prefix   string // of cat's topics and groups (the command's --prefix)
	serde    *streams.Serde
	backend  streamstest.Backend
	registry string // the embedded registry's URL
	python   string
	examples map[string]map[string]any
	newSerde func(...streams.SerdeOption) *streams.Serde // another Serde on the same registry and schemas
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{amqp: amqpURL(t), python: streamstest.Python(t), backend: streamstest.Kfake(t)}
	f.prefix = streamstest.Name(t, "t") + "."
	f.cat = streamstest.PrefixedCatalog(t, f.backend, f.prefix)
	cl, regURL := streamstest.Registry(t)
	f.registry = regURL
	set := streamstest.RegisterSchemas(t, cl, f.cat)
	f.newSerde = func(opts ...streams.SerdeOption) *streams.Serde {
		s, err := streams.NewSerde(cl, set, f.cat, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	f.serde = f.newSerde()
	f.examples = map[string]map[string]any{}
	for _, et := range []string{"customer.created", "service.ordered", "billing.created", "system.maintenance"} {
		v, _ := set.Latest(et)
		var m map[string]any
		if err := json.Unmarshal(v.Example, &m); err != nil {
			t.Fatal(err)
		}
		f.examples[et] = m["data"].(map[string]any)
	}
	// A clean slate: the bridge's queue and the dead-letter queue of earlier runs are deleted (the
	// bridge declares them again).
	f.peer(t, "delete", "", f.cat.RabbitMQ.Queue, f.cat.RabbitMQ.DeadLetterExchange)
	return f
}

func (f *fixture) password() string { p, _ := f.amqp.User.Password(); return p }

// peer runs testdata/peer.py CMD with the node's host, port and (for consume and bind) the user.
func (f *fixture) peer(t testing.TB, cmd, stdin string, args ...string) string {
	t.Helper()
	full := []string{"testdata/peer.py", cmd, f.amqp.Hostname(), f.amqp.Port()}
	if cmd != "publish" {
		full = append(full, f.amqp.User.Username())
	}
	full = append(append(full, f.password()), args...)
	c := exec.Command(f.python, full...)
	c.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		t.Fatalf("peer %s: %v\n%s", cmd, err, stderr.String())
	}
	return string(out)
}

// observe declares a queue of the test bound to exchanges, empty, and deletes it when the test
// ends (a queue left bound would take a copy of every later publication).
func (f *fixture) observe(t testing.TB, queue string, exchanges ...string) {
	t.Helper()
	f.peer(t, "bind", "", append([]string{queue}, exchanges...)...)
	f.purge(t, queue)
	t.Cleanup(func() { f.peer(t, "delete", "", queue) })
}

// purge empties queues by consuming them to the end.
func (f *fixture) purge(t testing.TB, queues ...string) {
	t.Helper()
	for _, q := range queues {
		f.peer(t, "bind", "", q)
		f.peer(t, "consume", "", q, "1000000000", "1")
	}
}

type peerMessage struct {
	Exchange, RoutingKey, MessageID, CorrelationID, ContentType string
	Headers                                                     map[string]any
	Body                                                        string
}

func parseMessages(t testing.TB, out string) []peerMessage {
	t.Helper()
	var ms []peerMessage
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m peerMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("peer output %q: %v", sc.Text(), err)
		}
		ms = append(ms, m)
	}
	return ms
}

// bridge runs a bridge over f until the test ends, RabbitMQ → Kafka when in, Kafka → RabbitMQ
// when out.
func (f *fixture) bridge(t testing.TB, in, out bool) *rabbitmq.Bridge {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := []rabbitmq.Option{rabbitmq.Logger(log)}
	if in {
		opts = append(opts, rabbitmq.UserMap(userMap))
	}
	b, err := rabbitmq.New(f.amqp.String(), f.serde, f.cat, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() { defer wg.Done(); b.Run(ctx) }()
	if in {
		f.inbound(ctx, t, &wg, b)
	}
	if out {
		f.outbound(ctx, t, &wg, b)
	}
	streamstest.Eventually(t, 30*time.Second, "the bridge connected", func() bool { return b.Ready(ctx) == nil })
	return b
}

func (f *fixture) inbound(ctx context.Context, t testing.TB, wg *sync.WaitGroup, b *rabbitmq.Bridge) {
	producers := map[string]rabbitmq.Publisher{}
	for _, sys := range userMap {
		p, err := streams.NewProducer(sys, f.serde, streams.Brokers(f.backend.Brokers...), streams.KafkaOptions(rabbitmq.OriginHook()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close(context.Background()) })
		producers[sys] = p
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.Inbound(ctx, producers); err != nil {
			t.Error(err)
		}
	}()
}

func (f *fixture) outbound(ctx context.Context, t testing.TB, wg *sync.WaitGroup, b *rabbitmq.Bridge) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The rig's redis-server when there is one (miniredis runs the dedup scripts much slower).
	addr := miniredis.RunT(t).Addr()
	if u := os.Getenv(streamstest.EnvRedis); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		addr = opt.Addr
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	topo := f.cat.RabbitMQ
	dedup, err := streams.NewDedup(rdb, topo.Group)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := streams.NewDeadLetters(streamstest.Writer(t, f.backend, f.cat, topo.ConsumeAs), topo.DeadLetterTopic)
	if err != nil {
		t.Fatal(err)
	}
	c, err := streams.NewConsumer(topo.ConsumeAs, f.serde, streams.Brokers(f.backend.Brokers...), streams.Group(topo.Group),
		streams.Logger(log), streams.Use(dedup.Middleware(), dl.Middleware(), streams.Retry(streams.RetryBackoff(50*time.Millisecond, time.Second))),
		streams.UsePreparer(dedup))
	if err != nil {
		t.Fatal(err)
	}
	sys, _ := f.cat.System(topo.ConsumeAs)
	b.HandleAll(c, sys.Subscribes)
	audit := f.backend.Client(t, kgo.ConsumerGroup(topo.Group+".audit"), kgo.ConsumeTopics(f.cat.AuditTopic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := c.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := b.Audit(ctx, audit); err != nil {
			t.Error(err)
		}
	}()
}

// inMessage is one line of peer.py publish's input.
type inMessage struct {
	User       string  `json:"user"`
	UserID     *string `json:"userId"`
	Exchange   string  `json:"exchange"`
	RoutingKey string  `json:"routingKey"`
	Body       string  `json:"body"`
	MessageID  string  `json:"messageId,omitempty"`
	TenantID   string  `json:"tenantId,omitempty"`
}

// envelopeJSON is the seed's JSON envelope of an event of eventType for tenant.
func (f *fixture) envelopeJSON(t testing.TB, eventType, eventID, tenant, source string, seq int) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"eventId": eventID, "eventType": eventType, "data": f.examples[eventType],
		"metadata": map[string]any{"tenantId": tenant, "source": source, "correlationId": fmt.Sprintf("seq-%d", seq), "userId": nil}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var typeOf = map[string]string{"rmq-pms": "billing.created", "rmq-member": "customer.created", "rmq-saas": "service.ordered"}

// TestBothDirections: systems publish on RabbitMQ (pika) while other events are published on
// Kafka; the bridge runs both ways. Every RabbitMQ envelope reaches Kafka once, as the system of
// its user-id, in per-tenant order, with hotelbus-origin: rabbitmq, and is not sent back to
// RabbitMQ; every Kafka event reaches a RabbitMQ queue (pika) once, in per-tenant order, on its
// exchange with the contract's properties, and is not taken back into Kafka. Forged and foreign
// messages land in hotelbus.dlx with their reason.
func TestBothDirections(t *testing.T) {
	f := newFixture(t)
	topo := f.cat.RabbitMQ
	observer := "hotelbus.test.observer"
	f.observe(t, observer, topo.Exchanges...)
	auditQueue := "hotelbus.test.audit"
	f.observe(t, auditQueue, topo.AuditExchange)
	b := f.bridge(t, true, true)

	const tenants, perTenant = 40, 25
	users := []string{"rmq-pms", "rmq-member", "rmq-saas"}
	var in strings.Builder
	inIDs := map[string]string{} // eventId -> tenant
	inOrder := map[string][]string{}
	for seq := range perTenant {
		for tn := range tenants {
			tenant := fmt.Sprintf("rmq-tenant-%03d", tn)
			user := users[tn%len(users)]
			et := typeOf[user]
			id := uuid.NewString()
			ex, _ := topo.Exchange(et)
			line, _ := json.Marshal(inMessage{User: user, UserID: &user, Exchange: ex, RoutingKey: et,
				Body: f.envelopeJSON(t, et, id, tenant, "", seq), MessageID: id, TenantID: tenant})
			in.Write(append(line, '\n'))
			inIDs[id] = tenant
			inOrder[tenant] = append(inOrder[tenant], id)
		}
	}
	// Refused ones: no user-id; a user the map does not name; a type the user's system does not
	// own; a source claiming another system; a body that is no envelope.
	forged := map[string]string{}
	add := func(reason, user string, userID *string, et, source string, body string) {
		id := uuid.NewString()
		if body == "" {
			body = f.envelopeJSON(t, et, id, "rmq-forged", source, 0)
		}
		ex, _ := topo.Exchange(et)
		line, _ := json.Marshal(inMessage{User: user, UserID: userID, Exchange: ex, RoutingKey: et, Body: body, MessageID: id})
		in.Write(append(line, '\n'))
		forged[id] = reason
	}
	pms, common := "rmq-pms", "rmq-common"
	add(rabbitmq.ReasonUnmappedUser, "rmq-pms", nil, "billing.created", "", "")
	add(rabbitmq.ReasonUnmappedUser, "rmq-common", &common, "system.maintenance", "", "")
	add(rabbitmq.ReasonNotOwner, "rmq-pms", &pms, "customer.created", "", "")
	add(rabbitmq.ReasonNotOwner, "rmq-pms", &pms, "billing.created", "hotel-member", "")
	add(rabbitmq.ReasonInvalidEvent, "rmq-pms", &pms, "billing.created", "", `{"eventType": "billing.created"}`)

	// Kafka side: hotel-common publishes system.maintenance for other tenants.
	// The producer writes a publish audit record per event itself (PublishAudit's default).
	p, err := streams.NewProducer("hotel-common", f.serde, streams.Brokers(f.backend.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	outOrder := map[string][]string{}
	outIDs := map[string]string{}
	ctx := context.Background()
	var pubErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for seq := range perTenant {
			for tn := range tenants {
				tenant := fmt.Sprintf("kafka-tenant-%03d", tn)
				env, err := f.serde.ParseJSON([]byte(f.envelopeJSON(t, "system.maintenance", "", tenant, "", seq)))
				if err == nil {
					_, err = p.Publish(ctx, env)
				}
				if err != nil {
					pubErr = err
					return
				}
				outOrder[tenant] = append(outOrder[tenant], env.EventID)
				outIDs[env.EventID] = tenant
			}
		}
	}()
	res := f.peer(t, "publish", in.String())
	var pr struct {
		Published int
		Refused   []any
	}
	if err := json.Unmarshal([]byte(res), &pr); err != nil || pr.Published != len(inIDs)+len(forged) {
		t.Fatalf("pika published %s (want %d)", res, len(inIDs)+len(forged))
	}
	wg.Wait()
	if pubErr != nil {
		t.Fatal(pubErr)
	}

	// RabbitMQ → Kafka.
	got := map[string][]string{}
	seen := 0
	kcl := f.backend.Client(t, kgo.ConsumeTopics(f.topicsOf("billing.created", "customer.created", "service.ordered")...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	deadline := time.Now().Add(2 * time.Minute)
	for seen < len(inIDs) && time.Now().Before(deadline) {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := kcl.PollFetches(fctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			id := streams.Header(r, streams.HeaderEventID)
			tenant, ok := inIDs[id]
			if !ok {
				t.Errorf("record %s in Kafka was not published on RabbitMQ (or was refused)", id)
				return
			}
			if o := streams.Header(r, rabbitmq.HeaderOrigin); o != "rabbitmq" {
				t.Errorf("record %s: hotelbus-origin %q", id, o)
			}
			if src, want := streams.Header(r, streams.HeaderSource), userMap[users[tenantIndex(tenant)%len(users)]]; src != want {
				t.Errorf("record %s: source %s, want %s", id, src, want)
			}
			got[tenant] = append(got[tenant], id)
			seen++
		})
	}
	lost, dup, reordered := compare(inOrder, got)
	t.Logf("RabbitMQ → Kafka: %d published on RabbitMQ, %d records, %d lost, %d repeated, %d reordered", len(inIDs), seen, lost, dup, reordered)
	if lost+reordered > 0 || seen < len(inIDs) {
		t.Errorf("RabbitMQ → Kafka: %d lost, %d reordered", lost, reordered)
	}

	// Kafka → RabbitMQ.
	msgs := parseMessages(t, f.peer(t, "consume", "", observer, "1000000", "5"))
	recv := map[string][]string{}
	for _, m := range msgs {
		if m.Headers[rabbitmq.HeaderOrigin] != "kafka" {
			continue // pika's own publications, which the observer queue sees too
		}
		tenant, ok := outIDs[m.MessageID]
		if !ok {
			t.Errorf("message %s with hotelbus-origin kafka was not published on Kafka (a loop?)", m.MessageID)
			continue
		}
		if m.Exchange != "hotelbus.system" || m.RoutingKey != "system.maintenance" || m.ContentType != "application/json" ||
			m.Headers["tenantId"] != tenant || m.Headers["traceparent"] == nil || m.CorrelationID == "" {
			t.Errorf("message %s: exchange %s, routing key %s, content type %s, headers %v, correlation-id %q",
				m.MessageID, m.Exchange, m.RoutingKey, m.ContentType, m.Headers, m.CorrelationID)
		}
		var env map[string]any
		if err := json.Unmarshal([]byte(m.Body), &env); err != nil || env["eventId"] != m.MessageID {
			t.Errorf("message %s: body is not its envelope: %.200s", m.MessageID, m.Body)
		}
		recv[tenant] = append(recv[tenant], m.MessageID)
	}
	lost, dup, reordered = compare(outOrder, recv)
	t.Logf("Kafka → RabbitMQ: %d published on Kafka, %d lost, %d repeated, %d reordered", len(outIDs), lost, dup, reordered)
	if lost+reordered > 0 {
		t.Errorf("Kafka → RabbitMQ: %d lost, %d reordered", lost, reordered)
	}

	// The audit log's records of the Kafka side's publications, on the audit exchange.
	// The exchange also carries the bridge's own publications' records: read it to the end and count each
	// Kafka-side event once.
	auditedIDs := map[string]bool{}
	for _, m := range parseMessages(t, f.peer(t, "consume", "", auditQueue, "1000000", "10")) {
		if _, ok := outIDs[m.MessageID]; ok && m.Headers[rabbitmq.HeaderAuditKind] == "published" && m.RoutingKey == "system.maintenance" {
			auditedIDs[m.MessageID] = true
		}
	}
	audited := len(auditedIDs)
	t.Logf("audit exchange: %d of %d publications' audit records", audited, len(outIDs))
	if audited != len(outIDs) {
		t.Errorf("audit exchange: %d of %d publications' audit records", audited, len(outIDs))
	}

	// Dead letters, each with its reason.
	dlx := parseMessages(t, f.peer(t, "consume", "", topo.DeadLetterExchange, fmt.Sprint(len(forged)), "10"))
	for _, m := range dlx {
		if want, ok := forged[m.MessageID]; !ok || m.Headers[rabbitmq.HeaderReason] != want {
			t.Errorf("dead letter %s: reason %v (detail %v), want %q", m.MessageID, m.Headers[rabbitmq.HeaderReason], m.Headers[rabbitmq.HeaderDetail], want)
		}
		delete(forged, m.MessageID)
	}
	if len(forged) > 0 {
		t.Errorf("not dead-lettered: %v", forged)
	}
	counts := b.Counts()
	t.Logf("bridge counts: %v", counts)
	if counts["in/loop-skipped"] < int64(len(outIDs)) || counts["out/loop-skipped"] < int64(len(inIDs)) {
		t.Errorf("loops: the bridge skipped %d of its own RabbitMQ messages (want %d) and %d of its own Kafka records (want %d)",
			counts["in/loop-skipped"], len(outIDs), counts["out/loop-skipped"], len(inIDs))
	}
}

func tenantIndex(tenant string) int {
	var n int
	fmt.Sscanf(tenant[strings.LastIndex(tenant, "-")+1:], "%d", &n)
	return n
}

func (f *fixture) topicsOf(eventTypes ...string) []string {
	var out []string
	for _, et := range eventTypes {
		tp, _ := f.cat.TopicFor(et)
		out = append(out, tp.Name)
	}
	return out
}

// compare checks got against want per tenant: ids missing, repeats (an id seen again), and
// reorderings (the first sightings not in want's order).
func compare(want, got map[string][]string) (lost, repeated, reordered int) {
	for tenant, ids := range want {
		seen := map[string]bool{}
		var first []string
		for _, id := range got[tenant] {
			if seen[id] {
				repeated++
				continue
			}
			seen[id] = true
			first = append(first, id)
		}
		for _, id := range ids {
			if !seen[id] {
				lost++
			}
		}
		pos := map[string]int{}
		for i, id := range ids {
			pos[id] = i
		}
		last := -1
		for _, id := range first {
			if p, ok := pos[id]; ok {
				if p < last {
					reordered++
				}
				last = max(last, p)
			}
		}
	}
	return lost, repeated, reordered
}

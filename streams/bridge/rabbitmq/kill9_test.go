package rabbitmq_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/faults"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// The size of the kill -9 runs: the 10,000 envelopes across 200 tenants each way.
const killTenants, killPerTenant = 200, 50

// bridgeProc runs the hotelbus binary's `bridge rabbitmq` in one direction over f.
type bridgeProc struct {
	f         *fixture
	bin, dir  string
	direction string // --from-rabbit or --to-rabbit
	redis     string
	port      int
	n         int
	proc      *faults.Proc
}

func (b *bridgeProc) start(t *testing.T) {
	t.Helper()
	b.n++
	b.port = faults.FreePort(t)
	users := filepath.Join(b.dir, "users")
	var lines []string
	for user, sys := range userMap {
		lines = append(lines, sys+" "+user)
	}
	if err := os.WriteFile(users, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.proc = faults.Start(t, fmt.Sprintf("bridge%s-%d", b.direction, b.n), []string{"HOTELBUS_AMQP=" + b.f.amqp.String()}, b.bin,
		"bridge", "rabbitmq", b.direction, "--brokers", strings.Join(b.f.backend.Brokers, ","), "--registry", b.f.registry,
		"--redis", b.redis, "--prefix", b.f.prefix, "--user-map", users, "--listen", "127.0.0.1:"+strconv.Itoa(b.port),
		"--session-timeout", "6s", "--dedup-lease", "3s", "--shutdown-timeout", "5s")
}

// count is the process's hotelbus_bridge_rabbitmq_messages_total for direction and outcome (-1
// while its metrics do not answer).
func (b *bridgeProc) count(direction, outcome string) int {
	cl := http.Client{Timeout: 2 * time.Second}
	res, err := cl.Get("http://127.0.0.1:" + strconv.Itoa(b.port) + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	want := fmt.Sprintf(`hotelbus_bridge_rabbitmq_messages_total{direction=%q,outcome=%q} `, direction, outcome)
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return 0
}

// waitCount waits until the running process has disposed of at least n messages.
func (b *bridgeProc) waitCount(t *testing.T, direction string, n int) {
	t.Helper()
	streamstest.Eventually(t, 3*time.Minute, fmt.Sprintf("bridge #%d to publish %d messages %s", b.n, n, direction), func() bool {
		if b.proc.Exited() {
			t.Fatalf("bridge #%d exited:\n%s", b.n, b.proc.Tail(30))
		}
		return b.count(direction, "published") >= n
	})
}

// restartRabbitMQ stops and starts the rig's RabbitMQ application (rabbitmqctl stop_app and
// start_app on the node of HOTELBUS_TEST_RABBITMQ_DIR): every connection is closed, quorum queues
// recover from disk.
func restartRabbitMQ(t *testing.T) {
	t.Helper()
	dir := os.Getenv("HOTELBUS_TEST_RABBITMQ_DIR")
	if dir == "" {
		t.Fatal("HOTELBUS_TEST_RABBITMQ_DIR is not set: the rig's rabbitmq.sh sets it")
	}
	b, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Fields(string(b))
	var node string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "RABBITMQ_NODENAME="); ok {
			node = v
		}
	}
	for _, op := range []string{"stop_app", "start_app"} {
		args := append(append([]string{"-u", "rabbitmq", "--", "env"}, env...), "/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", node, op)
		if out, err := exec.Command("runuser", args...).CombinedOutput(); err != nil {
			t.Fatalf("rabbitmqctl %s: %v\n%s", op, err, out)
		}
	}
	t.Logf("RabbitMQ restarted (rabbitmqctl stop_app, start_app on %s)", node)
}

// TestKill9FromRabbit: 10,000 envelopes across 200 tenants published on RabbitMQ (pika) reach
// Kafka while the bridge binary is killed with kill -9 twice and restarted, and RabbitMQ is
// restarted: none lost, repeats only as the same eventId, no per-tenant reordering. SIGTERM then
// stops the bridge with exit status 0.
func TestKill9FromRabbit(t *testing.T) {
	f := newFixture(t)
	topo := f.cat.RabbitMQ
	b := &bridgeProc{f: f, bin: faults.Binary(t), dir: t.TempDir(), direction: "--from-rabbit", redis: "redis://" + miniredis.RunT(t).Addr()}
	users := []string{"rmq-pms", "rmq-member", "rmq-saas"}
	var in strings.Builder
	want := map[string][]string{}
	ids := map[string]string{}
	for seq := range killPerTenant {
		for tn := range killTenants {
			tenant := fmt.Sprintf("k9-tenant-%03d", tn)
			user := users[tn%len(users)]
			et := typeOf[user]
			id := uuid.NewString()
			ex, _ := topo.Exchange(et)
			line, _ := json.Marshal(inMessage{User: user, UserID: &user, Exchange: ex, RoutingKey: et,
				Body: f.envelopeJSON(t, et, id, tenant, "", seq), MessageID: id, TenantID: tenant})
			in.Write(append(line, '\n'))
			want[tenant] = append(want[tenant], id)
			ids[id] = tenant
		}
	}
	// The bridge's queue as the bridge declares it, so that nothing published before the bridge's
	// first start is unroutable.
	f.peer(t, "bind", "", append([]string{topo.Queue}, topo.Exchanges...)...)
	published := make(chan string, 1)
	go func() { published <- f.peer(t, "publish", in.String()) }()

	b.start(t)
	for kill := 1; kill <= 2; kill++ {
		b.waitCount(t, "in", 1500)
		b.proc.Kill9(t)
		t.Logf("kill -9 #%d of the bridge", kill)
		b.start(t)
	}
	if res := <-published; !strings.HasPrefix(res, fmt.Sprintf(`{"published": %d, "refused": []}`, len(ids))) {
		t.Fatalf("pika did not publish every envelope: %s", res)
	}
	b.waitCount(t, "in", 500)
	restartRabbitMQ(t)

	got := map[string][]string{}
	records, stray := 0, 0
	kcl := f.backend.Client(t, kgo.ConsumeTopics(f.topicsOf("billing.created", "customer.created", "service.ordered")...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]bool{}
	deadline := time.Now().Add(4 * time.Minute)
	for len(seen) < len(ids) && time.Now().Before(deadline) {
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fs := kcl.PollFetches(fctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			id := streams.Header(r, streams.HeaderEventID)
			records++
			tenant, ok := ids[id]
			if !ok {
				stray++
				return
			}
			seen[id] = true
			got[tenant] = append(got[tenant], id)
		})
	}
	// Graceful shutdown: SIGTERM finishes what is in flight and exits 0.
	if err := b.proc.Terminate(30 * time.Second); err != nil {
		t.Errorf("%v\n%s", err, b.proc.Tail(20))
	}
	lost, repeated, reordered := compare(want, got)
	t.Logf("RabbitMQ → Kafka, kill -9 twice, RabbitMQ restarted: %d envelopes, %d records, %d lost, %d repeated eventIds, %d reordered, %d stray",
		len(ids), records, lost, repeated, reordered, stray)
	if lost+reordered+stray > 0 {
		t.Errorf("%d lost, %d reordered, %d records with an eventId never published", lost, reordered, stray)
	}
}

// TestKill9ToRabbit: 10,000 events across 200 tenants published on Kafka reach a RabbitMQ queue
// (pika) while the bridge binary is killed with kill -9 twice and restarted, and RabbitMQ is
// restarted: none lost, repeats only as the same eventId, no per-tenant reordering. SIGTERM then
// stops the bridge with exit status 0.
func TestKill9ToRabbit(t *testing.T) {
	f := newFixture(t)
	observer := "hotelbus.test.kill9"
	f.observe(t, observer, f.cat.RabbitMQ.Exchanges...)
	b := &bridgeProc{f: f, bin: faults.Binary(t), dir: t.TempDir(), direction: "--to-rabbit", redis: "redis://" + miniredis.RunT(t).Addr()}

	p, err := streams.NewProducer("hotel-common", f.serde, streams.Brokers(f.backend.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	want := map[string][]string{}
	ids := map[string]string{}
	for seq := range killPerTenant {
		envs := make([]*streams.Envelope, 0, killTenants)
		for tn := range killTenants {
			tenant := fmt.Sprintf("k9-tenant-%03d", tn)
			env, err := f.serde.ParseJSON([]byte(f.envelopeJSON(t, "system.maintenance", "", tenant, "", seq)))
			if err != nil {
				t.Fatal(err)
			}
			envs = append(envs, env)
		}
		if _, err := p.PublishBatch(context.Background(), envs); err != nil {
			t.Fatal(err)
		}
		for _, env := range envs {
			want[env.Metadata.TenantID] = append(want[env.Metadata.TenantID], env.EventID)
			ids[env.EventID] = env.Metadata.TenantID
		}
	}

	b.start(t)
	for kill := 1; kill <= 2; kill++ {
		b.waitCount(t, "out", 1500)
		b.proc.Kill9(t)
		t.Logf("kill -9 #%d of the bridge", kill)
		b.start(t)
	}
	b.waitCount(t, "out", 500)
	restartRabbitMQ(t)

	got := map[string][]string{}
	seen := map[string]bool{}
	messages, stray := 0, 0
	deadline := time.Now().Add(4 * time.Minute)
	for len(seen) < len(ids) && time.Now().Before(deadline) {
		for _, m := range parseMessages(t, f.peer(t, "consume", "", observer, "1000000", "5")) {
			messages++
			tenant, ok := ids[m.MessageID]
			if !ok {
				stray++
				continue
			}
			seen[m.MessageID] = true
			got[tenant] = append(got[tenant], m.MessageID)
		}
	}
	// Graceful shutdown: SIGTERM finishes what is in flight and exits 0.
	if err := b.proc.Terminate(30 * time.Second); err != nil {
		t.Errorf("%v\n%s", err, b.proc.Tail(20))
	}
	lost, repeated, reordered := compare(want, got)
	t.Logf("Kafka → RabbitMQ, kill -9 twice, RabbitMQ restarted: %d events, %d messages, %d lost, %d repeated eventIds, %d reordered, %d stray",
		len(ids), messages, lost, repeated, reordered, stray)
	if lost+reordered+stray > 0 {
		t.Errorf("%d lost, %d reordered, %d messages with an eventId never published", lost, reordered, stray)
	}
}

package simulate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/simulate"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

type fixture struct {
	prefix, registry string
	cat              *topics.Catalog
	set              *schemas.Set
}

func setup(t *testing.T, b streamstest.Backend) fixture {
	t.Helper()
	prefix := streamstest.Name(t, "t") + "."
	cat := streamstest.PrefixedCatalog(t, b, prefix)
	cl, url := streamstest.Registry(t)
	set := streamstest.RegisterSchemas(t, cl, cat)
	return fixture{prefix: prefix, registry: url, cat: cat, set: set}
}

type summary struct {
	Seed         int64            `json:"seed"`
	Events       int64            `json:"events"`
	Acknowledged int64            `json:"acknowledged"`
	Failed       int64            `json:"failed"`
	PerTenant    map[string]int64 `json:"perTenant"`
	FirstError   string           `json:"firstError"`
}

func runSimulate(t *testing.T, n int, args ...string) summary {
	t.Helper()
	args = append([]string{"simulate", "--count", fmt.Sprint(n), "--rate", "0", "--seed", "99", "--tenants", "6", "--json"}, args...)
	res := cmdtest.Run(t, nil, "", args...)
	if res.Code != 0 {
		t.Fatalf("simulate exited %d\n%s\n%s", res.Code, res.Out, res.ErrOut)
	}
	var s summary
	if err := json.Unmarshal([]byte(res.Out), &s); err != nil {
		t.Fatalf("summary: %v\n%s", err, res.Out)
	}
	if s.Events != int64(n) || s.Acknowledged != int64(n) || s.Failed != 0 || s.Seed != 99 {
		t.Fatalf("summary %+v; want %d events acknowledged", s, n)
	}
	return s
}

// checkArrived reads every event topic of f.cat from the start until n records arrived and checks
// that each tenant's sequence on each topic is 1..k with no gap, duplicate or reordering, that the
// header (when wantHeader) agrees with the eventId, and that the counts match the summary.
func checkArrived(t *testing.T, b streamstest.Backend, f fixture, n int, s summary, wantHeader bool) {
	t.Helper()
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	g, err := simulate.New(cat.WithPrefix(f.prefix), f.set, simulate.Options{Seed: 99, Tenants: 6, Skew: 1.1})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tp := range f.cat.Topics {
		if tp.Kind == topics.KindEvents {
			names = append(names, tp.Name)
		}
	}
	cl := b.Client(t, kgo.ConsumeTopics(names...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	last := map[[2]string]uint64{}
	perTenant := map[string]int64{}
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d records arrived", got, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			id := streams.Header(r, streams.HeaderEventID)
			p, ok := g.Seq(id)
			if !ok {
				t.Fatalf("record %s/%d@%d: eventId %q is not the simulation's", r.Topic, r.Partition, r.Offset, id)
			}
			if p.Topic != r.Topic || p.Tenant != string(r.Key) {
				t.Fatalf("eventId %s says %s %s; the record is on %s with key %s", id, p.Topic, p.Tenant, r.Topic, r.Key)
			}
			if h, ok := simulate.RecordSeq(r); ok != wantHeader || (ok && h != p.Seq) {
				t.Fatalf("record %s: header %s=%q, eventId says seq %d", id, simulate.HeaderSeq, streams.Header(r, simulate.HeaderSeq), p.Seq)
			}
			k := [2]string{p.Tenant, p.Topic}
			if p.Seq != last[k]+1 {
				t.Fatalf("%s on %s: seq %d after %d", p.Tenant, p.Topic, p.Seq, last[k])
			}
			last[k] = p.Seq
			perTenant[p.Tenant]++
		})
	}
	for tenant, c := range s.PerTenant {
		if perTenant[tenant] != c {
			t.Errorf("%s: %d records arrived, the summary says %d acknowledged", tenant, perTenant[tenant], c)
		}
	}
}

func TestSimulateSDK(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := setup(t, b)
			const n = 3000
			s := runSimulate(t, n, "--brokers", strings.Join(b.Brokers, ","), "--registry", f.registry, "--prefix", f.prefix)
			checkArrived(t, b, f, n, s, true)
		})
	}
}

// TestSimulateSDKSeals: through the SDK with a key file, every customer event reaches Kafka with its
// personal-data fields sealed (as the gateway seals them).
func TestSimulateSDKSeals(t *testing.T) {
	b := streamstest.Kfake(t)
	f := setup(t, b)
	keyFile := filepath.Join(t.TempDir(), privacy.KeyFileName)
	if _, err := privacy.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	const n = 400
	s := runSimulate(t, n, "--brokers", strings.Join(b.Brokers, ","), "--registry", f.registry, "--prefix", f.prefix, "--key-file", keyFile)
	checkArrived(t, b, f, n, s, true)
	topic := f.prefix + "hotelbus.member.customers"
	ends, err := kadm.NewClient(b.Client(t)).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	cl := b.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var customers, clear int64
	for customers < total && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			customers++
			if !bytes.Contains(r.Value, []byte(privacy.Prefix)) {
				clear++
			}
		})
	}
	if total == 0 || customers < total || clear > 0 {
		t.Fatalf("%d of %d customer records read, %d of them without a sealed value", customers, total, clear)
	}
}

// TestSimulateGateway posts through an in-process gateway that publishes for every system.
func TestSimulateGateway(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := setup(t, b)
			url, tokens := startGateway(t, b, f)
			const n = 2000
			s := runSimulate(t, n, "--via", "gateway", "--gateway", url, "--gateway-tokens", tokens)
			checkArrived(t, b, f, n, s, false)
		})
	}
}

func startGateway(t *testing.T, b streamstest.Backend, f fixture) (url, tokenFile string) {
	t.Helper()
	reg, err := sr.NewClient(sr.URLs(f.registry))
	if err != nil {
		t.Fatal(err)
	}
	serde, err := streams.NewSerde(reg, f.set, f.cat)
	if err != nil {
		t.Fatal(err)
	}
	producers := map[string]*streams.Producer{}
	toks := map[string][]string{}
	var lines []string
	for _, s := range f.cat.Systems {
		p, err := streams.NewProducer(s.Name, serde, streams.Brokers(b.Brokers...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close(context.Background()) })
		producers[s.Name] = p
		tok := "sim-test-token-" + s.Name
		toks[s.Name] = []string{tok}
		lines = append(lines, s.Name+" "+tok)
	}
	creds, err := gateway.NewCredentials(slicesOf(producers), gateway.CredentialSource{Tokens: toks})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	t.Cleanup(func() { rdb.Close() })
	gw, err := gateway.New(gateway.Config{Producers: producers, Credentials: creds, Redis: rdb, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	tokenFile = filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokenFile, []byte("# system token\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL, tokenFile
}

func slicesOf(m map[string]*streams.Producer) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSimulateUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--via", "carrier-pigeon"},
		{"--tenants", "0"},
		{"--skew", "-1"},
		{"--gateway", "http://localhost:1"},
		{"--rate", "-5"},
	} {
		res := cmdtest.Run(t, nil, "", append([]string{"simulate", "--count", "1"}, args...)...)
		if res.Code != 2 {
			t.Errorf("simulate %v exited %d, want 2 (usage)\n%s", args, res.Code, res.ErrOut)
		}
	}
}

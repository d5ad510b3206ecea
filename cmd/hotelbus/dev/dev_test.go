package dev_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/dev"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// TestRestartKeepsData: start, produce, stop, start again on the same data directory, and read back
// the records, the committed offset and the same schema id.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := dev.Start(ctx, dev.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := cmdutil.ReadEndpoints(dir)
	if err != nil || ep.Kafka != s.Endpoints.Kafka || ep.Registry == "" || !strings.HasPrefix(ep.Redis, "redis://") {
		t.Fatalf("endpoints.json = %+v, %v", ep, err)
	}
	cat, _ := topics.Load(topics.Embedded(), "dev")
	if len(s.Created) != len(cat.Topics) {
		t.Fatalf("created %d topics, want %d", len(s.Created), len(cat.Topics))
	}
	serde := newSerde(t, ep.Registry, cat)
	set := serde.Schemas()
	var events []*streams.Envelope
	var topicNames []string
	for _, sub := range set.Subjects {
		env, err := serde.ParseJSON(sub.Latest().Example)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, env)
		tp, _ := cat.TopicFor(sub.EventType)
		topicNames = append(topicNames, tp.Name)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(ep.Kafka))
	if err != nil {
		t.Fatal(err)
	}
	wire := map[string][]byte{}
	for _, env := range events {
		rec, err := serde.Record(ctx, env)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
		wire[env.EventID] = rec.Value
	}
	// a consumer group reads half and commits
	group := "dev-restart-test"
	first := readGroup(t, ep.Kafka, group, topicNames, len(events)/2)
	cl.Close()
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, cmdutil.EndpointsFile)); !os.IsNotExist(err) {
		t.Errorf("endpoints.json survives Close: %v", err)
	}

	s2, err := dev.Start(ctx, dev.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if len(s2.Created) != 0 {
		t.Errorf("restart created topics again: %v", s2.Created)
	}
	rest := readGroup(t, s2.Endpoints.Kafka, group, topicNames, len(events)-len(first))
	seen := map[string]bool{}
	serde2 := newSerde(t, s2.Endpoints.Registry, cat)
	for _, r := range append(first, rest...) {
		if !bytes.Equal(wire[streams.Header(r, streams.HeaderEventID)], r.Value) {
			t.Errorf("record %s changed across the restart", streams.Header(r, streams.HeaderEventID))
		}
		env, err := serde2.Decode(ctx, r.Value)
		if err != nil {
			t.Fatalf("after restart: %v", err)
		}
		if seen[env.EventID] {
			t.Errorf("%s read twice: the committed offset was lost", env.EventID)
		}
		seen[env.EventID] = true
	}
	if len(seen) != len(events) {
		t.Errorf("read %d distinct events, want %d", len(seen), len(events))
	}
	// schema ids are the same: re-registering finds every version already there
	src, _ := sr.NewClient(sr.URLs(s2.Endpoints.Registry))
	topicOf := func(et string) (string, bool) { tp, ok := cat.TopicFor(et); return tp.Name, ok }
	states, err := schemas.Compare(ctx, src, set, topicOf, schemas.DefaultLevel)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if len(st.Missing) != 0 || len(st.Problems) != 0 || st.CurrentLevel != schemas.DefaultLevel.String() {
			t.Errorf("%s after restart: %+v", st.Subject, st)
		}
	}
}

func newSerde(t *testing.T, registryURL string, cat *topics.Catalog) *streams.Serde {
	t.Helper()
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	src, err := sr.NewClient(sr.URLs(registryURL))
	if err != nil {
		t.Fatal(err)
	}
	// no auto-registration: dev registered every schema at start
	s, err := streams.NewSerde(src, set, cat)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readGroup consumes n records through group, commits them, and leaves the group.
func readGroup(t *testing.T, broker, group string, topicNames []string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topicNames...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollRecords(ctx, n-len(out))
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d", len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	if err := cl.CommitRecords(ctx, out...); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCommandSurvivesInterrupt runs the real binary: it prints its endpoints, and SIGINT stops it
// cleanly with exit 0.
func TestCommandSurvivesInterrupt(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT on windows")
	}
	bin := filepath.Join(t.TempDir(), "hotelbus")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hotelbus/hotelbus/cmd/hotelbus").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "dev", "--data-dir", dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := cmdutil.ReadEndpoints(dir); err == nil {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no endpoints.json after a minute\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGINT: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"kafka ", "registry ", "redis ", "endpoints "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "kafka")); err != nil {
		t.Errorf("broker data not on disk: %v", err)
	}
}

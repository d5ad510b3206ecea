package dev_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/dev"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/streamstest"
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

// TestRestartKeepsPortsTokensAndSecret: endpoints.json (mode 0600) holds the gateway, a token per
// system and the dispatch secret; the gateway takes an event with its system's token; a second dev
// on the same data directory is refused while the first runs; a restart
// keeps the tokens, the secret and every port that is still free, and replaces a taken one with a
// fresh port, saying so.
func TestRestartKeepsPortsTokensAndSecret(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := dev.Start(ctx, dev.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	first := s.Endpoints
	st, err := os.Stat(filepath.Join(dir, cmdutil.EndpointsFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("endpoints.json: %v, mode %v, want 0600", err, st.Mode())
	}
	ep, err := cmdutil.ReadEndpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := topics.Load(topics.Embedded(), "dev")
	for _, sys := range cat.Systems {
		if len(ep.Tokens[sys.Name]) < 16 {
			t.Errorf("endpoints.json: token of %s = %q", sys.Name, ep.Tokens[sys.Name])
		}
	}
	if ep.Gateway == "" || len(ep.DispatchSecret) < 16 || ep.PID != os.Getpid() {
		t.Fatalf("endpoints.json: gateway %q, secret of %d bytes, pid %d", ep.Gateway, len(ep.DispatchSecret), ep.PID)
	}
	kf, err := privacy.OpenKeyFile(ep.KeyFile)
	if err != nil || ep.KeyFile != filepath.Join(dir, privacy.KeyFileName) {
		t.Fatalf("endpoints.json: key file %q: %v", ep.KeyFile, err)
	}
	set, _ := schemas.Load(schemas.Embedded())
	example := set.Subjects[0].Latest().Example
	var head struct{ EventType string }
	_ = json.Unmarshal(example, &head)
	owner, _ := cat.Owner(head.EventType)
	for token, want := range map[string]int{ep.Tokens[owner]: http.StatusAccepted, "not-a-dev-token-at-all": http.StatusUnauthorized} {
		req, _ := http.NewRequest(http.MethodPost, ep.Gateway+"/v1/events", bytes.NewReader(example))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("gateway, %s's event with token %.8s...: %d, want %d", owner, token, resp.StatusCode, want)
		}
	}
	// The gateway seals with the dev key file, and says so in its metrics.
	resp, err := http.Get(ep.Gateway + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte("\nhotelbus_privacy_values_total{op=\"sealed\"}")) {
		t.Errorf("the dev gateway's /metrics has no privacy metrics:\n%.2000s", metrics)
	}
	if _, err := dev.Start(ctx, dev.Options{DataDir: dir}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("a dev stack (pid %d) already runs on %s", os.Getpid(), dir)) {
		t.Fatalf("a second dev on the same data directory: %v, want a refusal naming the running one", err)
	}
	s.Close()

	// another process took the gateway's port meanwhile
	taken, err := net.Listen("tcp", strings.TrimPrefix(first.Gateway, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var log bytes.Buffer
	s2, err := dev.Start(ctx, dev.Options{DataDir: dir, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	again := s2.Endpoints
	if again.Kafka != first.Kafka || again.Registry != first.Registry || again.Redis != first.Redis || again.Monitor != first.Monitor {
		t.Errorf("ports changed across the restart:\n%+v\n%+v", first, again)
	}
	if again.Gateway == first.Gateway || !strings.Contains(log.String(), "gateway: port "+strings.TrimPrefix(first.Gateway, "http://127.0.0.1:")+" of the last start is taken") {
		t.Errorf("gateway %s (was %s, taken); log:\n%s", again.Gateway, first.Gateway, log.String())
	}
	if !maps.Equal(again.Tokens, first.Tokens) || again.DispatchSecret != first.DispatchSecret {
		t.Errorf("tokens or secret changed across the restart")
	}
	if kf2, err := privacy.OpenKeyFile(again.KeyFile); err != nil || kf2.CurrentKEK() != kf.CurrentKEK() {
		t.Errorf("the key file changed across the restart (every sealed event would be lost): %v", err)
	}
}

// TestRegistryMismatchExplained: after a version was registered from another schema tree (as
// `hotelbus schemas register --dir <tree>` does), a restart refuses, naming the subject and the
// version and the two fixes; the fix that keeps the data, --schemas-dir <tree>, starts.
func TestRegistryMismatchExplained(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := dev.Start(ctx, dev.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tree := treeWithMinor(t, "service.ordered", `{"name": "giftWrap", "type": ["null", "string"], "default": null}`)
	r := cmdtest.Run(t, map[string]string{"HOTELBUS_REGISTRY": s.Endpoints.Registry}, "", "schemas", "register", "--dir", tree)
	if r.Code != 0 {
		t.Fatalf("schemas register --dir: %d\n%s%s", r.Code, r.Out, r.ErrOut)
	}
	s.Close()

	cat, _ := topics.Load(topics.Embedded(), "dev")
	set, _ := schemas.Load(schemas.Embedded())
	v, _ := set.Latest("service.ordered")
	tp, _ := cat.TopicFor("service.ordered")
	_, err = dev.Start(ctx, dev.Options{DataDir: dir})
	if !errors.Is(err, schemas.ErrHistory) {
		t.Fatalf("restart with the built-in schemas: %v, want ErrHistory", err)
	}
	for _, want := range []string{
		"subject " + v.Subject(tp.Name) + " has registry version 2",
		"hotelbus dev --data-dir " + dir + " --schemas-dir <tree>",
		"hotelbus dev --data-dir " + dir + " --fresh",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	s, err = dev.Start(ctx, dev.Options{DataDir: dir, SchemasDir: tree})
	if err != nil {
		t.Fatalf("--schemas-dir %s: %v", tree, err)
	}
	s.Close()
}

// treeWithMinor copies the built-in schema tree to a directory and adds to eventType's newest
// version a next minor that appends field.
func treeWithMinor(t *testing.T, eventType, field string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, schemas.Embedded()); err != nil {
		t.Fatal(err)
	}
	set, _ := schemas.Load(schemas.Embedded())
	v, ok := set.Latest(eventType)
	if !ok {
		t.Fatalf("no %s", eventType)
	}
	var rec map[string]any
	b, err := fs.ReadFile(schemas.Embedded(), v.File)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	var f any
	_ = json.Unmarshal([]byte(field), &f)
	rec["fields"] = append(rec["fields"].([]any), f)
	out, _ := json.Marshal(rec)
	next := filepath.Join(dir, filepath.Dir(v.File), fmt.Sprintf("%d.%d.avsc", v.Major, v.Minor+1))
	if err := os.WriteFile(next, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBinaryFindsDevStackFromAnywhere runs the built binary: with nothing running, a command says
// where it looked; dev started in a subdirectory of the repository keeps its data in the
// repository's .hotelbus; from another subdirectory, simulate --via gateway needs no flag, and
// gateway and dispatch take the dev tokens and signing secret; a killed dev is reported stale; a
// restart takes the same ports; HOTELBUS_DATA_DIR replaces the search.
func TestBinaryFindsDevStackFromAnywhere(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT on windows")
	}
	bin := cmdtest.Binary(t, "")
	root := t.TempDir()
	home, repo, elsewhere := filepath.Join(root, "home"), filepath.Join(root, "repo"), filepath.Join(root, "elsewhere")
	sub, deep := filepath.Join(repo, "a"), filepath.Join(repo, "b", "c")
	for _, d := range []string{home, sub, deep, elsewhere} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module github.com/hotelbus/hotelbus\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(home, ".local", "state", "hotelbus")
	dataDir := filepath.Join(repo, ".hotelbus")
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	command := func(dir string, extraEnv []string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = dir, append(slices.Clone(env), extraEnv...)
		return cmd
	}
	run := func(dir string, extraEnv []string, args ...string) (int, string, string) {
		t.Helper()
		cmd := command(dir, extraEnv, args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		done := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
		defer done.Stop()
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
	}
	// started runs a long-running command until its stderr shows want, then interrupts it.
	started := func(dir, want string, args ...string) {
		t.Helper()
		cmd := command(dir, nil, args...)
		var errOut streamstest.LogBuffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Signal(syscall.SIGINT); _ = cmd.Wait() }()
		for deadline := time.Now().Add(time.Minute); !strings.Contains(errOut.String(), want); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("%v: no %q within a minute:\n%s", args, want, errOut.String())
				return
			}
		}
	}
	startDev := func() (*exec.Cmd, *streamstest.LogBuffer, *cmdutil.Endpoints) {
		t.Helper()
		cmd := command(sub, nil, "dev")
		var errOut streamstest.LogBuffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			if ep, err := cmdutil.ReadEndpoints(dataDir); err == nil && ep.PID == cmd.Process.Pid {
				return cmd, &errOut, ep
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("no %s/endpoints.json after a minute\n%s", dataDir, errOut.String())
			}
		}
	}

	code, _, errOut := run(elsewhere, nil, "lag")
	if code != cmdutil.ExitUsage || !strings.Contains(errOut, state+": no endpoints.json") ||
		!strings.Contains(errOut, "the .hotelbus directories of "+elsewhere+" and its parents") {
		t.Errorf("lag with no dev stack: exit %d\n%s", code, errOut)
	}

	devCmd, _, first := startDev()
	code, out, errOut := run(deep, nil, "simulate", "--via", "gateway", "--count", "30", "--rate", "0", "--seed", "7")
	if code != 0 || !strings.Contains(out, "30 acknowledged, 0 failed") {
		t.Errorf("simulate --via gateway from %s: exit %d\n%s%s", deep, code, out, errOut)
	}
	started(deep, "using the dev stack's tokens from "+filepath.Join(dataDir, cmdutil.EndpointsFile), "gateway", "--listen", "127.0.0.1:0")
	started(deep, "using the dev stack's signing secret (dispatchSecret in "+filepath.Join(dataDir, cmdutil.EndpointsFile)+")",
		"dispatch", "--system", "hotel-member", "--target", "http://127.0.0.1:9/", "--listen", "127.0.0.1:0")

	_ = devCmd.Process.Kill()
	_ = devCmd.Wait()
	code, _, errOut = run(deep, nil, "lag")
	if want := fmt.Sprintf("stale: the dev stack of pid %d is not running", devCmd.Process.Pid); code != cmdutil.ExitUsage || !strings.Contains(errOut, want) {
		t.Errorf("lag after dev was killed: exit %d, want %q\n%s", code, want, errOut)
	}
	code, _, errOut = run(deep, []string{cmdutil.EnvDataDir + "=" + filepath.Join(root, "mine")}, "lag")
	if code != cmdutil.ExitUsage || !strings.Contains(errOut, filepath.Join(root, "mine")+": no endpoints.json") || strings.Contains(errOut, dataDir) {
		t.Errorf("lag with %s: exit %d\n%s", cmdutil.EnvDataDir, code, errOut)
	}

	devCmd, devErr, again := startDev()
	if again.Kafka != first.Kafka || again.Registry != first.Registry || again.Redis != first.Redis || again.Gateway != first.Gateway || again.Monitor != first.Monitor {
		t.Errorf("ports changed across a restart:\n%+v\n%+v\n%s", first, again, devErr.String())
	}
	if !maps.Equal(again.Tokens, first.Tokens) || again.DispatchSecret != first.DispatchSecret {
		t.Errorf("tokens or secret changed across a restart")
	}
	_ = devCmd.Process.Signal(syscall.SIGINT)
	if err := devCmd.Wait(); err != nil {
		t.Errorf("dev after SIGINT: %v\n%s", err, devErr.String())
	}
}

package produce_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// setup creates the prefixed test topics on b and registers every schema in a fresh embedded
// registry; it returns the prefix, the catalog and the registry URL.
func setup(t *testing.T, b streamstest.Backend) (string, *topics.Catalog, string) {
	t.Helper()
	prefix := streamstest.Name(t, "t") + "."
	cat := streamstest.PrefixedCatalog(t, b, prefix)
	cl, url := streamstest.Registry(t)
	streamstest.RegisterSchemas(t, cl, cat)
	return prefix, cat, url
}

// line returns a seed-shaped points.added envelope for tenant with sequence number seq (carried in
// correlationId), leaving eventId, timestamp, version, source and traceId to the producer.
func line(t *testing.T, tenant string, seq int) string {
	t.Helper()
	v, _ := mustSchemas(t).Latest("points.added")
	var m map[string]any
	if err := json.Unmarshal(v.Example, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"eventId", "timestamp", "version"} {
		delete(m, k)
	}
	md := m["metadata"].(map[string]any)
	delete(md, "source")
	delete(md, "traceId")
	md["tenantId"], md["correlationId"] = tenant, strconv.Itoa(seq)
	b, _ := json.Marshal(m)
	return string(b)
}

var schemaSet *schemas.Set

func mustSchemas(t *testing.T) *schemas.Set {
	if schemaSet == nil {
		s, err := schemas.Load(schemas.Embedded())
		if err != nil {
			t.Fatal(err)
		}
		schemaSet = s
	}
	return schemaSet
}

func TestProduceCommand(t *testing.T) {
	b := streamstest.Kfake(t)
	prefix, cat, url := setup(t, b)
	input := strings.Join([]string{
		line(t, "tenant-a", 0),
		`{"eventType":"points.added","data":{},"metadata":{"tenantId":"x"}}`,
		line(t, "tenant-a", 1),
		`{"eventType":"reservation.created","data":{},"metadata":{"tenantId":"x"}}`,
		`not json`,
	}, "\n")
	r := cmdtest.Run(t, nil, input, "produce", "--system", "hotel-member", "--brokers", strings.Join(b.Brokers, ","), "--registry", url, "--prefix", prefix)
	if r.Code != 1 {
		t.Fatalf("exit %d, want 1 (some lines fail)\n%s%s", r.Code, r.Out, r.ErrOut)
	}
	lines := strings.Split(strings.TrimSpace(r.Out), "\n")
	want := []string{"1\tok\t", "2\terror\t", "3\tok\t", "4\terror\t", "5\terror\t"}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", r.Out)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i+1, lines[i], w)
		}
	}
	for i, frag := range map[int]string{1: "data.transactionId: required field is missing", 3: "hotel-member", 4: "malformed JSON"} {
		if !strings.Contains(lines[i], frag) {
			t.Errorf("line %d %q does not mention %q", i+1, lines[i], frag)
		}
	}
	tp, _ := cat.TopicFor("points.added")
	if !strings.Contains(lines[0], tp.Name) || !strings.Contains(r.ErrOut, "2 acknowledged, 0 spooled, 3 failed") {
		t.Errorf("output %q / %q", lines[0], r.ErrOut)
	}
	// usage errors
	for args, flag := range map[string]string{"produce --system hotel-spa": "--system", "produce --system hotel-pms --file /nope": "--file"} {
		if r := cmdtest.Run(t, nil, "", strings.Fields(args)...); r.Code != 2 || !strings.Contains(r.ErrOut, flag) {
			t.Errorf("%s: exit %d, stderr %q", args, r.Code, r.ErrOut)
		}
	}
}

// TestProduceFailsFastUnreachable runs the binary against brokers that refuse the connection,
// do not resolve, or accept it and never answer: each run exits 1 within --connect-timeout (and
// a margin) with one line naming Kafka, the address, where it came from and the request tried,
// instead of waiting forever for the broker.
func TestProduceFailsFastUnreachable(t *testing.T) {
	bin := cmdtest.Binary(t, "")
	// The schemas are registered, so that nothing but the broker stands in the way.
	cl, url := streamstest.Registry(t)
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	streamstest.RegisterSchemas(t, cl, cat)
	var silent net.Listener
	silent, err = net.Listen("tcp", "127.0.0.1:0") // accepts connections and never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, tc := range []struct{ name, brokers, timeout, want string }{
		{"refused", "127.0.0.1:1", "10s", "cannot reach Kafka at 127.0.0.1:1 (from --brokers): Metadata request: "},
		{"unknown host", "nosuchhost.invalid:9092", "10s", "cannot reach Kafka at nosuchhost.invalid:9092 (from --brokers): Metadata request: "},
		{"silent", silent.Addr().String(), "2s", "cannot reach Kafka at " + silent.Addr().String() + " (from --brokers): Metadata request: no answer within 2s (--connect-timeout)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "produce", "--system", "hotel-member", "--brokers", tc.brokers, "--registry", url,
				"--connect-timeout", tc.timeout)
			cmd.Stdin = strings.NewReader(line(t, "tenant-a", 0) + "\n")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			d, _ := time.ParseDuration(tc.timeout)
			if ctx.Err() != nil || took > d+5*time.Second {
				t.Fatalf("produce --brokers %s ran %s, want at most --connect-timeout %s and a margin\n%s", tc.brokers, took, tc.timeout, stderr.String())
			}
			if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), tc.want) || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Errorf("exit %d (%v), stderr:\n%s\nwant exit 1 and one line containing %q", cmd.ProcessState.ExitCode(), err, stderr.String(), tc.want)
			}
			t.Logf("%s: exit %d after %s: %s", tc.name, cmd.ProcessState.ExitCode(), took.Round(time.Millisecond), strings.TrimSpace(stderr.String()))
		})
	}
}

type result struct {
	Line    int    `json:"line"`
	Status  string `json:"status"`
	EventID string `json:"eventId"`
}

// TestSpoolSurvivesKill9: with the broker down, a producer process spools events across 100
// tenants and is killed with SIGKILL half way; after the broker and the producer restart, every
// event the producer reported as acknowledged or spooled is in Kafka, per-tenant order holds, and
// any duplicate is counted (only events in flight at the crash may repeat).
func TestSpoolSurvivesKill9(t *testing.T) {
	bin := cmdtest.Binary(t, "")
	for _, b := range streamstest.RestartableBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			prefix, cat, url := setup(t, b.Backend)
			const tenants, events = 100, 10_000
			var input strings.Builder
			for i := range events {
				input.WriteString(line(t, fmt.Sprintf("tenant-%03d", i%tenants), i/tenants))
				input.WriteByte('\n')
			}
			spoolDir := t.TempDir()
			args := []string{"produce", "--system", "hotel-member", "--brokers", strings.Join(b.Brokers, ","), "--registry", url,
				"--prefix", prefix, "--spool-dir", spoolDir, "--spool-after", "2s", "--json"}

			b.Stop(t)
			cmd := exec.Command(bin, args...)
			cmd.Stdin = strings.NewReader(input.String())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			reported := map[string]bool{}
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var r result
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Fatalf("output %q: %v", sc.Text(), err)
				}
				if r.Status != "spooled" && r.Status != "ok" {
					t.Fatalf("line %d: %s", r.Line, sc.Text())
				}
				reported[r.EventID] = true
				if len(reported) == events/2 {
					_ = cmd.Process.Signal(syscall.SIGKILL)
					break
				}
			}
			_ = cmd.Wait()
			if len(reported) != events/2 {
				t.Fatalf("producer reported %d events before dying\n%s", len(reported), stderr.String())
			}

			b.Start(t)
			drain := exec.Command(bin, append(args, "--drain-timeout", "90s")...)
			drain.Stdin = strings.NewReader("")
			if out, err := drain.CombinedOutput(); err != nil {
				t.Fatalf("restarted producer: %v\n%s", err, out)
			}

			tp, _ := cat.TopicFor("points.added")
			got, dups := readAll(t, b.Backend, tp.Name)
			for id := range reported {
				if _, ok := got[id]; !ok {
					t.Fatalf("event %s was reported spooled or acknowledged but never arrived", id)
				}
			}
			t.Logf("%s: %d reported before kill -9, %d arrived, %d duplicates", b.Name, len(reported), len(got), dups)
			if dups > 0 {
				t.Errorf("%d duplicates: nothing was in flight to the broker, so none may repeat", dups)
			}
			if _, err := os.Stat(filepath.Join(spoolDir, "hotel-member.spool")); err != nil {
				t.Errorf("spool file: %v", err)
			}
		})
	}
}

// readAll reads the whole topic and checks per-tenant order: each tenant's sequence numbers
// (correlationId) run 0, 1, 2... without gaps. It returns the eventIds seen and the duplicates.
func readAll(t *testing.T, b streamstest.Backend, topic string) (map[string]bool, int) {
	t.Helper()
	cl := b.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	seen := map[string]bool{}
	next := map[string]int{}
	dups := 0
	for read := int64(0); read < total; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", read, total)
		}
		for _, r := range fs.Records() {
			read++
			id := streams.Header(r, streams.HeaderEventID)
			if seen[id] {
				dups++
				continue
			}
			seen[id] = true
			seq, _ := strconv.Atoi(streams.Header(r, streams.HeaderCorrelationID))
			if k := string(r.Key); seq != next[k] {
				t.Fatalf("tenant %s: sequence %d after %d (lost or reordered)", k, seq, next[k]-1)
			}
			next[string(r.Key)]++
		}
	}
	return seen, dups
}

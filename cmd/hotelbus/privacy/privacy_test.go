package privacy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// TestForgetStatusReplayRotate: three guests' customer events are published sealed (two through
// the SDK, one through `hotelbus produce`); `privacy
// forget` erases one (exit 0, one key destroyed); `privacy status` shows no key and the erasure by
// its requester, and the key topic's settings as right; `replay` with the key file shows the
// erased guest's names as [erased] and the other's clear, with --redact keeps [erased] and hashes
// the rest, and without a key file shows them sealed; `privacy rotate-kek` re-wraps the two
// remaining keys. Missing --subject is a usage error (exit 2).
func TestForgetStatusReplayRotate(t *testing.T) {
	stack := cmdtest.Sealed(t, "privcmd", "hotel-member")
	b, prefix, cat, set, regURL, keyFile, serde, p := stack.Broker, stack.Prefix, stack.Catalog, stack.Schemas, stack.Registry, stack.KeyFile, stack.Serde, stack.Producer
	v, _ := set.Latest("customer.created")
	for i, id := range []string{"cus_gone", "cus_kept"} {
		env, err := serde.ParseJSON(v.Example)
		if err != nil {
			t.Fatal(err)
		}
		env.EventID, env.Metadata.Source, env.Metadata.CorrelationID, env.Metadata.TraceID = "", "", "", ""
		env.Data["customerId"], env.Data["lastName"] = id, fmt.Sprintf("Family%d", i)
		if _, err := p.Publish(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"HOTELBUS_BROKERS": strings.Join(b.Brokers, ","), "HOTELBUS_REGISTRY": regURL,
		cmdutil.EnvKeyFile: keyFile, "HOTELBUS_REDACT_KEY": "0123456789abcdef0123"}

	// `hotelbus produce` seals with the key file too.
	var line map[string]any
	if err := json.Unmarshal(v.Example, &line); err != nil {
		t.Fatal(err)
	}
	delete(line, "eventId")
	line["data"].(map[string]any)["customerId"], line["data"].(map[string]any)["lastName"] = "cus_cli", "FamilyCLI"
	stdin, _ := json.Marshal(line)
	if res := cmdtest.Run(t, env, string(stdin)+"\n", "produce", "--prefix", prefix, "--system", "hotel-member"); res.Code != 0 {
		t.Fatalf("produce: exit %d\n%s", res.Code, res.ErrOut)
	}

	res := cmdtest.Run(t, env, "", "privacy", "forget", "--prefix", prefix, "--tenant", "sakura-hotels", "--subject", "cus_gone", "--by", "dpo@sakura", "--json")
	var fr struct {
		KeysDestroyed int    `json:"keysDestroyed"`
		By            string `json:"by"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Out), &fr) != nil || fr.KeysDestroyed != 1 || fr.By != "dpo@sakura" {
		t.Fatalf("forget: exit %d\n%s\n%s", res.Code, res.Out, res.ErrOut)
	}
	res = cmdtest.Run(t, env, "", "privacy", "status", "--prefix", prefix, "--tenant", "sakura-hotels", "--subject", "cus_gone", "--json")
	var st struct {
		Keys     []privacy.KeyInfo `json:"keys"`
		Erasures []privacy.Erasure `json:"erasures"`
		Issues   []string          `json:"keyTopicIssues"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Out), &st) != nil || len(st.Keys) != 0 || len(st.Erasures) != 1 ||
		st.Erasures[0].By != "dpo@sakura" || len(st.Issues) != 0 {
		t.Fatalf("status: exit %d\n%s\n%s", res.Code, res.Out, res.ErrOut)
	}
	if res := cmdtest.Run(t, env, "", "privacy", "status", "--prefix", prefix, "--tenant", "sakura-hotels"); res.Code != 2 {
		t.Errorf("status without --subject: exit %d, want 2\n%s", res.Code, res.ErrOut)
	}

	replay := func(env map[string]string, extra ...string) map[string]map[string]any {
		t.Helper()
		res := cmdtest.Run(t, env, "", append([]string{"replay", "--prefix", prefix, "--event-type", "customer.created", "--no-progress"}, extra...)...)
		if res.Code != 0 {
			t.Fatalf("replay %v: exit %d\n%s", extra, res.Code, res.ErrOut)
		}
		out := map[string]map[string]any{}
		for _, line := range strings.Split(strings.TrimSpace(res.Out), "\n") {
			var e struct{ Data map[string]any }
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("replay line %q: %v", line, err)
			}
			out[e.Data["customerId"].(string)] = e.Data
		}
		return out
	}
	got := replay(env)
	if got["cus_gone"]["lastName"] != privacy.Erased || got["cus_gone"]["email"] != privacy.Erased || got["cus_kept"]["lastName"] != "Family1" ||
		got["cus_cli"]["lastName"] != "FamilyCLI" {
		t.Errorf("replay with the key file: %v", got)
	}
	got = replay(env, "--redact")
	if got["cus_gone"]["lastName"] != privacy.Erased || !strings.HasPrefix(got["cus_kept"]["lastName"].(string), "h:") {
		t.Errorf("replay --redact: %v", got)
	}
	noKeys := map[string]string{"HOTELBUS_BROKERS": env["HOTELBUS_BROKERS"], "HOTELBUS_REGISTRY": regURL}
	got = replay(noKeys)
	for _, id := range []string{"cus_kept", "cus_cli"} {
		if s, _ := got[id]["lastName"].(string); !strings.HasPrefix(s, privacy.Prefix) {
			t.Errorf("replay without a key file: lastName of %s %q, want sealed", id, s)
		}
	}

	// Dead letters hold the sealed record; `dlq show` opens it with the key file.
	deadLetters(t, b, cat, serde, 3)
	res = cmdtest.Run(t, env, "", "dlq", "list", "--prefix", prefix, "--system", "hotel-common", "--records", "--json")
	var listed struct{ Records []struct{ Ref string } }
	if res.Code != 0 || json.Unmarshal([]byte(res.Out), &listed) != nil || len(listed.Records) != 3 {
		t.Fatalf("dlq list: exit %d\n%s\n%s", res.Code, res.Out, res.ErrOut)
	}
	show := func(env map[string]string) map[string]map[string]any {
		t.Helper()
		out := map[string]map[string]any{}
		for _, rec := range listed.Records {
			res := cmdtest.Run(t, env, "", "dlq", "show", "--prefix", prefix, rec.Ref, "--json")
			var shown struct{ Envelope struct{ Data map[string]any } }
			if res.Code != 0 || json.Unmarshal([]byte(res.Out), &shown) != nil || shown.Envelope.Data == nil {
				t.Fatalf("dlq show %s: exit %d\n%s\n%s", rec.Ref, res.Code, res.Out, res.ErrOut)
			}
			out[shown.Envelope.Data["customerId"].(string)] = shown.Envelope.Data
		}
		return out
	}
	got = show(env)
	if got["cus_gone"]["lastName"] != privacy.Erased || got["cus_kept"]["lastName"] != "Family1" || got["cus_cli"]["lastName"] != "FamilyCLI" {
		t.Errorf("dlq show with the key file: %v", got)
	}
	got = show(noKeys)
	if s, _ := got["cus_kept"]["lastName"].(string); !strings.HasPrefix(s, privacy.Prefix) {
		t.Errorf("dlq show without a key file: lastName %q, want sealed", s)
	}

	res = cmdtest.Run(t, env, "", "privacy", "rotate-kek", "--prefix", prefix, "--json")
	var rr struct {
		Rewrapped int `json:"rewrapped"`
	}
	if res.Code != 0 || json.Unmarshal([]byte(res.Out), &rr) != nil || rr.Rewrapped != 2 {
		t.Fatalf("rotate-kek: exit %d\n%s\n%s", res.Code, res.Out, res.ErrOut)
	}
}

// deadLetters runs hotel-common's consumer (it subscribes to every event type), with a handler
// that fails every event permanently, until n events are in its dead-letter topic.
func deadLetters(t *testing.T, b streamstest.Backend, cat *topics.Catalog, serde *streams.Serde, n int) {
	t.Helper()
	sys, _ := cat.System("hotel-common")
	dl, err := streams.NewDeadLetters(streamstest.Writer(t, b, cat, sys.Name), sys.DeadLetterTopic, streams.DeadLetterLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := streams.NewConsumer(sys.Name, serde, streams.Brokers(b.Brokers...), streams.Logger(slog.New(slog.DiscardHandler)),
		streams.UseStandard(streams.StandardChain{DeadLetters: dl}))
	if err != nil {
		t.Fatal(err)
	}
	c.HandleType("customer.created", func(context.Context, *streams.Message) error {
		return streams.Permanent(errors.New("profile locked"))
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	streamstest.Eventually(t, time.Minute, "the dead letters written", func() bool {
		var sum int64
		for _, k := range dl.DeadLettered() {
			sum += k
		}
		return sum >= int64(n)
	})
	cancel()
	<-done
}

package streams_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
	"github.com/twmb/franz-go/pkg/sr"
)

func loadAll(t testing.TB) (*schemas.Set, *topics.Catalog) {
	t.Helper()
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	cat, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return set, cat
}

// newSerde returns an auto-registering Serde on a fresh embedded registry, and the registry's URL.
func newSerde(t testing.TB, set *schemas.Set, cat *topics.Catalog) (*streams.Serde, string) {
	t.Helper()
	cl, url := streamstest.Registry(t)
	s, err := streams.NewSerde(cl, set, cat, streams.AutoRegister(true))
	if err != nil {
		t.Fatal(err)
	}
	return s, url
}

// TestGoldenRoundTrip: every event type's golden JSON goes JSON -> Envelope -> Avro (wire format) ->
// Envelope -> JSON and comes back byte for byte.
func TestGoldenRoundTrip(t *testing.T) {
	set, cat := loadAll(t)
	serde, _ := newSerde(t, set, cat)
	if len(set.Subjects) < 20 {
		t.Fatalf("only %d subjects", len(set.Subjects))
	}
	for _, sub := range set.Subjects {
		t.Run(sub.EventType, func(t *testing.T) {
			golden := sub.Latest().Example
			env, err := serde.ParseJSON(golden)
			if err != nil {
				t.Fatalf("parse golden: %v", err)
			}
			topic, wire, err := serde.AppendEncode(context.Background(), nil, env)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if want, _ := cat.TopicFor(sub.EventType); topic != want.Name {
				t.Errorf("topic = %s, want %s", topic, want.Name)
			}
			if wire[0] != 0 || binary.BigEndian.Uint32(wire[1:5]) == 0 {
				t.Errorf("not Confluent wire format: % x", wire[:5])
			}
			back, err := serde.Decode(context.Background(), wire)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			clear(wire) // the decoded event holds no part of the record (its buffer is reused)
			out, err := serde.JSON(back)
			if err != nil {
				t.Fatalf("json: %v", err)
			}
			var indented bytes.Buffer
			if err := json.Indent(&indented, out, "", "  "); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			indented.WriteByte('\n')
			if !bytes.Equal(indented.Bytes(), golden) {
				t.Errorf("round trip differs\n got: %s\nwant: %s", indented.Bytes(), golden)
			}
		})
	}
}

func TestParseJSONNamesBadFields(t *testing.T) {
	set, cat := loadAll(t)
	serde, _ := newSerde(t, set, cat)
	golden := latest(t, set, "service.ordered").Example
	cases := []struct {
		name   string
		mutate func(m map[string]any)
		want   []string
	}{
		{"price as number", func(m map[string]any) { data(m)["price"].(map[string]any)["amount"] = 1500 },
			[]string{"data.price.amount: expected decimal string, got number"}},
		{"missing tenant", func(m map[string]any) { delete(m["metadata"].(map[string]any), "tenantId") },
			[]string{"metadata.tenantId: required field is missing"}},
		{"unknown data field and bad quantity", func(m map[string]any) { data(m)["colour"] = "red"; data(m)["quantity"] = "two" },
			[]string{"data.colour: unknown field", "data.quantity: expected int, got string"}},
		{"bad timestamp", func(m map[string]any) { m["timestamp"] = "yesterday" },
			[]string{"timestamp: expected an RFC 3339 timestamp"}},
		{"missing required data field", func(m map[string]any) { delete(data(m), "orderId") },
			[]string{"data.orderId: required field is missing"}},
		{"decimal with too many places", func(m map[string]any) { data(m)["price"].(map[string]any)["amount"] = "1.005" },
			[]string{"data.price.amount: ", "more than 2 decimal places"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(golden, &m); err != nil {
				t.Fatal(err)
			}
			tc.mutate(m)
			b, _ := json.Marshal(m)
			_, err := serde.ParseJSON(b)
			var inv *streams.InvalidEventError
			if !errors.As(err, &inv) || !errors.Is(err, streams.ErrInvalidEvent) {
				t.Fatalf("err = %v, want *InvalidEventError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if streams.IsRetryable(err) {
				t.Error("invalid events must not be retryable")
			}
		})
	}
	if _, err := serde.ParseJSON([]byte(`{"eventType":"room.cleaned","timestamp":"2026-01-01T00:00:00Z","data":{},"metadata":{}}`)); !errors.Is(err, streams.ErrUnknownEventType) {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := serde.ParseJSON([]byte(`{"eventType":`)); !errors.Is(err, streams.ErrInvalidEvent) || !strings.Contains(err.Error(), "malformed JSON") {
		t.Errorf("malformed: %v", err)
	}
}

func TestEncodeValidatesGoValues(t *testing.T) {
	set, cat := loadAll(t)
	serde, _ := newSerde(t, set, cat)
	env, err := serde.ParseJSON(latest(t, set, "service.ordered").Example)
	if err != nil {
		t.Fatal(err)
	}
	env.Data["price"] = map[string]any{"amount": big.NewRat(150000, 100), "currency": "JPY"}
	if _, _, err := serde.AppendEncode(context.Background(), nil, env); err != nil {
		t.Fatalf("*big.Rat amount refused: %v", err)
	}
	env.Data["quantity"] = int64(1) << 40
	env.Metadata.TenantID = ""
	_, _, err = serde.AppendEncode(context.Background(), nil, env)
	for _, w := range []string{"data.quantity: 1099511627776 does not fit in an int", "metadata.tenantId: must not be empty"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
}

// TestDecodeResolvesWriterVersions: a record written with 1.0 is read by a consumer whose newest
// local schema is 1.1 (an optional field added), and a 1.1 record is read by a 1.0 consumer.
func TestDecodeResolvesWriterVersions(t *testing.T) {
	oldSet, cat := loadAll(t)
	v10 := latest(t, oldSet, "service.canceled")
	newSet := withMinor(t, v10, `{"name":"refundReason","type":["null","string"],"default":null,"doc":"Why a refund was given."}`)
	cl, _ := streamstest.Registry(t)
	oldSerde, _ := streams.NewSerde(cl, oldSet, cat, streams.AutoRegister(true))
	newSerde, _ := streams.NewSerde(cl, newSet, cat, streams.AutoRegister(true))
	ctx := context.Background()

	env, err := oldSerde.ParseJSON(v10.Example)
	if err != nil {
		t.Fatal(err)
	}
	_, wire, err := oldSerde.AppendEncode(ctx, nil, env)
	if err != nil {
		t.Fatal(err)
	}
	got, err := newSerde.Decode(ctx, wire)
	if err != nil {
		t.Fatalf("1.1 reader on 1.0 data: %v", err)
	}
	if got.Version != "1.1" || got.Data["refundReason"] != nil || got.Data["orderId"] != env.Data["orderId"] {
		t.Errorf("1.1 reader got version %s data %v", got.Version, got.Data)
	}

	got.Data["refundReason"] = "late delivery"
	_, wire, err = newSerde.AppendEncode(ctx, nil, got)
	if err != nil {
		t.Fatal(err)
	}
	old, err := oldSerde.Decode(ctx, wire)
	if err != nil {
		t.Fatalf("1.0 reader on 1.1 data: %v", err)
	}
	if old.Version != "1.0" || old.EventID != env.EventID {
		t.Errorf("1.0 reader got %s %s", old.Version, old.EventID)
	}
	if _, has := old.Data["refundReason"]; has {
		t.Error("1.0 reader sees a field it does not know")
	}
}

func TestDecodeRefusesMalformed(t *testing.T) {
	set, cat := loadAll(t)
	serde, _ := newSerde(t, set, cat)
	for name, b := range map[string][]byte{"empty": nil, "bad magic": {1, 0, 0, 0, 1, 2}, "unknown id": {0, 0, 0, 0x7f, 0x7f, 2}} {
		if _, err := serde.Decode(context.Background(), b); !errors.Is(err, streams.ErrMalformedRecord) || streams.IsRetryable(err) {
			t.Errorf("%s: err = %v, want non-retryable ErrMalformedRecord", name, err)
		}
	}
}

func TestNotRegisteredWithoutAutoRegister(t *testing.T) {
	set, cat := loadAll(t)
	cl, _ := streamstest.Registry(t)
	serde, err := streams.NewSerde(cl, set, cat)
	if err != nil {
		t.Fatal(err)
	}
	env, err := serde.ParseJSON(latest(t, set, "billing.paid").Example)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := serde.AppendEncode(context.Background(), nil, env); !errors.Is(err, streams.ErrNotRegistered) {
		t.Errorf("err = %v, want ErrNotRegistered", err)
	}
}

func latest(t testing.TB, set *schemas.Set, eventType string) *schemas.Version {
	t.Helper()
	v, ok := set.Latest(eventType)
	if !ok {
		t.Fatalf("no schema for %s", eventType)
	}
	return v
}

func data(m map[string]any) map[string]any { return m["data"].(map[string]any) }

// withMinor returns a schema set holding v's subject plus a next minor version that appends field
// to the data record.
func withMinor(t testing.TB, v *schemas.Version, field string) *schemas.Set {
	t.Helper()
	return withVersion(t, v, v.Major, v.Minor+1, field)
}

// withMajor returns a schema set holding v's subject plus version <major+1>.0, the data record
// moved to the new major's namespace with field appended.
func withMajor(t testing.TB, v *schemas.Version, field string) *schemas.Set {
	t.Helper()
	return withVersion(t, v, v.Major+1, 0, field)
}

func withVersion(t testing.TB, v *schemas.Version, major, minor int, field string) *schemas.Set {
	t.Helper()
	fsys := fstest.MapFS{}
	src := schemas.Embedded()
	for _, p := range []string{schemas.EnvelopeFile, v.File} {
		b, err := fs.ReadFile(src, p)
		if err != nil {
			t.Fatal(err)
		}
		fsys[p] = &fstest.MapFile{Data: b}
	}
	oldDir := v.File[:strings.LastIndex(v.File, "/")]
	fsys[oldDir+"/example.json"] = &fstest.MapFile{Data: v.Example}
	dir := fmt.Sprintf("%s/v%d", oldDir[:strings.LastIndex(oldDir, "/")], major)
	var rec map[string]any
	if err := json.Unmarshal(fsys[v.File].Data, &rec); err != nil {
		t.Fatal(err)
	}
	var f any
	if err := json.Unmarshal([]byte(field), &f); err != nil {
		t.Fatal(err)
	}
	rec["fields"] = append(rec["fields"].([]any), f)
	rec["namespace"] = strings.TrimSuffix(rec["namespace"].(string), fmt.Sprintf("v%d", v.Major)) + fmt.Sprintf("v%d", major)
	next, _ := json.Marshal(rec)
	fsys[fmt.Sprintf("%s/%d.%d.avsc", dir, major, minor)] = &fstest.MapFile{Data: next}
	var ex map[string]any
	if err := json.Unmarshal(v.Example, &ex); err != nil {
		t.Fatal(err)
	}
	ex["version"] = fmt.Sprintf("%d.%d", major, minor)
	exb, _ := json.Marshal(ex)
	fsys[dir+"/example.json"] = &fstest.MapFile{Data: exb}
	set, err := schemas.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestUnknownFieldHintsVersion: a field of a later minor version sent under an earlier "version" is
// refused as unknown, and the error says that the version selects the schema and which version has
// the field, both for JSON (ParseJSON) and for a Go Envelope (Encode).
func TestUnknownFieldHintsVersion(t *testing.T) {
	full, cat := loadAll(t)
	v := latest(t, full, "service.ordered")
	set := withMinor(t, v, `{"name": "giftWrap", "type": ["null", "string"], "default": null}`)
	serde, _ := newSerde(t, set, cat)
	var m map[string]any
	if err := json.Unmarshal(v.Example, &m); err != nil {
		t.Fatal(err)
	}
	m["version"] = v.String()
	data(m)["giftWrap"] = "ribbon"
	data(m)["colour"] = "red"
	b, _ := json.Marshal(m)
	_, err := serde.ParseJSON(b)
	want := `data.giftWrap: unknown field (not in schema hotelbus.service.v1.ServiceOrdered version 1.0, which the event's "version" selects; version 1.1 has it: send "version": "1.1", or no version for the newest)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("ParseJSON: %v\nwant %s", err, want)
	}
	if want := `data.colour: unknown field (not in schema hotelbus.service.v1.ServiceOrdered version 1.0, which the event's "version" selects)`; !strings.Contains(err.Error(), want) {
		t.Errorf("ParseJSON: %v\nwant %s", err, want)
	}

	delete(m, "version")
	b, _ = json.Marshal(m)
	_, err = serde.ParseJSON(b)
	if want := `data.colour: unknown field (not in schema hotelbus.service.v1.ServiceOrdered version 1.1, the newest: the event gives no "version")`; err == nil ||
		strings.Contains(err.Error(), "giftWrap") || !strings.Contains(err.Error(), want) {
		t.Fatalf("newest version: %v, want only colour refused: %s", err, want)
	}
	delete(data(m), "colour")
	b, _ = json.Marshal(m)
	env, err := serde.ParseJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	env.Version = v.String()
	_, _, err = serde.AppendEncode(context.Background(), nil, env)
	if want := `data.giftWrap: unknown field (not in schema hotelbus.service.v1.ServiceOrdered version 1.0, which the event's "version" selects; version 1.1 has it`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Encode: %v\nwant %s", err, want)
	}
}

// TestWriterSchemaFetchedOnce: 64 goroutines decoding records of a schema id the Serde has not
// seen yet (as the consumer's workers do after a new version is published) make one registry
// request for it, not one each; and 64 goroutines publishing the first events of a version make
// one registration.
func TestWriterSchemaFetchedOnce(t *testing.T) {
	set, cat := loadAll(t)
	writer, regURL := newSerde(t, set, cat)
	ctx := context.Background()
	env, err := writer.ParseJSON(latest(t, set, "service.canceled").Example)
	if err != nil {
		t.Fatal(err)
	}
	_, wire, err := writer.AppendEncode(ctx, nil, env)
	if err != nil {
		t.Fatal(err)
	}
	counted, requests := countingRegistry(t, regURL)
	cl, err := sr.NewClient(sr.URLs(counted))
	if err != nil {
		t.Fatal(err)
	}
	reader, err := streams.NewSerde(cl, set, cat, streams.AutoRegister(true))
	if err != nil {
		t.Fatal(err)
	}
	concurrently := func(f func() error) {
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := f(); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	concurrently(func() error { _, err := reader.Decode(ctx, wire); return err })
	if n := requests("GET /schemas/ids/"); n != 1 {
		t.Errorf("%d registry requests for one schema id, want 1", n)
	}
	other, err := reader.ParseJSON(latest(t, set, "reservation.created").Example)
	if err != nil {
		t.Fatal(err)
	}
	concurrently(func() error { _, err := reader.Record(ctx, other); return err })
	if n := requests("POST /subjects/"); n != 1 {
		t.Errorf("%d registrations of one version, want 1", n)
	}
}

// countingRegistry puts a proxy in front of the registry at regURL that delays each request by
// 20 ms (a registry some distance away, so that concurrent callers overlap) and counts them: it
// returns the proxy's URL and how many requests began with a method and path prefix.
func countingRegistry(t *testing.T, regURL string) (string, func(prefix string) int) {
	target, err := url.Parse(regURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func(prefix string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, s := range seen {
			if strings.HasPrefix(s, prefix) {
				n++
			}
		}
		return n
	}
}

package views_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/events"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/simulate"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/streams/views"
	"github.com/hotelbus/hotelbus/topics"
)

// TestPersonalDataOpenedAtRead: events published sealed (streams/privacy) feed hotel-saas's views
// (guests: upsert; stays: merge of a reservation, sealed under its guest's key, and a check-in,
// sealed under the reservation's). A view given a Protector serves clear values through Get, Scan,
// GetAs and the HTTP API, equal to a model of the clear events; one without serves them sealed;
// the store file holds no clear personal value; after `privacy forget` of one guest (by another
// process) that guest's values read privacy.Erased, field by field where an item mixes events,
// while the other guest and non-personal fields stay clear; a store rebuilt from the changelog
// still opens.
func TestPersonalDataOpenedAtRead(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { testPersonalDataOpenedAtRead(t, b) })
	}
}

func testPersonalDataOpenedAtRead(t *testing.T, b streamstest.Backend) {
	rc, url := streamstest.Registry(t)
	r := newRigWith(t, b, rc, url)
	keyFile := filepath.Join(t.TempDir(), privacy.KeyFileName)
	if _, err := privacy.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	subjects, err := privacy.LoadSubjects(topics.Embedded(), r.cat, r.set)
	if err != nil {
		t.Fatal(err)
	}
	// newKeys starts a Keys as a new process would.
	newKeys := func() *privacy.Keys {
		kf, err := privacy.OpenKeyFile(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		w, err := streams.NewWriter("hotel-common", r.cat, streams.Brokers(r.b.Brokers...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close(context.Background()) })
		keys, err := privacy.NewKeys(w, kf, r.cat.KeyTopic, []kgo.Opt{kgo.SeedBrokers(r.b.Brokers...)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(keys.Close)
		return keys
	}
	sealing, err := streams.NewSerde(rc, r.set, r.cat, streams.WithFieldProtector(privacy.NewProtector(subjects, newKeys())))
	if err != nil {
		t.Fatal(err)
	}

	const tenant, guestA, guestB, stayA, stayB = "sakura-hotels", "cus_viewA01", "cus_viewB02", "rsv_viewA01", "rsv_viewB02"
	example := func(eventType string, set func(d map[string]any)) *simulate.Event {
		v, _ := r.set.Latest(eventType)
		env, err := r.serde.ParseJSON(v.Example)
		if err != nil {
			t.Fatal(err)
		}
		env.EventID, env.Timestamp, env.Version = "", time.Time{}, ""
		env.Metadata.Source, env.Metadata.CorrelationID, env.Metadata.TraceID = "", "", ""
		env.Metadata.TenantID = tenant
		set(env.Data)
		owner, _ := r.cat.Owner(eventType)
		return &simulate.Event{System: owner, Envelope: env}
	}
	customer := func(id, first, email string) *simulate.Event {
		return example("customer.updated", func(d map[string]any) { d["customerId"], d["firstName"], d["email"] = id, first, email })
	}
	reservation := func(id, guest, given, email string) *simulate.Event {
		return example("reservation.updated", func(d map[string]any) {
			d["reservationId"] = id
			g := d["primaryGuest"].(map[string]any)
			g["customerId"], g["givenName"], g["email"] = guest, given, email
		})
	}
	checkIn := func(id, by string) *simulate.Event {
		return example("checkin_checkout.checked_in", func(d map[string]any) { d["reservationId"], d["checkedInBy"] = id, by })
	}
	evs := []*simulate.Event{
		customer(guestA, "Aiko", "aiko.tanaka@example.jp"), customer(guestB, "Ben", "ben.okafor@example.jp"),
		reservation(stayA, guestA, "Aiko", "aiko.tanaka@example.jp"), checkIn(stayA, "usr_desk_viewA01"),
		reservation(stayB, guestB, "Ben", "ben.okafor@example.jp"), checkIn(stayB, "usr_desk_viewB02"),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ev := range evs {
		p, err := streams.NewProducer(ev.System, sealing, streams.Brokers(r.b.Brokers...))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Publish(ctx, ev.Envelope); err != nil {
			t.Fatal(err)
		}
		_ = p.Close(ctx)
	}
	model := r.model(t, "hotel-saas", evs) // the clear values
	openLocal := func(dir string, protector views.Protector) *views.Local {
		cfg := r.config("hotel-saas", dir)
		cfg.Protector = protector
		l, err := views.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r.caughtUp(t, l, time.Minute)
		return l
	}
	dir := t.TempDir()
	opened := openLocal(dir, privacy.NewProtector(subjects, newKeys()))
	sealedDir := t.TempDir()
	sealed := openLocal(sealedDir, nil)

	// Clear through Get and Scan (diff), GetAs and HTTP; sealed without a Protector.
	if n := diff(t, opened, model, []string{tenant}); n != 0 {
		t.Fatalf("the view with a Protector differs from the clear events in %d items", n)
	}
	guests, _ := opened.View("guests")
	typed, _, err := views.GetAs[events.CustomerUpdatedV1](guests, tenant, guestA)
	if err != nil || typed.FirstName != "Aiko" || typed.Email == nil || *typed.Email != "aiko.tanaka@example.jp" {
		t.Fatalf("GetAs: %+v %v", typed, err)
	}
	srv := httptest.NewServer(opened.Handler(nil))
	defer srv.Close()
	httpGet := func(path string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	for _, path := range []string{"/v1/views/guests/" + tenant + "/" + guestA, "/v1/views/guests/" + tenant, "/v1/views/stays/" + tenant + "/" + stayA} {
		if body := httpGet(path); !strings.Contains(body, "aiko.tanaka@example.jp") || strings.Contains(body, privacy.Prefix) {
			t.Fatalf("GET %s with a Protector: not clear: %s", path, body)
		}
	}
	sealedGuests, _ := sealed.View("guests")
	it, err := sealedGuests.Get(tenant, guestA)
	if err != nil || !bytes.Contains(it.Data, []byte(`"email":"`+privacy.Prefix)) || it.Sealed["email"].EventID != evs[0].Envelope.EventID {
		t.Fatalf("without a Protector, the item is not served sealed with its origins: %s %v %v", it.Data, it.Sealed, err)
	}

	// The store files hold no clear personal value: every string the opened view serves that the
	// sealed one does not.
	personal := map[string]bool{}
	for _, name := range []string{"guests", "stays"} {
		ov, _ := opened.View(name)
		sv, _ := sealed.View(name)
		oi, _, _ := ov.Scan(tenant, "", "", 1000)
		si, _, _ := sv.Scan(tenant, "", "", 1000)
		if len(oi) != 2 || len(si) != 2 {
			t.Fatalf("%s: %d and %d items, want 2", name, len(oi), len(si))
		}
		for i := range oi {
			inSealed := map[string]bool{}
			for _, s := range jsonStrings(t, si[i].Data) {
				inSealed[s] = true
			}
			for _, s := range jsonStrings(t, oi[i].Data) {
				if !inSealed[s] {
					personal[s] = true
				}
			}
		}
	}
	for _, want := range []string{"aiko.tanaka@example.jp", "Ben", "usr_desk_viewA01"} {
		if !personal[want] {
			t.Fatalf("%q is not among the opened values %v", want, personal)
		}
	}
	_ = opened.Close()
	_ = sealed.Close()
	for _, d := range []string{dir, sealedDir} {
		raw, err := os.ReadFile(filepath.Join(d, views.StoreFile))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(raw, []byte(privacy.Prefix)) {
			t.Fatalf("%s holds no sealed value", d)
		}
		for s := range personal {
			// Shorter values (a country code) could occur by chance in the base64 of the sealed ones;
			// a value a schema's documentation names (a dietary code) is in the store's schema cache.
			if len(s) >= 6 && !inSchemas(r.set, s) && bytes.Contains(raw, []byte(s)) {
				t.Fatalf("the store file %s holds the clear value %q", d, s)
			}
		}
	}
	t.Logf("%d personal values served clear, none in the store files", len(personal))

	// Guest A is forgotten by another process while the view runs (its key cached): A's values
	// read erased, B's stay clear, and in the merged stay of A, the check-in's values (the
	// reservation's key) stay clear too.
	reopened := openLocal(dir, privacy.NewProtector(subjects, newKeys()))
	if body := httpGetFrom(t, reopened, "/v1/views/guests/"+tenant+"/"+guestA); !strings.Contains(body, "aiko.tanaka@example.jp") {
		t.Fatalf("reopened, before forget: %s", body)
	}
	if _, err := newKeys().Forget(ctx, tenant, guestA, "test"); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) { // the key topic's broadcast
		if body := httpGetFrom(t, reopened, "/v1/views/guests/"+tenant+"/"+guestA); strings.Contains(body, `"email":"`+privacy.Erased+`"`) {
			break
		} else if time.Since(start) > 15*time.Second {
			t.Fatalf("guest A still readable 15s after forget: %s", body)
		}
	}
	checkErased := func(l *views.Local) {
		t.Helper()
		g, _ := l.View("guests")
		a, err := g.Get(tenant, guestA)
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		_ = json.Unmarshal(a.Data, &d)
		if d["firstName"] != privacy.Erased || d["email"] != privacy.Erased || d["customerId"] != guestA || d["preferredLanguage"] != "en-US" || len(a.Sealed) != 0 {
			t.Fatalf("guest A after forget: %s (still sealed: %v)", a.Data, a.Sealed)
		}
		s, _ := l.View("stays")
		st, err := s.Get(tenant, stayA)
		if err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(st.Data, &d)
		guest := d["primaryGuest"].(map[string]any)
		if guest["email"] != privacy.Erased || guest["customerId"] != guestA || d["checkedInBy"] != "usr_desk_viewA01" {
			t.Fatalf("stay of A after forget: %s", st.Data)
		}
		delete(model["guests"], tenant+"/"+guestA)
		delete(model["stays"], tenant+"/"+stayA)
		for _, name := range []string{"guests", "stays"} {
			v, _ := l.View(name)
			key := map[string]string{"guests": guestB, "stays": stayB}[name]
			got, err := v.Get(tenant, key)
			var gd map[string]any
			_ = json.Unmarshal(got.Data, &gd)
			if want := model[name][tenant+"/"+key]; err != nil || !jsonEqual(gd, want.data) {
				t.Fatalf("%s of guest B after A's forget: %s %v, want %v", name, got.Data, err, want.data)
			}
		}
	}
	checkErased(reopened)
	_ = reopened.Close()

	// A new disk restores from the changelog: the origins come with the items.
	restored := openLocal(t.TempDir(), privacy.NewProtector(subjects, newKeys()))
	defer restored.Close()
	checkErased(restored)
}

// inSchemas reports whether s occurs in the text of a schema version of set.
func inSchemas(set *schemas.Set, s string) bool {
	for _, sub := range set.Subjects {
		for _, v := range sub.Versions {
			if strings.Contains(v.Text, s) {
				return true
			}
		}
	}
	return false
}

// httpGetFrom answers path from l's handler.
func httpGetFrom(t *testing.T, l *views.Local, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	l.Handler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// jsonStrings returns every string value of a JSON document.
func jsonStrings(t *testing.T, doc []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return out
}

func jsonEqual(a, b map[string]any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(normalize(b))
	return string(ja) == string(jb)
}

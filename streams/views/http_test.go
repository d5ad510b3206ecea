package views_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/streams/views"
)

// TestHTTP: tokens read only their system's views and their tenant scope, absent items and
// unknown views are 404 problem+json, bad input 400, and a tenant's items page with a cursor
// through exactly the model's keys.
func TestHTTP(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	evs := r.events(t, 1500, 3, 31)
	r.publish(t, evs)
	l := r.open(t, "hotel-saas", t.TempDir())
	r.caughtUp(t, l, time.Minute)
	model := r.model(t, "hotel-saas", evs)
	tenants := tenantsOf(evs)
	other := "other-tenant-token-0123456789"
	creds, err := gateway.NewCredentials([]string{"hotel-saas", "hotel-pms"}, gateway.CredentialSource{Tokens: map[string][]string{
		"hotel-saas": {testToken}, "hotel-pms": {other}}})
	if err != nil {
		t.Fatal(err)
	}
	scoped := t.TempDir() + "/tokens"
	writeFile(t, scoped, "hotel-saas scoped-token-0123456789 tenants="+tenants[0]+"\n")
	scopedCreds, err := gateway.NewCredentials([]string{"hotel-saas"}, gateway.CredentialSource{Path: scoped})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler(creds))
	defer srv.Close()
	scopedSrv := httptest.NewServer(l.Handler(scopedCreds))
	defer scopedSrv.Close()
	var anyKey string
	for k := range model["stays"] {
		if strings.HasPrefix(k, tenants[1]+"/") {
			anyKey = strings.TrimPrefix(k, tenants[1]+"/")
		}
	}
	get := func(base, token, path string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp, []byte(b.String())
	}
	stay := "/v1/views/stays/" + tenants[1] + "/" + anyKey
	for _, tc := range []struct {
		name, base, token, path string
		status                  int
		problem                 string
	}{
		{"item", srv.URL, testToken, stay, 200, ""},
		{"no token", srv.URL, "", stay, 401, "unauthenticated"},
		{"unknown token", srv.URL, "nope-nope-nope-nope-nope", stay, 401, "unauthenticated"},
		{"another system's token", srv.URL, other, stay, 403, "not-your-views"},
		{"outside the tenant scope", scopedSrv.URL, "scoped-token-0123456789", stay, 403, "tenant-not-allowed"},
		{"inside the tenant scope", scopedSrv.URL, "scoped-token-0123456789", "/v1/views/stays/" + tenants[0] + "?limit=1", 200, ""},
		{"absent item", srv.URL, testToken, "/v1/views/stays/" + tenants[1] + "/rsv_absent", 404, "not-found"},
		{"unknown view", srv.URL, testToken, "/v1/views/orders/" + tenants[1] + "/x", 404, "unknown-view"},
		{"bad key", srv.URL, testToken, "/v1/views/stays/" + tenants[1] + "/%2Fetc", 400, "invalid-request"},
		{"bad limit", srv.URL, testToken, "/v1/views/stays/" + tenants[1] + "?limit=5000", 400, "invalid-request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(tc.base, tc.token, tc.path)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.problem != "" {
				var p struct{ Type string }
				_ = json.Unmarshal(body, &p)
				if resp.Header.Get("Content-Type") != "application/problem+json" || p.Type != "urn:hotelbus:problem:"+tc.problem {
					t.Fatalf("%s %s, want problem %s", resp.Header.Get("Content-Type"), body, tc.problem)
				}
			}
			if tc.status == 200 {
				if resp.Header.Get(views.HeaderStaleness) == "" {
					t.Fatalf("no %s header", views.HeaderStaleness)
				}
			}
		})
	}
	_, body := get(srv.URL, testToken, stay)
	var it views.Item
	if err := json.Unmarshal(body, &it); err != nil || it.Key != anyKey || it.EventID != model["stays"][tenants[1]+"/"+anyKey].eventID || it.UpdatedAt.IsZero() {
		t.Fatalf("item %s: %+v %v", body, it, err)
	}

	// Paging through a tenant 7 at a time gives every key once, in order.
	var seen []string
	cursor := ""
	for {
		_, body := get(srv.URL, testToken, "/v1/views/stays/"+tenants[1]+"?limit=7&cursor="+cursor)
		var p views.Page
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			seen = append(seen, it.Key)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	want := 0
	for k := range model["stays"] {
		if strings.HasPrefix(k, tenants[1]+"/") {
			want++
		}
	}
	if len(seen) != want || !sortedUnique(seen) {
		t.Fatalf("paged %d keys (sorted and unique: %v), want %d", len(seen), sortedUnique(seen), want)
	}
	prefix := seen[0][:len("rsv_0")+2]
	_, body = get(srv.URL, testToken, "/v1/views/stays/"+tenants[1]+"?prefix="+prefix)
	var p views.Page
	_ = json.Unmarshal(body, &p)
	for _, it := range p.Items {
		if !strings.HasPrefix(it.Key, prefix) {
			t.Fatalf("prefix %s gave %s", prefix, it.Key)
		}
	}
	if len(p.Items) == 0 {
		t.Fatalf("prefix %s gave nothing", prefix)
	}
}

func sortedUnique(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i] <= s[i-1] {
			return false
		}
	}
	return true
}

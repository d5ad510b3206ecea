package gateway

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// A flood of distinct tenantIds keeps at most TenantBuckets buckets, each keyed by a bounded
// prefix of the tenant.
func TestTenantBucketsAreBounded(t *testing.T) {
	l := newLimiter(Limits{TenantRate: 1, TenantBurst: 1, TenantBuckets: 100}.withDefaults(500), []string{"hotel-pms"})
	now := time.Now()
	for i := range 100_000 {
		l.take("hotel-pms", "tenant-"+strconv.Itoa(i)+strings.Repeat("x", i%3*1000), now)
	}
	if n := l.tenants.Len(); n > 100 {
		t.Fatalf("%d tenant buckets, want at most 100", n)
	}
	for _, k := range l.tenants.Keys() {
		if len(k) > len("hotel-pms")+1+maxTenantKey {
			t.Fatalf("a key of %d bytes", len(k))
		}
	}
	// the bucket of a recent tenant is kept: its second event is refused
	if b, _ := l.take("hotel-pms", "tenant-99999", now); b != "tenant" {
		t.Errorf("a recent tenant's bucket was dropped (%q)", b)
	}
}

// Scope matching answers for any string without panicking.
func TestTenantScopeMatchesAnyString(t *testing.T) {
	s, err := parseTenantScope("tenants=sakura-*,kyoto-grand")
	if err != nil {
		t.Fatal(err)
	}
	for tenant, want := range map[string]bool{"sakura-": true, "sakura-\x00\xff": true, "kyoto-grand": true, "": false, "\xff": false,
		"kyoto-grand\n": false, "sakura": false, strings.Repeat("s", 1<<20): false} {
		if got := s.allows(tenant); got != want {
			t.Errorf("%.20q: %v, want %v", tenant, got, want)
		}
	}
	if all, err := parseTenantScope("tenants=a,*"); err != nil || !all.allows("anything") {
		t.Errorf("a * pattern: %v %v", all, err)
	}
}

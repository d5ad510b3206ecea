package gateway

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Limits are the token buckets of the publishing routes, counted in events: one bucket per
// system, and one per (system, tenant). An event needs a token from both; a refused event is a
// 429 rate-limited with the Retry-After its buckets give. A zero rate leaves that bucket off.
type Limits struct {
	// SystemRate is the events per second each system may publish. Default 0: unlimited.
	SystemRate float64
	// SystemBurst is the events a system may publish at once above its rate. Default
	// max(SystemRate, the batch limit), so a full batch fits an idle bucket.
	SystemBurst int
	// TenantRate is the events per second a system may publish for one tenant. Default 0:
	// unlimited.
	TenantRate float64
	// TenantBurst is the events a system may publish at once for one tenant above its rate.
	// Default max(TenantRate, 1).
	TenantBurst int
	// TenantBuckets bounds the tenant buckets kept in memory (the least recently used are
	// dropped, so a flood of distinct tenantIds cannot grow memory; a dropped tenant starts again
	// with a full bucket). Default 10,000.
	TenantBuckets int
}

func (l Limits) withDefaults(maxBatch int) Limits {
	if l.SystemBurst == 0 {
		l.SystemBurst = max(int(math.Ceil(l.SystemRate)), maxBatch)
	}
	if l.TenantBurst == 0 {
		l.TenantBurst = max(int(math.Ceil(l.TenantRate)), 1)
	}
	if l.TenantBuckets == 0 {
		l.TenantBuckets = 10_000
	}
	return l
}

// maxTenantKey bounds the tenant part of a bucket's key: tenants that share their first bytes
// beyond it share a bucket (stricter, never looser), and no key grows with the input.
const maxTenantKey = 256

// limiter holds the buckets of Limits. Rate limiting is golang.org/x/time/rate's token bucket;
// only the bounded map of tenant buckets is this package's.
type limiter struct {
	cfg     Limits
	systems map[string]*rate.Limiter // nil when SystemRate is 0

	mu      sync.Mutex
	tenants *simplelru.LRU[string, *rate.Limiter] // nil when TenantRate is 0
}

func newLimiter(cfg Limits, systems []string) *limiter {
	l := &limiter{cfg: cfg}
	if cfg.SystemRate > 0 {
		l.systems = map[string]*rate.Limiter{}
		for _, s := range systems {
			l.systems[s] = rate.NewLimiter(rate.Limit(cfg.SystemRate), cfg.SystemBurst)
		}
	}
	if cfg.TenantRate > 0 {
		l.tenants, _ = simplelru.NewLRU[string, *rate.Limiter](cfg.TenantBuckets, nil) // size validated > 0
	}
	return l
}

// admit reports, before a request's body is read, whether system's bucket holds a token at all,
// and otherwise how long until it does. It takes no token.
func (l *limiter) admit(system string, now time.Time) (time.Duration, bool) {
	b := l.systems[system]
	if b == nil {
		return 0, true
	}
	if t := b.TokensAt(now); t < 1 {
		return time.Duration((1 - t) / float64(b.Limit()) * float64(time.Second)), false
	}
	return 0, true
}

// take takes a token for one event of system for tenant from both buckets, or none. Refused, it
// returns which bucket refused ("system" or "tenant") and how long until it has a token.
func (l *limiter) take(system, tenant string, now time.Time) (scope string, wait time.Duration) {
	var sys *rate.Reservation
	if b := l.systems[system]; b != nil {
		if sys = b.ReserveN(now, 1); !sys.OK() || sys.DelayFrom(now) > 0 {
			sys.CancelAt(now)
			return "system", sys.DelayFrom(now)
		}
	}
	if l.tenants == nil {
		return "", 0
	}
	r := l.tenant(system, tenant).ReserveN(now, 1)
	if d := r.DelayFrom(now); !r.OK() || d > 0 {
		r.CancelAt(now)
		if sys != nil {
			sys.CancelAt(now)
		}
		return "tenant", d
	}
	return "", 0
}

func (l *limiter) tenant(system, tenant string) *rate.Limiter {
	key := system + "\x00" + tenant[:min(len(tenant), maxTenantKey)]
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.tenants.Get(key)
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.cfg.TenantRate), l.cfg.TenantBurst)
		l.tenants.Add(key, b)
	}
	return b
}

// rateProblem is the 429 for an event a bucket refused.
func (l *limiter) rateProblem(system, scope string) *Problem {
	if scope == "tenant" {
		return kindRateLimited.problem(system+" publishes more than "+formatRate(l.cfg.TenantRate)+" events/s for this tenant; retry later",
			FieldError{"metadata.tenantId", "tenant rate limit exceeded"})
	}
	return kindRateLimited.problem(system + " publishes more than " + formatRate(l.cfg.SystemRate) + " events/s; retry later")
}

func formatRate(r float64) string { return strconv.FormatFloat(r, 'g', -1, 64) }

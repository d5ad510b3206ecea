package faults_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams/faults"
)

// TestRedisSentinelFailover: the gateway and two dispatchers use a Sentinel-managed Redis
// (--redis redis-sentinel://..., a primary, a replica and three Sentinels). The primary is killed
// with kill -9 during the ingestion; the Sentinels promote the replica and the clients follow.
// Dedup fails closed meanwhile; after the promotion consumption resumes. No event is lost or
// reordered; a duplicate is allowed only where a dispatcher recorded why its earlier delivery's
// outcome is unknown, including a lease that Redis lost in the failover (see unknownOutcomes).
func TestRedisSentinelFailover(t *testing.T) {
	faults.Require(t)
	ha := faults.StartRedisSentinel(t)
	s := newStack(t, config{scenario: "8 redis sentinel failover",
		title: "Sentinel-managed Redis (gateway and dispatchers): primary killed with kill -9 mid-run, replica promoted",
		seed:  8, brokers: rig(t), dedupRedis: ha.URL, gatewayRedis: ha.URL})
	redisFailover(t, s, ha, "primary")
}

// TestRedisClusterFailover: as TestRedisSentinelFailover on a Redis Cluster of three masters with
// one replica each (--redis redis-cluster://...); the master serving the receiver group's hash
// slot, where all its dedup keys live, is killed with kill -9 and its replica takes over.
func TestRedisClusterFailover(t *testing.T) {
	faults.Require(t)
	ha := faults.StartRedisCluster(t, 1)
	s := newStack(t, config{scenario: "9 redis cluster failover",
		title: "Redis Cluster, 3 masters + 3 replicas (gateway and dispatchers): the dedup keys' master killed with kill -9 mid-run",
		seed:  9, brokers: rig(t), dedupRedis: ha.URL, gatewayRedis: ha.URL})
	sys, _ := s.cat.System(receiver)
	redisFailover(t, s, ha, "{"+sys.Group+"}")
}

// redisFailover runs a failover scenario on s: two dispatchers, the ingestion, and at 40% of it
// the primary serving key (a Sentinel set's primary, or a Cluster's master of key's slot) killed
// with kill -9; it notes the time to the promotion and the pause in deliveries around it, whose
// end is the first delivery after the failover.
func redisFailover(t *testing.T, s *stack, ha *faults.RedisHA, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s.startDispatcher()
	s.startDispatcher()
	in := s.ingest(events, rate)

	s.waitAcked(in, events*2/5)
	primary, err := ha.Primary(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	name := ha.Name(t, primary)
	s.setPhase("redis failover")
	at := s.ackedCount()
	killed := time.Now()
	ha.Kill9(t, name)
	var promoted time.Duration = -1
	var now string
	for time.Since(killed) < time.Minute {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		now, err = ha.Primary(pctx, key)
		pcancel()
		if err == nil && now != primary {
			promoted = time.Since(killed)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if promoted < 0 {
		t.Fatalf("no replica was promoted within a minute of the kill of %s (%s): %v", name, primary, err)
	}
	s.setPhase("after promotion")
	s.note("kill -9 of %s (%s, the primary) after %d acknowledged events; %s (%s) promoted %s after the kill",
		name, primary, at, ha.Name(t, now), now, promoted.Round(100*time.Millisecond))
	s.recover("failover (from the kill)", killed)

	rep := s.finish(in, drain)
	last, first := s.pauseAfter(killed, time.Minute)
	if first < 0 {
		t.Error("nothing reached the target after the kill: consumption did not resume")
	}
	s.note("deliveries paused from %s to %s after the kill: the first delivery after the failover came %s after the kill",
		last.Round(10*time.Millisecond), first.Round(10*time.Millisecond), first.Round(10*time.Millisecond))
	s.expectClean(rep)
	waits := 0
	for _, r := range s.replicas {
		waits += strings.Count(r.proc.Log(), "Redis unreachable, waiting (fail-closed)")
	}
	s.note("fail-closed waits logged by the dispatchers during the failover: %d", waits)
	if s.failed > 0 {
		t.Errorf("%d events were not accepted by the gateway, the first: %v", s.failed, s.firstErr)
	}
}

package streams_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestRedisConformance pins the Redis semantics deduplication is built on (lease with SET NX PX,
// owner-checked Lua to turn a lease into done, owner-checked release), on miniredis and on a real
// redis-server in the same run, so the in-process fake cannot drift from Redis.
func TestRedisConformance(t *testing.T) {
	const finish = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("SET", KEYS[1], "done", "PX", ARGV[2]) else return false end`
	const release = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`
	for name, url := range streamstest.RedisBackends(t) {
		t.Run(name, func(t *testing.T) {
			opts, err := redis.ParseURL(url)
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(opts)
			defer rdb.Close()
			ctx := context.Background()
			key := streamstest.Name(t, "dedup")
			t.Cleanup(func() { rdb.Del(context.Background(), key) })

			if ok, err := rdb.SetNX(ctx, key, "owner-a", time.Minute).Result(); err != nil || !ok {
				t.Fatalf("first lease: %v %v", ok, err)
			}
			if ok, _ := rdb.SetNX(ctx, key, "owner-b", time.Minute).Result(); ok {
				t.Fatal("a second owner took a held lease")
			}
			if pttl, _ := rdb.PTTL(ctx, key).Result(); pttl <= 0 || pttl > time.Minute {
				t.Errorf("lease PTTL = %v", pttl)
			}
			if n, _ := rdb.Eval(ctx, release, []string{key}, "owner-b").Int(); n != 0 {
				t.Error("a stranger released the lease")
			}
			if _, err := rdb.Eval(ctx, finish, []string{key}, "owner-b", 3600000).Result(); err != redis.Nil {
				t.Errorf("a stranger finished the lease: %v", err)
			}
			if _, err := rdb.Eval(ctx, finish, []string{key}, "owner-a", 3600000).Result(); err != nil {
				t.Fatalf("owner finish: %v", err)
			}
			if v, _ := rdb.Get(ctx, key).Result(); v != "done" {
				t.Errorf("after finish = %q", v)
			}
			if pttl, _ := rdb.PTTL(ctx, key).Result(); pttl <= time.Minute {
				t.Errorf("done TTL = %v, want the longer done TTL", pttl)
			}
			if n, _ := rdb.Eval(ctx, release, []string{key}, "owner-a").Int(); n != 0 {
				t.Error("release deleted a done key")
			}
		})
	}
}

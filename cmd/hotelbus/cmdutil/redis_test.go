package cmdutil_test

import (
	"context"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
)

// TestRedisClient: --redis / HOTELBUS_REDIS take the three URL forms; the password comes from
// HOTELBUS_REDIS_PASSWORD (or HOTELBUS_REDIS's URL), never from the command line; a bad URL is a
// usage error naming the forms; Reachable's lines never show the password.
func TestRedisClient(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.RequireAuth("hunter2")

	f, _ := factory(map[string]string{cmdutil.EnvRedisPassword: "hunter2"}, t.TempDir())
	rdb, err := f.RedisClient("redis://" + mr.Addr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Errorf("password from %s: %v", cmdutil.EnvRedisPassword, err)
	}
	rdb.Close()
	if err := f.Reachable(context.Background()); err != nil {
		t.Errorf("Reachable with the password from the environment: %v", err)
	}

	f, _ = factory(map[string]string{"HOTELBUS_REDIS": "redis://:hunter2@" + mr.Addr()}, t.TempDir())
	rdb, err = f.RedisClient("")
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Errorf("password in HOTELBUS_REDIS's URL: %v", err)
	}
	rdb.Close()

	for _, tc := range []struct{ flag, want string }{
		{"redis://:hunter2@" + mr.Addr(), "--redis redis://:xxxxx@" + mr.Addr() + ": no password on the command line; set HOTELBUS_REDIS_PASSWORD"},
		{"redis-sentinel://127.0.0.1:1", "--redis: streams: invalid configuration: Redis URL redis-sentinel://127.0.0.1:1: no master name"},
		{"127.0.0.1:6379", "expected redis://[user@]host[:port][/db]"},
	} {
		f, _ := factory(nil, t.TempDir())
		_, err := f.RedisClient(tc.flag)
		if cmdutil.ExitCode(err) != cmdutil.ExitUsage || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("--redis %s: %v, want a usage error with %q", tc.flag, err, tc.want)
		}
	}

	f, _ = factory(map[string]string{"HOTELBUS_REDIS": "redis://:hunter2@127.0.0.1:1"}, t.TempDir())
	if _, err := f.RedisClient(""); err != nil {
		t.Fatal(err)
	}
	err = f.Reachable(context.Background())
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "redis://:xxxxx@127.0.0.1:1") {
		t.Errorf("unreachable: %v, want the URL without its password", err)
	}

	f, _ = factory(nil, t.TempDir())
	for url, want := range map[string]string{"redis-cluster://127.0.0.1:1,127.0.0.1:2": "*redis.ClusterClient", "redis-sentinel://127.0.0.1:1/m": "*redis.Client"} {
		rdb, err := f.RedisClient(url)
		if err != nil {
			t.Fatal(err)
		}
		if _, cluster := rdb.(*redis.ClusterClient); cluster != (want == "*redis.ClusterClient") {
			t.Errorf("%s: client %T, want %s", url, rdb, want)
		}
		rdb.Close()
	}
}

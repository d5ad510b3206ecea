package streams_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestNewRedisClientForms: each of the three URL forms gives the client of its kind with the
// addresses, database, master, user and password it names; the password can come from
// RedisPassword instead of the URL.
func TestNewRedisClientForms(t *testing.T) {
	type want struct {
		kind       string // "single", "sentinel", "cluster"
		addrs      []string
		db         int
		user, pass string
	}
	for _, tc := range []struct {
		url  string
		opts []streams.RedisOption
		want want
	}{
		{url: "redis://127.0.0.1:6380/2", want: want{kind: "single", addrs: []string{"127.0.0.1:6380"}, db: 2}},
		{url: "redis://redis", want: want{kind: "single", addrs: []string{"redis:6379"}}},
		{url: "rediss://app:s%40cret@redis.example:6380/1?dial_timeout=3", want: want{kind: "single", addrs: []string{"redis.example:6380"}, db: 1, user: "app", pass: "s@cret"}},
		{url: "redis://app@[::1]:6380", opts: []streams.RedisOption{streams.RedisPassword("pw")}, want: want{kind: "single", addrs: []string{"[::1]:6380"}, user: "app", pass: "pw"}},
		{url: "redis-sentinel://s1:26379,s2:26380,s3/mymaster/3", want: want{kind: "sentinel", db: 3}},
		{url: "redis-sentinel://app:pw@s1:26379/mymaster", want: want{kind: "sentinel", user: "app", pass: "pw"}},
		{url: "redis-cluster://n1:7000,n2:7001,n3", want: want{kind: "cluster", addrs: []string{"n1:7000", "n2:7001", "n3:6379"}}},
		{url: "rediss-cluster://n1:7000?read_timeout=2s", opts: []streams.RedisOption{streams.RedisPassword("pw")}, want: want{kind: "cluster", addrs: []string{"n1:7000"}, pass: "pw"}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			rdb, err := streams.NewRedisClient(tc.url, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			var got want
			switch c := rdb.(type) {
			case *redis.ClusterClient:
				o := c.Options()
				got = want{kind: "cluster", addrs: o.Addrs, user: o.Username, pass: o.Password}
			case *redis.Client:
				o := c.Options()
				got = want{kind: "single", addrs: []string{o.Addr}, db: o.DB, user: o.Username, pass: o.Password}
				if o.Addr == "FailoverClient" {
					got.kind, got.addrs = "sentinel", nil
				}
			default:
				t.Fatalf("client %T", rdb)
			}
			if got.kind != tc.want.kind || !slices.Equal(got.addrs, tc.want.addrs) || got.db != tc.want.db || got.user != tc.want.user || got.pass != tc.want.pass {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestNewRedisClientRefuses: a URL of none of the forms is an ErrConfig that names the forms
// expected and never repeats the password.
func TestNewRedisClientRefuses(t *testing.T) {
	for url, why := range map[string]string{
		"127.0.0.1:6379":                             "no scheme",
		"http://:hunter2@redis:6379":                 "unknown scheme",
		"redis://:hunter2@a:1,b:2":                   "one server has one address",
		"redis://:hunter2@redis:6379/0/x":            "only a database number",
		"redis://:hunter2@redis:6379/zero":           "is not a number",
		"redis://:hunter2@redis:99999":               "port is not 1 to 65535",
		"redis-sentinel://:hunter2@s1:26379":         "no master name",
		"redis-sentinel://:hunter2@s1:26379/m/1/2":   "only /<master>[/<db>]",
		"redis-sentinel://:hunter2@s1:26379,/m":      `address "" is not host:port`,
		"redis-cluster://:hunter2@n1:7000/0":         "a Cluster has database 0 only",
		"redis-cluster://:hunter2@n1:7000?addr=n2:1": `query parameter "addr"`,
		"redis-cluster://:hunter2@n1:7000?bogus=1":   "unexpected option: bogus",
		"redis://:hunter2@redis:6379?dial_timeout=x": "dial_timeout",
	} {
		_, err := streams.NewRedisClient(url)
		if !errors.Is(err, streams.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", url, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, why) || strings.Contains(msg, "hunter2") {
			t.Errorf("%s: %q should say %q and never the password", url, msg, why)
		}
		if why != "" && !strings.Contains(msg, "redis-sentinel://[user@]host:port[,host:port...]/<master>[/<db>]") &&
			!strings.Contains(msg, "HOTELBUS_REDIS_PASSWORD") {
			t.Errorf("%s: %q does not name the forms expected", url, msg)
		}
	}
	_, err := streams.NewRedisClient("redis://:hunter2@redis:6379", streams.RedisPassword("n0tthis"))
	if !errors.Is(err, streams.ErrConfig) || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "n0tthis") {
		t.Errorf("two different passwords: %v", err)
	}
}

func TestRedactRedisURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://:hunter2@redis:6379/0":                 "redis://:xxxxx@redis:6379/0",
		"redis-sentinel://app:pw@s1:1,s2:2/m":           "redis-sentinel://app:xxxxx@s1:1,s2:2/m",
		"redis-cluster://n1:7000,n2:7001":               "redis-cluster://n1:7000,n2:7001",
		"redis://app@redis:6379":                        "redis://app@redis:6379",
		"redis://redis:6379/0?client_name=a@b":          "redis://redis:6379/0?client_name=a@b",
		"no scheme :hunter2@x":                          "xxxxx@x",
		"127.0.0.1:6379":                                "127.0.0.1:6379",
		"rediss://u:p%40ss@r:1?dial_timeout=3":          "rediss://u:xxxxx@r:1?dial_timeout=3",
		"redis-cluster://:a:b:c@n1:7000,n2:7001?x=@foo": "redis-cluster://:xxxxx@n1:7000,n2:7001?x=@foo",
	} {
		if got := streams.RedactRedisURL(in); got != want {
			t.Errorf("RedactRedisURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDedupKeysShareOneSlot: on the rig's real Redis Cluster, every dedup key of a group (any
// source, any eventId, redriven or not) is in the slot of the group's hash tag, the slot
// Dedup.Tag() gives OnDone's effects: a batch's pipeline, the coalesced done marks and the OnDone
// transaction each go to one node.
func TestDedupKeysShareOneSlot(t *testing.T) {
	url := streamstest.RedisCluster(t)
	if url == "" {
		t.Skip("no Redis Cluster: HOTELBUS_TEST_REDIS_CLUSTER unset (runs under `make test`)")
	}
	rdb, err := streams.NewRedisClient(url)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	for _, group := range []string{"hotelbus.hotel-member", "f.x.hotel-common", "g"} {
		d, err := streams.NewDedup(rdb, group)
		if err != nil {
			t.Fatal(err)
		}
		want, err := rdb.ClusterKeySlot(ctx, "effects:{"+d.Tag()+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		slots := map[int64]bool{}
		for _, source := range []string{"hotel-pms", "hotel-saas", "{evil}"} {
			for _, id := range []string{uuid.NewString(), uuid.NewString() + "/redrive/" + uuid.NewString()} {
				slot, err := rdb.ClusterKeySlot(ctx, d.Key(source, id)).Result()
				if err != nil {
					t.Fatal(err)
				}
				slots[slot] = true
			}
		}
		if len(slots) != 1 || !slots[want] {
			t.Errorf("group %s: dedup keys in slots %v, want only %d (the slot of {%s})", group, slots, want, d.Tag())
		}
	}
}

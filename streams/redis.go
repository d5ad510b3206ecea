package streams

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisURLForms names the Redis URL forms NewRedisClient accepts, for error and usage messages.
const RedisURLForms = "redis://[user@]host[:port][/db] or rediss://... (one server), " +
	"redis-sentinel://[user@]host:port[,host:port...]/<master>[/<db>] or rediss-sentinel://... (Sentinel), " +
	"redis-cluster://[user@]host:port[,host:port...] or rediss-cluster://... (Cluster)"

// RedisOption configures NewRedisClient.
type RedisOption func(*redisConfig)

type redisConfig struct {
	password, sentinelPassword string
	noRetry                    bool
}

// RedisPassword is the password of the data nodes (the server, the Sentinel-managed primary and
// replicas, or the Cluster's nodes), for a URL that carries none. Default: the URL's password, or
// none. A URL with a different password is refused.
func RedisPassword(p string) RedisOption { return func(c *redisConfig) { c.password = p } }

// RedisSentinelPassword is the password of the Sentinels themselves (Sentinel's requirepass),
// used with the user of the URL. Default: none (Sentinels are often run without one; sending a
// password to a Sentinel that has none fails the connection).
func RedisSentinelPassword(p string) RedisOption {
	return func(c *redisConfig) { c.sentinelPassword = p }
}

// RedisNoRetry makes the client try every command and every dial once (for a reachability check,
// whose answer, not a retry policy, is wanted). Default: go-redis's retries (3 per command).
func RedisNoRetry() RedisOption { return func(c *redisConfig) { c.noRetry = true } }

// NewRedisClient returns the go-redis client for a Redis URL in one of three forms (RedisURLForms):
//
//   - redis://[user[:password]@]host[:port][/db][?option=value...] and rediss:// (TLS): one server,
//     as go-redis's ParseURL reads it.
//   - redis-sentinel://[user[:password]@]host:port[,host:port...]/<master>[/<db>][?option=value...]
//     and rediss-sentinel:// (TLS to the Sentinels and the data nodes): the Sentinels at the
//     addresses, asked for the primary of <master>; the client follows promotions (go-redis
//     FailoverOptions).
//   - redis-cluster://[user[:password]@]host:port[,host:port...][?option=value...] and
//     rediss-cluster:// (TLS): a Redis Cluster, the addresses being seeds (go-redis
//     ClusterOptions); it follows MOVED and ASK redirections and slot migrations.
//
// A port left out is 6379 (26379 for a Sentinel). The user and password of the URL are the data
// nodes'. Options are go-redis's URL query
// parameters (dial_timeout, read_timeout, pool_size, ...). A password belongs in an environment
// variable or a Secret, not on a command line: commands take it from HOTELBUS_REDIS_PASSWORD
// (RedisPassword). A URL that is not one of the forms is an ErrConfig naming the forms expected;
// no error repeats the password.
//
// The client of every form satisfies redis.UniversalClient, which is all the SDK (Dedup) and the
// services (the gateway's idempotency) use: their multi-key operations stay within one Cluster
// hash slot by design (see Dedup).
func NewRedisClient(rawURL string, opts ...RedisOption) (redis.UniversalClient, error) {
	var cfg redisConfig
	for _, o := range opts {
		o(&cfg)
	}
	u, err := parseRedisURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: Redis URL %s: %v; expected %s", ErrConfig, RedactRedisURL(rawURL), err, RedisURLForms)
	}
	password, err := u.password(cfg.password)
	if err != nil {
		return nil, fmt.Errorf("%w: Redis URL %s: %v", ErrConfig, RedactRedisURL(rawURL), err)
	}
	retries := func(maxRetries, dialerRetries *int) {
		if cfg.noRetry {
			*maxRetries, *dialerRetries = -1, 1
		}
	}
	bad := func(err error) error {
		return fmt.Errorf("%w: Redis URL %s: %v; expected %s", ErrConfig, RedactRedisURL(rawURL), err, RedisURLForms)
	}
	switch u.kind {
	case redisSingle:
		o, err := redis.ParseURL(u.goRedisURL())
		if err != nil {
			return nil, bad(err)
		}
		o.Username, o.Password = u.user, password
		retries(&o.MaxRetries, &o.DialerRetries)
		return redis.NewClient(o), nil
	case redisSentinel:
		o, err := redis.ParseFailoverURL(u.goRedisURL())
		if err != nil {
			return nil, bad(err)
		}
		o.Username, o.Password = u.user, password
		o.SentinelUsername, o.SentinelPassword = "", cfg.sentinelPassword
		if cfg.sentinelPassword != "" {
			o.SentinelUsername = u.user
		}
		retries(&o.MaxRetries, &o.DialerRetries)
		return redis.NewFailoverClient(o), nil
	default:
		o, err := redis.ParseClusterURL(u.goRedisURL())
		if err != nil {
			return nil, bad(err)
		}
		o.Username, o.Password = u.user, password
		retries(&o.MaxRetries, &o.DialerRetries)
		return redis.NewClusterClient(o), nil
	}
}

type redisKind int

const (
	redisSingle redisKind = iota
	redisSentinel
	redisCluster
)

// redisURL is a Redis URL taken apart; hosts hold at least one "host:port".
type redisURL struct {
	kind       redisKind
	tls        bool
	user, pass string
	hasPass    bool
	hosts      []string
	master, db string
	query      url.Values
}

// parseRedisURL splits a URL of one of the forms (see NewRedisClient). Its errors never contain
// the password.
func parseRedisURL(s string) (*redisURL, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return nil, errors.New("no scheme")
	}
	u := &redisURL{}
	switch strings.ToLower(scheme) {
	case "redis":
	case "rediss":
		u.tls = true
	case "redis-sentinel":
		u.kind = redisSentinel
	case "rediss-sentinel":
		u.kind, u.tls = redisSentinel, true
	case "redis-cluster":
		u.kind = redisCluster
	case "rediss-cluster":
		u.kind, u.tls = redisCluster, true
	default:
		return nil, fmt.Errorf("unknown scheme %q", scheme)
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("query: %v", err)
	}
	for _, k := range []string{"addr", "master_name", "db", "username", "password", "sentinel_username", "sentinel_password"} {
		if q.Has(k) {
			return nil, fmt.Errorf("query parameter %q: give it in the URL's form, not as a parameter", k)
		}
	}
	u.query = q
	authority, path, _ := strings.Cut(rest, "/")
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		info := authority[:at]
		authority = authority[at+1:]
		user, pass, hasPass := strings.Cut(info, ":")
		if u.user, err = url.PathUnescape(user); err != nil {
			return nil, errors.New("the user is not URL-escaped properly")
		}
		if u.pass, err = url.PathUnescape(pass); err != nil {
			return nil, errors.New("the password is not URL-escaped properly")
		}
		u.hasPass = hasPass && u.pass != ""
	}
	defaultPort := "6379"
	if u.kind == redisSentinel {
		defaultPort = "26379"
	}
	for _, h := range strings.Split(authority, ",") {
		if h != "" && !strings.Contains(strings.TrimPrefix(h, "["), ":") || strings.HasSuffix(h, "]") {
			h = net.JoinHostPort(strings.Trim(h, "[]"), defaultPort)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("address %q is not host:port", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("address %q: port is not 1 to 65535", h)
		}
		u.hosts = append(u.hosts, h)
	}
	parts := strings.Split(path, "/")
	if path == "" {
		parts = nil
	}
	switch u.kind {
	case redisSingle:
		if len(u.hosts) != 1 {
			return nil, errors.New("one server has one address (several: use redis-sentinel:// or redis-cluster://)")
		}
		if len(parts) > 1 {
			return nil, fmt.Errorf("path %q: only a database number may follow the address", "/"+path)
		}
		if len(parts) == 1 {
			u.db = parts[0]
		}
	case redisSentinel:
		if len(parts) == 0 || parts[0] == "" {
			return nil, errors.New("no master name after the Sentinel addresses")
		}
		if len(parts) > 2 {
			return nil, fmt.Errorf("path %q: only /<master>[/<db>] may follow the addresses", "/"+path)
		}
		u.master = parts[0]
		if len(parts) == 2 {
			u.db = parts[1]
		}
	case redisCluster:
		if len(parts) > 0 {
			return nil, fmt.Errorf("path %q: a Cluster has database 0 only, nothing may follow the addresses", "/"+path)
		}
	}
	if u.db != "" {
		if n, err := strconv.Atoi(u.db); err != nil || n < 0 {
			return nil, fmt.Errorf("database %q is not a number", u.db)
		}
	}
	return u, nil
}

// password returns the data nodes' password: the URL's or the option's (which must agree).
func (u *redisURL) password(option string) (string, error) {
	switch {
	case !u.hasPass:
		return option, nil
	case option == "" || option == u.pass:
		return u.pass, nil
	}
	return "", errors.New("the URL has a password and RedisPassword (HOTELBUS_REDIS_PASSWORD) gives another one")
}

// goRedisURL is the URL in go-redis's own form for the kind, without the user and password
// (set on the options afterwards, so that no parse error can show them): further addresses are
// addr parameters, the master is master_name.
func (u *redisURL) goRedisURL() string {
	scheme := "redis"
	if u.tls {
		scheme = "rediss"
	}
	q := url.Values{}
	for k, v := range u.query {
		q[k] = v
	}
	for _, h := range u.hosts[1:] {
		q.Add("addr", h)
	}
	if u.master != "" {
		q.Set("master_name", u.master)
	}
	s := scheme + "://" + u.hosts[0]
	if u.db != "" {
		s += "/" + u.db
	}
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// RedactRedisURL returns a Redis URL of any form with its password replaced by "xxxxx", for
// messages and logs; it returns s itself when s holds no password. A string without a scheme
// that holds an '@' has everything before its last '@' replaced.
func RedactRedisURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		if at := strings.LastIndexByte(s, '@'); at >= 0 {
			return "xxxxx" + s[at:]
		}
		return s
	}
	end := len(rest)
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		end = i
	}
	at := strings.LastIndexByte(rest[:end], '@')
	if at < 0 {
		return s
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return s
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

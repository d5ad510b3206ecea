package gateway_test

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

func TestGatewayCommandUsage(t *testing.T) {
	env := map[string]string{"HOTELBUS_BROKERS": "127.0.0.1:1", "HOTELBUS_REGISTRY": "http://127.0.0.1:1", "HOTELBUS_REDIS": "redis://127.0.0.1:1"}
	r := cmdtest.Run(t, env, "", "gateway")
	if r.Code != 2 || !strings.Contains(r.ErrOut, "no credentials") {
		t.Errorf("without credentials: %d %s", r.Code, r.ErrOut)
	}
	creds := filepath.Join(t.TempDir(), "creds")
	if err := os.WriteFile(creds, []byte("hotel-spa some-long-enough-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := cmdtest.Run(t, env, "", "gateway", "--credentials", creds); r.Code != 2 || !strings.Contains(r.ErrOut, creds+":1: the first field is not a system") ||
		strings.Contains(r.ErrOut, "some-long-enough-token") {
		t.Errorf("unknown system: %d %s", r.Code, r.ErrOut)
	}
	for _, args := range [][]string{{"--system-rate", "-1"}, {"--tenant-burst", "0"}, {"--tenant-buckets", "0"}, {"--max-parse-bytes", "1000"}} {
		if r := cmdtest.Run(t, env, "", append([]string{"gateway", "--credentials", creds}, args...)...); r.Code != 2 {
			t.Errorf("%v: %d %s", args, r.Code, r.ErrOut)
		}
	}
	if r := cmdtest.Run(t, env, "", "gateway", "extra"); r.Code != 2 {
		t.Errorf("an argument: %d %s", r.Code, r.ErrOut)
	}
}

// TestGatewayCommandServes runs `hotelbus gateway` against kfake, publishes through it, and stops
// it with SIGINT.
func TestGatewayCommandServes(t *testing.T) {
	b := streamstest.Kfake(t)
	prefix := streamstest.Name(t, "gwc") + "."
	cat := streamstest.PrefixedCatalog(t, b, prefix)
	reg, regURL := streamstest.Registry(t)
	set := streamstest.RegisterSchemas(t, reg, cat)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const token = "command-test-token-0123456789"
	env := map[string]string{"HOTELBUS_BROKERS": strings.Join(b.Brokers, ","), "HOTELBUS_REGISTRY": regURL,
		"HOTELBUS_REDIS": "redis://" + miniredis.RunT(t).Addr(), gateway.EnvName("hotel-pms"): gateway.HashToken(token)}
	done := make(chan cmdtest.Result, 1)
	go func() {
		done <- cmdtest.Run(t, env, "", "gateway", "--listen", addr, "--prefix", prefix, "--spool-dir", t.TempDir(),
			"--system-rate", "0.001", "--system-burst", "1")
	}()
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(base + gateway.RouteHealth)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		select {
		case r := <-done:
			t.Fatalf("gateway exited: %d %s", r.Code, r.ErrOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway never became healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	v, _ := set.Latest("reservation.created")
	var m map[string]any
	if err := json.Unmarshal(v.Example, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "eventId")
	delete(m["metadata"].(map[string]any), "source")
	body, _ := json.Marshal(m)
	req, _ := http.NewRequest("POST", base+gateway.RouteEvents, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var a gateway.Accepted
	_ = json.NewDecoder(res.Body).Decode(&a)
	res.Body.Close()
	if res.StatusCode != 202 || a.Status != "published" || !strings.HasPrefix(a.Topic, prefix) {
		t.Errorf("publish: %d %+v", res.StatusCode, a)
	}
	// --system-burst 1: the next publish is over the rate
	req, _ = http.NewRequest("POST", base+gateway.RouteEvents, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if res, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("over --system-rate: %d Retry-After=%q %s", res.StatusCode, res.Header.Get("Retry-After"), res.Header.Get("Content-Type"))
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Code != 0 || !strings.Contains(r.ErrOut, "shutting down") {
			t.Errorf("after SIGINT: exit %d\n%s", r.Code, r.ErrOut)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("gateway did not stop on SIGINT")
	}
}

package monitor_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

func get(url string) (int, string, error) {
	res, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// start runs `hotelbus monitor` with args on a free loopback port over b until it is ready, and
// returns its address and its result.
func start(t *testing.T, b streamstest.Backend, args ...string) (string, <-chan cmdtest.Result) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{"HOTELBUS_BROKERS": strings.Join(b.Brokers, ",")}
	done := make(chan cmdtest.Result, 1)
	go func() { done <- cmdtest.Run(t, env, "", append([]string{"monitor", "--listen", addr}, args...)...) }()
	deadline := time.Now().Add(time.Minute)
	for {
		if code, _, err := get("http://" + addr + "/readyz"); err == nil && code == http.StatusOK {
			return addr, done
		}
		select {
		case r := <-done:
			t.Fatalf("monitor exited: %d %s", r.Code, r.ErrOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("monitor never became ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMonitorCommandServes runs `hotelbus monitor` until SIGINT: it becomes ready, exports the
// lag of a group with a commit, serves the dashboard, and stops cleanly.
func TestMonitorCommandServes(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			prefix := streamstest.Name(t, "moncmd") + "."
			cat := streamstest.PrefixedCatalog(t, b, prefix)
			topic, _ := cat.TopicFor("customer.updated")
			pms, _ := cat.System("hotel-pms")
			var offsets kadm.Offsets
			offsets.Add(kadm.Offset{Topic: topic.Name, Partition: 0, At: 0, LeaderEpoch: -1})
			if _, err := kadm.NewClient(b.Client(t)).CommitOffsets(context.Background(), pms.Group, offsets); err != nil {
				t.Fatal(err)
			}
			addr, done := start(t, b, "--prefix", prefix, "--interval", "100ms")
			base := "http://" + addr
			_, body, err := get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				`hotelbus_consumer_group_lag{group="` + pms.Group + `",partition="0",topic="` + topic.Name + `"} 0`,
				`hotelbus_consumer_group_state{group="` + pms.Group + `",state="Empty"} 1`,
			} {
				if !strings.Contains(body, want+"\n") {
					t.Errorf("/metrics lacks %s", want)
				}
			}
			if code, page, err := get(base + "/"); err != nil || code != http.StatusOK || !strings.Contains(page, "hotelbus monitor") {
				t.Errorf("dashboard: %d %v", code, err)
			}
			if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-done:
				if r.Code != 0 || !strings.Contains(r.Out, "monitor listening on http://"+addr) {
					t.Errorf("after SIGINT: exit %d\n%s%s", r.Code, r.Out, r.ErrOut)
				}
			case <-time.After(time.Minute):
				t.Fatal("monitor did not stop on SIGINT")
			}
		})
	}
}

func TestMonitorCommandUsage(t *testing.T) {
	env := map[string]string{"HOTELBUS_BROKERS": "127.0.0.1:1"}
	if r := cmdtest.Run(t, env, "", "monitor", "--interval", "0s"); r.Code != 2 || !strings.Contains(r.ErrOut, "--interval") {
		t.Errorf("zero interval: %d %s", r.Code, r.ErrOut)
	}
	if r := cmdtest.Run(t, env, "", "monitor", "--listen", "256.0.0.1:99999"); r.Code != 2 || !strings.Contains(r.ErrOut, "--listen") {
		t.Errorf("bad listen address: %d %s", r.Code, r.ErrOut)
	}
	for flag, args := range map[string][]string{
		"--trusted-proxy":       {"--trusted-proxy", "10.0.0.0/33"},
		"--token-file":          {"--token-file", "/nonexistent/token"},
		"--journey-range":       {"--journey-range", "0s"},
		"--journey-concurrency": {"--journey-concurrency", "0"},
	} {
		if r := cmdtest.Run(t, env, "", append([]string{"monitor"}, args...)...); r.Code != 2 || !strings.Contains(r.ErrOut, flag) {
			t.Errorf("%v: %d %s", args, r.Code, r.ErrOut)
		}
	}
}

// TestMonitorCommandToken: with --token-file the dashboard's API needs the bearer token, the
// probes and /metrics do not, and every answer carries the frame and content-type headers.
func TestMonitorCommandToken(t *testing.T) {
	b := streamstest.Kfake(t)
	prefix := streamstest.Name(t, "montok") + "."
	streamstest.PrefixedCatalog(t, b, prefix)
	tokenFile := filepath.Join(t.TempDir(), "token")
	const token = "monitor-command-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, done := start(t, b, "--prefix", prefix, "--interval", "100ms", "--token-file", tokenFile)
	base := "http://" + addr
	if code, _, err := get(base + "/api/snapshot"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("snapshot without the token: %d %v", code, err)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/snapshot", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK || res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("snapshot with the token: %v %v", res, err)
	}
	if res != nil {
		res.Body.Close()
	}
	if code, body, err := get(base + "/metrics"); err != nil || code != http.StatusOK || strings.Contains(body, token) {
		t.Errorf("/metrics without the token: %d %v", code, err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Code != 0 || strings.Contains(r.Out+r.ErrOut, token) {
			t.Errorf("after SIGINT: exit %d\n%s%s", r.Code, r.Out, r.ErrOut)
		}
	case <-time.After(time.Minute):
		t.Fatal("monitor did not stop on SIGINT")
	}
}

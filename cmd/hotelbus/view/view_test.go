package view_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/views"
)

// TestServeUsage: bad usage exits 2 and names the flag, before anything is opened.
func TestServeUsage(t *testing.T) {
	env := map[string]string{"HOTELBUS_BROKERS": "127.0.0.1:1", "HOTELBUS_REGISTRY": "http://127.0.0.1:1",
		"HOTELBUS_GATEWAY_TOKEN_HOTEL_SAAS": "view-cmd-test-token-0123456789"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"view", "serve", "--system", "hotel-saas"}, "--dir is required"},
		{[]string{"view", "serve", "--dir", "d"}, "--system is required"},
		{[]string{"view", "serve", "--system", "hotel-spa", "--dir", "d"}, "--system"},
		{[]string{"view", "serve", "--system", "hotel-common", "--dir", "d"}, "hotel-common has no views"},
		{[]string{"view", "serve", "--system", "hotel-saas", "--dir", "d", "--view", "guest"}, `--view: hotel-saas has no view "guest"; did you mean guests?`},
	} {
		res := cmdtest.Run(t, env, "", tc.args...)
		if res.Code != cmdutil.ExitUsage || !strings.Contains(res.ErrOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, res.Code, res.ErrOut, cmdutil.ExitUsage, tc.want)
		}
	}
}

// TestServeOpensWithKeyFile runs `hotelbus view serve` on a broker holding a guest's sealed
// customer.updated: with the key file (HOTELBUS_PRIVACY_KEY_FILE) the guests view answers the
// guest's clear e-mail over HTTP, while its store file holds none; without one it answers it sealed
// and says so on stderr.
func TestServeOpensWithKeyFile(t *testing.T) {
	bin := cmdtest.Binary(t, "")
	st := cmdtest.Sealed(t, "viewcmd", "hotel-member")
	b, prefix, set, regURL, keyFile, serde, p := st.Broker, st.Prefix, st.Schemas, st.Registry, st.KeyFile, st.Serde, st.Producer
	const email = "hanako.sato@example.jp"
	v, _ := set.Latest("customer.updated")
	env, err := serde.ParseJSON(v.Example)
	if err != nil {
		t.Fatal(err)
	}
	env.EventID, env.Metadata.Source, env.Metadata.CorrelationID, env.Metadata.TraceID = "", "", "", ""
	env.Data["customerId"], env.Data["email"] = "cus_viewcmd", email
	if _, err := p.Publish(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	const token = "view-cmd-test-token-0123456789"
	serve := func(keyFile string) (body, stderr string, store []byte) {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		dir := t.TempDir()
		cmd := exec.Command(bin, "view", "serve", "--system", "hotel-saas", "--view", "guests", "--dir", dir, "--listen", addr, "--prefix", prefix)
		cmd.Env = append(os.Environ(), "HOTELBUS_BROKERS="+strings.Join(b.Brokers, ","), "HOTELBUS_REGISTRY="+regURL,
			"HOTELBUS_GATEWAY_TOKEN_HOTEL_SAAS="+token, cmdutil.EnvDataDir+"="+t.TempDir(), cmdutil.EnvKeyFile+"="+keyFile)
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(100 * time.Millisecond) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/views/guests/sakura-hotels/cus_viewcmd", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				body = string(b)
				break
			}
		}
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		store, _ = os.ReadFile(filepath.Join(dir, views.StoreFile))
		return body, errOut.String(), store
	}
	body, stderr, store := serve(keyFile)
	if !strings.Contains(body, `"email":"`+email+`"`) {
		t.Fatalf("with the key file: %q\nstderr:\n%s", body, stderr)
	}
	if len(store) == 0 || bytes.Contains(store, []byte(email)) {
		t.Fatalf("the store file (%d bytes) holds the clear e-mail, or is missing", len(store))
	}
	body, stderr, _ = serve("")
	if !strings.Contains(body, `"email":"`+privacy.Prefix) || !strings.Contains(stderr, "personal-data fields are served sealed") {
		t.Fatalf("without a key file: %q\nstderr:\n%s", body, stderr)
	}
}

package receive_test

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams/dispatch"
)

const secret = "receive-test-secret-0123456789"

// TestReceive runs the built binary: a signed delivery is 204 and printed, a bad signature 401, a
// --refuse type 422 (the dispatcher dead-letters it), and SIGINT stops it with a summary.
func TestReceive(t *testing.T) {
	bin := cmdtest.Binary(t, "")
	cmd := exec.Command(bin, "receive", "--listen", "127.0.0.1:0", "--refuse", "reservation.canceled", "--body")
	cmd.Env = append(os.Environ(), "HOTELBUS_DISPATCH_SECRET="+secret, "HOTELBUS_DATA_DIR="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	var url string
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "receiving on "); ok {
			url, _, _ = strings.Cut(u, " ")
			break
		}
	}
	if url == "" {
		t.Fatal("receive never said where it listens")
	}
	post := func(typ, id string, sign []byte) int {
		t.Helper()
		body := []byte(`{"eventType":"` + typ + `"}`)
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("ce-id", id)
		req.Header.Set("ce-type", typ)
		req.Header.Set("ce-source", "hotel-pms")
		req.Header.Set("ce-tenantid", "sakura-hotels")
		req.Header.Set("Hotelbus-Signature", dispatch.Sign(sign, time.Now(), req.Header, body))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	for _, tc := range []struct {
		typ, id string
		secret  string
		want    int
	}{
		{"reservation.created", "id-ok", secret, 204},
		{"reservation.created", "id-forged", "another-secret-0123456789", 401},
		{"reservation.canceled", "id-refused", secret, 422},
	} {
		if got := post(tc.typ, tc.id, []byte(tc.secret)); got != tc.want {
			t.Errorf("%s signed with %q: %d, want %d", tc.id, tc.secret, got, tc.want)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	rest := new(strings.Builder)
	for sc.Scan() {
		rest.WriteString(sc.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGINT: %v\n%s", err, rest)
	}
	for _, frag := range []string{"204  reservation.created  sakura-hotels  id-ok\n{\"eventType\":\"reservation.created\"}",
		"401 dispatch: bad signature", "422 refused (--refuse)  reservation.canceled  sakura-hotels  id-refused"} {
		if !strings.Contains(out.String(), frag) {
			t.Errorf("output lacks %q:\n%s", frag, out.String())
		}
	}
	if !strings.Contains(rest.String(), "receive stopped: 1 received, 1 refused") {
		t.Errorf("no summary at stop: %s", rest)
	}
}

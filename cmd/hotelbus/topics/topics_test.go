package topics_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	hbtopics "github.com/hotelbus/hotelbus/topics"
)

func run(t *testing.T, env map[string]string, args ...string) cmdtest.Result {
	t.Helper()
	return cmdtest.Run(t, env, "", args...)
}

// declared is the number of topics topics/topics.yaml declares (each system's dead-letter and
// redrive topics, the bridge's dead letters, the audit log and the privacy key topic included).
const declared = 19

func TestPlanApplyDescribe(t *testing.T) {
	b := streamstest.Kfake(t)
	env := map[string]string{"HOTELBUS_BROKERS": strings.Join(b.Brokers, ",")}
	prefix := streamstest.Name(t, "t") + "."
	args := func(cmd ...string) []string { return append(cmd, "--env", "test", "--prefix", prefix) }

	r := run(t, env, args("topics", "plan")...)
	if r.Code != 0 {
		t.Fatalf("plan: %+v", r)
	}
	if n := strings.Count(r.Out, "+ create "); n != declared {
		t.Errorf("plan lists %d creations, want %d:\n%s", n, declared, r.Out)
	}
	for _, want := range []string{
		"+ create " + prefix + "hotelbus.pms.billing (partitions 3, rf 1, cleanup.policy=delete, min.insync.replicas=1, retention.ms=2592000000)\n",
		"+ create " + prefix + "hotelbus.dlq.hotel-pms (partitions 3, rf 1,",
		fmt.Sprintf("plan: %d topic(s) to create, 0 partition increase(s), 0 config(s) to set", declared),
	} {
		if !strings.Contains(r.Out, want) {
			t.Errorf("plan does not print %q:\n%s", want, r.Out)
		}
	}
	if r := run(t, env, args("topics", "plan")...); !strings.Contains(r.Out, fmt.Sprintf("plan: %d topic(s) to create", declared)) {
		t.Fatalf("plan changed the cluster: %+v", r)
	}

	if r := run(t, env, args("topics", "apply")...); r.Code != 0 || !strings.Contains(r.Out, fmt.Sprintf("applied: %d topic(s) created", declared)) ||
		!strings.Contains(r.Out, "+ create "+prefix+"hotelbus.pms.reservations") {
		t.Fatalf("apply: %+v", r)
	}
	if r := run(t, env, args("topics", "plan")...); r.Code != 0 || r.Out != fmt.Sprintf("in sync: %d declared topics match the cluster\n", declared) {
		t.Fatalf("plan after apply: %+v", r)
	}
	if r := run(t, env, args("topics", "apply")...); r.Code != 0 || !strings.HasPrefix(r.Out, "in sync") {
		t.Fatalf("second apply: %+v", r)
	}

	r = run(t, env, args("topics", "describe")...)
	if r.Code != 0 || strings.Count(r.Out, "  in sync\n") != declared || !strings.Contains(r.Out, fmt.Sprintf("%d of %d declared topics in sync", declared, declared)) {
		t.Fatalf("describe: %+v", r)
	}
	r = run(t, env, args("topics", "describe", "--json")...)
	var states []struct {
		Topic      string            `json:"topic"`
		Partitions int32             `json:"partitions"`
		Configs    map[string]string `json:"configs"`
		InSync     bool              `json:"inSync"`
	}
	if err := json.Unmarshal([]byte(r.Out), &states); err != nil || len(states) != declared {
		t.Fatalf("describe --json: %v: %+v", err, r)
	}
	for _, s := range states {
		if !s.InSync || s.Partitions != 3 || s.Configs["min.insync.replicas"] != "1" {
			t.Errorf("describe --json: %+v", s)
		}
	}

	// Against the defaults (prod's settings), the same topics need more partitions and other
	// configs, and their replication factor differs.
	r = run(t, env, "topics", "plan", "--json", "--prefix", prefix)
	var d hbtopics.Diff
	if err := json.Unmarshal([]byte(r.Out), &d); err != nil || r.Code != 0 {
		t.Fatalf("plan --json: %v: %+v", err, r)
	}
	if len(d.Create) != 0 || len(d.Partitions) != 6 || len(d.Configs) != declared || len(d.Warnings) != declared {
		t.Errorf("plan of prod settings over test topics: %d create, %d partitions, %d configs, %d warnings:\n%s",
			len(d.Create), len(d.Partitions), len(d.Configs), len(d.Warnings), r.Out)
	}
}

func TestUsageErrors(t *testing.T) {
	b := streamstest.Kfake(t)
	env := map[string]string{"HOTELBUS_BROKERS": strings.Join(b.Brokers, ","), "EMPTY": ""}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		flag string
	}{
		{"unknown environment", env, []string{"topics", "plan", "--env", "moon"}, "--env"},
		{"no brokers anywhere", map[string]string{}, []string{"topics", "plan", "--env", "test"}, "--brokers"},
		{"empty broker address", nil, []string{"topics", "describe", "--brokers", "127.0.0.1:1,"}, "--brokers"},
		{"prefix with a space", env, []string{"topics", "apply", "--prefix", "my prefix."}, "--prefix"},
		{"unknown SASL mechanism", env, []string{"topics", "plan", "--sasl-mechanism", "GSSAPI"}, "--sasl-mechanism"},
		{"SASL user without mechanism", env, []string{"topics", "plan", "--sasl-user", "admin"}, "--sasl-mechanism"},
		{"SASL without user", env, []string{"topics", "plan", "--sasl-mechanism", "PLAIN", "--sasl-password-env", "PW"}, "--sasl-user"},
		{"SASL password variable unset", env, []string{"topics", "plan", "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "admin", "--sasl-password-env", "EMPTY"}, "--sasl-password-env"},
		{"missing CA file", env, []string{"topics", "plan", "--tls-ca", filepath.Join(t.TempDir(), "ca.pem")}, "--tls-ca"},
		{"bad timeout", env, []string{"topics", "plan", "--timeout", "0s"}, "--timeout"},
		{"unknown subcommand", env, []string{"topics", "destroy"}, "destroy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.env, tc.args...)
			if r.Code != 2 || !strings.Contains(r.ErrOut, tc.flag) {
				t.Errorf("exit %d, want 2 with an error naming %s: %+v", r.Code, tc.flag, r)
			}
		})
	}
}

func TestSASLAndTLS(t *testing.T) {
	certFile, serverTLS := selfSigned(t)
	b := streamstest.Kfake(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "admin", "s3cret"), kfake.TLS(serverTLS))
	env := map[string]string{"HOTELBUS_BROKERS": strings.Join(b.Brokers, ","), "KAFKA_PW": "s3cret", "WRONG_PW": "guess"}
	auth := []string{"--env", "test", "--tls-ca", certFile, "--sasl-mechanism", "scram-sha-512", "--sasl-user", "admin"}

	if r := run(t, env, append([]string{"topics", "apply", "--sasl-password-env", "KAFKA_PW"}, auth...)...); r.Code != 0 || !strings.Contains(r.Out, fmt.Sprintf("applied: %d topic(s) created", declared)) {
		t.Fatalf("apply over TLS with SCRAM: %+v", r)
	}
	// The reachability check fails at once: kfake drops the connection on a failed
	// authentication (EOF), Apache Kafka answers SASL_AUTHENTICATION_FAILED.
	if r := run(t, env, append([]string{"topics", "plan", "--sasl-password-env", "WRONG_PW", "--timeout", "2s"}, auth...)...); r.Code != 1 ||
		!strings.Contains(r.ErrOut, "cannot reach Kafka at "+env["HOTELBUS_BROKERS"]+" (from HOTELBUS_BROKERS): Metadata request: ") {
		t.Errorf("wrong password: exit %d, want 1: %+v", r.Code, r)
	}
	if r := run(t, env, "topics", "plan", "--env", "test", "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", "admin", "--sasl-password-env", "KAFKA_PW", "--timeout", "5s"); r.Code != 1 || !strings.Contains(r.ErrOut, "TLS") {
		t.Errorf("plaintext to a TLS listener: exit %d, want 1: %+v", r.Code, r)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and returns its PEM file and a server
// TLS config presenting it.
func selfSigned(t *testing.T) (string, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

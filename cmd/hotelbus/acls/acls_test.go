package acls_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	hbtopics "github.com/hotelbus/hotelbus/topics"
)

func run(t *testing.T, env map[string]string, args ...string) cmdtest.Result {
	t.Helper()
	return cmdtest.Run(t, env, "", args...)
}

// secured starts kfake with SASL and an authorizer (Apache Kafka in the rig has none) and returns
// the environment and flags that reach it as the superuser.
func secured(t *testing.T) (map[string]string, []string, *kadm.Client) {
	t.Helper()
	b := streamstest.Kfake(t, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser("SCRAM-SHA-256", "admin", "admin-pw"))
	env := map[string]string{"HOTELBUS_BROKERS": strings.Join(b.Brokers, ","), "ADMIN_PW": "admin-pw"}
	flags := []string{"--env", "test", "--sasl-mechanism", "SCRAM-SHA-256", "--sasl-user", "admin", "--sasl-password-env", "ADMIN_PW"}
	adm := kadm.NewClient(b.Client(t, kgo.SASL(scram.Auth{User: "admin", Pass: "admin-pw"}.AsSha256Mechanism())))
	return env, flags, adm
}

func TestPlanApply(t *testing.T) {
	env, flags, adm := secured(t)
	cat, err := hbtopics.Load(hbtopics.Embedded(), "test")
	if err != nil {
		t.Fatal(err)
	}
	n := len(hbtopics.ACLs(cat, nil))

	r := run(t, env, append([]string{"acls", "plan"}, flags...)...)
	if r.Code != 0 || strings.Count(r.Out, "+ ") != n {
		t.Fatalf("plan: want %d ACLs to add: %+v", n, r)
	}
	for _, want := range []string{
		"+ User:hotel-pms ALLOW WRITE on topic hotelbus.pms.reservations\n",
		"+ User:hotel-pms ALLOW READ on topic hotelbus.saas.services\n",
		"+ User:hotel-pms ALLOW READ on group hotelbus.hotel-pms\n",
		"+ User:hotel-pms ALLOW WRITE on topic hotelbus.dlq.hotel-pms\n",
	} {
		if !strings.Contains(r.Out, want) {
			t.Errorf("plan does not print %q:\n%s", want, r.Out)
		}
	}
	if r := run(t, env, append([]string{"acls", "plan"}, flags...)...); strings.Count(r.Out, "+ ") != n {
		t.Fatalf("plan changed the cluster: %+v", r)
	}

	if r := run(t, env, append([]string{"acls", "apply"}, flags...)...); r.Code != 0 || !strings.Contains(r.Out, "applied: ") {
		t.Fatalf("apply: %+v", r)
	}
	if r := run(t, env, append([]string{"acls", "plan"}, flags...)...); r.Code != 0 || strings.Contains(r.Out, "+ ") || !strings.HasPrefix(r.Out, "in sync") {
		t.Fatalf("plan after apply: %+v", r)
	}

	// A grant made by hand is reported and kept.
	if _, err := adm.CreateACLs(context.Background(), kadm.NewACLs().Groups("adhoc").Allow("User:hotel-saas").Operations(kadm.OpRead)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		r := run(t, env, append([]string{"acls", "apply"}, flags...)...)
		if want := "! extra User:hotel-saas ALLOW READ on group adhoc: not derived from the catalog; left in place\n"; r.Code != 0 || !strings.Contains(r.Out, want) {
			t.Fatalf("apply with a hand-made ACL, want %q: %+v", want, r)
		}
	}

	// Another principal format is another set of principals, none of whose ACLs exist yet.
	r = run(t, env, append([]string{"acls", "plan", "--json", "--principal-format", "User:svc-{system}"}, flags...)...)
	var p struct{ Add, Extra []hbtopics.ACL }
	if err := json.Unmarshal([]byte(r.Out), &p); err != nil || r.Code != 0 {
		t.Fatalf("plan --json: %v: %+v", err, r)
	}
	if len(p.Add) != n || len(p.Extra) != 0 || p.Add[0].Principal != "User:svc-hotel-common" {
		t.Errorf("plan --json --principal-format User:svc-{system}: %d to add, extra %v, first %+v", len(p.Add), p.Extra, p.Add[0])
	}
}

func TestUsageErrors(t *testing.T) {
	env, flags, _ := secured(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		flag string
	}{
		{"unknown environment", env, []string{"acls", "plan", "--env", "moon"}, "--env"},
		{"no brokers anywhere", map[string]string{}, []string{"acls", "apply", "--env", "test"}, "--brokers"},
		{"format without placeholder", env, append([]string{"acls", "plan", "--principal-format", "User:pms"}, flags...), "--principal-format"},
		{"format without type", env, append([]string{"acls", "plan", "--principal-format", "{system}"}, flags...), "--principal-format"},
		{"bad prefix", env, append([]string{"acls", "plan", "--prefix", "a/b"}, flags...), "--prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, tc.env, tc.args...)
			if r.Code != 2 || !strings.Contains(r.ErrOut, tc.flag) {
				t.Errorf("exit %d, want 2 with an error naming %s: %+v", r.Code, tc.flag, r)
			}
		})
	}
}

package schemas_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	hbschemas "github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

func run(t *testing.T, env map[string]string, args ...string) cmdtest.Result {
	t.Helper()
	return cmdtest.Run(t, env, "", args...)
}

// copySchemas writes the embedded schema tree to a directory the test may change.
func copySchemas(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(hbschemas.Embedded(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(hbschemas.Embedded(), p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// addMinor writes the next minor of service.ordered v1: the current fields changed by edit.
func addMinor(t *testing.T, dir string, edit func(fields []any) []any) {
	t.Helper()
	base := filepath.Join(dir, "events", "service.ordered", "v1")
	b, err := os.ReadFile(filepath.Join(base, "1.0.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	rec["fields"] = edit(rec["fields"].([]any))
	out, _ := json.MarshalIndent(rec, "", "  ")
	if err := os.WriteFile(filepath.Join(base, "1.1.avsc"), out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterAcceptsOptionalFieldRefusesBreakingChange(t *testing.T) {
	_, url := streamstest.Registry(t)
	env := map[string]string{"HOTELBUS_REGISTRY": url}

	if r := run(t, env, "schemas", "register"); r.Code != 0 || !strings.Contains(r.Out, "registered 22 version(s) in 22 subject(s) at FULL_TRANSITIVE") {
		t.Fatalf("first register: %+v", r)
	}
	if r := run(t, env, "schemas", "diff"); r.Code != 0 || strings.Contains(r.Out, "+ ") {
		t.Fatalf("diff after register should be empty: %+v", r)
	}

	broken := copySchemas(t)
	addMinor(t, broken, func(fields []any) []any {
		// a required field without a default: old data cannot be read with it
		return append(fields, map[string]any{"name": "roomServiceZone", "type": "string", "doc": "Zone of the kitchen."})
	})
	r := run(t, env, "schemas", "register", "--dir", broken)
	if r.Code != 1 {
		t.Fatalf("breaking change: exit %d, want 1: %+v", r.Code, r)
	}
	for _, want := range []string{"hotelbus.saas.services-hotelbus.service.v1.ServiceOrderedEvent", "roomServiceZone", "FULL_TRANSITIVE", "nothing registered"} {
		if !strings.Contains(r.Out+r.ErrOut, want) {
			t.Errorf("refusal does not name %q:\n%s%s", want, r.Out, r.ErrOut)
		}
	}
	if r := run(t, env, "schemas", "diff", "--json"); !strings.Contains(r.Out, `"missing": []`) || r.Code != 0 {
		t.Errorf("the refused register changed the registry: %+v", r)
	}

	ok := copySchemas(t)
	addMinor(t, ok, func(fields []any) []any {
		return append(fields, map[string]any{"name": "roomServiceZone", "type": []any{"null", "string"}, "default": nil, "doc": "Zone of the kitchen."})
	})
	if r := run(t, env, "schemas", "diff", "--dir", ok); r.Code != 0 || !strings.Contains(r.Out, "register 1.1") {
		t.Errorf("diff with the new optional field: %+v", r)
	}
	if r := run(t, env, "schemas", "register", "--dir", ok); r.Code != 0 || !strings.Contains(r.Out, "registered 1 version(s)") {
		t.Fatalf("optional field with default refused: %+v", r)
	}
	// the registry now holds 1.1: the embedded tree, which lacks it, no longer matches
	if r := run(t, env, "schemas", "check"); r.Code != 1 || !strings.Contains(r.Out, "every published version is kept") {
		t.Errorf("check against a registry ahead of schemas/: %+v", r)
	}
}

func TestCheckLocal(t *testing.T) {
	if r := run(t, nil, "schemas", "check"); r.Code != 0 || !strings.Contains(r.Out, "ok: 22 subjects, 22 versions, level FULL_TRANSITIVE") {
		t.Fatalf("check: %+v", r)
	}
	dir := copySchemas(t)
	addMinor(t, dir, func(fields []any) []any { return fields[1:] }) // drop the first field (required, no default)
	r := run(t, nil, "schemas", "check", "--dir", dir)
	if r.Code != 1 || !strings.Contains(r.Out, "service.ordered v1: version 1.1") {
		t.Errorf("check with a removed required field: %+v", r)
	}
	if r := run(t, nil, "schemas", "check", "--dir", dir, "--level", "NONE"); r.Code != 0 {
		t.Errorf("NONE accepts anything: %+v", r)
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"schemas", "check", "--level", "SIDEWAYS"}, "--level"},
		{[]string{"schemas", "check", "--dir", "/does/not/exist"}, "--dir"},
		{[]string{"schemas", "register"}, "--registry"},
		{[]string{"schemas", "list", "extra"}, "unknown command"},
		{[]string{"catalog", "--env", "moon"}, "--env"},
		{[]string{"catalog", "--jsn"}, "unknown flag: --jsn"},
		{[]string{"nosuch"}, "unknown command"},
	}
	for _, tc := range cases {
		r := run(t, nil, tc.args...)
		if r.Code != cmdutil.ExitUsage || !strings.Contains(r.ErrOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %q", tc.args, r.Code, r.ErrOut, tc.want)
		}
	}
}

func TestListAndCatalogJSON(t *testing.T) {
	r := run(t, nil, "schemas", "list", "--json")
	var rows []struct {
		EventType string   `json:"eventType"`
		Versions  []string `json:"versions"`
		Subject   string   `json:"subject"`
	}
	if err := json.Unmarshal([]byte(r.Out), &rows); err != nil || len(rows) != 22 {
		t.Fatalf("list --json: %v %d rows\n%s", err, len(rows), r.Out)
	}
	if rows[0].Subject != "hotelbus.common.auth-hotelbus.auth.v1.AuthPermissionsChangedEvent" {
		t.Errorf("first subject %q", rows[0].Subject)
	}
	r = run(t, nil, "schemas", "list", "--json", "--prefix", "staging.")
	if err := json.Unmarshal([]byte(r.Out), &rows); err != nil || rows[0].Subject != "staging.hotelbus.common.auth-hotelbus.auth.v1.AuthPermissionsChangedEvent" {
		t.Errorf("list --prefix staging.: %v, first subject %q, want it named after the prefixed topic", err, rows[0].Subject)
	}
	r = run(t, nil, "catalog", "--json")
	var cat struct {
		Systems []struct {
			Name  string `json:"name"`
			Group string `json:"group"`
		} `json:"systems"`
		Topics []struct{ Name string } `json:"topics"`
	}
	if err := json.Unmarshal([]byte(r.Out), &cat); err != nil || len(cat.Systems) != 4 || len(cat.Topics) != 19 { // topics/topics.yaml
		t.Fatalf("catalog --json: %v %+v", err, cat)
	}
}

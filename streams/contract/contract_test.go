package contract_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/contract"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// EnvArtifacts names a directory that receives copies of what the tests render (the catalog
// site's screenshot, the AsyncAPI document, the TypeScript declarations), since the tests'
// temporary directories are removed when they end.
const EnvArtifacts = "HOTELBUS_TEST_ARTIFACTS"

// load joins the embedded catalog, resolved for env, with the schema tree fsys (nil: the embedded one).
func load(t *testing.T, env string, fsys fs.FS) *contract.Contract {
	t.Helper()
	c, err := topics.Load(topics.Embedded(), env)
	if err != nil {
		t.Fatal(err)
	}
	if fsys == nil {
		fsys = schemas.Embedded()
	}
	set, err := schemas.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	k, err := contract.New(c, set)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// schemaTree copies the embedded schema tree, without the paths under drop, plus files.
func schemaTree(t *testing.T, drop string, files map[string]string) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	err := fs.WalkDir(schemas.Embedded(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (drop != "" && strings.HasPrefix(p, drop)) {
			return err
		}
		b, err := fs.ReadFile(schemas.Embedded(), p)
		out[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, s := range files {
		out[p] = &fstest.MapFile{Data: []byte(s)}
	}
	return out
}

// artifact writes b to name in the test's temporary directory and, when HOTELBUS_TEST_ARTIFACTS
// is set, there too; it returns the temporary path.
func artifact(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv(EnvArtifacts); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// node runs a program of the rig's npm tools (args[0] relative to node_modules, e.g.
// ".bin/tsc", or a script of testdata with NODE_PATH set) and returns its combined output and exit
// code; a tool that cannot start fails the test.
func node(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	mods := streamstest.NodeModules(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if strings.HasPrefix(args[0], ".bin/") {
		cmd = exec.CommandContext(ctx, filepath.Join(mods, args[0]), args[1:]...)
	} else {
		cmd = exec.CommandContext(ctx, "node", args...)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), 0
}

// TestNewRefusesInconsistency: a published type without schemas, or schemas of a type nobody
// publishes, is an error naming the type.
func TestNewRefusesInconsistency(t *testing.T) {
	c, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	extra, _ := fs.ReadFile(schemas.Embedded(), "events/points.used/v1/1.0.avsc")
	example, _ := fs.ReadFile(schemas.Embedded(), "events/points.used/v1/example.json")
	for name, tree := range map[string]fstest.MapFS{
		"points.used":  schemaTree(t, "events/points.used/", nil),
		"points.moved": schemaTree(t, "", map[string]string{"events/points.moved/v1/1.0.avsc": string(extra), "events/points.moved/v1/example.json": string(example)}),
	} {
		set, err := schemas.Load(tree)
		if err != nil {
			t.Fatal(err)
		}
		_, err = contract.New(c, set)
		if !errors.Is(err, contract.ErrInconsistent) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want ErrInconsistent naming it", name, err)
		}
	}
}

func TestTypeName(t *testing.T) {
	for in, want := range map[string]string{"billing.paid": "BillingPaidV2", "checkin_checkout.checked_in": "CheckinCheckoutCheckedInV2"} {
		if got := contract.TypeName(in, 2); got != want {
			t.Errorf("TypeName(%q, 2) = %q, want %q", in, got, want)
		}
	}
}

// TestRenderingIsStable: every output is a pure function of the declarations, so a committed copy
// can be compared byte for byte with a fresh rendering.
func TestRenderingIsStable(t *testing.T) {
	a, b := load(t, "", nil), load(t, "", nil)
	for name, render := range map[string]func(*contract.Contract) ([]byte, error){
		"asyncapi":   func(k *contract.Contract) ([]byte, error) { return k.AsyncAPI("test") },
		"typescript": (*contract.Contract).TypeScript,
	} {
		x, err1 := render(a)
		y, err2 := render(b)
		if err1 != nil || err2 != nil || string(x) != string(y) {
			t.Errorf("%s: two renderings differ (errors %v, %v)", name, err1, err2)
		}
	}
	x, _ := a.HTML()
	y, _ := b.HTML()
	for p := range x {
		if string(x[p]) != string(y[p]) {
			t.Errorf("html %s: two renderings differ", p)
		}
	}
}

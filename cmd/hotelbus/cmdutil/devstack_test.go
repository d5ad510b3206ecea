package cmdutil_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
)

// TestLocateDev: HOTELBUS_DATA_DIR alone when set; otherwise the .hotelbus directories from the
// current directory up, nearest first, then the per-user state directory; dev itself uses the
// nearest .hotelbus, else the repository root's, else the per-user one.
func TestLocateDev(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	repo := filepath.Join(root, "repo")
	sub := filepath.Join(repo, "a", "b")
	elsewhere := filepath.Join(root, "elsewhere")
	for _, d := range []string{home, sub, elsewhere} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module github.com/hotelbus/hotelbus\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(home, ".local", "state", "hotelbus")
	env := map[string]string{"HOME": home}
	getenv := func(k string) string { return env[k] }
	check := func(name, dir, wantData string, wantSearch ...string) {
		t.Helper()
		loc := cmdutil.LocateDev(getenv, dir)
		if loc.DataDir != wantData || !slices.Equal(loc.Search, wantSearch) {
			t.Errorf("%s: data dir %s, search %v; want %s, %v", name, loc.DataDir, loc.Search, wantData, wantSearch)
		}
	}
	check("a subdirectory of a fresh clone", sub, filepath.Join(repo, ".hotelbus"), state)
	check("outside any repository", elsewhere, state, state)
	if err := os.Mkdir(filepath.Join(repo, ".hotelbus"), 0o755); err != nil {
		t.Fatal(err)
	}
	check("a subdirectory once dev ran", sub, filepath.Join(repo, ".hotelbus"), filepath.Join(repo, ".hotelbus"), state)
	if err := os.Mkdir(filepath.Join(repo, "a", ".hotelbus"), 0o755); err != nil {
		t.Fatal(err)
	}
	check("a nearer .hotelbus", sub, filepath.Join(repo, "a", ".hotelbus"), filepath.Join(repo, "a", ".hotelbus"), filepath.Join(repo, ".hotelbus"), state)
	env["XDG_STATE_HOME"] = filepath.Join(root, "xdg")
	check("XDG_STATE_HOME", elsewhere, filepath.Join(root, "xdg", "hotelbus"), filepath.Join(root, "xdg", "hotelbus"))
	env[cmdutil.EnvDataDir] = filepath.Join(root, "mine")
	check(cmdutil.EnvDataDir, sub, filepath.Join(root, "mine"), filepath.Join(root, "mine"))
}

// TestDevStackSaysWhereItLooked: the first running stack that has the endpoint is used; a stale
// endpoints.json (its process is gone), a missing one and a running stack without the endpoint are
// each named in the error, with the directory the search started from.
func TestDevStackSaysWhereItLooked(t *testing.T) {
	stale, none, running := t.TempDir(), t.TempDir(), t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skip(err)
	}
	if err := cmdutil.WriteEndpoints(stale, cmdutil.Endpoints{Kafka: "127.0.0.1:1", Registry: "http://127.0.0.1:1", PID: gone.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	if err := cmdutil.WriteEndpoints(running, cmdutil.Endpoints{Kafka: "127.0.0.1:2", PID: os.Getpid()}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(running, cmdutil.EndpointsFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("endpoints.json mode: %v %v, want 0600", st.Mode(), err)
	}
	cwd := t.TempDir()
	var errOut bytes.Buffer
	f := &cmdutil.Factory{ErrOut: &errOut, Getenv: func(string) string { return "" }, DataDir: stale,
		DevSearch: []string{stale, none, running}, DevSearchFrom: cwd}
	brokers, err := f.Brokers("")
	if err != nil || brokers != "127.0.0.1:2" || !strings.Contains(errOut.String(), filepath.Join(running, cmdutil.EndpointsFile)) {
		t.Fatalf("brokers = %q, %v (%s), want the running stack's", brokers, err, errOut.String())
	}
	_, err = f.Registry("")
	if cmdutil.ExitCode(err) != cmdutil.ExitUsage {
		t.Fatalf("registry: %v, want a usage error", err)
	}
	for _, want := range []string{
		"no registry: pass --registry, set HOTELBUS_REGISTRY, or start `hotelbus dev`; looked for a running `hotelbus dev` in:",
		filepath.Join(stale, cmdutil.EndpointsFile) + ": stale: the dev stack of pid ",
		none + ": no endpoints.json",
		filepath.Join(running, cmdutil.EndpointsFile) + ": the running dev stack has no registry",
		"the .hotelbus directories of " + cwd + " and its parents, then the per-user state directory; HOTELBUS_DATA_DIR overrides",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

package root_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/root"
)

// flagLine is a flag's line in --help: the flag, an optional one-word value name, then two spaces
// before the usage (or the end of the line). A backticked phrase in a usage becomes the value
// name (pflag's UnquoteUsage), which breaks this shape: "--prefix topics apply --prefix   topic...".
var (
	startsFlag = regexp.MustCompile(`^\s+(-\w, )?--[a-z0-9-]+`)
	flagLine   = regexp.MustCompile(`^\s+(?:-\w, )?--[a-z0-9-]+(?: [A-Za-z][\w.:@<>|/-]*)?(?:\s{2,}\S|$)`)
)

// TestHelpValueNames renders every command's --help and fails on a flag whose value name is not
// one word.
func TestHelpValueNames(t *testing.T) {
	var walk func(c *cobra.Command)
	var paths [][]string
	walk = func(c *cobra.Command) {
		paths = append(paths, strings.Fields(c.CommandPath())[1:])
		for _, sub := range c.Commands() {
			if !sub.Hidden && sub.Name() != "help" && sub.Name() != "completion" {
				walk(sub)
			}
		}
	}
	walk(root.New(&cmdutil.Factory{Getenv: func(string) string { return "" }}))
	if len(paths) < 20 {
		t.Fatalf("%d commands found", len(paths))
	}
	for _, p := range paths {
		name := strings.Join(append([]string{"hotelbus"}, p...), " ")
		r := cmdtest.Run(t, nil, "", append(p, "--help")...)
		if r.Code != 0 || !strings.Contains(r.Out, "Flags:") {
			t.Errorf("%s --help: exit %d\n%s%s", name, r.Code, r.Out, r.ErrOut)
			continue
		}
		inFlags := false
		for _, l := range strings.Split(r.Out, "\n") {
			if strings.HasSuffix(l, "Flags:") || l == "" {
				inFlags = l != ""
				continue
			}
			if inFlags && startsFlag.MatchString(l) && !flagLine.MatchString(l) {
				t.Errorf("%s --help: a flag's value name is not one word:\n%s", name, l)
			}
		}
	}
}

// TestSuggestions: a mistyped command or flag is a usage error that names what was meant.
func TestSuggestions(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dispach"}, `unknown command "dispach" for "hotelbus"; did you mean dispatch?`},
		{[]string{"dlq", "redrve"}, `unknown command "redrve" for "hotelbus dlq"; did you mean redrive?`},
		{[]string{"produce", "--sytem", "hotel-pms"}, "unknown flag: --sytem; did you mean --system?"},
		{[]string{"produce", "--system", "hotel-pm", "--brokers", "127.0.0.1:1", "--registry", "http://127.0.0.1:1"},
			`--system: topics: unknown system "hotel-pm"; did you mean hotel-pms?`},
	} {
		r := cmdtest.Run(t, nil, "", tc.args...)
		if r.Code != cmdutil.ExitUsage || !strings.Contains(r.ErrOut, tc.want) {
			t.Errorf("hotelbus %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), r.Code, r.ErrOut, tc.want)
		}
	}
	if r := cmdtest.Run(t, nil, "", "xyzzy"); r.Code != cmdutil.ExitUsage || strings.Contains(r.ErrOut, "did you mean") {
		t.Errorf("hotelbus xyzzy: exit %d, stderr %q; want 2 and no suggestion", r.Code, r.ErrOut)
	}
}

// TestVersion builds the binary with and without -ldflags -X stamping and runs `hotelbus
// version` and `hotelbus --version`.
func TestVersion(t *testing.T) {
	const pkg = "github.com/hotelbus/hotelbus/cmd/hotelbus/version"
	for _, tc := range []struct{ ldflags, version, commit string }{
		{"", "dev", "dev"},
		{"-X " + pkg + ".Version=v1.4.0 -X " + pkg + ".Commit=0123abcd", "v1.4.0", "0123abcd"},
	} {
		bin := cmdtest.Binary(t, tc.ldflags)
		want := "hotelbus " + tc.version + " (commit " + tc.commit + ", " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
		for _, args := range [][]string{{"version"}, {"--version"}} {
			out, err := exec.Command(bin, args...).Output()
			if err != nil || string(out) != want {
				t.Errorf("ldflags %q: hotelbus %s = %q, %v; want %q", tc.ldflags, args[0], out, err, want)
			}
		}
		out, err := exec.Command(bin, "version", "--json").Output()
		var v map[string]string
		if err == nil {
			err = json.NewDecoder(bytes.NewReader(out)).Decode(&v)
		}
		if err != nil || v["version"] != tc.version || v["commit"] != tc.commit || v["go"] != runtime.Version() {
			t.Errorf("ldflags %q: version --json = %s, %v", tc.ldflags, out, err)
		}
	}
}

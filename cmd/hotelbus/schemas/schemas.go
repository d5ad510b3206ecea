// Package schemas implements `hotelbus schemas list|check|register|diff`.
package schemas

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	hbschemas "github.com/hotelbus/hotelbus/schemas"
)

type options struct {
	dir      string
	registry string
	level    string
	json     bool
	prefix   string
}

// New returns the schemas command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "schemas <command>",
		Short: "List, check and register the Avro schemas of schemas/",
		Long: `Every event type's data record lives in schemas/events/<type>/v<major>/<major>.<minor>.avsc,
every published version kept. A major version is one registry subject, named
<topic>-<record full name> (TopicRecordNameStrategy); its minors are the subject's versions.

Subjects are held at FULL_TRANSITIVE by default: a new version must be readable by, and able to read,
every earlier one. An incompatible change is a new major version (a new event type), never a new
version of the same subject.`,
	}
	cmd.PersistentFlags().StringVar(&o.dir, "dir", "", "schema tree to read (default: the schemas built into the binary)")
	cmd.PersistentFlags().StringVar(&o.level, "level", hbschemas.DefaultLevel.String(), "compatibility level: NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE")
	cmd.PersistentFlags().BoolVar(&o.json, "json", false, "print the report as JSON")
	// Subjects are named after the topics (TopicRecordNameStrategy), so the prefix of an isolated
	// copy of the platform names them too.
	registryFlag := func(c *cobra.Command, usage string) {
		c.Flags().StringVar(&o.registry, "registry", "", usage+" (env HOTELBUS_REGISTRY)")
		cmdutil.AddPrefixFlag(c, &o.prefix)
	}

	list := &cobra.Command{Use: "list", Short: "List event types, versions and subjects", Args: cobra.NoArgs,
		Example: "  hotelbus schemas list\n  hotelbus schemas list --json",
		RunE:    func(*cobra.Command, []string) error { return runList(f, o) }}
	cmdutil.AddPrefixFlag(list, &o.prefix)
	check := &cobra.Command{Use: "check", Short: "Lint every schema and check each version against the earlier ones (and the registry with --registry)", Args: cobra.NoArgs,
		Example: "  hotelbus schemas check\n  hotelbus schemas check --dir ./schemas --registry http://127.0.0.1:8081",
		RunE:    func(*cobra.Command, []string) error { return runCheck(f, o) }}
	registryFlag(check, "also compare with this registry")
	register := &cobra.Command{Use: "register", Short: "Set each subject's level, check, then register the versions the registry lacks", Args: cobra.NoArgs,
		Long:    "Refuses, registering nothing, when any version breaks its subject's level or the registry holds a version schemas/ lacks.",
		Example: "  hotelbus schemas register --registry http://schema-registry:8081",
		RunE:    func(*cobra.Command, []string) error { return runRegister(f, o, true) }}
	registryFlag(register, "registry URL")
	diff := &cobra.Command{Use: "diff", Short: "Show what register would change in the registry", Args: cobra.NoArgs,
		Example: "  hotelbus schemas diff --registry http://127.0.0.1:8081",
		RunE:    func(*cobra.Command, []string) error { return runRegister(f, o, false) }}
	registryFlag(diff, "registry URL")
	cmd.AddCommand(list, check, register, diff)
	return cmd
}

func (o *options) load() (*hbschemas.Set, sr.CompatibilityLevel, error) {
	var level sr.CompatibilityLevel
	if err := level.UnmarshalText([]byte(strings.ToUpper(o.level))); err != nil || o.level == "" {
		return nil, 0, cmdutil.Usagef("--level: %q is not a compatibility level (NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE)", o.level)
	}
	fsys := hbschemas.Embedded()
	if o.dir != "" {
		if st, err := os.Stat(o.dir); err != nil || !st.IsDir() {
			return nil, 0, cmdutil.Usagef("--dir: %q is not a directory", o.dir)
		}
		fsys = os.DirFS(o.dir)
	}
	set, err := hbschemas.Load(fsys)
	return set, level, err
}

func runList(f *cmdutil.Factory, o *options) error {
	set, _, err := o.load()
	if err != nil {
		return err
	}
	cat, err := cmdutil.Catalog(o.prefix)
	if err != nil {
		return err
	}
	type row struct {
		EventType string   `json:"eventType"`
		Major     int      `json:"major"`
		Versions  []string `json:"versions"`
		Subject   string   `json:"subject"`
		Record    string   `json:"record"`
	}
	var rows []row
	for _, sub := range set.Subjects {
		t, _ := cat.TopicFor(sub.EventType)
		r := row{EventType: sub.EventType, Major: sub.Major, Subject: sub.Latest().Subject(t.Name), Record: sub.Latest().FullName()}
		for _, v := range sub.Versions {
			r.Versions = append(r.Versions, v.String())
		}
		rows = append(rows, r)
	}
	if o.json {
		return cmdutil.WriteJSON(f.Out, rows)
	}
	w := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "EVENT TYPE\tMAJOR\tVERSIONS\tSUBJECT")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\tv%d\t%s\t%s\n", r.EventType, r.Major, strings.Join(r.Versions, ", "), r.Subject)
	}
	return w.Flush()
}

func runCheck(f *cmdutil.Factory, o *options) error {
	set, level, err := o.load()
	if err != nil {
		return err
	}
	problems, warnings := hbschemas.CheckLocal(set, level)
	var states []hbschemas.SubjectState
	if o.registry != "" || f.Getenv("HOTELBUS_REGISTRY") != "" {
		states, _, err = compare(f, o, set, level)
		if err != nil {
			return err
		}
		for _, st := range states {
			problems = append(problems, st.Problems...)
			warnings = append(warnings, st.Warnings...)
		}
	}
	if o.json {
		out := struct {
			OK       bool     `json:"ok"`
			Problems []string `json:"problems"`
			Warnings []string `json:"warnings"`
		}{OK: len(problems) == 0, Problems: errorStrings(problems), Warnings: nonNil(warnings)}
		if err := cmdutil.WriteJSON(f.Out, out); err != nil {
			return err
		}
	} else {
		for _, w := range warnings {
			fmt.Fprintln(f.ErrOut, "warning:", w)
		}
		for _, p := range problems {
			fmt.Fprintln(f.Out, "problem:", p)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("schemas check: %d problem(s)", len(problems))
	}
	if !o.json {
		fmt.Fprintf(f.Out, "ok: %d subjects, %d versions, level %s%s\n", len(set.Subjects), countVersions(set), level, registryNote(states))
	}
	return nil
}

func registryNote(states []hbschemas.SubjectState) string {
	if states == nil {
		return ""
	}
	missing := 0
	for _, st := range states {
		missing += len(st.Missing)
	}
	return fmt.Sprintf("; registry compatible, %d version(s) not yet registered", missing)
}

func compare(f *cmdutil.Factory, o *options, set *hbschemas.Set, level sr.CompatibilityLevel) ([]hbschemas.SubjectState, *sr.Client, error) {
	url, err := f.Registry(o.registry)
	if err != nil {
		return nil, nil, err
	}
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		return nil, nil, cmdutil.Usagef("--registry: %v", err)
	}
	if err := f.Reachable(context.Background()); err != nil {
		return nil, nil, err
	}
	cat, err := cmdutil.Catalog(o.prefix)
	if err != nil {
		return nil, nil, err
	}
	topicOf := func(et string) (string, bool) {
		t, ok := cat.TopicFor(et)
		return t.Name, ok
	}
	states, err := hbschemas.Compare(context.Background(), cl, set, topicOf, level)
	return states, cl, err
}

func runRegister(f *cmdutil.Factory, o *options, apply bool) error {
	set, level, err := o.load()
	if err != nil {
		return err
	}
	states, cl, err := compare(f, o, set, level)
	if err != nil {
		return err
	}
	if o.json {
		if err := cmdutil.WriteJSON(f.Out, jsonStates(states)); err != nil {
			return err
		}
	} else {
		printStates(f, states)
	}
	if !apply {
		return firstProblem(states)
	}
	if err := hbschemas.Register(context.Background(), cl, states, level); err != nil {
		if errors.Is(err, hbschemas.ErrIncompatible) || errors.Is(err, hbschemas.ErrHistory) {
			return fmt.Errorf("schemas register: refused, nothing registered:\n%w", err)
		}
		return err
	}
	if !o.json {
		n := 0
		for _, st := range states {
			n += len(st.Missing)
		}
		fmt.Fprintf(f.Out, "registered %d version(s) in %d subject(s) at %s\n", n, len(states), level)
	}
	return nil
}

func firstProblem(states []hbschemas.SubjectState) error {
	var all []error
	for _, st := range states {
		all = append(all, st.Problems...)
	}
	if len(all) > 0 {
		return fmt.Errorf("schemas diff: %d problem(s) would stop register", len(all))
	}
	return nil
}

func printStates(f *cmdutil.Factory, states []hbschemas.SubjectState) {
	for _, st := range states {
		switch {
		case len(st.Problems) > 0:
			fmt.Fprintf(f.Out, "! %s\n", st.Subject)
			for _, p := range st.Problems {
				fmt.Fprintf(f.Out, "    %v\n", p)
			}
		case len(st.Missing) == 0 && st.CurrentLevel == st.Level:
			fmt.Fprintf(f.Out, "= %s (%d version(s))\n", st.Subject, st.Registered)
		default:
			fmt.Fprintf(f.Out, "+ %s\n", st.Subject)
			if st.CurrentLevel != st.Level {
				cur := st.CurrentLevel
				if cur == "" {
					cur = "(registry default)"
				}
				fmt.Fprintf(f.Out, "    level %s -> %s\n", cur, st.Level)
			}
			for _, v := range st.Missing {
				fmt.Fprintf(f.Out, "    register %s (%s)\n", v, v.File)
			}
		}
		for _, w := range st.Warnings {
			fmt.Fprintf(f.ErrOut, "warning: %s\n", w)
		}
	}
}

type jsonState struct {
	Subject      string   `json:"subject"`
	EventType    string   `json:"eventType"`
	Major        int      `json:"major"`
	Level        string   `json:"level"`
	CurrentLevel string   `json:"currentLevel"`
	Registered   int      `json:"registered"`
	Missing      []string `json:"missing"`
	Problems     []string `json:"problems"`
	Warnings     []string `json:"warnings"`
}

func jsonStates(states []hbschemas.SubjectState) []jsonState {
	out := make([]jsonState, 0, len(states))
	for _, st := range states {
		js := jsonState{Subject: st.Subject, EventType: st.EventType, Major: st.Major, Level: st.Level, CurrentLevel: st.CurrentLevel,
			Registered: st.Registered, Missing: []string{}, Problems: errorStrings(st.Problems), Warnings: nonNil(st.Warnings)}
		for _, v := range st.Missing {
			js.Missing = append(js.Missing, v.String())
		}
		out = append(out, js)
	}
	return out
}

func errorStrings(errs []error) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func countVersions(set *hbschemas.Set) int {
	n := 0
	for _, sub := range set.Subjects {
		n += len(sub.Versions)
	}
	return n
}

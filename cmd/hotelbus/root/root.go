// Package root assembles the hotelbus command tree.
package root

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/acls"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/bench"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/bridge"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/catalog"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/dev"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/dispatch"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/dlq"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/example"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/gateway"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/lag"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/monitor"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/privacy"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/produce"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/receive"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/replay"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/resync"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/simulate"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/topics"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/trace"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/version"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/view"
	hbtopics "github.com/hotelbus/hotelbus/topics"
)

// Main runs the binary's command line and returns the exit code.
func Main() int {
	f := cmdutil.System()
	return Run(f, os.Args[1:])
}

// Run executes args (without the program name) with f's I/O and returns the exit code: 0 success,
// 1 a failure of the work, 2 bad usage.
func Run(f *cmdutil.Factory, args []string) int {
	cmd := New(f)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err != nil {
		fmt.Fprintln(f.ErrOut, "hotelbus:", err)
		var ue *cmdutil.UsageError
		if errors.As(err, &ue) {
			fmt.Fprintf(f.ErrOut, "run '%s --help' for usage\n", cmdPath(cmd, args))
		}
	}
	return cmdutil.ExitCode(err)
}

// New returns the root command.
func New(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hotelbus <command>",
		Short: "Event streaming for the hotel systems on Apache Kafka",
		Long: `hotelbus runs the event platform of hotel-pms, hotel-member, hotel-saas and hotel-common:
one Avro envelope on partitioned Kafka topics, a schema registry that enforces compatibility, and
consumer groups that handle every event once.

Commands that talk to Kafka, the registry or Redis take --brokers, --registry and --redis (or
HOTELBUS_BROKERS, HOTELBUS_REGISTRY, HOTELBUS_REDIS); given none, they use a running
` + "`hotelbus dev`" + ` stack's endpoints.json, found in the .hotelbus directories from the current
directory up, then the per-user state directory (HOTELBUS_DATA_DIR overrides; see hotelbus dev
--help). They check that each answers before the work starts and exit 1 naming the address when
one does not within --connect-timeout.`,
		Example: `  hotelbus dev                                  # the whole platform on its embedded default
  hotelbus catalog                              # who publishes and subscribes to what
  hotelbus schemas check                        # lint and compatibility of schemas/
  hotelbus topics plan --env prod               # what apply would change on the cluster
  hotelbus produce --system hotel-pms < ev.jsonl  # publish JSON envelopes as hotel-pms`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetVersionTemplate("{{.Version}}\n")
	cmd.SetIn(f.In)
	cmd.SetOut(f.Out)
	cmd.SetErr(f.ErrOut)
	cmd.SetFlagErrorFunc(flagError)
	cmd.PersistentFlags().DurationVar(&f.ConnectTimeout, "connect-timeout", cmdutil.DefaultConnectTimeout,
		"how long to wait for Kafka, the schema registry and Redis to answer before failing")
	cmd.AddCommand(catalog.New(f), schemas.New(f), dev.New(f), topics.New(f), acls.New(f), produce.New(f), replay.New(f), resync.New(f), gateway.New(f), dispatch.New(f), receive.New(f), bridge.New(f), dlq.New(f), simulate.New(f), bench.New(f), lag.New(f), privacy.New(f), monitor.New(f), trace.New(f), example.New(f), view.New(f), version.New(f))
	wrapArgs(cmd)
	return cmd
}

// flagError makes a flag parsing failure a usage error (exit 2) and suggests the flags an unknown
// one may be a typo of.
func flagError(c *cobra.Command, err error) error {
	if name, ok := strings.CutPrefix(err.Error(), "unknown flag: --"); ok {
		var names []string
		c.Flags().VisitAll(func(fl *pflag.Flag) { names = append(names, fl.Name) })
		if s := hbtopics.Suggest(name, names); len(s) > 0 {
			return cmdutil.Usagef("%v; did you mean --%s?", err, strings.Join(s, " or --"))
		}
	}
	return &cmdutil.UsageError{Err: err}
}

// wrapArgs makes argument-validation failures usage errors (exit 2) in every command.
func wrapArgs(cmd *cobra.Command) {
	if v := cmd.Args; v != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := v(c, args); err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			return nil
		}
	}
	if cmd.HasSubCommands() && cmd.RunE == nil && cmd.Run == nil {
		cmd.RunE = func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				// cobra's suggestions: within SuggestionsMinimumDistance edits, or by prefix.
				c.SuggestionsMinimumDistance = 2
				hint := ""
				if s := c.SuggestionsFor(args[0]); len(s) > 0 {
					hint = "; did you mean " + strings.Join(s, " or ") + "?"
				}
				return cmdutil.Usagef("unknown command %q for %q%s", args[0], c.CommandPath(), hint)
			}
			return c.Help()
		}
		cmd.Args = cobra.ArbitraryArgs
	}
	for _, c := range cmd.Commands() {
		wrapArgs(c)
	}
}

func cmdPath(root *cobra.Command, args []string) string {
	c, _, err := root.Find(args)
	if err != nil || c == nil {
		return root.Name()
	}
	return c.CommandPath()
}

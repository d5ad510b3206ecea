// Package acls implements `hotelbus acls plan|apply`: broker ACLs derived from topic ownership.
package acls

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	cmdtopics "github.com/hotelbus/hotelbus/cmd/hotelbus/topics"
	hbtopics "github.com/hotelbus/hotelbus/topics"
)

// DefaultPrincipalFormat maps a system to its principal when --principal-format is not given.
const DefaultPrincipalFormat = "User:{system}"

// New returns the acls command.
func New(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acls <command>",
		Short: "Derive broker ACLs from topic ownership and create the missing ones",
		Long: `Each system's principal may write only the topics it owns (its dead-letter topic included),
read the topics that carry the event types it subscribes to and its own dead-letter topic (to
re-drive it), and read its own consumer group. Nothing else: DESCRIBE is implied by READ and
WRITE, and idempotent producers need no cluster ACL on Kafka 3.0 and later.

The brokers must run an authorizer (authorizer.class.name) and the admin principal needs ALTER and
DESCRIBE on the cluster. plan lists the ACLs to create and the ones the cluster holds for these
principals beyond the derived set; apply creates the missing ones. Neither ever deletes an ACL.`,
	}
	fl := cmdtopics.AddFlags(cmd)
	var format string
	cmd.PersistentFlags().StringVar(&format, "principal-format", DefaultPrincipalFormat,
		`principal of a system's clients; {system} is replaced by the system's name (e.g. "User:CN={system}.hotels.example")`)
	plan := &cobra.Command{Use: "plan", Short: "Show the ACLs apply would create and the extra ones on the cluster (changes nothing)", Args: cobra.NoArgs,
		Example: `  hotelbus acls plan --env prod --brokers kafka-0:9093 --tls --sasl-mechanism SCRAM-SHA-512 \
      --sasl-user hotelbus-admin --sasl-password-env KAFKA_ADMIN_PASSWORD
  hotelbus acls plan --principal-format 'User:svc-{system}' --json`,
		RunE: func(*cobra.Command, []string) error { return run(f, fl, format, false) }}
	apply := &cobra.Command{Use: "apply", Short: "Create the missing ACLs, then print them", Args: cobra.NoArgs,
		Example: `  hotelbus acls apply --env prod`,
		RunE:    func(*cobra.Command, []string) error { return run(f, fl, format, true) }}
	cmd.AddCommand(plan, apply)
	return cmd
}

// principalFunc checks --principal-format and returns the mapping it describes.
func principalFunc(format string) (func(string) string, error) {
	typ, _, ok := strings.Cut(format, ":")
	if !ok || typ == "" || strings.Contains(typ, "{system}") || !strings.Contains(format, "{system}") {
		return nil, cmdutil.Usagef("--principal-format: %q must be <type>:<name> with {system} in the name, like %q", format, DefaultPrincipalFormat)
	}
	return func(system string) string { return strings.ReplaceAll(format, "{system}", system) }, nil
}

func run(f *cmdutil.Factory, fl *cmdtopics.Flags, format string, apply bool) error {
	principal, err := principalFunc(format)
	if err != nil {
		return err
	}
	return fl.Run(f, func(ctx context.Context, cat *hbtopics.Catalog, adm *kadm.Client) error {
		want := hbtopics.ACLs(cat, principal)
		add, extra, err := hbtopics.PlanACLs(ctx, adm, want)
		if err != nil {
			return err
		}
		if apply {
			if err := hbtopics.ApplyACLs(ctx, adm, add); err != nil {
				return err
			}
		}
		if fl.JSON {
			return cmdutil.WriteJSON(f.Out, struct {
				Add   []hbtopics.ACL `json:"add"`
				Extra []hbtopics.ACL `json:"extra"`
			}{add, extra})
		}
		for _, a := range add {
			fmt.Fprintf(f.Out, "+ %s\n", a)
		}
		for _, a := range extra {
			fmt.Fprintf(f.Out, "! extra %s: not derived from the catalog; left in place\n", a)
		}
		switch {
		case len(add) == 0:
			fmt.Fprintf(f.Out, "in sync: the %d derived ACLs are in place\n", len(want))
		case apply:
			fmt.Fprintf(f.Out, "applied: %d ACL(s) created\n", len(add))
		default:
			fmt.Fprintf(f.Out, "plan: %d of %d derived ACLs to create; `hotelbus acls apply` creates them\n", len(add), len(want))
		}
		return nil
	})
}

// Package lag implements `hotelbus lag`: how far each consumer group is behind, in records and in
// seconds.
package lag

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams/lag"
	hbtopics "github.com/hotelbus/hotelbus/topics"
)

type options struct {
	groups []string
	prefix string
	json   bool
	kafka  *cmdutil.KafkaFlags
}

// New returns the lag command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "lag [--group G]... [--json]",
		Short: "Show how far consumer groups are behind, in records and seconds",
		Long: `lag prints, for each consumer group, its state and members, and for every partition it has
committed to or is assigned: the committed offset, the end offset, the lag in records, and the lag
in seconds, the age of the oldest record the group has not consumed (the record at its committed
offset; 0 when the group is caught up), as kafka-lag-exporter measures it.

Without --group it shows the group of every system in the catalog (--group takes a group, such as
hotelbus.hotel-member, not a system). A system's group that has not committed yet is NotStarted,
with every record of its topics pending; another group the cluster does not know is Dead. Exit 1
when a group or partition could not be measured, or a --group is unknown to the cluster.`,
		Example: `  hotelbus lag
  hotelbus lag --group hotelbus.hotel-member
  hotelbus lag --json | jq '.groups[] | {group, lag, lagSeconds}'`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&o.groups, "group", nil, "consumer group to show (repeatable; default: every system's group)")
	cmdutil.AddPrefixFlag(cmd, &o.prefix)
	fl.BoolVar(&o.json, "json", false, "print JSON")
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	cat, err := cmdutil.Catalog(o.prefix)
	if err != nil {
		return err
	}
	var catalogGroups []string
	for _, s := range cat.Systems {
		if len(s.Subscribes) > 0 {
			catalogGroups = append(catalogGroups, s.Group)
		}
	}
	groups := o.groups
	for _, g := range groups {
		if s, ok := cat.System(g); ok {
			return cmdutil.Usagef("--group %s: that is a system; its consumer group is %s (--group %s)", g, s.Group, s.Group)
		}
	}
	if len(groups) == 0 {
		groups = catalogGroups
	}
	cl, err := f.KafkaClient(o.kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := f.Reachable(ctx); err != nil {
		return err
	}
	rep, err := lag.NewReader(cl, lag.CatalogTopics(cat)).Read(ctx, groups...)
	if err != nil {
		return err
	}
	if o.json {
		err = cmdutil.WriteJSON(f.Out, rep)
	} else {
		err = table(f.Out, rep)
	}
	if err != nil {
		return err
	}
	errs := []error{rep.Err()}
	for _, g := range rep.Groups {
		if len(o.groups) > 0 && g.State == lag.StateDead {
			errs = append(errs, fmt.Errorf("lag: group %q is not known to the cluster: no member, no committed offset%s",
				g.Group, hbtopics.DidYouMean(g.Group, catalogGroups)))
		}
	}
	return errors.Join(errs...)
}

// table writes the report: one line per partition, and one per group without any.
func table(w io.Writer, rep *lag.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tMEMBERS\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tLAG-SECONDS\tMEMBER")
	for _, g := range rep.Groups {
		if g.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", g.Group, "error", len(g.Members), g.Error)
			continue
		}
		if len(g.Partitions) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t-\t-\t-\t-\t-\t-\n", g.Group, g.State, len(g.Members))
			continue
		}
		for _, p := range g.Partitions {
			committed, lagStr := "-", strconv.FormatInt(p.Lag, 10)
			if p.Committed >= 0 {
				committed = strconv.FormatInt(p.Committed, 10)
			}
			if p.Error != "" {
				lagStr = "error: " + p.Error
			}
			member := p.Member
			if member == "" {
				member = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%d\t%s\t%.3f\t%s\n", g.Group, g.State, len(g.Members), p.Topic, p.Partition,
				committed, p.End, lagStr, p.LagSeconds, member)
		}
	}
	return tw.Flush()
}

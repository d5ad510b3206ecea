// Package resync implements `hotelbus resync`: move a system's consumer group to a point in time.
package resync

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams/replay"
	"github.com/hotelbus/hotelbus/topics"
)

type options struct {
	system string
	toTime string
	dryRun bool
	force  bool
	json   bool
	prefix string
	kafka  *cmdutil.KafkaFlags
}

// New returns the resync command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "resync --system S --to-time T [--dry-run]",
		Short: "Move a system's consumer group back (or forward) to a point in time",
		Long: `resync moves the consumer group of --system, on every topic the system reads, to the first offset
whose record timestamp is at or after --to-time (the end of a partition that has none), so the
system receives again exactly the events from that time on. Dedup keys make the re-run idempotent
for events it already handled.

It prints the old and new offset of every partition ("-" where the group has none). --dry-run
changes nothing. While the group has live members resync refuses: they would overwrite the moved
offsets with their own commits. Stop the system's consumers first; --force tries anyway.`,
		Example: `  hotelbus resync --system hotel-member --to-time 2026-11-27T09:00:00Z --dry-run
  hotelbus resync --system hotel-saas --to-time -6h
  hotelbus resync --system hotel-pms --to-time -2h --json`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.system, "system", "", "the system whose consumer group moves (required)")
	fl.StringVar(&o.toTime, "to-time", "", "RFC 3339 time or relative (-6h, -2d) to move to (required)")
	fl.BoolVar(&o.dryRun, "dry-run", false, "print the moves without committing them")
	fl.BoolVar(&o.force, "force", false, "move the offsets even while the group has live members")
	fl.BoolVar(&o.json, "json", false, "print the plan as JSON")
	cmdutil.AddPrefixFlag(cmd, &o.prefix)
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	if o.system == "" {
		return cmdutil.Usagef("--system is required")
	}
	if o.toTime == "" {
		return cmdutil.Usagef("--to-time is required")
	}
	at, err := replay.ParseTime(o.toTime, time.Now())
	if err != nil {
		return cmdutil.Usagef("--to-time: %v", err)
	}
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		return err
	}
	cl, err := f.KafkaClient(o.kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := f.Reachable(ctx); err != nil {
		return err
	}
	adm := kadm.NewClient(cl)
	plan, err := replay.PlanResync(ctx, adm, cat.WithPrefix(o.prefix), o.system, at)
	if errors.Is(err, replay.ErrResyncConfig) {
		return &cmdutil.UsageError{Err: err}
	}
	if err != nil {
		return err
	}
	if o.json {
		if err := cmdutil.WriteJSON(f.Out, plan); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(f.Out, "group %s to %s\n", plan.Group, plan.At.Format(time.RFC3339Nano))
		for _, m := range plan.Moves {
			old := "-"
			if m.Old >= 0 {
				old = strconv.FormatInt(m.Old, 10)
			}
			fmt.Fprintf(f.Out, "%s\t%d\t%s\t->\t%d\n", m.Topic, m.Partition, old, m.New)
		}
	}
	if o.dryRun {
		fmt.Fprintln(f.ErrOut, "dry run: no offsets changed")
		if err := plan.Refusal(); err != nil && !o.force {
			fmt.Fprintf(f.ErrOut, "warning: the real run will be refused: %v\n", err)
		}
		return nil
	}
	if len(plan.Members) > 0 && o.force {
		fmt.Fprintf(f.ErrOut, "warning: --force: group %s has %d live members; they may overwrite the new offsets with their own commits, and the broker may refuse the commit\n",
			plan.Group, len(plan.Members))
	}
	if err := plan.Apply(ctx, adm, o.force); err != nil {
		return err
	}
	fmt.Fprintf(f.ErrOut, "moved %d partitions of group %s\n", len(plan.Moves), plan.Group)
	return nil
}

// Package trace implements `hotelbus trace`: the journey of one correlation id across the systems,
// read from the audit topic.
package trace

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams/monitor"
	"github.com/hotelbus/hotelbus/streams/replay"
)

type options struct {
	correlationID string
	from          string
	prefix        string
	json          bool
	kafka         *cmdutil.KafkaFlags
}

// New returns the trace command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "trace --correlation-id X [--json]",
		Short: "Show the journey of one correlation id across the systems",
		Long: `trace reads the audit topic (every publish and every handling outcome of every system, keyed by
correlation id) and prints the journey of --correlation-id: each event, which system published it
and when, and for each system that handles it: the outcome of its latest attempt, the number of
attempts, when, the latency from the event's timestamp, and the error of a failure. A system that
subscribes to the event type in the catalog but has no record of it yet is shown as pending.

The whole retained audit log is read unless --from limits it. Exit 1 when no record is found.`,
		Example: `  hotelbus trace --correlation-id 4f9c2d1e-booking-8812
  hotelbus trace --correlation-id 4f9c2d1e-booking-8812 --from -24h --json`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.correlationID, "correlation-id", "", "the correlation id to follow (required)")
	fl.StringVar(&o.from, "from", "", "read the audit log from this time: RFC 3339 or relative (-24h, -7d); default: all of it")
	cmdutil.AddPrefixFlag(cmd, &o.prefix)
	fl.BoolVar(&o.json, "json", false, "print the journey as JSON")
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	if o.correlationID == "" {
		return cmdutil.Usagef("--correlation-id is required")
	}
	var from time.Time
	if o.from != "" {
		var err error
		if from, err = replay.ParseTime(o.from, time.Now()); err != nil {
			return cmdutil.Usagef("--from: %v", err)
		}
	}
	cat, err := cmdutil.Catalog(o.prefix)
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
	j, err := monitor.ReadJourney(ctx, cl, cat, o.correlationID, from)
	if err != nil {
		return err
	}
	if len(j.Records) == 0 {
		return fmt.Errorf("trace: no audit records for correlation id %q in %s", o.correlationID, cat.AuditTopic)
	}
	if o.json {
		return cmdutil.WriteJSON(f.Out, j)
	}
	return write(f.Out, j)
}

const stamp = "2006-01-02T15:04:05.000Z07:00"

// noPublishRecord explains an event without a publish record: only the gateway writes them.
const noPublishRecord = "published by the SDK, produce or simulate, which do not write publish audit records yet (the gateway does)"

// write prints the journey: a summary line, then each event with its publish (or why there is no
// publish record) and its deliveries.
func write(w io.Writer, j *monitor.Journey) error {
	fmt.Fprintf(w, "correlation id %s: %d events, %d records, systems %s\n", j.CorrelationID, len(j.Events), len(j.Records),
		strings.Join(j.Systems, ", "))
	for _, e := range j.Events {
		fmt.Fprintf(w, "\n%s %s (tenant %s)\n", e.EventType, e.EventID, e.TenantID)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if p := e.Published; p != nil {
			where := fmt.Sprintf("%s/%d@%d", p.Topic, p.Partition, p.Offset)
			if p.Partition < 0 {
				where = strings.TrimPrefix(p.Topic+": "+p.Error, ": ")
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t\t\t%s\n", p.At.UTC().Format(stamp), p.System, p.Outcome, where)
		} else {
			fmt.Fprintf(tw, "  -\t(no publish record: %s)\n", noPublishRecord)
		}
		// In time order; pending deliveries, which have no time, last.
		ds := slices.Clone(e.Deliveries)
		slices.SortStableFunc(ds, func(a, b monitor.Delivery) int {
			return cmp.Or(cmp.Compare(boolInt(a.First.IsZero()), boolInt(b.First.IsZero())), a.First.Compare(b.First))
		})
		for _, d := range ds {
			if d.Outcome == monitor.OutcomePending {
				fmt.Fprintf(tw, "  -\t%s\t%s\t\t\t\n", d.System, d.Outcome)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\tattempt %d\t%.1f ms\t%s\n", d.Last.UTC().Format(stamp), d.System, d.Outcome, d.Attempts, d.LatencyMs, d.Error)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

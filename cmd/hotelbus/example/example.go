// Package example implements `hotelbus example`: print a valid event of a type, ready for produce.
package example

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/topics"
)

// printed is the example envelope as printed: the ids, the time and the trace a publisher fills in
// are left out, so every produce of the same output is a new event.
type printed struct {
	EventType string          `json:"eventType"`
	Version   string          `json:"version"`
	Data      json.RawMessage `json:"data"`
	Metadata  struct {
		TenantID string  `json:"tenantId"`
		Source   string  `json:"source"`
		UserID   *string `json:"userId"`
	} `json:"metadata"`
}

// New returns the example command.
func New(f *cmdutil.Factory) *cobra.Command {
	var (
		major  int
		tenant string
		pretty bool
	)
	cmd := &cobra.Command{
		Use:   "example <eventType> [--major N] [--tenant T] [--pretty]",
		Short: "Print a valid sample event of a type, ready to pipe into produce",
		Long: `example prints the golden example of an event type (schemas/events/<type>/v<major>/example.json, the
newest minor of the newest major unless --major) as one line of JSON, the input produce and the
gateway take. eventId, timestamp, correlationId and traceId are left out: produce fills them in, so
every run publishes a new event. The version field selects the schema the data must match.`,
		Example: `  hotelbus example reservation.created
  hotelbus example reservation.created --tenant sakura-hotels | hotelbus produce --system hotel-pms
  hotelbus example billing.paid --pretty`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			cat, err := topics.Load(topics.Embedded(), "")
			if err != nil {
				return err
			}
			if _, err := cat.LookupEventType(args[0]); err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			set, err := schemas.Load(schemas.Embedded())
			if err != nil {
				return err
			}
			v, err := exampleOf(set, args[0], major)
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			var p printed
			if err := json.Unmarshal(v.Example, &p); err != nil {
				return fmt.Errorf("example: %s: %w", v.File, err)
			}
			if tenant != "" { // its grammar is checked where it is published
				p.Metadata.TenantID = tenant
			}
			out, err := json.Marshal(p)
			if err != nil {
				return err
			}
			if pretty {
				var b bytes.Buffer
				_ = json.Indent(&b, out, "", "  ")
				out = b.Bytes()
			}
			_, err = fmt.Fprintf(f.Out, "%s\n", out)
			return err
		},
	}
	cmd.Flags().IntVar(&major, "major", 0, "the major version (default: the newest)")
	cmd.Flags().StringVar(&tenant, "tenant", "", "the metadata.tenantId to put in (default: the example's)")
	cmd.Flags().BoolVar(&pretty, "pretty", false, "indent the JSON (produce reads one event per line: do not pipe it)")
	return cmd
}

// exampleOf returns the newest minor of eventType's major (the newest major when major is 0).
func exampleOf(set *schemas.Set, eventType string, major int) (*schemas.Version, error) {
	var majors []int
	var pick *schemas.Subject
	for _, s := range set.Subjects {
		if s.EventType != eventType {
			continue
		}
		majors = append(majors, s.Major)
		if (major == 0 && (pick == nil || s.Major > pick.Major)) || s.Major == major {
			pick = s
		}
	}
	if pick == nil {
		slices.Sort(majors)
		have := make([]string, len(majors))
		for i, m := range majors {
			have[i] = "v" + strconv.Itoa(m)
		}
		return nil, fmt.Errorf("--major: %s has no major version %d (it has %s)", eventType, major, strings.Join(have, ", "))
	}
	v := pick.Latest()
	if v.Example == nil {
		return nil, fmt.Errorf("%s v%d.%d has no example.json", eventType, v.Major, v.Minor)
	}
	return v, nil
}

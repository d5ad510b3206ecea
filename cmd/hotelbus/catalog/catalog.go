// Package catalog implements `hotelbus catalog`.
package catalog

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/version"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/contract"
	"github.com/hotelbus/hotelbus/topics"
)

type options struct {
	json       bool
	env        string
	asyncAPI   bool
	html       string
	typeScript string
}

// New returns the catalog command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Print systems, the event types they own and subscribe to, topics and consumer groups",
		Long: `catalog prints who publishes and subscribes to what, on which topics and consumer groups.

For teams that do not read Go it also renders the catalog and the schemas as a contract:
  --asyncapi         an AsyncAPI 3.0 document on stdout (Kafka channels per topic, a message per
                     event type and major version with its Avro schema, operations per system,
                     servers per environment, the gateway's POST /v1/events)
  --html DIR         a static catalog site (no scripts, nothing loaded from elsewhere)
  --typescript FILE  TypeScript declarations of the gateway's JSON form ("-" for stdout)
With --env, topic settings (and the AsyncAPI servers) are those of that environment.`,
		Example: `  hotelbus catalog
  hotelbus catalog --json | jq '.systems[] | select(.name=="hotel-pms")'
  hotelbus catalog --env prod
  hotelbus catalog --asyncapi --env prod > asyncapi.json
  hotelbus catalog --html site/ --typescript src/hotelbus-events.ts`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return run(f, o) },
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print the catalog as JSON")
	cmd.Flags().StringVar(&o.env, "env", "", "resolve topic settings for this environment (dev, test, staging, prod; default: the defaults)")
	cmd.Flags().BoolVar(&o.asyncAPI, "asyncapi", false, "print the AsyncAPI 3.0 document of the catalog (JSON)")
	cmd.Flags().StringVar(&o.html, "html", "", "write the static catalog site into `DIR`")
	cmd.Flags().StringVar(&o.typeScript, "typescript", "", "write TypeScript declarations of the events to `FILE` (- for stdout)")
	return cmd
}

type jsonSystem struct {
	Name            string   `json:"name"`
	Description     string   `json:"description"`
	Publishes       []string `json:"publishes"`
	Subscribes      []string `json:"subscribes"`
	SubscribesAll   bool     `json:"subscribesAll"`
	Group           string   `json:"group"`
	ReadsTopics     []string `json:"readsTopics"`
	DeadLetterTopic string   `json:"deadLetterTopic,omitempty"`
}

type jsonTopic struct {
	Name              string   `json:"name"`
	Kind              string   `json:"kind"`
	Owner             string   `json:"owner"`
	EventTypes        []string `json:"eventTypes"`
	Partitions        int32    `json:"partitions"`
	ReplicationFactor int16    `json:"replicationFactor"`
	MinInsyncReplicas int      `json:"minInsyncReplicas"`
	RetentionMs       int64    `json:"retentionMs"`
	CleanupPolicy     string   `json:"cleanupPolicy"`
}

func run(f *cmdutil.Factory, o *options) error {
	c, err := topics.Load(topics.Embedded(), o.env)
	if err != nil {
		if o.env != "" && strings.Contains(err.Error(), "unknown environment") {
			return cmdutil.Usagef("--env: %v", err)
		}
		return err
	}
	if o.asyncAPI || o.html != "" || o.typeScript != "" {
		return renderContract(f, o, c)
	}
	if o.json {
		var out struct {
			Env     string       `json:"env"`
			Systems []jsonSystem `json:"systems"`
			Topics  []jsonTopic  `json:"topics"`
		}
		out.Env = c.Env
		for _, s := range c.Systems {
			out.Systems = append(out.Systems, jsonSystem{s.Name, s.Description, s.Publishes, s.Subscribes, s.SubscribesAll, s.Group, c.SubscribedTopics(s.Name), s.DeadLetterTopic})
		}
		for _, t := range c.Topics {
			ms := int64(-1)
			if t.Retention >= 0 {
				ms = t.Retention.Milliseconds()
			}
			out.Topics = append(out.Topics, jsonTopic{t.Name, t.Kind, t.Owner, nonNil(t.EventTypes), t.Partitions, t.ReplicationFactor, t.MinInsyncReplicas, ms, t.CleanupPolicy})
		}
		return cmdutil.WriteJSON(f.Out, out)
	}
	w := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
	for _, s := range c.Systems {
		fmt.Fprintf(w, "%s\t%s\n", s.Name, s.Description)
		fmt.Fprintf(w, "  group\t%s\n", s.Group)
		fmt.Fprintf(w, "  publishes\t%s\n", strings.Join(s.Publishes, ", "))
		subs := strings.Join(s.Subscribes, ", ")
		if s.SubscribesAll {
			subs = "* (every event type)"
		}
		fmt.Fprintf(w, "  subscribes\t%s\n", subs)
		fmt.Fprintf(w, "  reads\t%s\n", strings.Join(c.SubscribedTopics(s.Name), ", "))
		if s.DeadLetterTopic != "" {
			fmt.Fprintf(w, "  dead letters\t%s\n", s.DeadLetterTopic)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "TOPIC\tOWNER\tPARTITIONS\tRF\tMIN ISR\tRETENTION\tEVENT TYPES")
	for _, t := range c.Topics {
		ret := t.Retention.String()
		if t.Retention < 0 {
			ret = "infinite"
		}
		types := strings.Join(t.EventTypes, ", ")
		if t.Kind == topics.KindDeadLetter {
			types = "(dead letters)"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", t.Name, t.Owner, t.Partitions, t.ReplicationFactor, t.MinInsyncReplicas, ret, types)
	}
	return w.Flush()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// renderContract writes the outputs of --asyncapi, --html and --typescript.
func renderContract(f *cmdutil.Factory, o *options, c *topics.Catalog) error {
	switch {
	case o.json:
		return cmdutil.Usagef("--json prints the catalog; it does not combine with --asyncapi, --html or --typescript")
	case o.asyncAPI && o.typeScript == "-":
		return cmdutil.Usagef("--asyncapi and --typescript - both write to stdout: give --typescript a file")
	}
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		return err
	}
	k, err := contract.New(c, set)
	if err != nil {
		return err
	}
	if o.typeScript != "" {
		b, err := k.TypeScript()
		if err != nil {
			return err
		}
		if o.typeScript == "-" {
			_, err = f.Out.Write(b)
		} else if err = os.WriteFile(o.typeScript, b, 0o644); err != nil {
			err = fmt.Errorf("--typescript: %w", err)
		}
		if err != nil {
			return err
		}
	}
	if o.html != "" {
		if err := k.WriteHTML(o.html); err != nil {
			return fmt.Errorf("--html: %w", err)
		}
	}
	if o.asyncAPI {
		b, err := k.AsyncAPI(version.Version)
		if err != nil {
			return err
		}
		_, err = f.Out.Write(append(b, '\n'))
		return err
	}
	return nil
}

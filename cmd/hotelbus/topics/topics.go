// Package topics implements `hotelbus topics plan|apply|describe`: reconciling a Kafka cluster to
// the topic declarations built into the binary.
package topics

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	hbtopics "github.com/hotelbus/hotelbus/topics"
)

// CatalogFlags select the catalog a command works on: --env and --prefix.
type CatalogFlags struct {
	Env    string
	Prefix string
}

// AddCatalogFlags registers --env and --prefix as persistent flags of cmd.
func AddCatalogFlags(cmd *cobra.Command) *CatalogFlags {
	c := &CatalogFlags{}
	cmd.PersistentFlags().StringVar(&c.Env, "env", "", "resolve topic settings for this environment: dev, test, staging, prod (default: topics.yaml's defaults, which prod uses unchanged)")
	cmd.PersistentFlags().StringVar(&c.Prefix, "prefix", "", "prefix every topic and consumer group name with this, to keep copies of the platform apart on one cluster (e.g. \"staging.\")")
	return c
}

var prefixRe = regexp.MustCompile(`^[a-zA-Z0-9._-]*$`)

// Load returns the embedded catalog for the flags. An unknown --env or a --prefix that makes
// invalid topic names is a usage error naming the flag.
func (c *CatalogFlags) Load() (*hbtopics.Catalog, error) {
	cat, err := hbtopics.Load(hbtopics.Embedded(), c.Env)
	if err != nil {
		if c.Env != "" && errors.Is(err, hbtopics.ErrInvalid) && strings.Contains(err.Error(), "unknown environment") {
			return nil, cmdutil.Usagef("--env: %q is not an environment of %s (dev, test, staging, prod)", c.Env, hbtopics.TopicsFile)
		}
		return nil, err
	}
	if !prefixRe.MatchString(c.Prefix) {
		return nil, cmdutil.Usagef("--prefix: %q may hold only letters, digits, '.', '_' and '-' (it starts topic names)", c.Prefix)
	}
	cat = cat.WithPrefix(c.Prefix)
	for _, t := range cat.Topics {
		if len(t.Name) > 249 {
			return nil, cmdutil.Usagef("--prefix: %q makes topic name %s longer than Kafka's 249 characters", c.Prefix, t.Name)
		}
	}
	return cat, nil
}

// Flags are what every command that reconciles a cluster to the catalog takes: the catalog's
// --env and --prefix, the cluster's connection flags, --json and --timeout.
type Flags struct {
	Catalog *CatalogFlags
	Kafka   *cmdutil.KafkaFlags
	JSON    bool
	Timeout time.Duration
}

// AddFlags registers Flags as persistent flags of cmd.
func AddFlags(cmd *cobra.Command) *Flags {
	fl := &Flags{Catalog: AddCatalogFlags(cmd), Kafka: cmdutil.AddKafkaFlags(cmd)}
	cmd.PersistentFlags().BoolVar(&fl.JSON, "json", false, "print the report as JSON")
	cmd.PersistentFlags().DurationVar(&fl.Timeout, "timeout", time.Minute, "give up talking to the cluster after this long")
	return fl
}

// Run loads the catalog (so that flag errors come before any network), connects an admin client
// and calls fn with them and a context bounded by --timeout.
func (fl *Flags) Run(f *cmdutil.Factory, fn func(ctx context.Context, cat *hbtopics.Catalog, adm *kadm.Client) error) error {
	if fl.Timeout <= 0 {
		return cmdutil.Usagef("--timeout: must be positive, got %s", fl.Timeout)
	}
	cat, err := fl.Catalog.Load()
	if err != nil {
		return err
	}
	cl, err := f.KafkaClient(fl.Kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), fl.Timeout)
	defer cancel()
	if err := f.Reachable(ctx); err != nil {
		return err
	}
	err = fn(ctx, cat, kadm.NewClient(cl))
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (gave up after --timeout %s: are the brokers, credentials and TLS settings right?)", err, fl.Timeout)
	}
	return err
}

// New returns the topics command.
func New(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topics <command>",
		Short: "Reconcile a Kafka cluster's topics to the declarations in topics/",
		Long: `topics/topics.yaml declares every hotelbus topic: partitions, replication factor,
min.insync.replicas, retention and cleanup policy, per environment. plan shows how the cluster
differs, apply makes it match, describe shows each declared topic as the cluster has it.

apply only adds: it creates missing topics, raises partition counts and sets the configs hotelbus
manages (cleanup.policy, min.insync.replicas, retention.ms). It never removes partitions (that would
break per-key order), never changes a replication factor (that is a partition reassignment) and never
deletes a topic; plan and apply print those differences as warnings.`,
	}
	fl := AddFlags(cmd)
	plan := &cobra.Command{Use: "plan", Short: "Show what apply would change (changes nothing; exits 0 also when there are changes)", Args: cobra.NoArgs,
		Example: `  hotelbus topics plan --env dev
  hotelbus topics plan --env prod --brokers kafka-0:9092 --tls --sasl-mechanism SCRAM-SHA-512 \
      --sasl-user hotelbus-admin --sasl-password-env KAFKA_ADMIN_PASSWORD
  hotelbus topics plan --env staging --prefix staging. --json`,
		RunE: func(*cobra.Command, []string) error { return runPlan(f, fl, false) }}
	apply := &cobra.Command{Use: "apply", Short: "Create missing topics, add partitions and set configs, then print what was done", Args: cobra.NoArgs,
		Example: `  hotelbus topics apply --env dev
  HOTELBUS_BROKERS=kafka-0:9092 hotelbus topics apply --env prod`,
		RunE: func(*cobra.Command, []string) error { return runPlan(f, fl, true) }}
	describe := &cobra.Command{Use: "describe", Short: "Print each declared topic's partitions, replication factor and configs in the cluster", Args: cobra.NoArgs,
		Example: `  hotelbus topics describe --env dev
  hotelbus topics describe --json | jq '.[] | select(.inSync | not)'`,
		RunE: func(*cobra.Command, []string) error { return runDescribe(f, fl) }}
	cmd.AddCommand(plan, apply, describe)
	return cmd
}

func runPlan(f *cmdutil.Factory, fl *Flags, apply bool) error {
	return fl.Run(f, func(ctx context.Context, cat *hbtopics.Catalog, adm *kadm.Client) error {
		d, err := hbtopics.Plan(ctx, adm, cat)
		if err != nil {
			return err
		}
		if apply {
			if err := hbtopics.Apply(ctx, adm, d); err != nil {
				return err
			}
		}
		if fl.JSON {
			return cmdutil.WriteJSON(f.Out, d)
		}
		fmt.Fprint(f.Out, d)
		switch {
		case d.Empty():
		case apply:
			fmt.Fprintf(f.Out, "applied: %d topic(s) created, %d partition increase(s), %d config(s) set\n", len(d.Create), len(d.Partitions), len(d.Configs))
		default:
			fmt.Fprintf(f.Out, "plan: %d topic(s) to create, %d partition increase(s), %d config(s) to set; `hotelbus topics apply` makes them\n", len(d.Create), len(d.Partitions), len(d.Configs))
		}
		return nil
	})
}

type jsonState struct {
	Topic             string            `json:"topic"`
	Owner             string            `json:"owner"`
	Exists            bool              `json:"exists"`
	Partitions        int32             `json:"partitions"`
	ReplicationFactor int16             `json:"replicationFactor"`
	Configs           map[string]string `json:"configs"`
	Declared          jsonDeclared      `json:"declared"`
	InSync            bool              `json:"inSync"`
	Drift             []string          `json:"drift"`
}

type jsonDeclared struct {
	Partitions        int32             `json:"partitions"`
	ReplicationFactor int16             `json:"replicationFactor"`
	Configs           map[string]string `json:"configs"`
}

func runDescribe(f *cmdutil.Factory, fl *Flags) error {
	var states []hbtopics.TopicState
	err := fl.Run(f, func(ctx context.Context, cat *hbtopics.Catalog, adm *kadm.Client) error {
		var err error
		states, err = hbtopics.Describe(ctx, adm, cat)
		return err
	})
	if err != nil {
		return err
	}
	if fl.JSON {
		out := []jsonState{}
		for _, s := range states {
			t := s.Declared
			configs := s.Configs
			if configs == nil {
				configs = map[string]string{}
			}
			drift := s.Drift()
			if drift == nil {
				drift = []string{}
			}
			out = append(out, jsonState{t.Name, t.Owner, s.Exists, s.Partitions, s.ReplicationFactor, configs,
				jsonDeclared{t.Partitions, t.ReplicationFactor, t.Configs()}, s.InSync(), drift})
		}
		return cmdutil.WriteJSON(f.Out, out)
	}
	w := tabwriter.NewWriter(f.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TOPIC\tPARTITIONS\tRF\tcleanup.policy\tmin.insync.replicas\tretention.ms\tSTATUS")
	synced := 0
	for _, s := range states {
		status := "in sync"
		if drift := s.Drift(); len(drift) > 0 {
			status = strings.Join(drift, "; ")
		} else {
			synced++
		}
		if !s.Exists {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t%s\n", s.Declared.Name, status)
			continue
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Declared.Name, s.Partitions, s.ReplicationFactor,
			s.Configs["cleanup.policy"], s.Configs["min.insync.replicas"], s.Configs["retention.ms"], status)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(f.Out, "%d of %d declared topics in sync\n", synced, len(states))
	return nil
}

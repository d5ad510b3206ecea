// Package replay implements `hotelbus replay`: a bounded part of the log, filtered, to files or a
// sandbox topic.
package replay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams/replay"
)

// EnvRedact, when set to a true value (1, true), makes --redact the default.
const EnvRedact = "HOTELBUS_REPLAY_REDACT"

type options struct {
	cfg        replay.Config
	kafka      *cmdutil.KafkaFlags
	registry   string
	prefix     string
	from, to   string
	format     string
	redactKey  string
	keyFile    string
	noProgress bool
}

// New returns the replay command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{cfg: replay.DefaultConfig()}
	redactDefault, _ := strconv.ParseBool(f.Getenv(EnvRedact))
	cmd := &cobra.Command{
		Use:   "replay [--from T] [--to T] [filters] [--format jsonl|csv|parquet] [--out P] [--to-topic T]",
		Short: "Read a part of the log back: to JSONL, CSV or Parquet files, or to a sandbox topic",
		Long: `replay reads the topics of --system, of the event types --event-type matches (globs such as
'billing.*'), or named by --topic (with none of them: every event topic of the catalog), from --from (or --from-offset) up to --to, and never past the
high-water marks taken when it starts: a replay always finishes. --from and --to are RFC 3339 times
or relative ones (-24h, -90m, -7d) and select by the Kafka record timestamp: a record at exactly
--from is included, one at --to excluded.

Filters: --tenant (repeatable), --correlation-id, and --where, a CEL expression over the decoded
envelope with the variables eventId, eventType, version, timestamp, data, metadata, topic, partition
and offset (decimals are doubles, dates and instants timestamps). An expression that needs more than
--where-cost-limit on one event stops the replay (exit 1), and Ctrl-C stops a running evaluation.

Output: --format jsonl (default; the seed's JSON envelope, one per line) to --out (- for standard
output, a file, or a directory), csv or parquet (one file per event type and major version,
<eventType>.v<major>.csv|parquet, in the --out directory), each readable by its owner only (0600).
CSV cells that a spreadsheet would run as a formula (starting with =, +, -, @, tab or carriage return)
get a leading ', as does a cell starting with '; drop the first character of such a cell for the raw
value. Parquet columns are typed from the Avro schema: DECIMAL, DATE, TIMESTAMP(MILLIS). --redact replaces every field marked "pii": true (in the
schemas or in schemas/pii-marks.txt: metadata.userId, card tokens, names, addresses...) with a
keyed hash (HMAC-SHA256 under the key in the variable --redact-key-env names), so equal values still
join; ` + EnvRedact + `=1 makes it the default.

Personal-data strings sealed at publish (see hotelbus privacy) are opened with the key file
(--key-file, ` + cmdutil.EnvKeyFile + `, or a running dev stack's): an erased guest's read "[erased]",
which --redact keeps as it is; --redact hashes the opened values. Without a key file they are shown
(and hashed) sealed.

--to-topic republishes the selected events to a sandbox topic (never a catalog topic unless
--allow-owner-topic), re-encoded with the current schema, with their key, eventId and headers and a
replayedFrom header.

Progress goes to standard error when it is a terminal; a summary line ends every replay. Ctrl-C stops
cleanly: the files are complete (Parquet footers written) and the exit status is 1. A replay that
wrote nothing (an empty range, or every record failed the filters) says why and exits 1.`,
		Example: `  hotelbus replay --system hotel-pms --from -24h > pms.jsonl
  hotelbus replay --event-type 'billing.*' --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z --format parquet --out billing/
  hotelbus replay --topic hotelbus.pms.billing --where 'data.grossTotal.amount > 50000 && metadata.source == "hotel-pms"'
  HOTELBUS_REDACT_KEY=... hotelbus replay --system hotel-member --redact --format csv --out crm/
  hotelbus replay --event-type 'reservation.*' --tenant hotel-kyoto --to-topic sandbox.reservations
  hotelbus replay --tenant sakura-hotels --from -7d --format parquet --out sakura/`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	c := &o.cfg
	fl.StringArrayVar(&c.Systems, "system", nil, "replay the topics this system owns (repeatable)")
	fl.StringArrayVar(&c.EventTypes, "event-type", nil, "replay these event types, globs allowed: 'billing.*' (repeatable)")
	fl.StringArrayVar(&c.Topics, "topic", nil, "replay this topic (repeatable)")
	fl.StringVar(&o.from, "from", "", "first record time, included: RFC 3339 or relative (-24h, -7d) (default: the log start)")
	fl.StringVar(&o.to, "to", "", "end time, excluded: RFC 3339 or relative (default: the high-water marks at start)")
	fl.Int64Var(&c.FromOffset, "from-offset", -1, "start every selected partition at this offset instead of --from")
	fl.StringArrayVar(&c.Tenants, "tenant", nil, "keep only this tenant (repeatable)")
	fl.StringVar(&c.CorrelationID, "correlation-id", "", "keep only events with this correlation id")
	fl.StringVar(&c.Where, "where", "", "keep only events for which this CEL expression is true")
	fl.Uint64Var(&c.WhereCostLimit, "where-cost-limit", c.WhereCostLimit, "most CEL cost units --where may use on one event; past it the replay stops")
	fl.StringVar(&o.format, "format", string(replay.JSONL), "output format: jsonl, csv or parquet")
	fl.StringVar(&c.Out, "out", replay.Stdout, "output: - (standard output, jsonl only), a file (jsonl only) or a directory")
	fl.BoolVar(&c.Redact, "redact", redactDefault, "replace personal data (fields marked pii) with a keyed hash (default from "+EnvRedact+")")
	fl.StringVar(&o.redactKey, "redact-key-env", "HOTELBUS_REDACT_KEY", "name of the environment `variable` holding the redaction key (at least 16 bytes)")
	fl.StringVar(&c.ToTopic, "to-topic", "", "republish the selected events to this sandbox topic instead of writing files")
	fl.BoolVar(&c.AllowOwnerTopic, "allow-owner-topic", false, "let --to-topic name a catalog topic (publishing as its owner)")
	fl.IntVar(&c.Workers, "workers", c.Workers, "partitions decoded in parallel")
	fl.BoolVar(&o.noProgress, "no-progress", false, "no progress line, even on a terminal")
	fl.StringVar(&o.registry, "registry", "", "schema registry URL (env HOTELBUS_REGISTRY)")
	cmdutil.AddPrefixFlag(cmd, &o.prefix)
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	cmdutil.AddKeyFileFlag(cmd, &o.keyFile)
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	c := &o.cfg
	now := c.Now()
	var err error
	if o.from != "" {
		if c.From, err = replay.ParseTime(o.from, now); err != nil {
			return cmdutil.Usagef("--from: %v", err)
		}
	}
	if o.to != "" {
		if c.To, err = replay.ParseTime(o.to, now); err != nil {
			return cmdutil.Usagef("--to: %v", err)
		}
	}
	c.Format = replay.Format(o.format)
	if c.Redact {
		c.RedactKey = []byte(f.Getenv(o.redactKey))
	}
	c.Stdout = f.Out
	if file, ok := f.ErrOut.(*os.File); ok && !o.noProgress {
		if st, err := file.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			c.Progress = file
		}
	}
	cat, err := cmdutil.Catalog(o.prefix)
	if err != nil {
		return err
	}
	seeds, kopts, err := f.KafkaOpts(o.kafka)
	if err != nil {
		return err
	}
	c.Brokers, c.KafkaOptions = seeds, kopts
	priv, err := f.PrivacyOptions(o.keyFile, o.kafka, cat, "personal-data fields are shown sealed")
	if err != nil {
		return err
	}
	defer priv.Close()
	serde, err := f.Serde(o.registry, cat, false, priv.SerdeOptions...)
	if err != nil {
		return err
	}
	r, err := replay.New(serde, cat, *c)
	if errors.Is(err, replay.ErrConfig) {
		return &cmdutil.UsageError{Err: err}
	}
	if err != nil {
		return err
	}
	if err := f.Reachable(ctx); err != nil {
		return err
	}
	sum, err := r.Run(ctx)
	if sum.Problem != "" {
		fmt.Fprintf(f.ErrOut, "warning: %d undecodable records, %d --where errors; the first: %s\n", sum.Undecodable, sum.WhereErrors, sum.Problem)
	}
	fmt.Fprintln(f.ErrOut, "replay:", sum)
	for _, file := range sum.Files {
		fmt.Fprintln(f.ErrOut, "wrote", file)
	}
	if err != nil {
		return err
	}
	if sum.Interrupted {
		return fmt.Errorf("replay: interrupted after %s: the files hold the %d records written", sum.Duration.Round(time.Millisecond), sum.Written)
	}
	switch {
	case sum.Written > 0:
	case sum.Read == 0:
		return fmt.Errorf("replay: nothing to replay: the selected range of %s holds no record", strings.Join(r.Topics(), ", "))
	case c.Where != "":
		return fmt.Errorf("replay: none of the %d records read passed the filters (--where %q, --tenant, --correlation-id)", sum.Read, c.Where)
	default:
		return fmt.Errorf("replay: none of the %d records read passed the filters (--tenant, --correlation-id, --event-type)", sum.Read)
	}
	return nil
}

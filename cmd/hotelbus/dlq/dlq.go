// Package dlq implements `hotelbus dlq list|show|redrive`: the dead letters of one system, counted,
// shown one by one, and redriven to the system's consumer.
package dlq

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/dlq"
	"github.com/hotelbus/hotelbus/streams/replay"
)

// common are the flags every dlq subcommand shares.
type common struct {
	system   string
	prefix   string
	registry string
	json     bool
	kafka    *cmdutil.KafkaFlags
}

// filterFlags are the selection flags of list and redrive.
type filterFlags struct {
	eventTypes, classes, tenants, eventIDs, at []string
	from, to                                   string
}

// New returns the dlq command.
func New(f *cmdutil.Factory) *cobra.Command {
	c := &common{}
	cmd := &cobra.Command{
		Use:   "dlq list | show | redrive --system S",
		Short: "Count, inspect and redrive the dead letters of a system",
		Long: `dlq works on the dead-letter topic of one consuming system (hotelbus.dlq.<system>), where its
consumer group writes the events it gave up on with the original key, value and headers plus
hotelbus.dlq.* headers saying where the event came from and why it failed.

  list     counts dead letters by event type, error class, tenant and time
  show     prints one dead letter: every header and the decoded envelope
  redrive  writes a selection back to the system's redrive topic (hotelbus.redrive.<system>), which
           its consumer group reads with its event topics, so the events are handled once more

Dead letters are read up to the high-water marks taken when the command starts.`,
		Example: `  hotelbus dlq list --system hotel-member
  hotelbus dlq list --system hotel-pms --event-type 'service.*' --from -24h --bucket 15m --json
  hotelbus dlq show hotelbus.dlq.hotel-member/2@118
  hotelbus dlq redrive --system hotel-member --error-class permanent --tenant hotel-kyoto --dry-run
  hotelbus dlq redrive --system hotel-member --event-type 'reservation.*' --rate 50`,
	}
	fl := cmd.PersistentFlags()
	fl.StringVar(&c.system, "system", "", "the consuming system whose dead letters to use: hotel-pms, hotel-member, hotel-saas or hotel-common")
	fl.StringVar(&c.prefix, "prefix", "", "topic and group name prefix (an isolated copy of the topics, as with topics apply --prefix)")
	fl.StringVar(&c.registry, "registry", "", "schema registry URL, to decode envelopes in list and show (env HOTELBUS_REGISTRY)")
	fl.BoolVar(&c.json, "json", false, "print JSON")
	c.kafka = cmdutil.AddKafkaFlags(cmd)
	cmd.AddCommand(newList(f, c), newShow(f, c), newRedrive(f, c))
	return cmd
}

func addFilterFlags(cmd *cobra.Command, ff *filterFlags) {
	fl := cmd.Flags()
	fl.StringArrayVar(&ff.eventTypes, "event-type", nil, "only these event types, globs allowed: 'reservation.*' (repeatable)")
	fl.StringArrayVar(&ff.classes, "error-class", nil, "only this error class: "+strings.Join(classes, ", ")+" (repeatable)")
	fl.StringArrayVar(&ff.tenants, "tenant", nil, "only this tenant, the record key (repeatable)")
	fl.StringArrayVar(&ff.eventIDs, "event-id", nil, "only this eventId (repeatable)")
	fl.StringVar(&ff.from, "from", "", "only dead letters written at or after this time: RFC 3339 or relative (-24h, -7d)")
	fl.StringVar(&ff.to, "to", "", "only dead letters written before this time: RFC 3339 or relative")
	fl.StringArrayVar(&ff.at, "at", nil, "only the dead letter at `PARTITION@OFFSET` (or TOPIC/PARTITION@OFFSET) (repeatable)")
}

var classes = []string{streams.ClassDecode, streams.ClassInvalidIdentifier, streams.ClassInvalidEvent, streams.ClassUnknownEventType,
	streams.ClassPermanent, streams.ClassRetriesExhausted, streams.ClassParked}

func (ff *filterFlags) filter(now time.Time) (dlq.Filter, error) {
	f := dlq.Filter{EventTypes: ff.eventTypes, ErrorClasses: ff.classes, Tenants: ff.tenants, EventIDs: ff.eventIDs}
	for _, c := range ff.classes {
		if !slices.Contains(classes, c) {
			return f, cmdutil.Usagef("--error-class: %q is not one of %s", c, strings.Join(classes, ", "))
		}
	}
	var err error
	if ff.from != "" {
		if f.From, err = replay.ParseTime(ff.from, now); err != nil {
			return f, cmdutil.Usagef("--from: %v", err)
		}
	}
	if ff.to != "" {
		if f.To, err = replay.ParseTime(ff.to, now); err != nil {
			return f, cmdutil.Usagef("--to: %v", err)
		}
	}
	for _, a := range ff.at {
		r, err := dlq.ParseRef(a)
		if err != nil {
			return f, cmdutil.Usagef("--at: %v", err)
		}
		f.Refs = append(f.Refs, r)
	}
	return f, nil
}

// opened is a DLQ and the guest-data protection its Serde opens personal data with.
type opened struct {
	*dlq.DLQ
	priv *cmdutil.Privacy
}

// Close closes the DLQ and stops the protection's keys.
func (o *opened) Close() {
	o.DLQ.Close()
	o.priv.Close()
}

// open returns the DLQ of the --system (or, when it is empty, of the system whose dead-letter
// topic is topic), decoding with the registry when decode is set, once the brokers (and the
// registry) answered. With keyFile set (show), decoding opens personal data with the key file it
// resolves to (cmdutil.Factory.PrivacyOptions).
func (c *common) open(ctx context.Context, f *cmdutil.Factory, decode bool, topic string, keyFile *string) (_ *opened, err error) {
	cat, err := cmdutil.Catalog(c.prefix)
	if err != nil {
		return nil, err
	}
	name := c.system
	if name == "" && topic != "" {
		for _, s := range cat.Systems {
			if s.DeadLetterTopic == topic {
				name = s.Name
			}
		}
		if name == "" {
			return nil, cmdutil.Usagef("%q is no system's dead-letter topic (with --prefix %q)", topic, c.prefix)
		}
	}
	if _, err := cmdutil.LookupSystem(cat, name); err != nil {
		return nil, err
	}
	seeds, kopts, err := f.KafkaOpts(c.kafka)
	if err != nil {
		return nil, err
	}
	o := &opened{priv: &cmdutil.Privacy{}}
	defer func() {
		if err != nil {
			o.priv.Close()
		}
	}()
	cfg := dlq.Config{Brokers: seeds, KafkaOptions: kopts}
	if decode {
		if keyFile != nil {
			if o.priv, err = f.PrivacyOptions(*keyFile, c.kafka, cat, "personal-data fields are shown sealed"); err != nil {
				return nil, err
			}
		}
		if cfg.Serde, err = f.Serde(c.registry, cat, false, o.priv.SerdeOptions...); err != nil {
			return nil, err
		}
	}
	if o.DLQ, err = dlq.New(cat, name, cfg); err != nil {
		return nil, usage(err)
	}
	if err = f.Reachable(ctx); err != nil {
		o.DLQ.Close()
		return nil, err
	}
	return o, nil
}

// usage makes configuration errors usage errors (exit 2).
func usage(err error) error {
	if errors.Is(err, dlq.ErrConfig) {
		return &cmdutil.UsageError{Err: err}
	}
	return err
}

func newList(f *cmdutil.Factory, c *common) *cobra.Command {
	ff := &filterFlags{}
	var bucket time.Duration
	var records bool
	cmd := &cobra.Command{
		Use:   "list --system S [filters] [--bucket D] [--records] [--json]",
		Short: "Count dead letters by event type, error class, tenant and time",
		Long: `list reads the system's dead-letter topic and counts the dead letters the filters select by event
type, error class, tenant and time bucket (the time a record was dead-lettered, in UTC buckets of
--bucket). It decodes every value with the schema registry and counts those that do not decode.
--records also prints one line per dead letter, in partition and offset order.`,
		Example: `  hotelbus dlq list --system hotel-member
  hotelbus dlq list --system hotel-pms --error-class retries-exhausted --from -6h --bucket 10m
  hotelbus dlq list --system hotel-saas --tenant hotel-kyoto --records --json`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error {
			filter, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			if bucket < time.Second {
				return cmdutil.Usagef("--bucket: %s is shorter than a second", bucket)
			}
			q, err := c.open(ctx, f, true, "", nil)
			if err != nil {
				return err
			}
			defer q.Close()
			agg := dlq.NewAggregator(q.Topic(), bucket)
			var kept []*dlq.DeadLetter
			if _, err := q.Scan(ctx, filter, func(d *dlq.DeadLetter) error {
				agg.Add(d)
				if records {
					kept = append(kept, d)
				}
				return nil
			}); err != nil {
				return usage(err)
			}
			slices.SortFunc(kept, func(a, b *dlq.DeadLetter) int {
				if a.Ref.Partition != b.Ref.Partition {
					return int(a.Ref.Partition - b.Ref.Partition)
				}
				return int(a.Ref.Offset - b.Ref.Offset)
			})
			return printList(f.Out, agg.Summary(), kept, records, c.json)
		}),
	}
	addFilterFlags(cmd, ff)
	cmd.Flags().DurationVar(&bucket, "bucket", time.Hour, "width of the time buckets")
	cmd.Flags().BoolVar(&records, "records", false, "also list every dead letter")
	return cmd
}

// recordJSON is one dead letter in `list --records --json`.
type recordJSON struct {
	Ref          dlq.Ref   `json:"ref"`
	Time         time.Time `json:"deadLetteredAt"`
	EventID      string    `json:"eventId"`
	EventType    string    `json:"eventType"`
	Tenant       string    `json:"tenant"`
	ErrorClass   string    `json:"errorClass"`
	Attempts     int       `json:"attempts"`
	Origin       dlq.Ref   `json:"origin"`
	ErrorMessage string    `json:"errorMessage"`
	Decodable    bool      `json:"decodable"`
}

func printList(w io.Writer, s dlq.Summary, recs []*dlq.DeadLetter, records, asJSON bool) error {
	if asJSON {
		out := struct {
			dlq.Summary
			Records []recordJSON `json:"records,omitempty"`
		}{Summary: s}
		for _, d := range recs {
			out.Records = append(out.Records, recordJSON{Ref: d.Ref, Time: d.Time.UTC(), EventID: d.EventID, EventType: d.EventType,
				Tenant: d.Tenant, ErrorClass: d.ErrorClass, Attempts: d.Attempts, Origin: d.Origin, ErrorMessage: d.ErrorMessage,
				Decodable: d.DecodeErr == nil})
		}
		return cmdutil.WriteJSON(w, out)
	}
	fmt.Fprintf(w, "%s: %d dead letters", s.Topic, s.Total)
	if s.Undecodable > 0 {
		fmt.Fprintf(w, " (%d undecodable)", s.Undecodable)
	}
	if s.Total > 0 {
		fmt.Fprintf(w, ", dead-lettered %s .. %s", millis(s.First), millis(s.Last))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	section := func(title string, cs []dlq.Count) {
		fmt.Fprintf(tw, "\n%s\tCOUNT\n", title)
		for _, c := range cs {
			fmt.Fprintf(tw, "%s\t%d\n", c.Key, c.Count)
		}
	}
	section("EVENT TYPE", s.ByEventType)
	section("ERROR CLASS", s.ByErrorClass)
	section("TENANT", s.ByTenant)
	fmt.Fprintf(tw, "\nDEAD-LETTERED (%s buckets, UTC)\tCOUNT\n", s.BucketSize)
	for _, b := range s.ByTime {
		fmt.Fprintf(tw, "%s\t%d\n", b.Start.UTC().Format(time.RFC3339), b.Count)
	}
	if records {
		fmt.Fprintf(tw, "\nDEAD LETTER\tDEAD-LETTERED\tEVENT TYPE\tTENANT\tCLASS\tATTEMPTS\tEVENT ID\tERROR\n")
		for _, d := range recs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.Ref, millis(d.Time), orDash(d.EventType), orDash(d.Tenant),
				orDash(d.ErrorClass), d.Attempts, orDash(d.EventID), excerpt(d.ErrorMessage, 80))
		}
	}
	return tw.Flush()
}

func millis(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// excerpt returns s on one line, cut to n runes.
func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func newShow(f *cmdutil.Factory, c *common) *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "show TOPIC/PARTITION@OFFSET | --system S PARTITION@OFFSET",
		Short: "Print one dead letter: every header and the decoded envelope",
		Long: `show prints the dead letter at a position of a dead-letter topic (as list --records, redrive and the
hotelbus.redrive.source header name it): where it was read from, its key, every header in order,
and the envelope decoded with the schema registry as canonical JSON (in the newest local minor of
its major version). A value that does not decode is printed in base64 with the decoding error.
With --json, one JSON object.

Personal-data fields are opened with the guest-data protection key file (--key-file, ` + cmdutil.EnvKeyFile + `,
or a running dev stack's): an erased guest's read "[erased]"; without a key file they are shown
sealed, as the dead letter holds them.`,
		Example: `  hotelbus dlq show hotelbus.dlq.hotel-member/2@118
  hotelbus dlq show --system hotel-pms 0@7 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := dlq.ParseRef(args[0])
			if err != nil {
				return cmdutil.Usagef("%v", err)
			}
			q, err := c.open(cmd.Context(), f, true, ref.Topic, &keyFile)
			if err != nil {
				return err
			}
			defer q.Close()
			d, err := q.Get(cmd.Context(), ref)
			if err != nil {
				return usage(err)
			}
			return printShow(f.Out, c.json, d, q.DLQ)
		},
	}
	cmdutil.AddKeyFileFlag(cmd, &keyFile)
	return cmd
}

// headerJSON is one header in `show --json`: its value as a string when it is valid UTF-8, else
// in base64.
type headerJSON struct {
	Key         string `json:"key"`
	Value       string `json:"value,omitempty"`
	ValueBase64 string `json:"valueBase64,omitempty"`
}

// showJSON is `show --json`.
type showJSON struct {
	Ref         dlq.Ref         `json:"ref"`
	Time        time.Time       `json:"deadLetteredAt"`
	Key         string          `json:"key"`
	Headers     []headerJSON    `json:"headers"`
	Envelope    json.RawMessage `json:"envelope,omitempty"`
	DecodeError string          `json:"decodeError,omitempty"`
	// ValueBase64 is the value when it did not decode.
	ValueBase64 string `json:"valueBase64,omitempty"`
}

func printShow(w io.Writer, asJSON bool, d *dlq.DeadLetter, q *dlq.DLQ) error {
	out := showJSON{Ref: d.Ref, Time: d.Time.UTC(), Key: string(d.Key), Headers: []headerJSON{}}
	for _, h := range d.Headers {
		if utf8.Valid(h.Value) {
			out.Headers = append(out.Headers, headerJSON{Key: h.Key, Value: string(h.Value)})
		} else {
			out.Headers = append(out.Headers, headerJSON{Key: h.Key, ValueBase64: base64.StdEncoding.EncodeToString(h.Value)})
		}
	}
	if d.Envelope != nil {
		b, err := q.Serde().JSON(d.Envelope)
		if err != nil {
			out.DecodeError = err.Error()
		}
		out.Envelope = b
	}
	if d.DecodeErr != nil {
		out.DecodeError = d.DecodeErr.Error()
	}
	if out.Envelope == nil {
		out.ValueBase64 = base64.StdEncoding.EncodeToString(d.Value)
	}
	if asJSON {
		return cmdutil.WriteJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "dead letter\t%s\n", d.Ref)
	fmt.Fprintf(tw, "dead-lettered\t%s\n", millis(d.Time))
	fmt.Fprintf(tw, "key\t%s\n", printable(d.Key))
	fmt.Fprintf(tw, "headers\t%d\n", len(d.Headers))
	for _, h := range d.Headers {
		fmt.Fprintf(tw, "  %s\t%s\n", printable([]byte(h.Key)), printable(h.Value))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if out.Envelope != nil {
		var ind bytes.Buffer
		ind.WriteString("envelope\n")
		if err := json.Indent(&ind, out.Envelope, "", "  "); err != nil {
			return fmt.Errorf("dlq: envelope JSON: %w", err)
		}
		ind.WriteString("\n")
		_, err := w.Write(ind.Bytes())
		return err
	}
	_, err := fmt.Fprintf(w, "envelope\tnot decodable: %s\nvalue\t%d bytes, base64 %s\n", out.DecodeError, len(d.Value), out.ValueBase64)
	return err
}

// printable returns b as text when it is valid UTF-8 without control characters, else quoted.
func printable(b []byte) string {
	s := string(b)
	if utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return strconv.Quote(s)
}

func newRedrive(f *cmdutil.Factory, c *common) *cobra.Command {
	ff := &filterFlags{}
	o := dlq.RedriveOptions{}
	var all bool
	cmd := &cobra.Command{
		Use:   "redrive --system S [filters | --all] [--dry-run] [--rate N] [--force] [--run-id ID]",
		Short: "Write selected dead letters back to the system's consumer, through its redrive topic",
		Long: `redrive writes the dead letters the filters select to the system's redrive topic, which its consumer
group reads with its event topics: the key, value and headers unchanged (the hotelbus.dlq.* ones kept
for provenance) plus hotelbus.redrive.id, .source (the dead letter's TOPIC/PARTITION@OFFSET), .at and
.run. The consumer's dedup keys a redriven event by eventId and redrive id, so it is handled again
even though its first delivery was finished by the dead-letter topic.

Without filters it needs --all. Dead letters already redriven (their position is in the redrive
topic) are skipped unless --force. Writes are idempotent and acknowledged by all in-sync replicas, at
most --rate per second. Each selected dead letter gets one line:
  redriven       <dead letter>  <event type>  <tenant>  <eventId>  -> <redrive record>  id <redrive id>
  would-redrive  ... (--dry-run: nothing is written)
  skipped        ... already redriven as <ids>
  failed         ... <error>
and a summary goes to standard error. The redrive id derives from the run id and the dead letter's
position: after a crash, rerun with the printed --run-id to finish the run without redriving twice.`,
		Example: `  hotelbus dlq redrive --system hotel-member --error-class permanent --dry-run
  hotelbus dlq redrive --system hotel-member --event-type 'reservation.*' --from -2h --rate 20
  hotelbus dlq redrive --system hotel-pms --at 1@52 --at 2@7 --force
  hotelbus dlq redrive --system hotel-saas --all --run-id 0193a4c2-...   # finish an interrupted run`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error {
			filter, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			if filter.Empty() && !all {
				return cmdutil.Usagef("no filter: select dead letters with --event-type, --error-class, --tenant, --event-id, --from, --to or --at, or pass --all")
			}
			if o.Rate < 0 {
				return cmdutil.Usagef("--rate: %v is negative", o.Rate)
			}
			o.Filter = filter
			if o.RunID != "" {
				if _, err := uuid.Parse(o.RunID); err != nil {
					return cmdutil.Usagef("--run-id: %q is not a run id: pass the UUID an earlier run printed (redrive run <id>)", o.RunID)
				}
			} else {
				id, err := uuid.NewV7()
				if err != nil {
					return err
				}
				o.RunID = id.String()
			}
			q, err := c.open(ctx, f, false, "", nil)
			if err != nil {
				return err
			}
			defer q.Close()
			mode := ""
			if o.DryRun {
				mode = ", dry run"
			}
			fmt.Fprintf(f.ErrOut, "redrive run %s: %s -> %s%s (to resume after a crash: --run-id %s)\n", o.RunID, q.Topic(), q.RedriveTopic(), mode, o.RunID)
			if !c.json {
				o.OnItem = func(it dlq.Item) { printItem(f.Out, it) }
			}
			rep, err := q.Redrive(ctx, o)
			if c.json && (err == nil || rep.RunID != "") {
				if jerr := cmdutil.WriteJSON(f.Out, rep); jerr != nil && err == nil {
					err = jerr
				}
			}
			verb := "redriven"
			if o.DryRun {
				verb = "would be redriven"
			}
			fmt.Fprintf(f.ErrOut, "redrive run %s: %d %s, %d skipped as already redriven, %d failed; %d selected of %d dead letters read in %s\n",
				rep.RunID, rep.Redriven+rep.WouldRedrive, verb, rep.Skipped, rep.Failed, rep.Matched, rep.Scanned, rep.Duration.Round(time.Millisecond))
			return usage(err)
		}),
	}
	addFilterFlags(cmd, ff)
	fl := cmd.Flags()
	fl.BoolVar(&all, "all", false, "select every dead letter (when no filter is given)")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print what would be redriven; write nothing")
	fl.Float64Var(&o.Rate, "rate", 0, "at most this many redriven events per second (0: no limit)")
	fl.BoolVar(&o.Force, "force", false, "redrive dead letters already redriven by another run again")
	fl.StringVar(&o.RunID, "run-id", "", "the run's id (default: a new one); pass an interrupted run's id to finish it")
	return cmd
}

func printItem(w io.Writer, it dlq.Item) {
	head := fmt.Sprintf("%-13s  %s  %s  %s  %s", it.Outcome, it.Source, orDash(it.EventType), orDash(it.Tenant), orDash(it.EventID))
	switch it.Outcome {
	case dlq.Redriven:
		fmt.Fprintf(w, "%s  -> %s  id %s\n", head, it.Target, it.RedriveID)
	case dlq.WouldRedrive:
		fmt.Fprintf(w, "%s  id %s\n", head, it.RedriveID)
	case dlq.Skipped:
		fmt.Fprintf(w, "%s  already redriven as %s\n", head, strings.Join(it.Previous, ", "))
	default:
		fmt.Fprintf(w, "%s  %s\n", head, it.Error)
	}
}

package replay

import (
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
)

// Format is an output format.
type Format string

// Output formats.
const (
	// JSONL writes the seed's JSON envelope (the canonical form of streams.AppendJSON), one per line.
	JSONL Format = "jsonl"
	// CSV writes one file per event type and major version, one column per leaf field of the
	// envelope ("data.totalAmount.amount"); arrays and maps are one column of canonical JSON.
	// Cells are defused against formula injection (OWASP): one that starts with =, +, -, @, tab,
	// carriage return or ' (but is not a plain number) has a ' added in front; drop the first
	// character of a cell that starts with ' to get the raw value (JSONL and Parquet hold it as is).
	CSV Format = "csv"
	// Parquet writes one file per event type and major version with typed columns derived from the
	// Avro schema: decimal as DECIMAL, date as DATE, timestamp-millis as TIMESTAMP(MILLIS, UTC),
	// records as groups, arrays as LIST, maps as MAP, optional fields as OPTIONAL.
	Parquet Format = "parquet"
)

// Formats lists the output formats.
var Formats = []Format{JSONL, CSV, Parquet}

// Stdout is the Out value that writes to Config.Stdout.
const Stdout = "-"

// HeaderReplayedFrom is the header a republished record carries: "<topic>/<partition>@<offset>" of
// the record it copies.
const HeaderReplayedFrom = "replayedFrom"

// Config says what to replay, which part of the log, how to filter it and where it goes. Start from
// DefaultConfig.
type Config struct {
	// Brokers are the seed brokers (required); KafkaOptions adds connection options (SASL, TLS).
	Brokers      []string
	KafkaOptions []kgo.Opt

	// Systems selects the topics the systems own (--system).
	Systems []string
	// EventTypes selects event types by glob ("billing.*", path.Match syntax): the topics that carry
	// them are read and only those types are kept (--event-type).
	EventTypes []string
	// Topics selects topics by name, in or outside the catalog (--topic).
	// With none of Systems, EventTypes and Topics, the replay reads every event topic of the catalog
	// (the analyst's "everything of one tenant" with Tenants).
	Topics []string

	// From and To bound the replay by Kafka record timestamp (log time): records at From are
	// included, records at To excluded. Zero means unbounded. The end is also bounded by the
	// high-water marks taken when Run starts, so a replay always finishes.
	From, To time.Time
	// FromOffset starts every selected partition at this offset instead of From (-1: unset). Clamped
	// to the partition's log start.
	FromOffset int64

	// Tenants keeps only these tenants (the record key); CorrelationID keeps only that correlation.
	Tenants       []string
	CorrelationID string
	// Where is a CEL expression over the decoded envelope that must be true for a record to be kept
	// (see the package documentation for its variables).
	Where string
	// WhereCostLimit bounds the work of Where on one record, in CEL cost units (cel.CostLimit:
	// about one per operation, more for string and list work, times the iterations of a
	// comprehension). A record that needs more stops the replay with ErrWhereCost (default
	// DefaultWhereCostLimit; must be positive).
	WhereCostLimit uint64

	// Format of the output files (default JSONL).
	Format Format
	// Out is where the output goes: Stdout ("-", JSONL only), a file (JSONL only) or a directory
	// (created when missing; one file per event type and major version: <eventType>.v<major>.<ext>).
	// CSV and Parquet always write to a directory. A path that ends in a separator or names an
	// existing directory is a directory. Files are created (or truncated) with mode 0600, a missing
	// directory with 0700.
	Out    string
	Stdout io.Writer

	// Redact replaces every field marked "pii": true in the data schema or the envelope
	// (metadata.userId), marks of schemas.PIIMarksFile included, with a keyed hash (HMAC-SHA256
	// under RedactKey, as "h:" and 32 hex digits): equal values hash equally, so analysts can still
	// join on them. Null stays null. No error or summary then quotes a value of an event.
	Redact    bool
	RedactKey []byte

	// ToTopic republishes the selected events to this topic instead of writing files: re-encoded
	// with the current schema (newest minor of their major), same key, eventId and headers, plus
	// HeaderReplayedFrom. A topic of the catalog is refused unless AllowOwnerTopic.
	ToTopic         string
	AllowOwnerTopic bool
	// WriterOptions are added to Brokers and KafkaOptions for the SDK writers ToTopic writes
	// through (Tracing, Observe, PublishAudit, DeliveryTimeout). Default: none.
	WriterOptions []streams.ProducerOption

	// Workers decode, filter and encode partitions in parallel (default GOMAXPROCS).
	Workers int
	// Progress, when not nil, receives a progress line every ProgressInterval (records, bytes, rate,
	// ETA against the high-water marks), each starting with a carriage return.
	Progress         io.Writer
	ProgressInterval time.Duration

	// Now is the clock relative times were resolved against (default time.Now).
	Now func() time.Time
}

// DefaultConfig returns the defaults: JSONL to Stdout, no bounds, GOMAXPROCS workers,
// DefaultWhereCostLimit.
func DefaultConfig() Config {
	return Config{FromOffset: -1, Format: JSONL, Out: Stdout, Workers: runtime.GOMAXPROCS(0), ProgressInterval: time.Second, Now: time.Now,
		WhereCostLimit: DefaultWhereCostLimit}
}

func (c *Config) validate() error {
	bad := func(format string, a ...any) error { return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...)) }
	switch {
	case len(c.Brokers) == 0:
		return bad("Brokers: at least one seed broker is required")
	case !c.To.IsZero() && !c.From.IsZero() && !c.From.Before(c.To):
		return bad("--from %s is not before --to %s", c.From.Format(time.RFC3339Nano), c.To.Format(time.RFC3339Nano))
	case c.FromOffset < -1:
		return bad("--from-offset: %d is negative", c.FromOffset)
	case c.FromOffset >= 0 && !c.From.IsZero():
		return bad("--from and --from-offset exclude each other")
	case c.Where != "" && c.WhereCostLimit == 0:
		return bad("--where-cost-limit: must be positive")
	case c.Workers < 1:
		return bad("Workers: must be at least 1")
	case c.ProgressInterval <= 0:
		return bad("ProgressInterval: must be positive")
	case c.Now == nil:
		return bad("Now: must be set")
	case c.Redact && len(c.RedactKey) < 16:
		return bad("--redact needs a key of at least 16 bytes (--redact-key-env)")
	case c.ToTopic != "" && c.Redact:
		return bad("--redact applies to files: --to-topic republishes events as they are (pass --redact=false)")
	}
	for _, g := range c.EventTypes {
		if _, err := path.Match(g, ""); err != nil {
			return bad("--event-type: %q is not a valid glob: %v", g, err)
		}
	}
	if c.ToTopic != "" {
		return nil
	}
	switch c.Format {
	case JSONL:
	case CSV, Parquet:
		if c.Out == Stdout || c.Out == "" {
			return bad("--out: %s writes one file per event type: give a directory", c.Format)
		}
	default:
		names := make([]string, len(Formats))
		for i, f := range Formats {
			names[i] = string(f)
		}
		return bad("--format: %q is not one of %s", c.Format, strings.Join(names, ", "))
	}
	if c.Out == "" {
		return bad("--out: must not be empty (- for standard output)")
	}
	if c.Out == Stdout && c.Stdout == nil {
		return bad("Stdout: must be set when Out is %q", Stdout)
	}
	return nil
}

// ParseTime parses a --from/--to value: an RFC 3339 time, or a negative duration relative to now
// ("-24h", "-90m", or whole days "-7d").
func ParseTime(s string, now time.Time) (time.Time, error) {
	if rel, ok := strings.CutPrefix(s, "-"); ok {
		var d time.Duration
		var err error
		if days, ok := strings.CutSuffix(rel, "d"); ok {
			var n int
			if n, err = strconv.Atoi(days); err == nil && n <= 0 {
				err = errors.New("not positive")
			}
			d = time.Duration(n) * 24 * time.Hour
		} else if d, err = time.ParseDuration(rel); err == nil && d <= 0 {
			err = errors.New("not positive")
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("replay: %q is not a relative time like -24h, -90m or -7d", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("replay: %q is neither an RFC 3339 time (2026-11-27T09:15:00Z) nor a relative one (-24h)", s)
	}
	return t, nil
}

package replay

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
)

// plan is how the events of one schema version are written: the data shape after redaction and the
// format's derived layout. Plans are built once per version and shared by the workers.
type plan struct {
	version *schemas.Version
	// data is the output shape of the data record: version.Data, or its redacted form.
	data *avro.RecordSchema
	// file is the output file name in a directory: <eventType>.v<major>.<ext>.
	file string
	// csvCols are the CSV columns (dotted paths), and csvRecords the paths that are records, which
	// are flattened into their fields.
	csvCols    []string
	csvRecords map[string]bool
	pqSchema   *parquet.Schema
	pqRoot     *pqNode
}

func newPlan(v *schemas.Version, c *Config) (*plan, error) {
	p := &plan{version: v, data: v.Data, file: fmt.Sprintf("%s.v%d.%s", v.EventType, v.Major, c.Format)}
	if c.Redact {
		s, err := redactSchema(v.Data)
		if err != nil {
			return nil, err
		}
		p.data = s.(*avro.RecordSchema)
	}
	switch c.Format {
	case CSV:
		p.csvRecords = map[string]bool{}
		for _, f := range envelopeFields(v.Envelope, p.data) {
			if err := p.csvColumns(f.Name, f.Shape, 0); err != nil {
				return nil, fmt.Errorf("%w (%s %s)", err, v.EventType, v)
			}
		}
	case Parquet:
		var err error
		if p.pqSchema, p.pqRoot, err = pqSchema(v.Envelope, p.data); err != nil {
			return nil, fmt.Errorf("%w (%s %s)", err, v.EventType, v)
		}
	}
	return p, nil
}

// csvColumns adds the columns of a value of sh at path and depth: the leaves of records (optional
// ones too), and one column for anything else.
func (p *plan) csvColumns(path string, sh *streams.Shape, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("replay: csv: %s: nested deeper than %d (a recursive type?)", path, maxDepth)
	}
	if sh.Schema.Type() != avro.Record {
		p.csvCols = append(p.csvCols, path)
		return nil
	}
	p.csvRecords[path] = true
	for _, f := range sh.Fields {
		if err := p.csvColumns(path+"."+f.Name, f.Shape, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// csvRow flattens the canonical JSON of an envelope into the plan's columns: strings unquoted,
// null empty, numbers, arrays and maps as their JSON text.
func (p *plan) csvRow(canon []byte) ([]string, error) {
	cells := make(map[string]string, len(p.csvCols))
	if err := p.flatten("", canon, cells); err != nil {
		return nil, err
	}
	row := make([]string, len(p.csvCols))
	for i, c := range p.csvCols {
		row[i] = csvCell(cells[c])
	}
	return row, nil
}

// csvNumber is a plain decimal number: a spreadsheet reads it as a number, never as a formula.
var csvNumber = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// csvCell defuses a cell against CSV (formula) injection, after OWASP: a cell that starts with =,
// +, -, @, tab or carriage return gets a leading single quote, so a spreadsheet shows it as text
// instead of running it (=HYPERLINK(...) in a tenantId). A cell that already starts with a single
// quote gets one too, so the rule is reversible: the raw value of any cell that starts with ' is
// the cell without its first character. Plain numbers (-12.50) are left as they are. The header
// needs no escaping: column names are Avro field names. encoding/csv then quotes the cell as CSV
// requires.
func csvCell(v string) string {
	if v == "" || csvNumber.MatchString(v) {
		return v
	}
	switch v[0] {
	case '=', '+', '-', '@', '\t', '\r', '\'':
		return "'" + v
	}
	return v
}

func (p *plan) flatten(path string, raw json.RawMessage, cells map[string]string) error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("replay: csv: %s: %w", path, err)
	}
	for k, v := range obj {
		col := k
		if path != "" {
			col = path + "." + k
		}
		switch {
		case bytes.Equal(v, []byte("null")):
		case p.csvRecords[col]:
			if err := p.flatten(col, v, cells); err != nil {
				return err
			}
		case len(v) > 0 && v[0] == '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("replay: csv: %s: %w", col, err)
			}
			cells[col] = s
		default:
			cells[col] = string(v)
		}
	}
	return nil
}

// encoded is the output of a batch of records bound for one file (or the one stream).
type encoded struct {
	plan  *plan
	lines []byte
	rows  []parquet.Row
	n     int
}

// encode adds env's output form to e. Called by the workers; plans are read-only.
func encode(e *encoded, p *plan, f Format, env *streams.Envelope) error {
	switch f {
	case Parquet:
		row, err := pqRow(p.pqRoot, env.Map("", env.Data))
		if err != nil {
			return fmt.Errorf("parquet: %w", err)
		}
		e.rows = append(e.rows, row)
	case CSV:
		canon, err := streams.AppendJSON(nil, env, p.data)
		if err != nil {
			return err
		}
		row, err := p.csvRow(canon)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		_ = w.Write(row)
		w.Flush()
		e.lines = append(e.lines, buf.Bytes()...)
	default:
		var err error
		if e.lines, err = streams.AppendJSON(e.lines, env, p.data); err != nil {
			return err
		}
		e.lines = append(e.lines, '\n')
	}
	e.n++
	return nil
}

// sink writes encoded batches to the output; it is used by one goroutine.
type sink struct {
	cfg   *Config
	dir   string // "" when writing one stream
	one   *bufio.Writer
	file  *os.File
	files map[string]*outFile
	order []string
	bytes int64
}

type outFile struct {
	f  *os.File
	w  *bufio.Writer
	pq *parquet.GenericWriter[any]
}

// newSink opens the output Config.Out names.
func newSink(c *Config) (*sink, error) {
	s := &sink{cfg: c, files: map[string]*outFile{}}
	switch {
	case c.Out == Stdout:
		s.one = bufio.NewWriterSize(c.Stdout, 1<<20)
		return s, nil
	case c.Format == JSONL && !isDir(c.Out):
		f, err := createOutput(c.Out)
		if err != nil {
			return nil, err
		}
		s.file, s.one = f, bufio.NewWriterSize(f, 1<<20)
		s.order = append(s.order, c.Out)
		return s, nil
	}
	if err := os.MkdirAll(c.Out, 0o700); err != nil {
		return nil, fmt.Errorf("replay: --out: %w", err)
	}
	s.dir = c.Out
	return s, nil
}

// createOutput creates or truncates an output file readable by its owner only (0600, whatever the
// umask, also when the file existed with wider permissions): the output holds events, personal data
// unless --redact. Every file replay writes is opened here; it writes no temporary files.
func createOutput(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		if err = f.Chmod(0o600); err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("replay: --out: %w", err)
	}
	return f, nil
}

func isDir(p string) bool {
	if strings.HasSuffix(p, string(filepath.Separator)) || strings.HasSuffix(p, "/") {
		return true
	}
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func (s *sink) write(e *encoded) error {
	if s.one != nil {
		n, err := s.one.Write(e.lines)
		s.bytes += int64(n)
		if err != nil {
			return fmt.Errorf("replay: writing output: %w", err)
		}
		return nil
	}
	of, err := s.open(e.plan)
	if err != nil {
		return err
	}
	if of.pq != nil {
		if _, err := of.pq.WriteRows(e.rows); err != nil {
			return fmt.Errorf("replay: writing %s: %w", of.f.Name(), err)
		}
		return nil
	}
	n, err := of.w.Write(e.lines)
	s.bytes += int64(n)
	if err != nil {
		return fmt.Errorf("replay: writing %s: %w", of.f.Name(), err)
	}
	return nil
}

func (s *sink) open(p *plan) (*outFile, error) {
	if of, ok := s.files[p.file]; ok {
		return of, nil
	}
	name := filepath.Join(s.dir, p.file)
	f, err := createOutput(name)
	if err != nil {
		return nil, err
	}
	of := &outFile{f: f, w: bufio.NewWriterSize(f, 1<<20)}
	switch s.cfg.Format {
	case Parquet:
		of.pq = parquet.NewGenericWriter[any](of.w, p.pqSchema, parquet.Compression(&snappy.Codec{}))
	case CSV:
		cw := csv.NewWriter(of.w)
		_ = cw.Write(p.csvCols)
		cw.Flush()
	}
	s.files[p.file] = of
	s.order = append(s.order, name)
	return of, nil
}

// close completes every file (Parquet footers included) and returns the files written.
func (s *sink) close() ([]string, error) {
	var errs []error
	if s.one != nil {
		errs = append(errs, s.one.Flush())
		if s.file != nil {
			errs = append(errs, s.file.Close())
		}
	}
	for _, of := range s.files {
		if of.pq != nil {
			errs = append(errs, of.pq.Close())
		}
		errs = append(errs, of.w.Flush())
		if st, err := of.f.Stat(); err == nil && of.pq != nil {
			s.bytes += st.Size()
		}
		errs = append(errs, of.f.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return s.order, fmt.Errorf("replay: closing output: %w", err)
	}
	return s.order, nil
}

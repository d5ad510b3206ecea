package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/sr"
)

// journalFile is the name of the journal in DataDir: one JSON entry per line, oldest first.
const journalFile = "registry.jsonl"

// Journal entry kinds.
const (
	// opRegister records a schema that got a new version, with its id and version, restored as they
	// were (Registry.replayRegister).
	opRegister = "register"
	// opHTTP records a successful PUT or DELETE (config, mode, soft or hard delete): replayed by
	// serving the same request again, which must succeed.
	opHTTP = "http"
)

type entry struct {
	Op      string     `json:"op"`
	Subject string     `json:"subject,omitempty"`
	Version int        `json:"version,omitempty"`
	ID      int        `json:"id,omitempty"`
	Schema  *sr.Schema `json:"schema,omitempty"`
	Method  string     `json:"method,omitempty"`
	Target  string     `json:"target,omitempty"` // escaped path and query
	Body    string     `json:"body,omitempty"`
}

// journal appends entries to an open journal file.
type journal struct {
	f *os.File
}

// openJournal reads dir's journal and opens it for appending, creating dir and the file if needed.
// A last line without its newline is an append that was never acknowledged (the process died in the
// middle of it): it is dropped and cut from the file.
func openJournal(dir string) (*journal, []entry, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	path := filepath.Join(dir, journalFile)
	data, err := os.ReadFile(path)
	created := errors.Is(err, fs.ErrNotExist)
	if err != nil && !created {
		return nil, nil, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	complete := data[:bytes.LastIndexByte(data, '\n')+1]
	var entries []entry
	for i, line := range bytes.Split(bytes.TrimSuffix(complete, []byte("\n")), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e entry
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, nil, fmt.Errorf("%w: %s line %d: %w", ErrJournal, path, i+1, err)
		}
		entries = append(entries, e)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	j := &journal{f: f}
	if len(complete) < len(data) {
		if err := f.Truncate(int64(len(complete))); err != nil {
			return nil, nil, errors.Join(fmt.Errorf("%w: cutting the torn last line of %s: %w", ErrJournal, path, err), f.Close())
		}
		if err := f.Sync(); err != nil {
			return nil, nil, errors.Join(fmt.Errorf("%w: %w", ErrJournal, err), f.Close())
		}
	}
	if created {
		if err := syncDir(dir); err != nil {
			return nil, nil, errors.Join(fmt.Errorf("%w: %w", ErrJournal, err), f.Close())
		}
	}
	return j, entries, nil
}

// append writes e as one line and fsyncs it.
func (j *journal) append(e entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("%w: encoding entry: %w", ErrJournal, err)
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	return nil
}

func (j *journal) close() error {
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	return nil
}

// syncDir makes a new file's directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

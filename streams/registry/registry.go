// Package registry is the embedded Confluent-compatible schema registry used by `hotelbus dev` and by
// tests. It answers the REST API as Confluent Schema Registry 7.x/8.x does for Avro and the core
// API (subjects, versions, ids, config, mode, compatibility, soft and hard deletes, references,
// pagination; see api.go), with
//
//   - real compatibility checks: a registration that breaks the subject's level (or the global
//     one) is refused with 409, and POST /compatibility/... answers with the same verdicts
//     (schemas.CheckCompatibility, which agrees with Apache Avro Java). Other schema types are
//     stored without checks;
//   - lookups by canonical form: a schema is found, and its id reused, whatever its whitespace, key
//     order or namespace style;
//   - optional durability (DataDir): schema ids, versions, deletions and levels survive a restart.
//
// The HTTP layer is the registry's own rather than franz-go's srfake, which it used to wrap:
// srfake's answers differ from Confluent's on most of the paths standard clients call (?subject=
// on ids, soft-deleted subjects, delete and config codes, pagination, canonical lookups), and its
// registration re-reads every stored schema. The state is a few maps (state in store.go) whose
// registration cost does not grow with the number of schemas.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// Registry is a running embedded schema registry. Its methods are safe for concurrent use.
type Registry struct {
	handler      http.Handler
	server       *http.Server
	served       chan error // Serve's result
	url          string
	defaultLevel sr.CompatibilityLevel

	// mu guards st; changes hold it for writing until their journal append is done, so the journal
	// order is the order they were applied in.
	mu      sync.RWMutex
	st      *state
	journal *journal // nil in memory-only mode
	// refuse, once set (a journal append failed, or Close), makes every later change fail: the
	// state in memory may be ahead of the journal, and a restart must not lose acknowledged changes.
	refuse error

	closeOnce sync.Once
	closeErr  error
}

// New starts a registry; Close stops it.
func New(opts ...Option) (*Registry, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Registry{st: newState(cfg.defaultLevel), defaultLevel: cfg.defaultLevel}
	r.handler = http.HandlerFunc(r.serveHTTP)
	if cfg.dataDir != "" {
		j, entries, err := openJournal(cfg.dataDir)
		if err != nil {
			return nil, err
		}
		if err := r.replay(entries); err != nil {
			return nil, errors.Join(err, j.close())
		}
		r.journal = j
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		err = fmt.Errorf("registry: listening on %s: %w", cfg.listen, err)
		if r.journal != nil {
			err = errors.Join(err, r.journal.close())
		}
		return nil, err
	}
	r.url = "http://" + ln.Addr().String()
	r.server = &http.Server{Handler: r.handler, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: time.Minute, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	r.served = make(chan error, 1)
	go func() { r.served <- r.server.Serve(ln) }()
	return r, nil
}

// URL returns the registry's base URL, "http://host:port".
func (r *Registry) URL() string { return r.url }

// Handler returns the registry's HTTP handler, the one served at URL, to mount elsewhere.
func (r *Registry) Handler() http.Handler { return r.handler }

// Close stops serving at once: connections are closed and requests in flight may go unanswered, but a
// change in flight completes, journal append included, before the journal is closed. Changes requested
// through Handler afterwards fail with 503. Close is idempotent.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		var errs []error
		if err := r.server.Close(); err != nil {
			errs = append(errs, fmt.Errorf("registry: closing the server: %w", err))
		}
		if err := <-r.served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("registry: serve: %w", err))
		}
		r.mu.Lock()
		r.refuse = ErrClosed
		if r.journal != nil {
			errs = append(errs, r.journal.close())
			r.journal = nil
		}
		r.mu.Unlock()
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

// serveHTTP answers one API call: reads under the read lock, changes under the write lock with
// their journal append.
func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := readBody(w, req)
	if err != nil {
		writeError(w, err)
		return
	}
	q, err := parseRequest(req, body)
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := r.serve(q)
	if err != nil {
		writeError(w, err)
		return
	}
	if res.value == nil {
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(http.StatusOK)
		// A failed write means the client went away; there is no one left to tell.
		_, _ = w.Write([]byte(res.raw))
		return
	}
	writeJSON(w, http.StatusOK, res.value)
}

func (r *Registry) serve(q *request) (result, error) {
	if !q.isChange() {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return r.route(r.st, q)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse != nil {
		status := http.StatusInternalServerError
		if errors.Is(r.refuse, ErrClosed) {
			status = http.StatusServiceUnavailable
		}
		return result{}, &apiError{status, codeStoreError, r.refuse.Error()}
	}
	res, err := r.route(r.st, q)
	if err != nil || r.journal == nil {
		return res, err
	}
	e := res.reg
	if e == nil {
		if q.method == http.MethodPost {
			return res, nil // a registration that found its schema already there
		}
		e = &entry{Op: opHTTP, Method: q.method, Target: q.target, Body: string(q.body)}
	}
	if err := r.journal.append(*e); err != nil {
		r.refuse = fmt.Errorf("registry: changes refused after a journal failure: %w", err)
		return result{}, err
	}
	return res, nil
}

// replay applies a journal to the empty state.
func (r *Registry) replay(entries []entry) error {
	for i, e := range entries {
		var err error
		switch e.Op {
		case opRegister:
			err = r.replayRegister(e)
		case opHTTP:
			err = r.replayHTTP(e)
		default:
			err = fmt.Errorf("unknown op %q", e.Op)
		}
		if err != nil {
			return fmt.Errorf("%w: replaying entry %d: %w", ErrJournal, i+1, err)
		}
	}
	return nil
}

// replayRegister restores one registration with its id and version. A schema that no longer passes
// the checks of this version is kept all the same (unparsed: later compatibility checks against it
// fail and name it), since it was acknowledged.
func (r *Registry) replayRegister(e entry) error {
	if e.Schema == nil || e.Subject == "" || e.ID <= 0 || e.Version <= 0 {
		return fmt.Errorf("incomplete register entry %+v", e)
	}
	st := r.st
	if s := st.subjects[e.Subject]; s != nil && len(s.versions) > 0 && s.versions[len(s.versions)-1].version >= e.Version {
		return fmt.Errorf("%q version %d id %d: the subject is already at version %d", e.Subject, e.Version, e.ID, s.versions[len(s.versions)-1].version)
	}
	rec := st.ids[e.ID]
	if rec == nil {
		typ := typeString(e.Schema.Type)
		built, err := r.build(st, typ, e.Schema.Schema, e.Schema.References)
		if err != nil {
			built = &stored{typ: typ, text: e.Schema.Schema, refs: e.Schema.References,
				key: fmt.Sprintf("unparsed\x00%d", e.ID)}
		}
		built.id = e.ID
		rec = built
	}
	st.add(e.Subject, rec, e.Version)
	return nil
}

// replayHTTP serves a journaled PUT or DELETE again; it must succeed as it did. Journals written
// while the registry wrapped srfake may hold deletes srfake accepted and Confluent refuses: a
// second soft delete (40404, 40406) is already applied, and a hard delete without a soft delete
// first (40405, 40407) is replayed as both.
func (r *Registry) replayHTTP(e entry) error {
	err := r.replayRequest(e.Method, e.Target, e.Body)
	var ae *apiError
	if errors.As(err, &ae) && e.Method == http.MethodDelete {
		switch ae.code {
		case codeSubjectSoftDeleted, codeVersionSoftDeleted:
			err = nil
		case codeSubjectNotSoftDeleted, codeVersionNotSoftDeleted:
			var u *url.URL
			if u, err = url.Parse(e.Target); err != nil {
				break
			}
			q := u.Query()
			q.Del("permanent")
			u.RawQuery = q.Encode()
			if err = r.replayRequest(e.Method, u.String(), ""); err == nil {
				err = r.replayRequest(e.Method, e.Target, e.Body)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", e.Method, e.Target, err)
	}
	return nil
}

func (r *Registry) replayRequest(method, target, body string) error {
	req, err := http.NewRequestWithContext(context.Background(), method, target, strings.NewReader(body))
	if err != nil {
		return err
	}
	q, err := parseRequest(req, []byte(body))
	if err == nil {
		_, err = r.route(r.st, q)
	}
	return err
}

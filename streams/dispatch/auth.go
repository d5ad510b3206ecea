package dispatch

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// authRecheck is how often the target authentication file is checked for a change.
const authRecheck = time.Second

// authFile holds the headers of the target authentication file (see TargetAuthFile) and rereads
// them when the file changes. Safe for concurrent use.
type authFile struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	checked time.Time // last stat
	mod     time.Time
	size    int64
	header  http.Header
}

// loadAuthFile reads path once; a later change is picked up by headers.
func loadAuthFile(path string, log *slog.Logger) (*authFile, error) {
	a := &authFile{path: path, log: log}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("TargetAuthFile: %w", err)
	}
	if err := a.reload(fi); err != nil {
		return nil, fmt.Errorf("TargetAuthFile: %w", err)
	}
	a.checked = time.Now()
	return a, nil
}

// headers returns the current headers, rereading the file when its modification time or size
// changed (checked at most once a second). A file that cannot be read or parsed keeps the headers
// in use, logged at error, so that a bad update does not stop deliveries.
func (a *authFile) headers() http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Since(a.checked) < authRecheck {
		return a.header
	}
	a.checked = time.Now()
	fi, err := os.Stat(a.path)
	switch {
	case err != nil:
		a.log.Error("dispatch: target authentication file unreadable; the previous headers stay in use", "path", a.path, "err", err)
	case !fi.ModTime().Equal(a.mod) || fi.Size() != a.size:
		if err := a.reload(fi); err != nil {
			a.log.Error("dispatch: target authentication file invalid; the previous headers stay in use", "err", err)
		} else {
			a.log.Info("dispatch: target authentication headers reloaded", "path", a.path, "headers", len(a.header))
		}
	}
	return a.header
}

func (a *authFile) reload(fi os.FileInfo) error {
	b, err := os.ReadFile(a.path)
	if err != nil {
		return err
	}
	h, err := parseAuthHeaders(a.path, b)
	if err != nil {
		return err
	}
	a.header, a.mod, a.size = h, fi.ModTime(), fi.Size()
	return nil
}

// parseAuthHeaders parses "Name: value" lines (blank lines and lines starting with # are
// skipped). Errors name the file, the line number and the header name, never a value.
func parseAuthHeaders(path string, b []byte) (http.Header, error) {
	h := http.Header{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !ok || !httpguts.ValidHeaderFieldName(name):
			return nil, fmt.Errorf("%s:%d: want a header line \"Name: value\" (the line is not shown)", path, n)
		case reservedHeader(name):
			return nil, fmt.Errorf("%s:%d: header %s is set by the dispatcher", path, n, name)
		case value == "" || !httpguts.ValidHeaderFieldValue(value):
			return nil, fmt.Errorf("%s:%d: header %s: the value is empty or holds a control character", path, n, name)
		}
		h.Add(name, value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("%s: no header line", path)
	}
	return h, nil
}

// reservedHeader reports whether the dispatcher sets the header itself.
func reservedHeader(name string) bool {
	switch k := strings.ToLower(name); {
	case strings.HasPrefix(k, "ce-"):
		return true
	default:
		switch k {
		case "content-type", "content-length", "host", "transfer-encoding", "connection", "traceparent", "tracestate", strings.ToLower(HeaderSignature):
			return true
		}
	}
	return false
}

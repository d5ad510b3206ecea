package streamstest

import (
	"bytes"
	"os"
	"sync"
	"testing"
	"time"
)

// LogBuffer is a log destination safe for concurrent writes (a slog handler shared by goroutines);
// String returns everything written so far.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// WriteFileAged writes content to path (mode 0600) with a modification time age ago, for tests of
// files that are reread when they change.
func WriteFileAged(t testing.TB, path, content string, age time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-age)
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

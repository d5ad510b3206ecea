package faults

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// Row is what one scenario measured.
type Row struct {
	// Scenario is a short name ("1 broker kill -9"); Title says what was done.
	Scenario, Title string
	// Events were handed to the gateway; Acked were answered 202, Published and Spooled by the
	// gateway's status; Failed got another answer or none.
	Events, Acked, Published, Spooled, Failed int64
	// Effects counts the side effects at the target, repeats included.
	Effects int64
	// Lost, Duplicated and Reordered are the checker's counts.
	Lost, Duplicated, Reordered int
	// Recover is the longest time from the end of a fault until the target had every event
	// acknowledged before that end; negative when it never had them.
	Recover time.Duration
	// Notes list the faults injected and what they did.
	Notes []string
	// TestFailed is set when the scenario's test failed.
	TestFailed bool
}

const header = "%-24s %7s %7s %9s %7s %6s %5s %10s %9s %8s %s\n"

func (r Row) cells() []any {
	rec := "never"
	if r.Recover >= 0 {
		rec = r.Recover.Round(100 * time.Millisecond).String()
	}
	result := "ok"
	if r.TestFailed {
		result = "FAILED"
	}
	return []any{r.Scenario, fmt.Sprint(r.Events), fmt.Sprint(r.Acked), fmt.Sprint(r.Spooled), fmt.Sprint(r.Failed), fmt.Sprint(r.Lost),
		fmt.Sprint(r.Duplicated), fmt.Sprint(r.Reordered), fmt.Sprint(r.Effects), rec, result}
}

func headerCells() []any {
	return []any{"scenario", "events", "acked", "spooled", "failed", "lost", "dup", "reordered", "effects", "recover", "result"}
}

// Table returns the scenario's table: the title, the header, the row and the notes.
func (r Row) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s: %s\n", r.Scenario, r.Title)
	fmt.Fprintf(&b, "  "+header, headerCells()...)
	fmt.Fprintf(&b, "  "+header, r.cells()...)
	fmt.Fprintf(&b, "  gateway answers: %d published, %d spooled, %d not accepted\n", r.Published, r.Spooled, r.Failed)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  - %s\n", n)
	}
	return b.String()
}

// Record logs r's table and appends it to the report files when HOTELBUS_FAULTS_REPORT is set:
// the table to the file itself, the row to <file>.summary (with a header when it is new).
func Record(t testing.TB, r Row) {
	t.Helper()
	t.Logf("\n%s", r.Table())
	path := os.Getenv(EnvReport)
	if path == "" {
		return
	}
	appendTo := func(name, text string, first string) {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Errorf("faults: report: %v", err)
			return
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Size() == 0 {
			text = first + text
		}
		if _, err := f.WriteString(text); err != nil {
			t.Errorf("faults: report: %v", err)
		}
	}
	appendTo(path, r.Table()+"\n", "")
	appendTo(path+".summary", fmt.Sprintf(header, r.cells()...), fmt.Sprintf(header, headerCells()...))
}

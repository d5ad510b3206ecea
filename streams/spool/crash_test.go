package spool_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/hotelbus/hotelbus/streams/spool"
)

// helperEnv names the spool file the helper process appends to; the helper does nothing without it.
const helperEnv = "HOTELBUS_SPOOL_HELPER_PATH"

// crashBatch is the size of the n-th Append of the helper: 1, 2, 3, 1, 2, 3 ...
func crashBatch(n int) int { return 1 + n%3 }

// crashEntry is the i-th entry the helper appends; its Seq in a fresh spool is i+1.
func crashEntry(i int) spool.Entry {
	v := make([]byte, 700)
	for j := range v {
		v[j] = byte(i*31 + j)
	}
	return spool.Entry{
		Topic:   "hotel-pms.reservation",
		Key:     []byte("res-" + strconv.Itoa(i)),
		Value:   v,
		Headers: []spool.Header{{Key: "i", Value: []byte(strconv.Itoa(i))}},
		EventID: "evt-" + strconv.Itoa(i),
	}
}

// TestHelperProcess is the child of TestKill9KeepsEveryReturnedAppend: it appends batches forever,
// printing each Seq only after its Append returned, until it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestKill9KeepsEveryReturnedAppend")
	}
	s, err := spool.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for n, i := 0, 0; ; n++ {
		batch := make([]spool.Entry, crashBatch(n))
		for j := range batch {
			batch[j] = crashEntry(i + j)
		}
		seqs, err := s.Append(batch...)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for _, seq := range seqs {
			fmt.Fprintln(os.Stdout, seq) // os.Stdout is unbuffered: the parent sees it at once
		}
		i += len(batch)
	}
}

func TestKill9KeepsEveryReturnedAppend(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	const killAfter = 300
	path := filepath.Join(t.TempDir(), "spool.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	// Every Seq the child printed, including those printed between the kill decision and the kill.
	var printed []uint64
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		seq, err := strconv.ParseUint(sc.Text(), 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", sc.Text())
		}
		printed = append(printed, seq)
		if len(printed) == killAfter {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
		}
	}
	waitErr := cmd.Wait()
	if len(printed) < killAfter {
		t.Fatalf("child exited after %d Seqs (%v): %s", len(printed), waitErr, stderr.String())
	}
	if ee, ok := waitErr.(*exec.ExitError); !ok || ee.ExitCode() != -1 {
		t.Fatalf("child ended with %v, want killed by a signal; stderr: %s", waitErr, stderr.String())
	}

	s := openSpool(t, path)
	got, err := s.Peek(1 << 20)
	if err != nil {
		t.Fatalf("Peek after kill -9: %v", err)
	}
	if len(got) != s.Len() {
		t.Errorf("Peek returned %d entries, Len says %d", len(got), s.Len())
	}
	var total int64
	for i, e := range got {
		if e.Seq != uint64(i+1) {
			t.Fatalf("entry %d has Seq %d: Seqs must be 1, 2, 3 ... without gaps", i, e.Seq)
		}
		if want := crashEntry(i); !sameRecord(e, want) {
			t.Fatalf("entry Seq %d does not hold the record appended as #%d", e.Seq, i)
		}
		total += payload(e)
	}
	if s.Bytes() != total {
		t.Errorf("Bytes = %d, entries hold %d", s.Bytes(), total)
	}
	for i, seq := range printed {
		if seq != uint64(i+1) {
			t.Fatalf("child printed Seq %d as its %d-th", seq, i+1)
		}
	}
	if len(got) < len(printed) {
		t.Fatalf("spool holds %d entries after kill -9, the child was told %d were stored", len(got), len(printed))
	}

	// The kill may interrupt one Append; it is kept whole or lost whole.
	boundary, n := 0, 0
	for boundary < len(printed) {
		boundary += crashBatch(n)
		n++
	}
	if len(got) != boundary && len(got) != boundary+crashBatch(n) {
		t.Errorf("spool holds %d entries: not the %d printed nor those plus the whole next Append (%d)",
			len(got), boundary, boundary+crashBatch(n))
	}
	t.Logf("child printed %d Seqs, spool kept %d entries", len(printed), len(got))

	// Seqs go on after the recovered ones.
	if seqs := mustAppend(t, s, crashEntry(len(got))); seqs[0] != uint64(len(got)+1) {
		t.Errorf("first Seq after recovery = %d, want %d", seqs[0], len(got)+1)
	}
}

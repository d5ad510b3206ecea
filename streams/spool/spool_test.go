package spool_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hotelbus/hotelbus/streams/spool"
)

func openSpool(t *testing.T, path string, opts ...spool.Option) *spool.Spool {
	t.Helper()
	s, err := spool.Open(path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func spoolPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "spool.db")
}

// record builds the i-th test entry with a payload of about n value bytes.
func record(i, n int) spool.Entry {
	return spool.Entry{
		Topic:   "hotel-pms.reservation",
		Key:     fmt.Appendf(nil, "res-%d", i),
		Value:   bytes.Repeat([]byte{byte(i)}, n),
		Headers: []spool.Header{{Key: "eventType", Value: []byte("reservation.created")}},
		EventID: fmt.Sprintf("evt-%06d", i),
	}
}

// payload is what an entry counts against MaxBytes, per the MaxBytes contract.
func payload(e spool.Entry) int64 {
	n := len(e.Topic) + len(e.Key) + len(e.Value) + len(e.EventID)
	for _, h := range e.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

// sameRecord reports whether got carries exactly the record of want (Seq and Enqueued aside).
func sameRecord(got, want spool.Entry) bool {
	if got.Topic != want.Topic || got.EventID != want.EventID || !sameBytes(got.Key, want.Key) ||
		!sameBytes(got.Value, want.Value) || len(got.Headers) != len(want.Headers) {
		return false
	}
	for i := range got.Headers {
		if got.Headers[i].Key != want.Headers[i].Key || !sameBytes(got.Headers[i].Value, want.Headers[i].Value) {
			return false
		}
	}
	return true
}

func mustAppend(t *testing.T, s *spool.Spool, entries ...spool.Entry) []uint64 {
	t.Helper()
	seqs, err := s.Append(entries...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if len(seqs) != len(entries) {
		t.Fatalf("Append returned %d seqs for %d entries", len(seqs), len(entries))
	}
	return seqs
}

func mustPeek(t *testing.T, s *spool.Spool, max int) []spool.Entry {
	t.Helper()
	got, err := s.Peek(max)
	if err != nil {
		t.Fatalf("Peek(%d): %v", max, err)
	}
	return got
}

func TestAppendPeekRoundTrip(t *testing.T) {
	s := openSpool(t, spoolPath(t))
	in := []spool.Entry{
		record(1, 700),
		{Topic: "t", Key: nil, Value: nil, EventID: "null key, tombstone"},
		{Topic: "t", Key: []byte{}, Value: []byte{}, EventID: "empty key and value"},
		{Topic: "t", Value: []byte("x"), Headers: []spool.Header{
			{Key: "null", Value: nil}, {Key: "empty", Value: []byte{}}, {Key: "", Value: []byte("ü\x00\xff")},
		}},
		{Topic: "宿泊.予約", Key: bytes.Repeat([]byte{0x80}, 200), Value: bytes.Repeat([]byte("v"), 70000)},
	}
	before := time.Now()
	seqs := mustAppend(t, s, in...)
	after := time.Now()
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Errorf("seqs = %v, want 1..%d", seqs, len(in))
			break
		}
	}

	got := mustPeek(t, s, 100)
	if len(got) != len(in) {
		t.Fatalf("Peek returned %d entries, want %d", len(got), len(in))
	}
	for i, e := range got {
		if e.Seq != seqs[i] {
			t.Errorf("entry %d: Seq %d, want %d", i, e.Seq, seqs[i])
		}
		if !sameRecord(e, in[i]) {
			t.Errorf("entry %d: got %+v, want %+v", i, e, in[i])
		}
		if e.Enqueued.Before(before) || e.Enqueued.After(after) {
			t.Errorf("entry %d: Enqueued %v not within the Append call [%v, %v]", i, e.Enqueued, before, after)
		}
	}

	if again := mustPeek(t, s, 2); len(again) != 2 || again[0].Seq != 1 || again[1].Seq != 2 {
		t.Errorf("second Peek(2) = %d entries starting at %v, want seqs 1 and 2 (Peek must not remove)", len(again), again)
	}
	if s.Len() != len(in) {
		t.Errorf("Len = %d, want %d", s.Len(), len(in))
	}
	var want int64
	for _, e := range in {
		want += payload(e)
	}
	if s.Bytes() != want {
		t.Errorf("Bytes = %d, want %d", s.Bytes(), want)
	}
}

func TestPeekOwnsItsMemory(t *testing.T) {
	s := openSpool(t, spoolPath(t))
	mustAppend(t, s, record(1, 10), record(2, 10))
	got := mustPeek(t, s, 2)
	got[0].Key = append(got[0].Key, "-grown"...)
	got[0].Value[0] = 0xEE
	again := mustPeek(t, s, 2)
	if !sameRecord(again[0], record(1, 10)) || !sameRecord(again[1], record(2, 10)) {
		t.Errorf("modifying a peeked entry changed the spool or its neighbour: %+v", again)
	}
	if !sameRecord(got[1], record(2, 10)) {
		t.Errorf("appending to one field of a peeked entry overwrote another entry: %+v", got[1])
	}
}

func TestAppendNothing(t *testing.T) {
	s := openSpool(t, spoolPath(t))
	seqs, err := s.Append()
	if err != nil || seqs != nil {
		t.Fatalf("Append() = %v, %v; want nil, nil", seqs, err)
	}
	if seq := mustAppend(t, s, record(1, 1)); seq[0] != 1 {
		t.Errorf("first Seq after an empty Append = %d, want 1", seq[0])
	}
}

func TestPeekRejectsNonPositiveMax(t *testing.T) {
	s := openSpool(t, spoolPath(t))
	mustAppend(t, s, record(1, 1))
	for _, max := range []int{0, -1} {
		if got, err := s.Peek(max); err == nil || !strings.HasPrefix(err.Error(), "spool: ") {
			t.Errorf("Peek(%d) = %v, %v; want a spool: error", max, got, err)
		}
	}
}

func TestDeleteRemovesThroughSeq(t *testing.T) {
	s := openSpool(t, spoolPath(t))
	var in []spool.Entry
	for i := range 10 {
		in = append(in, record(i, 10*i))
	}
	mustAppend(t, s, in...)

	if err := s.Delete(0); err != nil {
		t.Fatalf("Delete(0): %v", err)
	}
	if s.Len() != 10 {
		t.Fatalf("Len after Delete(0) = %d, want 10", s.Len())
	}
	if err := s.Delete(4); err != nil {
		t.Fatalf("Delete(4): %v", err)
	}
	got := mustPeek(t, s, 100)
	if len(got) != 6 || got[0].Seq != 5 || got[5].Seq != 10 {
		t.Fatalf("after Delete(4) Peek = %d entries from seq %d; want seqs 5..10", len(got), got[0].Seq)
	}
	var want int64
	for _, e := range in[4:] {
		want += payload(e)
	}
	if s.Len() != 6 || s.Bytes() != want {
		t.Errorf("after Delete(4) Len, Bytes = %d, %d; want 6, %d", s.Len(), s.Bytes(), want)
	}
	now := got[0].Enqueued.Add(time.Hour)
	if age := s.OldestAge(now); age != time.Hour {
		t.Errorf("OldestAge = %v, want 1h (age of seq 5)", age)
	}

	if err := s.Delete(1000); err != nil {
		t.Fatalf("Delete(1000): %v", err)
	}
	if s.Len() != 0 || s.Bytes() != 0 || s.OldestAge(now) != 0 {
		t.Errorf("after deleting all: Len %d, Bytes %d, OldestAge %v; want zeros", s.Len(), s.Bytes(), s.OldestAge(now))
	}
	if got := mustPeek(t, s, 10); len(got) != 0 {
		t.Errorf("Peek on an empty spool returned %d entries", len(got))
	}
	if seqs := mustAppend(t, s, record(11, 1)); seqs[0] != 11 {
		t.Errorf("Seq after deleting past unassigned seqs = %d, want 11", seqs[0])
	}
}

func TestReopenKeepsState(t *testing.T) {
	path := spoolPath(t)
	s, err := spool.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		mustAppend(t, s, record(i, 100+i), record(100+i, 3))
	}
	if err := s.Delete(3); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Minute)
	wantLen, wantBytes, wantAge := s.Len(), s.Bytes(), s.OldestAge(now)
	wantEntries := mustPeek(t, s, 100)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openSpool(t, path)
	if s.Len() != wantLen || s.Bytes() != wantBytes || s.OldestAge(now) != wantAge {
		t.Errorf("after reopen Len, Bytes, OldestAge = %d, %d, %v; want %d, %d, %v",
			s.Len(), s.Bytes(), s.OldestAge(now), wantLen, wantBytes, wantAge)
	}
	got := mustPeek(t, s, 100)
	if len(got) != len(wantEntries) {
		t.Fatalf("after reopen Peek returned %d entries, want %d", len(got), len(wantEntries))
	}
	for i := range got {
		if got[i].Seq != wantEntries[i].Seq || !got[i].Enqueued.Equal(wantEntries[i].Enqueued) ||
			!sameRecord(got[i], wantEntries[i]) {
			t.Errorf("after reopen entry %d = %+v, want %+v", i, got[i], wantEntries[i])
		}
	}
}

func TestSeqNeverReusedAfterDeleteAndReopen(t *testing.T) {
	path := spoolPath(t)
	var last uint64
	for round := range 3 {
		s, err := spool.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		seqs := mustAppend(t, s, record(1, 1), record(2, 1))
		if seqs[0] <= last {
			t.Fatalf("round %d: Seq %d after %d: reused", round, seqs[0], last)
		}
		last = seqs[1]
		if err := s.Delete(last); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if last != 6 {
		t.Errorf("last Seq after 3 rounds of 2 = %d, want 6", last)
	}
}

func TestFullLeavesSpoolUnchanged(t *testing.T) {
	e := record(1, 100)
	size := payload(e)

	t.Run("MaxBytes", func(t *testing.T) {
		s := openSpool(t, spoolPath(t), spool.MaxBytes(3*size))
		mustAppend(t, s, e, e)
		checkFull(t, s, []spool.Entry{e, e}, 2, 2*size)
		mustAppend(t, s, e) // exactly at the bound
		checkFull(t, s, []spool.Entry{e}, 3, 3*size)
	})
	t.Run("MaxEntries", func(t *testing.T) {
		s := openSpool(t, spoolPath(t), spool.MaxEntries(3))
		mustAppend(t, s, e, e)
		checkFull(t, s, []spool.Entry{e, e}, 2, 2*size)
		mustAppend(t, s, e)
		checkFull(t, s, []spool.Entry{e}, 3, 3*size)
	})
	t.Run("single Append larger than the bound", func(t *testing.T) {
		s := openSpool(t, spoolPath(t), spool.MaxBytes(size-1))
		for range 2 {
			if _, err := s.Append(e); !errors.Is(err, spool.ErrFull) {
				t.Fatalf("Append of %d bytes with MaxBytes %d: %v, want ErrFull", size, size-1, err)
			}
		}
		if s.Len() != 0 || s.Bytes() != 0 {
			t.Errorf("after ErrFull Len, Bytes = %d, %d; want 0, 0", s.Len(), s.Bytes())
		}
	})
}

// checkFull asserts that appending batch fails with ErrFull and changes nothing, and that after
// deleting everything the same batch is accepted with the next Seq.
func checkFull(t *testing.T, s *spool.Spool, batch []spool.Entry, wantLen int, wantBytes int64) {
	t.Helper()
	now := time.Now()
	age := s.OldestAge(now)
	before, err := s.Peek(100)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := s.Append(batch...)
	if !errors.Is(err, spool.ErrFull) || seqs != nil {
		t.Fatalf("Append past the bound = %v, %v; want nil, ErrFull", seqs, err)
	}
	if !strings.HasPrefix(err.Error(), "spool: full") {
		t.Errorf("error %q does not start with %q", err, "spool: full")
	}
	if s.Len() != wantLen || s.Bytes() != wantBytes || s.OldestAge(now) != age {
		t.Errorf("after ErrFull Len, Bytes, OldestAge = %d, %d, %v; want %d, %d, %v",
			s.Len(), s.Bytes(), s.OldestAge(now), wantLen, wantBytes, age)
	}
	after := mustPeek(t, s, 100)
	if len(after) != len(before) {
		t.Fatalf("after ErrFull Peek returned %d entries, want %d", len(after), len(before))
	}
	var last uint64
	if len(before) > 0 {
		last = before[len(before)-1].Seq
		if err := s.Delete(last); err != nil {
			t.Fatal(err)
		}
	}
	seqs, err = s.Append(batch...)
	if err != nil {
		t.Fatalf("Append after Delete: %v", err)
	}
	if seqs[0] != last+1 {
		t.Errorf("Append after Delete got Seq %d, want %d (ErrFull must not consume Seqs)", seqs[0], last+1)
	}
}

func TestOpenRefusesSecondOpener(t *testing.T) {
	path := spoolPath(t)
	first, err := spool.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	second, err := spool.Open(path)
	if !errors.Is(err, spool.ErrLocked) {
		if second != nil {
			second.Close()
		}
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if !strings.HasPrefix(err.Error(), "spool: ") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q should start with %q and name the file", err, "spool: ")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openSpool(t, path) // the lock is released by Close
}

func TestOpenCreatesPrivateDirsAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "spool.db")
	openSpool(t, path)
	for p, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestOptionsAreValidated(t *testing.T) {
	for name, opt := range map[string]spool.Option{
		"MaxBytes(0)":    spool.MaxBytes(0),
		"MaxBytes(-1)":   spool.MaxBytes(-1),
		"MaxEntries(-1)": spool.MaxEntries(-1),
	} {
		path := spoolPath(t)
		s, err := spool.Open(path, opt)
		if err == nil {
			s.Close()
			t.Errorf("Open with %s succeeded, want an error", name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "spool: ") {
			t.Errorf("Open with %s: error %q lacks the package prefix", name, err)
		}
		if _, statErr := os.Stat(path); !errors.Is(statErr, os.ErrNotExist) {
			t.Errorf("Open with %s created the file despite failing validation", name)
		}
	}
}

func TestClosedSpool(t *testing.T) {
	s, err := spool.Open(spoolPath(t))
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, record(1, 1))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := s.Append(record(2, 1)); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Append(); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("empty Append after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Peek(1); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("Peek after Close = %v, want ErrClosed", err)
	}
	if err := s.Delete(1); !errors.Is(err, spool.ErrClosed) {
		t.Errorf("Delete after Close = %v, want ErrClosed", err)
	}
}

// rewrite replaces the stored value of seq in a closed spool file with edit(value), bypassing the
// spool; the bucket name and key format are the documented file layout.
func rewrite(t *testing.T, path string, seq uint64, edit func(key, v []byte) []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("entries"))
		if b == nil {
			return errors.New("no entries bucket")
		}
		key := binary.BigEndian.AppendUint64(nil, seq)
		v := b.Get(key)
		if v == nil {
			return fmt.Errorf("no entry %d", seq)
		}
		return b.Put(key, edit(key, bytes.Clone(v)))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// resum recomputes the documented checksum: CRC32C of the key followed by the value after the
// 4-byte checksum.
func resum(key, v []byte) []byte {
	tab := crc32.MakeTable(crc32.Castagnoli)
	binary.BigEndian.PutUint32(v, crc32.Update(crc32.Update(0, tab, key), tab, v[4:]))
	return v
}

func TestPeekReportsCorruptEntry(t *testing.T) {
	// drift is how far Bytes ends from the true payload after deleting the edited entry: Delete
	// trusts the size recorded in an entry whose checksum passes, which only a forger can break.
	for name, tc := range map[string]struct {
		edit  func(key, v []byte) []byte
		drift int64
	}{
		"flipped payload byte": {edit: func(_, v []byte) []byte { v[len(v)-30] ^= 0x01; return v }},
		"flipped checksum":     {edit: func(_, v []byte) []byte { v[0] ^= 0x80; return v }},
		"truncated":            {edit: func(_, v []byte) []byte { return v[:len(v)/2] }},
		"shorter than header":  {edit: func(_, v []byte) []byte { return v[:3] }},
		// Checksums that match but encodings that do not decode.
		"trailing byte":      {edit: func(k, v []byte) []byte { return resum(k, append(v, 0)) }},
		"overlong length":    {edit: func(k, v []byte) []byte { return resum(k, v[:len(v)-1]) }},
		"unknown version":    {edit: func(k, v []byte) []byte { v[4] = 99; return resum(k, v) }},
		"wrong payload size": {edit: func(k, v []byte) []byte { v[20]++; return resum(k, v) }, drift: -1},
	} {
		t.Run(name, func(t *testing.T) {
			path := spoolPath(t)
			s, err := spool.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			in := []spool.Entry{record(1, 50), record(2, 50), record(3, 50)}
			mustAppend(t, s, in...)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			rewrite(t, path, 2, tc.edit)

			s = openSpool(t, path)
			got, err := s.Peek(10)
			if !errors.Is(err, spool.ErrCorrupt) {
				t.Fatalf("Peek over a corrupt entry = %d entries, %v; want ErrCorrupt", len(got), err)
			}
			var ce *spool.CorruptError
			if !errors.As(err, &ce) || ce.Seq != 2 {
				t.Fatalf("error %v is not a *CorruptError naming seq 2", err)
			}
			if !strings.HasPrefix(err.Error(), "spool: ") || !strings.Contains(err.Error(), "seq 2") {
				t.Errorf("error %q should start with %q and name seq 2", err, "spool: ")
			}
			if len(got) != 1 || got[0].Seq != 1 || !sameRecord(got[0], in[0]) {
				t.Errorf("Peek returned %+v before the corrupt entry, want entry 1 only", got)
			}
			if s.Len() != 3 {
				t.Errorf("Len = %d; a corrupt entry must not be dropped", s.Len())
			}

			// The operator's way out: delete through the corrupt Seq.
			if err := s.Delete(2); err != nil {
				t.Fatalf("Delete(2) over a corrupt entry: %v", err)
			}
			got = mustPeek(t, s, 10)
			if len(got) != 1 || got[0].Seq != 3 || !sameRecord(got[0], in[2]) {
				t.Errorf("after Delete(2) Peek = %+v, want entry 3", got)
			}
			if want := payload(in[2]) + tc.drift; s.Len() != 1 || s.Bytes() != want {
				t.Errorf("after Delete(2) Len, Bytes = %d, %d; want 1, %d", s.Len(), s.Bytes(), want)
			}
		})
	}
}

func TestOpenRejectsInconsistentMeta(t *testing.T) {
	path := spoolPath(t)
	s, err := spool.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, record(1, 1), record(2, 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		// Next Seq 2 while entry 2 exists: an Append would reuse Seq 2.
		state := make([]byte, 16)
		binary.BigEndian.PutUint64(state, 2)
		return tx.Bucket([]byte("meta")).Put([]byte("state"), state)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := spool.Open(path); !errors.Is(err, spool.ErrCorrupt) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open with next seq behind the last entry = %v, want ErrCorrupt", err)
	}
}

func TestOpenRejectsForeignFile(t *testing.T) {
	path := spoolPath(t)
	if err := os.WriteFile(path, bytes.Repeat([]byte("not a bbolt file"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := spool.Open(path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a non-bbolt file succeeded")
	}
	if !strings.HasPrefix(err.Error(), "spool: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
}

// TestConcurrentProducersAndDrainer runs producers and a drainer at once: every entry is drained
// exactly once, in Seq order, and each producer's entries in its own Append order.
func TestConcurrentProducersAndDrainer(t *testing.T) {
	s := openSpool(t, spoolPath(t))
	const producers, appends = 4, 40
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range appends {
				batch := make([]spool.Entry, 1+i%3)
				for j := range batch {
					batch[j] = spool.Entry{Topic: "t", EventID: fmt.Sprintf("%d/%d/%d", p, i, j), Value: []byte{byte(j)}}
				}
				if _, err := s.Append(batch...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(errs); close(done) }()

	var lastSeq uint64
	lastOf := make(map[int][2]int) // producer -> (append, index within it) drained last
	seen := 0
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		got, err := s.Peek(16)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			if finished {
				break
			}
			continue
		}
		for _, e := range got {
			if e.Seq <= lastSeq {
				t.Fatalf("Seq %d after %d", e.Seq, lastSeq)
			}
			lastSeq = e.Seq
			var p, i, j int
			if _, err := fmt.Sscanf(e.EventID, "%d/%d/%d", &p, &i, &j); err != nil {
				t.Fatal(err)
			}
			want, ok := lastOf[p]
			switch {
			case !ok:
				want = [2]int{0, 0}
			case want[1]+1 < 1+want[0]%3:
				want[1]++
			default:
				want = [2]int{want[0] + 1, 0}
			}
			if got := [2]int{i, j}; got != want {
				t.Fatalf("producer %d: drained append/index %v, want %v", p, got, want)
			}
			lastOf[p] = want
			seen++
		}
		if err := s.Delete(lastSeq); err != nil {
			t.Fatal(err)
		}
	}
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	want := 0
	for i := range appends {
		want += producers * (1 + i%3)
	}
	if seen != want {
		t.Errorf("drained %d entries, want %d", seen, want)
	}
	if s.Len() != 0 || s.Bytes() != 0 {
		t.Errorf("after draining Len, Bytes = %d, %d; want 0, 0", s.Len(), s.Bytes())
	}
}

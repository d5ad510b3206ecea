package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// lockTimeout is how long Open waits for another opener to release the file before ErrLocked.
const lockTimeout = 250 * time.Millisecond

var (
	entriesBucket = []byte("entries")
	metaBucket    = []byte("meta")
	stateKey      = []byte("state")
)

// Header is one Kafka record header. A nil Value is stored and returned as nil (a null header
// value), distinct from an empty one.
type Header struct {
	Key   string
	Value []byte
}

// Entry is one spooled Kafka record, stored exactly as it will be produced: nil and empty Key,
// Value and header values are kept distinct.
type Entry struct {
	Seq      uint64 // assigned by Append; ignored on input
	Topic    string
	Key      []byte
	Value    []byte
	Headers  []Header
	EventID  string
	Enqueued time.Time // set by Append to the time of the call (UTC, nanoseconds); ignored on input
}

// Spool is an open spool file. Create it with Open and release the file lock with Close.
type Spool struct {
	db  *bolt.DB
	cfg config

	// writeMu serializes Append, Delete and Close, so that a bound check and its commit are atomic.
	writeMu sync.Mutex

	mu     sync.RWMutex // guards the fields below, which mirror the committed file
	closed bool
	next   uint64    // Seq the next Append assigns
	first  uint64    // Seq of the oldest entry; the spool holds exactly [first, next)
	bytes  int64     // payload bytes held
	oldest time.Time // Enqueued of the oldest entry
}

// Open opens the spool file at path, creating it and its parent directories (mode 0700, file mode
// 0600: entries hold event payloads) when missing. It fails with ErrLocked when another Spool holds
// the file, after waiting a short while for it to be released, and with ErrCorrupt when the
// spool's metadata contradicts its entries.
func Open(path string, opts ...Option) (*Spool, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      lockTimeout,
		FreelistType: bolt.FreelistMapType,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	s := &Spool{db: db, cfg: cfg}
	if err := db.Update(s.load); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("spool: open %s: %w", path, err)
	}
	return s, nil
}

// load creates the buckets of a new file and reads the in-memory mirror of an existing one.
func (s *Spool) load(tx *bolt.Tx) error {
	entries, err := tx.CreateBucketIfNotExists(entriesBucket)
	if err != nil {
		return err
	}
	meta, err := tx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return err
	}
	state := meta.Get(stateKey)
	switch {
	case state == nil:
		s.next, s.bytes = 1, 0
		if err := meta.Put(stateKey, encodeState(s.next, s.bytes)); err != nil {
			return err
		}
	case len(state) == 16:
		s.next = binary.BigEndian.Uint64(state)
		s.bytes = int64(binary.BigEndian.Uint64(state[8:]))
	default:
		return fmt.Errorf("%w: meta state of %d bytes, want 16", ErrCorrupt, len(state))
	}
	c := entries.Cursor()
	firstKey, firstVal := c.First()
	if firstKey == nil {
		s.first = s.next
		return nil
	}
	lastKey, _ := c.Last()
	if len(firstKey) != 8 || len(lastKey) != 8 {
		return fmt.Errorf("%w: entry keys of %d and %d bytes, want 8", ErrCorrupt, len(firstKey), len(lastKey))
	}
	s.first = binary.BigEndian.Uint64(firstKey)
	if last := binary.BigEndian.Uint64(lastKey); last+1 != s.next || s.first > last {
		return fmt.Errorf("%w: entries %d..%d but next seq %d", ErrCorrupt, s.first, last, s.next)
	}
	s.oldest = storedEnqueued(firstVal)
	return nil
}

func encodeState(next uint64, bytes int64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, next)
	binary.BigEndian.PutUint64(b[8:], uint64(bytes))
	return b
}

// Append stores entries in one transaction and returns their Seqs, in argument order, once the
// transaction is fsync'd. It is all or nothing. It fails with ErrFull, writing nothing and
// consuming no Seq, when the entries would take the spool past MaxBytes or MaxEntries. The
// entries' Seq and Enqueued fields are ignored; Append sets them. Append with no entries does
// nothing.
func (s *Spool) Append(entries ...Entry) ([]uint64, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	closed, next, first, held := s.closed, s.next, s.first, s.bytes
	s.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if len(entries) == 0 {
		return nil, nil
	}
	var add int64
	total := 0
	for i := range entries {
		add += payloadSize(&entries[i])
		total += encodedLen(&entries[i])
	}
	if add > s.cfg.maxBytes-held {
		return nil, fmt.Errorf("%w: %d entries of %d payload bytes on top of %d exceed MaxBytes %d",
			ErrFull, len(entries), add, held, s.cfg.maxBytes)
	}
	count := next - first
	if limit := s.cfg.maxEntries; limit > 0 && count+uint64(len(entries)) > uint64(limit) {
		return nil, fmt.Errorf("%w: %d entries on top of %d exceed MaxEntries %d",
			ErrFull, len(entries), count, limit)
	}

	now := time.Now()
	seqs := make([]uint64, len(entries))
	// bbolt keeps references to keys and values until commit, so each gets its own region.
	keys := make([]byte, 8*len(entries))
	vals := make([]byte, total)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(entriesBucket)
		for i := range entries {
			seq := next + uint64(i)
			key := keys[8*i : 8*i+8 : 8*i+8]
			binary.BigEndian.PutUint64(key, seq)
			n := encodedLen(&entries[i])
			val := vals[:n:n]
			vals = vals[n:]
			encodeEntry(val, key, &entries[i], now, payloadSize(&entries[i]))
			if err := b.Put(key, val); err != nil {
				return err
			}
			seqs[i] = seq
		}
		return tx.Bucket(metaBucket).Put(stateKey, encodeState(next+uint64(len(entries)), held+add))
	})
	if err != nil {
		return nil, fmt.Errorf("spool: append: %w", err)
	}

	s.mu.Lock()
	if s.first == s.next {
		s.oldest = now.Round(0).UTC()
	}
	s.next += uint64(len(entries))
	s.bytes += add
	s.mu.Unlock()
	return seqs, nil
}

// Peek returns up to max of the oldest entries, in Seq order, without removing them. The entries
// own their memory. When it meets an entry that fails its checksum or does not decode, Peek returns
// the entries before it together with a *CorruptError (ErrCorrupt) naming its Seq. max must be
// positive.
func (s *Spool) Peek(max int) ([]Entry, error) {
	if max <= 0 {
		return nil, fmt.Errorf("spool: Peek max must be positive, got %d", max)
	}
	s.mu.RLock()
	closed, count := s.closed, s.next-s.first
	s.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	out := make([]Entry, 0, min(uint64(max), count))
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(entriesBucket).Cursor()
		for k, v := c.First(); k != nil && len(out) < max; k, v = c.Next() {
			e, err := decodeEntry(k, v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return nil, ErrClosed
	}
	var corrupt *CorruptError
	if errors.As(err, &corrupt) {
		return out, err
	}
	if err != nil {
		return nil, fmt.Errorf("spool: peek: %w", err)
	}
	return out, nil
}

// Delete removes every entry with Seq <= throughSeq in one fsync'd transaction; Seqs not in the
// spool are ignored. The drainer calls it once the broker acknowledged those entries. It also
// removes corrupt entries; when it does, it recounts Bytes from the entries that remain.
func (s *Spool) Delete(throughSeq uint64) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.RLock()
	closed, next, first, held := s.closed, s.next, s.first, s.bytes
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if first == next || throughSeq < first {
		return nil
	}
	newFirst, remaining := next, held
	var oldest time.Time
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(entriesBucket).Cursor()
		damaged := false
		k, v := c.First()
		for ; k != nil; k, v = c.First() {
			if len(k) != 8 {
				return fmt.Errorf("%w: entry key of %d bytes, want 8", ErrCorrupt, len(k))
			}
			if seq := binary.BigEndian.Uint64(k); seq > throughSeq {
				newFirst, oldest = seq, storedEnqueued(v)
				break
			}
			if intact(k, v) {
				remaining -= storedSize(v)
			} else {
				damaged = true
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
		if damaged {
			// A damaged entry's size is unknown: count what is left instead.
			remaining = 0
			for ; k != nil; k, v = c.Next() {
				remaining += storedSize(v)
			}
		}
		return tx.Bucket(metaBucket).Put(stateKey, encodeState(next, remaining))
	})
	if err != nil {
		return fmt.Errorf("spool: delete through %d: %w", throughSeq, err)
	}
	s.mu.Lock()
	s.first, s.bytes, s.oldest = newFirst, remaining, oldest
	s.mu.Unlock()
	return nil
}

// Len returns the number of entries in the spool, from memory.
func (s *Spool) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return int(s.next - s.first)
}

// Bytes returns the payload bytes in the spool as counted against MaxBytes, from memory.
func (s *Spool) Bytes() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.bytes
}

// OldestAge returns how long the oldest entry has waited at now: now minus its Enqueued, never
// negative, and 0 when the spool is empty. While the oldest entry is corrupt (see Peek) its age is
// read from its unverified header and may be wrong.
func (s *Spool) OldestAge(now time.Time) time.Duration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.first == s.next {
		return 0
	}
	return max(now.Sub(s.oldest), 0)
}

// Close releases the file and its lock. Later calls of other methods fail with ErrClosed; Close
// itself may be called again and then returns nil.
func (s *Spool) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("spool: close: %w", err)
	}
	return nil
}

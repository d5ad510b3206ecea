package views

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The store is one bbolt file per system. Each view has a bucket "view:<name>" holding the items
// (nested bucket "items", key "<tenantId>\x00<key>", value the Item's JSON), the next offset of each
// source partition (nested bucket "pos", 4-byte partition -> 8-byte offset) and its meta keys: the
// item count, the source topic, and the mark that its restore from the changelog finished. The
// bucket "schemas" caches the registry's writer schemas by id.
var (
	itemsBucket   = []byte("items")
	posBucket     = []byte("pos")
	schemasBucket = []byte("schemas")
	countKey      = []byte("count")
	topicKey      = []byte("topic")
	restoredKey   = []byte("restored")
)

// StoreFile is the store's file name inside the directory given to Open.
const StoreFile = "views.db"

const lockTimeout = 250 * time.Millisecond

type store struct{ db *bolt.DB }

func openStore(dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("views: store directory: %w", err)
	}
	path := filepath.Join(dir, StoreFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("views: opening %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(schemasBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("views: %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func viewBucket(name string) []byte { return []byte("view:" + name) }

func itemKey(tenant, key string) []byte { return []byte(tenant + "\x00" + key) }

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putU64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func partKey(p int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(p)) }

// viewState is what a view keeps on disk besides its items.
type viewState struct {
	restored bool
	topic    string
	count    int64
	pos      map[int32]int64
}

// state reads a view's meta and positions.
func (s *store) state(view string) (viewState, error) {
	st := viewState{pos: map[int32]int64{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(viewBucket(view))
		if b == nil {
			return nil
		}
		st.restored = b.Get(restoredKey) != nil
		st.topic = string(b.Get(topicKey))
		st.count = int64(u64(b.Get(countKey)))
		if pb := b.Bucket(posBucket); pb != nil {
			return pb.ForEach(func(k, v []byte) error {
				st.pos[int32(binary.BigEndian.Uint32(k))] = int64(u64(v))
				return nil
			})
		}
		return nil
	})
	return st, err
}

// reset empties a view's bucket and records its source topic, before a restore.
func (s *store) reset(view, topic string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(viewBucket(view)) != nil {
			if err := tx.DeleteBucket(viewBucket(view)); err != nil {
				return err
			}
		}
		b, err := tx.CreateBucket(viewBucket(view))
		if err != nil {
			return err
		}
		if _, err := b.CreateBucket(itemsBucket); err != nil {
			return err
		}
		if _, err := b.CreateBucket(posBucket); err != nil {
			return err
		}
		return b.Put(topicKey, []byte(topic))
	})
}

// op is one change to a view's items: put Item (its JSON in value) or delete (value nil).
type op struct {
	key   []byte
	value []byte
}

// commit applies ops to a view, moves the count, and sets the given partitions' positions, in one
// transaction; restored marks the end of a restore.
func (s *store) commit(view string, ops []op, pos map[int32]int64, restored bool) (count int64, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(viewBucket(view))
		if b == nil {
			return fmt.Errorf("views: view %s has no bucket (not reset)", view)
		}
		items, pb := b.Bucket(itemsBucket), b.Bucket(posBucket)
		count = int64(u64(b.Get(countKey)))
		for _, o := range ops {
			had := items.Get(o.key) != nil
			if o.value == nil {
				if had {
					count--
					if err := items.Delete(o.key); err != nil {
						return err
					}
				}
				continue
			}
			if !had {
				count++
			}
			if err := items.Put(o.key, o.value); err != nil {
				return err
			}
		}
		if err := b.Put(countKey, putU64(uint64(count))); err != nil {
			return err
		}
		for p, off := range pos {
			if err := pb.Put(partKey(p), putU64(uint64(off))); err != nil {
				return err
			}
		}
		if restored {
			return b.Put(restoredKey, []byte{1})
		}
		return nil
	})
	return count, err
}

// get returns the stored JSON of an item (nil when absent), copied out of the transaction.
func (s *store) get(view string, key []byte) ([]byte, error) {
	out, err := s.gets(view, [][]byte{key})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// gets returns the stored JSON of each item of keys (nil when absent), read in one transaction and
// copied out of it.
func (s *store) gets(view string, keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(viewBucket(view)); b != nil {
			if items := b.Bucket(itemsBucket); items != nil {
				for i, k := range keys {
					if v := items.Get(k); v != nil {
						out[i] = bytes.Clone(v)
					}
				}
			}
		}
		return nil
	})
	return out, err
}

// scan returns up to limit items whose key starts with prefix and sorts after after ("" = from
// the first), and whether more follow.
func (s *store) scan(view string, prefix, after []byte, limit int) (items []Item, more bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(viewBucket(view))
		if b == nil || b.Bucket(itemsBucket) == nil {
			return nil
		}
		c := b.Bucket(itemsBucket).Cursor()
		k, v := c.Seek(prefix)
		if after != nil {
			k, v = c.Seek(after)
			if bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(items) == limit {
				more = true
				return nil
			}
			var it Item
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("views: stored item %q: %w", k, err)
			}
			items = append(items, it)
		}
		return nil
	})
	return items, more, err
}

// schema returns a cached registry response for a schema id (nil when not cached).
func (s *store) schema(id string) []byte {
	var out []byte
	_ = s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(schemasBucket).Get([]byte(id)))
		return nil
	})
	return out
}

func (s *store) putSchema(id string, body []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(schemasBucket).Put([]byte(id), body) })
}

func (s *store) close() error { return s.db.Close() }

var freshKey = []byte("fresh")

// fresh returns when the view was last confirmed caught up (zero when never).
func (s *store) fresh(view string) time.Time {
	var t time.Time
	_ = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(viewBucket(view)); b != nil {
			if v := b.Get(freshKey); v != nil {
				t = time.Unix(0, int64(u64(v)))
			}
		}
		return nil
	})
	return t
}

func (s *store) putFresh(view string, t time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(viewBucket(view))
		if b == nil {
			return nil
		}
		return b.Put(freshKey, putU64(uint64(t.UnixNano())))
	})
}

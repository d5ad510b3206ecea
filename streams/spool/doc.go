// Package spool is the producer's durable offline queue: when the Kafka cluster cannot be reached,
// records are appended here and a drainer produces them later, in order.
//
// # Why bbolt
//
// The spool is one go.etcd.io/bbolt file. bbolt is well kept (it is etcd's storage engine), keeps
// everything in a single file, gives ACID transactions that fsync on commit, keeps keys ordered so a
// big-endian sequence number as key yields FIFO order for free, and takes an exclusive file lock so
// two producers can never share one spool. Pebble was rejected because its LSM machinery and
// background compactions buy nothing for a small FIFO; a custom segment log was rejected because
// its crash-recovery code would be ours to get right and to maintain.
//
// # Contracts
//
//   - Append returns only after its transaction is committed and fsync'd. An Append is all or
//     nothing: every entry of the call is stored, or none is.
//   - Order is Seq order, which is the order of the Append calls (and, within a call, the order of
//     its arguments). Seqs start at 1, are strictly increasing and are never reused, not even after
//     every entry was deleted and the file reopened.
//   - A crash (kill -9, power loss) after Append returned never loses its entries. A crash during
//     Append loses that whole Append, and the caller never saw it succeed.
//   - Delete is durable the same way. A crash between producing entries and deleting them makes the
//     drainer produce them again: delivery is at least once, and consumers deduplicate by EventID.
//   - If the disk itself fails while a commit syncs, bbolt cannot say whether the commit reached
//     the disk; the Append reports an error, yet its entries may appear after a reopen (again at
//     least once, never lost and never reordered).
//   - Every entry carries a CRC32C checksum that is verified on every read, because bbolt does not
//     checksum data pages. An entry that fails it is reported as ErrCorrupt naming its Seq; it is
//     never skipped silently.
//
// A Spool is safe for concurrent use by multiple goroutines.
//
// # File layout
//
// Bucket "entries" maps the 8-byte big-endian Seq to the entry's value:
//
//	crc32c  4 bytes, big-endian: CRC32C (Castagnoli) of the 8 key bytes followed by all bytes after
//	        the checksum, so a value found under the wrong key fails as well
//	version 1 byte, 1
//	enq     8 bytes, big-endian: Enqueued as Unix nanoseconds
//	size    8 bytes, big-endian: the entry's payload bytes as counted against MaxBytes
//	topic   uvarint length, bytes
//	key     nullable bytes: uvarint 0 for nil, else uvarint len+1 and the bytes
//	value   nullable bytes
//	eventID uvarint length, bytes
//	headers uvarint count, then per header: uvarint length and key bytes, nullable value bytes
//
// Bucket "meta" holds key "state": the next Seq and the payload bytes in the spool, 8 bytes
// big-endian each, updated in the same transaction as the entries.
package spool

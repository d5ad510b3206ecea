package spool

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test with errors.Is; the returned errors wrap them with detail.
var (
	// ErrFull: the Append would take the spool past MaxBytes or MaxEntries. Nothing of that Append
	// was written. Retryable once the drainer has deleted entries; an Append larger than the bound
	// on its own never succeeds.
	ErrFull = errors.New("spool: full")

	// ErrLocked: another Spool (in this or another process) holds the file open. Two producers must
	// never share one spool.
	ErrLocked = errors.New("spool: file locked by another opener")

	// ErrClosed: the Spool was closed.
	ErrClosed = errors.New("spool: closed")

	// ErrCorrupt: an entry fails its checksum or does not decode, or the spool's metadata
	// contradicts its entries. For an entry the error is a *CorruptError naming the Seq; the
	// operator decides what to do with it (Delete through that Seq drops it and everything before).
	ErrCorrupt = errors.New("spool: corrupt")
)

// CorruptError reports one entry that fails its checksum or does not decode. It matches ErrCorrupt
// under errors.Is.
type CorruptError struct {
	Seq    uint64 // the entry's Seq, as stored in its key
	Reason string // what is wrong with it
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spool: corrupt entry seq %d: %s", e.Seq, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

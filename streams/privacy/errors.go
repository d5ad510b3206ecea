package privacy

import (
	"errors"
	"fmt"

	"github.com/hotelbus/hotelbus/streams"
)

var (
	// ErrInvalid is wrapped when topics/privacy.yaml or a key file is malformed or inconsistent with
	// the catalog and the schemas; the message names the file and the key. Not retried.
	ErrInvalid = errors.New("privacy: invalid declarations")

	// ErrNoSubject is wrapped when an event with pii fields names no subject (every subject field of
	// its type is null or empty) or names one outside the grammar. It wraps streams.ErrInvalidEvent,
	// so it is not retried (the gateway answers 400).
	ErrNoSubject = fmt.Errorf("%w: no data subject", streams.ErrInvalidEvent)

	// ErrTampered is wrapped when a sealed value does not open under the key it names (altered,
	// moved to another field or event, or a KEK that does not unwrap its key). It wraps
	// streams.ErrMalformedRecord, so the record is dead-lettered, never retried and never shown
	// as erased.
	ErrTampered = fmt.Errorf("%w: sealed value does not authenticate", streams.ErrMalformedRecord)

	// ErrKeys is wrapped when the key topic or the KMS cannot be reached or read in time. Retried
	// (streams.IsRetryable treats it as transient).
	ErrKeys = errors.New("privacy: keys unavailable")

	// ErrUnknownKEK is wrapped when a data key is wrapped by a KEK the KMS does not hold. Not
	// retried: a KEK was removed from the key file before every key was re-wrapped.
	ErrUnknownKEK = fmt.Errorf("%w: unknown key-encryption key", streams.ErrPermanent)
)

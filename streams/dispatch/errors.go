package dispatch

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrConfig: an option or the target is invalid.
var ErrConfig = errors.New("dispatch: invalid configuration")

// ErrBadSignature: Verify found the signature header missing, malformed, too old or not matching.
var ErrBadSignature = errors.New("dispatch: bad signature")

// Dead-letter headers added for an event the target refused (see TargetError).
const (
	HeaderHTTPStatus   = "hotelbus.dlq.http.status"   // the target's HTTP status, decimal
	HeaderHTTPResponse = "hotelbus.dlq.http.response" // the start of the target's answer
)

// TargetError is a delivery the target answered with a status other than 2xx. 408, 429 and 5xx
// are retryable (Retryable); other statuses are permanent: the event goes to the dead-letter topic
// with HeaderHTTPStatus and HeaderHTTPResponse.
type TargetError struct {
	Status  int
	Excerpt string        // the start of the answer's body
	After   time.Duration // the answer's Retry-After (0: none)
}

func (e *TargetError) Error() string {
	return fmt.Sprintf("dispatch: target answered %d: %q", e.Status, e.Excerpt)
}

// Retryable reports whether the status is worth trying again (streams.IsRetryable asks).
func (e *TargetError) Retryable() bool { return transientStatus(e.Status) }

// RetryAfter is the wait the target asked for (streams' retry middleware honours it).
func (e *TargetError) RetryAfter() time.Duration { return e.After }

// DeadLetterHeaders adds the status and the answer's start to the dead-letter record.
func (e *TargetError) DeadLetterHeaders() []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: HeaderHTTPStatus, Value: []byte(strconv.Itoa(e.Status))},
		{Key: HeaderHTTPResponse, Value: []byte(e.Excerpt)},
	}
}

func transientStatus(s int) bool { return s == 408 || s == 429 || s >= 500 }

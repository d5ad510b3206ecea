package rabbitmq

import "errors"

// Sentinel errors. Test with errors.Is; returned errors wrap them with detail.
var (
	// ErrConfig: an option or the user map is invalid; the message names it. Not retryable.
	ErrConfig = errors.New("rabbitmq: invalid configuration")

	// ErrNotConfirmed: RabbitMQ did not confirm a publication: it nacked it, or the channel closed
	// before the confirm (a restart, a lost connection). Retryable: the publication is sent again
	// on the next connection.
	ErrNotConfirmed = errors.New("rabbitmq: publication not confirmed")

	// ErrUnroutable: RabbitMQ returned a mandatory publication: no queue is bound for its routing
	// key, so nobody would have received it. Not retryable (wrapped with streams.Permanent): the
	// consumer runtime dead-letters the event.
	ErrUnroutable = errors.New("rabbitmq: publication returned unroutable")
)

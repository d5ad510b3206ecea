package replay

import "errors"

var (
	// ErrConfig is wrapped by every error New returns for a Config that cannot work; the message
	// names the setting (by its command-line flag). Not retried: the configuration must change.
	ErrConfig = errors.New("replay: invalid configuration")

	// ErrWhereCost is wrapped by the error that stops a Run when --where needs more than
	// Config.WhereCostLimit on one record; the message names the limit, its flag and the record.
	// Not retried: the expression, or the limit, must change.
	ErrWhereCost = errors.New("replay: --where exceeds its cost limit")
)

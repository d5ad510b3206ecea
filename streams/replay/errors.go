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

	// ErrResyncConfig is wrapped by the errors of PlanResync for a request that cannot work (an
	// unknown system, one that subscribes to nothing); the message names the flag. Not retried.
	ErrResyncConfig = errors.New("resync: invalid request")

	// ErrLiveMembers is returned by ResyncPlan.Apply when the group has live members and force is
	// off: they would overwrite the moved offsets with their own commits. Not retried as such: stop
	// the members first.
	ErrLiveMembers = errors.New("resync: the consumer group has live members")
)

package contract

import "errors"

// ErrInconsistent is wrapped when the catalog and the schema tree disagree (a published event
// type without a schema, or a schema of a type nobody publishes), or a schema uses a type that has
// no JSON form at the gateway. It is never retried: the declarations must be fixed.
var ErrInconsistent = errors.New("contract: catalog and schemas disagree")

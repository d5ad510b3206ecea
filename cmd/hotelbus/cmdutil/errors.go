package cmdutil

import "errors"

// ErrUnreachable: Kafka, the schema registry or Redis did not answer Reachable's request within
// --connect-timeout, or refused it. The command is not retried: it exits 1 with the message, which
// names the service, its address and where the address came from.
var ErrUnreachable = errors.New("cannot reach")

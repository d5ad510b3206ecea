package registry

import "errors"

var (
	// ErrConfig is wrapped by New when an Option is invalid.
	ErrConfig = errors.New("registry: invalid configuration")
	// ErrJournal is wrapped by New when DataDir's journal cannot be opened, is corrupt, or does not
	// replay to the state it recorded, and by Close when the journal could not be closed.
	ErrJournal = errors.New("registry: journal")
	// ErrClosed is reported (HTTP 503) for changes requested through Handler after Close.
	ErrClosed = errors.New("registry: closed")
)

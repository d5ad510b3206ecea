package views

import "errors"

// Sentinel errors. Test with errors.Is; returned errors wrap them with detail.
var (
	// ErrNotFound: the view holds no item for the tenant and key. Not retryable (ask again after
	// WaitFor when the item is expected from an event just published).
	ErrNotFound = errors.New("views: not found")
	// ErrUnknownView: the system has no view of that name. Not retryable.
	ErrUnknownView = errors.New("views: unknown view")
	// ErrInvalid: a tenantId, key, prefix or cursor breaks the identifier grammar, or a view does not
	// match the schemas of the types that feed it. Not retryable.
	ErrInvalid = errors.New("views: invalid")
	// ErrConfig: a Config field is missing or out of range; the message names it. Not retryable.
	ErrConfig = errors.New("views: invalid configuration")
	// ErrLocked: another process holds the store file. Retryable once that process exits.
	ErrLocked = errors.New("views: store is locked by another process")
	// ErrClosed: the views were closed. Not retryable.
	ErrClosed = errors.New("views: closed")
)

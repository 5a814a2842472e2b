package cortex

import "errors"

// ErrNotFound marks a call that names a known error, solution or document
// that does not exist; stores wrap it so the HTTP layer can answer 404.
var ErrNotFound = errors.New("not found")

// ErrInvalid marks a request the caller must fix (answered with 400).
var ErrInvalid = errors.New("invalid request")

// ErrUnavailable marks a dependency (embedder, store) that failed, so the
// caller may retry later (answered with 503).
var ErrUnavailable = errors.New("unavailable")

// kinded is an error with a message of its own that still answers
// errors.Is for one of the sentinels above.
type kinded struct {
	kind error
	msg  string
}

func (k kinded) Error() string { return k.msg }
func (k kinded) Unwrap() error { return k.kind }

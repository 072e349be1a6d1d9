// Package fault gives domain errors a kind, so that packages which know the
// domain (post, comment) need not know HTTP, and the one place that knows
// HTTP (package api) can map every domain error to a status code.
package fault

import "errors"

// Kind classifies a domain error by what the caller should do about it.
type Kind int

// The kinds a domain error can have. Unknown errors are Internal.
const (
	Internal Kind = iota
	NotFound
	Conflict
	Invalid
)

// Error is a domain error: a sentinel with a kind and a message that is safe
// to show a client.
type Error struct {
	Kind Kind
	Msg  string
}

// Error returns the client-safe message.
func (e *Error) Error() string { return e.Msg }

// New returns a sentinel domain error of the given kind.
func New(k Kind, msg string) error { return &Error{Kind: k, Msg: msg} }

// KindOf returns the kind of the first domain error in err's chain (Invalid
// for Fields), or Internal when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	var f Fields
	if errors.As(err, &f) {
		return Invalid
	}
	return Internal
}

// Message returns the client-safe message of the first domain error in err's
// chain, or "" when there is none: wrapped context (which may name tables or
// hosts) is never part of it.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return ""
}
